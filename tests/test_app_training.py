"""The Training page under Streamlit's AppTest: runs, epoch slider, play, ARP against STN."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
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


def _caption(at: AppTest, prefix: str) -> str:
    return next(c.value for c in at.caption if c.value.startswith(prefix))


def _boxes(text: str) -> list[tuple[float, ...]]:
    return [tuple(map(float, m)) for m in
            re.findall(r"\(([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+)\)", text)]


def test_page_shows_curves_probes_and_comparison(env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    # the bundled default with its STN counterpart: the comparison shows at once
    assert at.multiselect(key="train_runs").value == ["msgn_arp", "msgn_stn"]
    assert at.select_slider(key="train_epoch").value == 3  # the last epoch first
    text = _caption(at, "training boxes of msgn_arp")
    assert "epoch 3: #0 conv3 (" in text and "conv4.local0" in text
    assert "training comparison at epoch 3" in _caption(at, "training comparison")
    assert any("broken.safetensors" in e.label or "1 checkpoint" in e.label
               for e in at.expander)
    # curves, probes x 2, confidence x 2, rates, comparison, comparison curves
    assert len(at.get("plotly_chart")) == 8


def test_comparison_offers_to_add_the_missing_run(env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.multiselect(key="train_runs").set_value(["msgn_arp"]).run()
    assert not at.exception
    assert not [c for c in at.caption if c.value.startswith("training comparison")]
    assert any("Add **msgn_stn**" in i.value for i in at.info)
    at.button(key="train_add_pair").click().run()
    assert not at.exception
    assert at.multiselect(key="train_runs").value == ["msgn_arp", "msgn_stn"]
    assert _caption(at, "training comparison at epoch 3")


def test_same_file_name_in_two_folders(env, tmp_path, monkeypatch):
    shutil.copy(env / "msgn_arp.safetensors", tmp_path / "msgn_arp.safetensors")
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    options = at.multiselect(key="train_runs").options
    twin = next(o for o in options if o.startswith("msgn_arp (") and str(tmp_path) in o)
    at.multiselect(key="train_runs").set_value([twin]).run()
    assert not at.exception
    at.multiselect(key="train_runs").set_value(["msgn_arp", twin]).run()
    assert not at.exception
    assert len([c for c in at.caption if c.value.startswith("training boxes")]) == 2


def test_malformed_history_is_listed_not_raised(env, tmp_path, monkeypatch):
    rewrite_checkpoint(env / "msgn_arp.safetensors", tmp_path / "odd.safetensors",
            meta=lambda m: m["history"][0].update(epoch="one"))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("odd.safetensors" in e.label or "2 checkpoint" in e.label for e in at.expander)
    assert not any(o.startswith("odd") for o in at.multiselect(key="train_runs").options)


def test_epoch_slider_moves_the_boxes(env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    last = _boxes(_caption(at, "training boxes of msgn_arp"))
    at.select_slider(key="train_epoch").set_value(1).run()
    assert not at.exception
    text = _caption(at, "training boxes of msgn_arp")
    assert text.startswith("training boxes of msgn_arp, epoch 1:")
    assert _boxes(text) != last
    at.number_input(key="train_probe").set_value(2).run()
    at.slider(key="train_probes").set_value(1).run()
    at.multiselect(key="train_stages").set_value(["conv3"]).run()
    at.checkbox(key="train_animate").check().run()
    assert not at.exception


def test_two_runs_side_by_side(env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.multiselect(key="train_runs").set_value(["msgn_arp", "msgn_stn"]).run()
    assert not at.exception
    assert _caption(at, "training boxes of msgn_stn")
    assert len([c for c in at.caption if c.value.startswith("training boxes")]) == 2


def test_play_steps_through_the_epochs_and_stops(env):
    """Playing reruns the epoch fragment every ``seconds per epoch`` (``run_every``); AppTest has
    no timer, so each ``run()`` after the delay stands for one tick."""
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.select_slider(key="train_speed").set_value(0.3).run()
    at.select_slider(key="train_epoch").set_value(1).run()
    at.toggle(key="train_play").set_value(True).run()
    assert not at.exception
    seen = [at.select_slider(key="train_epoch").value]
    for _ in range(6):
        if not at.toggle(key="train_play").value:
            break
        time.sleep(0.3)
        at.run()
        assert not at.exception
        seen.append(at.select_slider(key="train_epoch").value)
    assert seen[0] == 1 and seen[-1] == 3 and sorted(set(seen)) == [1, 2, 3], seen
    assert seen == sorted(seen)  # one epoch on at a time, never back
    assert at.toggle(key="train_play").value is False  # stopped at the last epoch
    # play at the last epoch starts again from the first
    at.toggle(key="train_play").set_value(True).run()
    assert not at.exception and at.select_slider(key="train_epoch").value == 1


def test_no_checkpoint_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(tmp_path))
    monkeypatch.delenv("ARPVIZ_CHECKPOINT_DIR", raising=False)
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "No checkpoint with a training history" in at.info[0].value


def test_single_run_without_a_pair(tmp_path, monkeypatch, folder):
    shutil.copy(folder / "msgn_arp.safetensors", tmp_path / "only.safetensors")
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("spatial transformer" in i.value for i in at.info)


def test_pages_through_the_app(env):
    """app.py registers both pages; they run under its navigation and shared sidebar."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("pages/training.py").run()
    assert not at.exception
    assert _caption(at, "training boxes of msgn_arp")
    at.switch_page("pages/appendix_a.py").run()
    assert not at.exception
    assert _caption(at, "appendix crops")
