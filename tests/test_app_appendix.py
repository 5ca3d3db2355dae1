"""The Appendix A page under Streamlit's AppTest: it runs, and every control moves the crops (in
one dimension) and the rates (in two)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from app_helpers import texts
from helpers import APP, run_app
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "appendix_a.py")
TIMEOUT = 120
pytestmark = pytest.mark.slow  # the app under AppTest: seconds per test


def _crops(at: AppTest) -> list[tuple[float, float]]:
    """The crop of every distribution Figure 7 shows, as its subplot titles give it
    (``#0: rate 0.53, crop [12.3, 41.9], mass 91%``)."""
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("-appx_grid"))
    titles = [a["text"] for a in json.loads(chart.proto.spec)["layout"]["annotations"]
              if a.get("text", "").startswith("#")]
    return [(float(a), float(b)) for title in titles
            for a, b in re.findall(r"crop \[([\d.]+), ([\d.]+)\]", title)]


@pytest.fixture(scope="module")
def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    return at


def _rate(at: AppTest, label: str) -> tuple[float, float]:
    """The two-dimensional section's rate metric whose label starts with ``label``, as
    ``(across, down)``."""
    value = next(m.value for m in at.metric if m.label.startswith(label))
    across, down = value.split(" × ")
    return float(across), float(down)


def test_page_draws_the_grid_and_the_summary(page):
    # grid, histograms, scatter, k sweep; in two dimensions the maps and the rate curves
    assert len(page.get("plotly_chart")) == 6
    assert len(page.metric) == 8
    assert page.metric[0].label == "mean mass inside the crop"
    crops = _crops(page)
    assert len(crops) == 9 and all(0 <= a < b <= 56 for a, b in crops)  # 9 shown, L 56


def test_k_and_dsr_sliders_move_the_crops(page):
    before = _crops(page)
    page.slider(key="appx.k").set_value(0.3).run()
    assert not page.exception
    smaller = _crops(page)
    assert smaller != before
    assert sum(b - a for a, b in smaller) < sum(b - a for a, b in before)
    page.slider(key="appx.dsr").set_value(0.9).run()
    assert not page.exception
    wide = _crops(page)
    assert all(b - a >= 0.9 * 56 - 1 for a, b in wide)  # the DSR is the rate's floor
    page.slider(key="appx.dsr").set_value(0.5).run()
    page.slider(key="appx.k").set_value(1.0).run()
    assert _crops(page) == before


def test_simulation_controls(page):
    before = _crops(page)
    page.number_input(key="appx.seed").set_value(7).run()
    assert not page.exception and _crops(page) != before
    page.slider(key="appx.count").set_value(2).run()
    assert not page.exception and len(_crops(page)) == 2
    page.select_slider(key="appx.length").set_value(28).run()
    assert not page.exception and all(b <= 28 for _, b in _crops(page))
    page.select_slider(key="appx.spikiness").set_value(4.0).run()
    page.slider(key="appx.background").set_value(0.1).run()
    page.slider(key="appx.placement").set_value((0.3, 0.6)).run()
    page.slider(key="appx.spread").set_value((0.05, 0.1)).run()
    page.slider(key="appx.columns").set_value(1).run()
    page.toggle(key="appx.show_true").set_value(False).run()
    page.select_slider(key="appx.summary_count").set_value(100).run()
    assert not page.exception
    assert page.metric[0].value.endswith("%")


def test_floor_slider_reaches_2_and_preset_needs_a_checkpoint():
    """The slider goes to 2.0, the unit of the measured floor (a trained network's sigmoid
    leaves a floor above 1 relative to the peak)."""
    page = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    page.slider(key="appx.dsr").set_value(0.05).run()  # the rate unbounded below
    assert page.slider(key="appx.background").max == 2.0
    page.slider(key="appx.background").set_value(2.0).run()
    assert not page.exception
    high = page.metric[3].value
    page.slider(key="appx.background").set_value(0.0).run()
    assert float(page.metric[3].value) > float(high)  # a floor turns the correlation down
    page.radio(key="appx.floor_source").set_value("as measured in the loaded checkpoint").run()
    assert not page.exception
    assert any("needs a SynthBirds checkpoint" in i for i in texts(page.info))
    page.radio(key="appx.floor_source").set_value("set by hand").run()
    assert "Why a floor" in " ".join(texts(page.markdown))


def test_floor_preset_measures_the_loaded_checkpoint(app_env, tiny_checkpoint):
    from arpviz.analysis import measure_confidence_floor
    from arpviz.checkpoint import load

    at = run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.switch_page("pages/appendix_a.py")
    run_app(at)
    at.radio(key="appx.floor_source").set_value("as measured in the loaded checkpoint")
    run_app(at)
    # Conv4's floor first (the paper's main ARP stage), in the slider's unit
    assert at.selectbox(key="appx.floor_stage").value == "conv4.local0"
    floors = measure_confidence_floor(load(str(tiny_checkpoint)), count=16)
    for stage in ("conv4.local0", "conv3"):
        at.selectbox(key="appx.floor_stage").set_value(stage)
        run_app(at)
        text = next(c for c in texts(at.caption) if "relative to the peak" in c)
        expected = floors[stage]
        assert f"a floor of {expected.relative:.3f} relative to the peak" in text, stage
        assert f"averages {expected.level:.3f} off the bird" in text, stage
        assert f"peaks at {expected.peak:.3f}" in text, stage
    assert not any(c.startswith("appendix ") for c in texts(at.caption))  # no debug echo


def test_two_dimensional_section_moves_the_rates(page):
    """Appendix A in two dimensions: the paper's rate stays high and falls as the object grows;
    ARP-FG's follows the object; every control reruns without an exception."""
    arp, fg, ideal = (_rate(page, name) for name in
                      ("ARP (the paper)", "ARP-FG (beyond the paper)", "the object's extent"))
    assert min(arp) > 0.9  # the floor: the crop spans most of the map
    assert fg == pytest.approx(ideal, abs=0.02)  # k 1: the object's extent
    assert any("What you see" in c for c in texts(page.caption))
    page.slider(key="appx2d.width").set_value(0.7).run()
    assert not page.exception
    wider_arp, wider_fg = _rate(page, "ARP (the paper)"), _rate(page, "ARP-FG")
    assert wider_fg[0] > fg[0] + 0.3 and wider_fg[1] == pytest.approx(fg[1], abs=0.02)
    assert wider_arp[0] < arp[0]  # the paper's rate falls as the object grows
    page.slider(key="appx2d.k").set_value(0.7).run()
    assert not page.exception
    assert _rate(page, "the paper's Eq. 9 on an ideal map") == (0.5, 0.5)  # the DSR bound
    assert _rate(page, "ARP-FG")[0] == pytest.approx(0.7 * wider_fg[0], abs=0.03)
    page.select_slider(key="appx2d.tau").set_value(8.0).run()
    assert not page.exception
    assert max(_rate(page, "ARP (the paper)")) < 0.7 * max(wider_arp)  # a sharper sigmoid
    before = _rate(page, "ARP-FG")
    page.slider(key="appx2d.clutter").set_value(1.0).run()
    assert not page.exception and _rate(page, "ARP-FG") != before
    page.number_input(key="appx2d.seed").set_value(4).run()
    page.radio(key="appx2d.region").set_value("peak").run()
    page.slider(key="appx2d.height").set_value(0.1).run()
    page.slider(key="appx2d.x").set_value(0.0).run()
    page.slider(key="appx2d.y").set_value(1.0).run()
    page.slider(key="appx2d.dsr").set_value(0.05).run()
    assert not page.exception
    assert len(page.get("plotly_chart")) == 6


def test_floor_preset_on_a_network_that_pools_nothing(app_env, tmp_path, monkeypatch):
    """An all-strided checkpoint has no confidence map: a note, and the slider by hand."""
    folder = tmp_path / "strided"
    folder.mkdir()
    shutil.copy(ROOT / "checkpoints" / "synthbirds_wide_baseline_stride.safetensors",
                folder / "stride.safetensors")  # a link out of the allowed roots: not listed
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(folder))
    at = run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.switch_page("pages/appendix_a.py")
    run_app(at)
    at.radio(key="appx.floor_source").set_value("as measured in the loaded checkpoint")
    run_app(at)
    assert not at.exception
    assert any("pools nothing" in i for i in texts(at.info))
    assert at.slider(key="appx.background").value == pytest.approx(0.02)
