"""The Appendix A page under Streamlit's AppTest: it runs, and every control moves the crops."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import APP, run_app
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "appendix_a.py")
TIMEOUT = 120
pytestmark = pytest.mark.slow  # the app under AppTest: seconds per test


def _crops(at: AppTest) -> list[tuple[float, float]]:
    text = next(c.value for c in at.caption if c.value.startswith("appendix crops"))
    return [(float(a), float(b)) for a, b in re.findall(r"\[([\d.]+), ([\d.]+)\]", text)]


@pytest.fixture(scope="module")
def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    return at


def test_page_draws_the_grid_and_the_summary(page):
    assert len(page.get("plotly_chart")) == 4  # grid, histograms, scatter, k sweep
    assert len(page.metric) == 4
    assert page.metric[0].label == "mean mass inside the crop"
    crops = _crops(page)
    assert len(crops) == 4 and all(0 <= a < b <= 56 for a, b in crops)


def test_k_and_dsr_sliders_move_the_crops(page):
    before = _crops(page)
    page.slider(key="appx_k").set_value(0.3).run()
    assert not page.exception
    smaller = _crops(page)
    assert smaller != before
    assert sum(b - a for a, b in smaller) < sum(b - a for a, b in before)
    page.slider(key="appx_dsr").set_value(0.9).run()
    assert not page.exception
    wide = _crops(page)
    assert all(b - a >= 0.9 * 56 - 1 for a, b in wide)  # the DSR is the rate's floor
    page.slider(key="appx_dsr").set_value(0.5).run()
    page.slider(key="appx_k").set_value(1.0).run()
    assert _crops(page) == before


def test_simulation_controls(page):
    before = _crops(page)
    page.number_input(key="appx_seed").set_value(7).run()
    assert not page.exception and _crops(page) != before
    page.slider(key="appx_count").set_value(2).run()
    assert not page.exception and len(_crops(page)) == 2
    page.select_slider(key="appx_length").set_value(28).run()
    assert not page.exception and all(b <= 28 for _, b in _crops(page))
    page.select_slider(key="appx_spikiness").set_value(4.0).run()
    page.slider(key="appx_background").set_value(0.1).run()
    page.slider(key="appx_placement").set_value((0.3, 0.6)).run()
    page.slider(key="appx_spread").set_value((0.05, 0.1)).run()
    page.slider(key="appx_cols").set_value(1).run()
    page.toggle(key="appx_true").set_value(False).run()
    page.select_slider(key="appx_summary_count").set_value(100).run()
    assert not page.exception
    assert page.metric[0].value.endswith("%")


def test_floor_slider_reaches_0_6_and_preset_needs_a_checkpoint():
    page = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    page.slider(key="appx_dsr").set_value(0.05).run()  # the rate unbounded below
    assert page.slider(key="appx_background").max == 0.6
    page.slider(key="appx_background").set_value(0.6).run()
    assert not page.exception
    high = page.metric[3].value
    page.slider(key="appx_background").set_value(0.0).run()
    assert float(page.metric[3].value) > float(high)  # a floor turns the correlation down
    page.radio(key="appx_floor_source").set_value("as measured in the loaded checkpoint").run()
    assert not page.exception
    assert any("needs a SynthBirds checkpoint" in str(i.value) for i in page.info)
    page.radio(key="appx_floor_source").set_value("set by hand").run()
    assert "Why a floor" in " ".join(str(m.value) for m in page.markdown)


def test_floor_preset_measures_the_loaded_checkpoint(app_env, tiny_checkpoint):
    from arpviz.checkpoint import load
    from arpviz.simulate import measure_confidence_floor

    at = run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.switch_page("pages/appendix_a.py")
    run_app(at)
    at.radio(key="appx_floor_source").set_value("as measured in the loaded checkpoint")
    run_app(at)
    text = next(c.value for c in at.caption if c.value.startswith("appendix floor"))
    expected = measure_confidence_floor(load(str(tiny_checkpoint)), count=16)["conv4.local0"]
    assert f"simulator floor {expected.relative:.3f} = background" in text
    assert f"background {expected.level:.3f}" in text
