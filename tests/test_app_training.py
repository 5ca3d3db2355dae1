"""The Training page under Streamlit's AppTest: runs, epoch slider, play, ARP against STN."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from app_helpers import rendered, texts
from helpers import rewrite_checkpoint, write_checkpoint
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "training.py")
APP = str(ROOT / "app.py")
TIMEOUT = 120
pytestmark = pytest.mark.slow  # the app under AppTest: seconds per test


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two runs on the same probes (ARP and STN in Conv4) and a file that is no checkpoint."""
    path = tmp_path_factory.mktemp("training_runs")
    write_checkpoint(path / "msgn_arp.safetensors", "arp")
    write_checkpoint(path / "msgn_stn.safetensors", "stn", seed=1)
    (path / "broken.safetensors").write_bytes(b"not a checkpoint")
    return path


@pytest.fixture()
def env(folder, monkeypatch) -> Path:
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(folder))
    monkeypatch.delenv("ARPVIZ_CHECKPOINT_DIR", raising=False)
    return folder


def charts(at: AppTest) -> dict[str, dict]:
    """The page's plotly charts by widget key (the end of the element id), as JSON specs."""
    return {c.proto.id.split("-", 2)[-1]: json.loads(c.proto.spec)
            for c in at.get("plotly_chart")}


def _boxes(at: AppTest, key: str = "train_probe_fig_0") -> dict[str, list]:
    """The box traces of a probe figure: ``{trace name: x coordinates}``."""
    return {t["name"]: t["x"] for t in charts(at)[key]["data"][1:]}


def _no_debug_text(at: AppTest) -> None:
    """No caption of raw box tuples or internal stage names."""
    said = texts(at.caption) + texts(at.markdown)
    assert not any("training boxes" in t or "training comparison" in t for t in said), said
    assert not any("conv4.local0" in t or "(0.0, 0.0" in t for t in said), said


def test_page_shows_curves_probes_and_comparison(env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    # the bundled default with its STN counterpart: the comparison shows at once
    assert at.multiselect(key="train.runs").value == ["msgn_arp", "msgn_stn"]
    assert at.select_slider(key="train.epoch").value == 3  # the last epoch first
    assert any("broken.safetensors" in rendered(e.label) or "1 checkpoint" in e.label
               for e in at.expander)
    # curves once; probes x 2, confidence x 2, rates, comparison
    shown = charts(at)
    assert sorted(shown) == sorted(["train_curves", "train_probe_fig_0", "train_probe_fig_1",
                                    "train_conf_0", "train_conf_1", "train_rates",
                                    "train_pair_fig"])
    learning = [k for k, spec in shown.items()
                if any(a.get("text") == "loss" for a in spec["layout"].get("annotations", []))]
    assert learning == ["train_curves"]  # the learning curves are drawn once
    # one name per stage, with its pooling mode
    assert list(_boxes(at)) == ["Conv3 (ARP)", "Conv4 local 0 (ARP)"]
    assert list(_boxes(at, "train_probe_fig_1")) == ["Conv3 (ARP)", "Conv4 local 0 (STN)"]
    assert at.multiselect(key="train.stages").options == ["Conv3 (ARP)", "Conv4 local 0"]
    pair = [t["name"] for t in shown["train_pair_fig"]["data"][1:]]
    assert pair == ["ARP run: Conv4 local 0 (ARP)", "STN run: Conv4 local 0 (STN)",
                    "Conv3 (ARP), both runs", "Conv3 (ARP), both runs"]
    assert [t["showlegend"] for t in shown["train_pair_fig"]["data"][3:]] == [True, False]
    _no_debug_text(at)
    # one stage table of both runs, full width: well-named columns, sizes height x width
    assert len(at.dataframe) == 1
    table = at.dataframe[0].value
    assert list(table.columns) == ["run", "stage", "crop rate (h x w)", "crop (h x w px)",
                                   "crop top, left (px)", "map (h x w)", "output (h x w)"]
    assert list(table["run"]) == ["msgn_arp", "msgn_arp", "msgn_stn", "msgn_stn"]
    assert list(table["stage"]) == ["Conv3 (ARP)", "Conv4 local 0 (ARP)", "Conv3 (ARP)",
                                    "Conv4 local 0 (STN)"]


def test_comparison_offers_to_add_the_missing_run(env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.multiselect(key="train.runs").set_value(["msgn_arp"]).run()
    assert not at.exception
    assert "train_pair_fig" not in charts(at)
    assert any("Add **msgn_stn**" in i for i in texts(at.info))
    at.button(key="train_add_pair").click().run()
    assert not at.exception
    assert at.multiselect(key="train.runs").value == ["msgn_arp", "msgn_stn"]
    assert "train_pair_fig" in charts(at)


def test_same_file_name_in_two_folders(env, tmp_path, monkeypatch):
    shutil.copy(env / "msgn_arp.safetensors", tmp_path / "msgn_arp.safetensors")
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    options = at.multiselect(key="train.runs").options
    twin = next(o for o in options if o.startswith("msgn_arp (") and str(tmp_path) in o)
    at.multiselect(key="train.runs").set_value([twin]).run()
    assert not at.exception
    at.multiselect(key="train.runs").set_value(["msgn_arp", twin]).run()
    assert not at.exception
    assert {"train_probe_fig_0", "train_probe_fig_1"} <= set(charts(at))


def test_malformed_history_is_listed_not_raised(env, tmp_path, monkeypatch):
    rewrite_checkpoint(env / "msgn_arp.safetensors", tmp_path / "odd.safetensors",
            meta=lambda m: m["history"][0].update(epoch="one"))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("odd.safetensors" in rendered(e.label) or "2 checkpoint" in e.label
               for e in at.expander)
    assert not any(o.startswith("odd") for o in at.multiselect(key="train.runs").options)


def test_epoch_slider_moves_the_boxes(env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    last = _boxes(at)
    at.select_slider(key="train.epoch").set_value(1).run()
    assert not at.exception
    first = _boxes(at)
    assert set(first) == set(last) and first != last
    at.number_input(key="train.probe").set_value(2).run()
    at.slider(key="train.probes").set_value(1).run()
    at.multiselect(key="train.stages").set_value(["conv3"]).run()
    assert not at.exception
    assert list(_boxes(at)) == ["Conv3 (ARP)"]
    at.checkbox(key="train.animate").check().run()
    assert not at.exception
    assert [f["name"] for f in charts(at)["train_probe_fig_0"]["frames"]] == ["1", "2", "3"]


def test_two_runs_side_by_side(env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.multiselect(key="train.runs").set_value(["msgn_arp", "msgn_stn"]).run()
    assert not at.exception
    assert {"train_probe_fig_0", "train_probe_fig_1"} <= set(charts(at))
    labels = [m for m in texts(at.markdown) if m.startswith("**msgn_")]
    assert "**msgn_stn (tiny, 1 local branch, Conv3 ARP, Conv4 STN)**" in labels


def _play_to_the_end(at: AppTest, ticks: int = 12) -> list[int]:
    """Run the page once per ``seconds per epoch`` (0.3 s) while the toggle is on; the epochs
    seen, the first included. Playing reruns the epoch fragment every ``seconds per epoch``
    (``run_every``); AppTest has no timer, so each ``run()`` after the delay stands for one
    tick."""
    seen = [at.select_slider(key="train.epoch").value]
    for _ in range(ticks):
        if not at.toggle(key="train.playing").value:
            break
        time.sleep(0.3)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        seen.append(at.select_slider(key="train.epoch").value)
    return seen


def test_play_steps_through_the_epochs_and_stops(env):
    """Play from the first epoch: one epoch on per tick, never back, and at the last epoch the
    player stops there (the toggle off) and stays there through further runs; play at the last
    epoch starts again from the first."""
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.select_slider(key="train.speed").set_value(0.3).run()
    at.select_slider(key="train.epoch").set_value(1).run()
    at.toggle(key="train.playing").set_value(True).run()
    assert not at.exception
    seen = _play_to_the_end(at)
    assert seen[0] == 1 and seen[-1] == 3 and sorted(set(seen)) == [1, 2, 3], seen
    assert seen == sorted(seen)  # one epoch on at a time, never back
    assert at.toggle(key="train.playing").value is False  # stopped at the last epoch
    settings = at.session_state["arpviz_state"].training
    assert settings.epoch == 3 and settings.playing is False
    for _ in range(3):  # and stays there: no timer, no step, the toggle stays off
        time.sleep(0.3)
        at.run()
        assert not at.exception
        assert at.select_slider(key="train.epoch").value == 3
        assert at.toggle(key="train.playing").value is False
        assert "Probe images at epoch 3" in [h.value for h in at.subheader]
    # play at the last epoch starts again from the first, and plays to the end again
    at.toggle(key="train.playing").set_value(True).run()
    assert not at.exception and at.select_slider(key="train.epoch").value == 1
    assert "Probe images at epoch 1" in [h.value for h in at.subheader]
    again = _play_to_the_end(at)
    assert again[0] == 1 and again[-1] == 3 and again == sorted(again), again
    assert at.toggle(key="train.playing").value is False


def test_play_stops_at_once_when_started_on_the_last_but_one_epoch(env):
    """One tick from the end: the next step is the last epoch, and the player stops there."""
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.select_slider(key="train.speed").set_value(0.3).run()
    at.select_slider(key="train.epoch").set_value(2).run()
    at.toggle(key="train.playing").set_value(True).run()
    seen = _play_to_the_end(at)
    assert seen[0] == 2 and seen[-1] == 3, seen
    assert at.toggle(key="train.playing").value is False


def test_no_checkpoint_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(tmp_path))
    monkeypatch.delenv("ARPVIZ_CHECKPOINT_DIR", raising=False)
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "No checkpoint with a training history" in texts(at.info)[0]


def test_single_run_without_a_pair(tmp_path, monkeypatch, folder):
    shutil.copy(folder / "msgn_arp.safetensors", tmp_path / "only.safetensors")
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("spatial transformer" in i for i in texts(at.info))


def test_pages_through_the_app(env):
    """app.py registers both pages; they run under its navigation and shared sidebar."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/training.py").run()
    assert not at.exception
    assert "Conv4 local 0 (ARP)" in _boxes(at)
    at.switch_page("pages/appendix_a.py").run()
    assert not at.exception
    assert "appx_grid" in charts(at)  # Appendix A's Figure 7
    at.switch_page("pages/training.py").run()  # back: every stage is drawn again
    assert not at.exception
    assert list(_boxes(at)) == ["Conv3 (ARP)", "Conv4 local 0 (ARP)"]
