"""No stale state on Explore: after any sequence of slider moves, mode switches, resets,
uploads, sample and checkpoint changes, the widgets, the view on screen and everything
computed from it (the export record, the faithfulness check) use the same values.

A Hypothesis state machine drives the app under AppTest (derandomized under ``CI``); after each
action it checks the :class:`~arpviz.explorer.session.ExploreView` against the widgets.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from helpers import APP, run_app, write_checkpoint
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from PIL import Image
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow

STAGES = ("conv3", "conv4.local0")
MODES = ("rp", "arp", "arpfg", "arpfg_peak")
ADAPTIVE = ("arp", "arpfg", "arpfg_peak")
K_VALUES = (0.1, 0.4, 0.7, 1.0, 1.5, 2.0)
DSR_VALUES = (0.25, 0.5, 0.75, 1.0)


def _png(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


IMAGES = {"red.png": _png((200, 40, 40), (90, 60)), "blue.png": _png((40, 40, 200), (64, 64))}


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two tiny checkpoints: ARP in Conv4, and RP in Conv4."""
    folder = tmp_path_factory.mktemp("state")
    write_checkpoint(folder / "tiny_a_arp.safetensors", "arp", classes=6, input_size=64,
                     epochs=1, probes=(0,), split_size=8, perturb=0.0)
    write_checkpoint(folder / "tiny_b_rp.safetensors", "rp", classes=6, input_size=64,
                     epochs=1, probes=(0,), split_size=8, seed=1, perturb=0.0)
    return folder


def defaults_are_values(at: AppTest) -> None:
    """Every Explore widget's element default is the value the page computes with, so a widget
    the browser mounts afresh (after a run that did not draw it, or a rerun that crossed an
    upload's two runs) shows that value, not the element's minimum or first option."""
    def explore(widgets):
        return [w for w in widgets if w.key and w.key.startswith("explore_")]

    for w in explore(at.slider) + explore(at.number_input):
        assert list(np.atleast_1d(w.proto.default)) == pytest.approx(
            list(np.atleast_1d(w.value))), (w.key, w.proto.default, w.value)
    for w in explore(at.selectbox) + explore(at.radio):
        assert w.proto.default == w.index, (w.key, w.proto.default, w.index)
    for w in explore(at.checkbox) + explore(at.toggle):
        assert w.proto.default == w.value, (w.key, w.proto.default, w.value)


class ExploreMachine(RuleBasedStateMachine):
    """Random sequences of what a user does on Explore."""

    at: AppTest

    @initialize()
    def start(self) -> None:
        self.at = run_app(AppTest.from_file(APP, default_timeout=120))

    # ------------------------------------------------------------------ actions

    def _run(self) -> None:
        run_app(self.at)

    def _steerable(self) -> list[str]:
        view = self.at.session_state["arpviz_result"]
        return [s for s in STAGES if s in view.stages and view.stages[s].mode in MODES]

    @rule(stage=st.sampled_from(STAGES), k=st.sampled_from(K_VALUES))
    def move_k(self, stage: str, k: float) -> None:
        key = f"explore_k:{stage}"
        if any(s.key == key for s in self.at.slider):
            self.at.slider(key=key).set_value(k)
            self._run()

    @rule(stage=st.sampled_from(STAGES), dsr=st.sampled_from(DSR_VALUES))
    def move_dsr(self, stage: str, dsr: float) -> None:
        key = f"explore_dsr:{stage}"
        if any(s.key == key for s in self.at.slider):
            self.at.slider(key=key).set_value(dsr)
            self._run()

    @rule(stage=st.sampled_from(STAGES), mode=st.sampled_from(MODES))
    def switch_mode(self, stage: str, mode: str) -> None:
        key = f"explore_mode:{stage}"
        if any(s.key == key for s in self.at.selectbox):
            self.at.selectbox(key=key).set_value(mode)
            self._run()

    @rule()
    def reset(self) -> None:
        self.at.button(key="explore_reset").click()
        self._run()

    @rule(name=st.sampled_from(sorted(IMAGES)))
    def upload(self, name: str) -> None:
        self.at.radio(key="explore_source").set_value("Upload an image")
        self._run()
        self.at.file_uploader(key="explore_upload").set_value((name, IMAGES[name], "image/png"))
        self._run()

    @rule(index=st.integers(0, 7))
    def sample(self, index: int) -> None:
        self.at.radio(key="explore_source").set_value("SynthBirds sample")
        self._run()
        self.at.number_input(key="explore_sample").set_value(index)
        self._run()

    @rule(which=st.sampled_from(("tiny_a_arp", "tiny_b_rp")))
    def checkpoint(self, which: str) -> None:
        box = self.at.selectbox(key="arpviz_checkpoint")
        box.select(next(o for o in box.options if which in o))
        self._run()

    @rule()
    def faithfulness(self) -> None:
        self.at.toggle(key="explore_faith").set_value(True)
        self._run()
        check = self.at.session_state["arpviz_faith"]
        view = self.at.session_state["arpviz_result"]
        assert dict(check.overrides) == dict(view.overrides)
        assert check.box == view.stages[check.stage].image_box
        assert check.target == view.predictions.top1.index
        self.at.toggle(key="explore_faith").set_value(False)
        self._run()

    # ------------------------------------------------------------------ the invariant

    @invariant()
    def widgets_view_and_export_agree(self) -> None:
        if not hasattr(self, "at") or "arpviz_result" not in self.at.session_state:
            return
        view = self.at.session_state["arpviz_result"]
        record = self.at.session_state["explore_record"]
        selects = {s.key: s.value for s in self.at.selectbox}
        sliders = {s.key: s.value for s in self.at.slider}
        for stage in self._steerable():
            shown = view.stages[stage]
            mode = selects[f"explore_mode:{stage}"]
            assert shown.mode == mode, (stage, shown.mode, mode)
            assert record.stages[stage].mode == mode
            if mode in ADAPTIVE:
                k = sliders[f"explore_k:{stage}"]
                assert shown.k == pytest.approx(k), (stage, shown.k, k)
                assert record.stages[stage].k == pytest.approx(k)
            else:
                assert f"explore_k:{stage}" not in sliders and shown.k is None
            dsr = sliders[f"explore_dsr:{stage}"]
            assert shown.dsr == pytest.approx((dsr, dsr)), (stage, shown.dsr, dsr)
            assert record.stages[stage].dsr is not None
            assert tuple(record.stages[stage].dsr) == pytest.approx((dsr, dsr))
        assert record.top5[0].index == view.predictions.top1.index
        caption = " ".join(c.value for c in self.at.caption)
        for stage in self._steerable():
            assert view.stages[stage].label in caption  # the stage numbers show this view

    @invariant()
    def a_widget_mounted_afresh_shows_the_value_in_use(self) -> None:
        if hasattr(self, "at"):
            defaults_are_values(self.at)

    def teardown(self) -> None:
        self.at = None  # type: ignore[assignment]


ExploreMachine.TestCase.settings = settings(
    max_examples=10, stateful_step_count=12, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def test_explore_never_shows_stale_state(app_env: Path, two_checkpoints: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(two_checkpoints))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_ROOTS", str(two_checkpoints))
    ExploreMachine.TestCase().runTest()


def test_widgets_mounted_afresh_show_the_value_in_use(app_env: Path) -> None:
    """The sequence a browser once showed stale (moves, reset, a second upload): after each
    step every Explore widget's default is its value, the sliders' included."""
    at = run_app(AppTest.from_file(APP, default_timeout=120))
    steps = [
        lambda: at.slider(key="explore_k:conv4.local0").set_value(1.5),
        lambda: at.slider(key="explore_dsr:conv4.local0").set_value(0.75),
        lambda: at.slider(key="explore_k:conv3").set_value(0.4),
        lambda: at.button(key="explore_reset").click(),
        lambda: at.radio(key="explore_source").set_value("Upload an image"),
        lambda: at.file_uploader(key="explore_upload").set_value(
            ("red.png", IMAGES["red.png"], "image/png")),
        lambda: at.slider(key="explore_k:conv3").set_value(0.4),
        lambda: at.file_uploader(key="explore_upload").set_value(
            ("blue.png", IMAGES["blue.png"], "image/png")),
    ]
    for step in steps:
        step()
        run_app(at)
        defaults_are_values(at)
    assert at.slider(key="explore_k:conv3").value == pytest.approx(0.4)
    assert at.slider(key="explore_k:conv3").proto.default == pytest.approx([0.4])


def _pick(at: AppTest, part: str) -> None:
    box = at.selectbox(key="arpviz_checkpoint")
    box.select(next(o for o in box.options if part in o))
    run_app(at)


def test_the_image_source_comes_back_after_a_checkpoint_without_samples(
        app_env: Path, tiny_checkpoint: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-ID checkpoint offers uploads only; back on a SynthBirds one, Explore, RP against
    ARP and the Gallery show samples again, as the user had chosen."""
    folder = tmp_path / "both"
    folder.mkdir()
    (folder / "a_tiny.safetensors").symlink_to(tiny_checkpoint)
    (folder / "b_reid.safetensors").symlink_to(
        Path(APP).parent / "checkpoints" / "synthreid_msgn_arp.safetensors")
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(folder))
    at = run_app(AppTest.from_file(APP, default_timeout=180))
    for page, key in (("pages/explore.py", "explore_source"),
                      ("pages/rp_vs_arp.py", "compare_source"),
                      ("pages/gallery.py", "gallery_kind")):
        at.switch_page(page)
        run_app(at)
        chosen = at.radio(key=key).value
        _pick(at, "b_reid")
        assert not any("SynthBirds" in o for o in at.radio(key=key).options), page
        _pick(at, "a_tiny")
        assert at.radio(key=key).value == chosen, page
        assert not at.exception


def test_settings_outlive_a_visit_to_another_page(app_env: Path) -> None:
    """What a user set on RP against ARP and Appendix A is still set on coming back (Explore's
    stage controls: ``test_settings_survive_a_page_switch``)."""
    at = run_app(AppTest.from_file(APP, default_timeout=180))
    at.switch_page("pages/rp_vs_arp.py")
    run_app(at)
    at.selectbox(key="compare_right").set_value("arpfg")
    run_app(at)
    at.switch_page("pages/appendix_a.py")
    run_app(at)
    at.slider(key="appx_k").set_value(1.5)
    at.slider(key="appx2d_width").set_value(0.6)
    run_app(at)
    at.switch_page("pages/explore.py")
    run_app(at)
    defaults_are_values(at)
    at.switch_page("pages/rp_vs_arp.py")
    run_app(at)
    assert at.selectbox(key="compare_right").value == "arpfg"
    at.switch_page("pages/appendix_a.py")
    run_app(at)
    assert at.slider(key="appx_k").value == pytest.approx(1.5)
    assert at.slider(key="appx2d_width").value == pytest.approx(0.6)
    assert not at.exception
