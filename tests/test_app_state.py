"""No stale state anywhere: after any sequence of slider moves, mode switches, resets, uploads,
sample, checkpoint and page changes, the widgets, the view on screen and everything computed
from it (the export record, the faithfulness check) use the same values, and the image and
stage settings are the ones the user chose last, on whichever page they chose them.

A Hypothesis state machine drives the app under AppTest (derandomized under ``CI``) across
Explore, RP against ARP, the Gallery and Appendix A; after each action it checks the
:class:`~arpviz.explorer.results.ExploreView` (or the RP-against-ARP comparison) against the
widgets and against what the machine last set.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from app_helpers import (
    defaults_are_values,
    has_widget,
    image_title,
    pick_sample,
    png,
    shown,
    start,
    state,
    switch,
    texts,
    upload,
)
from helpers import rewrite_checkpoint, run_app, write_checkpoint
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow

STAGES = ("conv3", "conv4.local0")
MODES = ("rp", "arp", "arpfg", "arpfg_peak")
ADAPTIVE = ("arp", "arpfg", "arpfg_peak")
K_VALUES = (0.1, 0.4, 0.7, 1.0, 1.5, 2.0)
DSR_VALUES = (0.25, 0.5, 0.75, 1.0)
TAU_VALUES = (0.5, 1.0, 2.0, 4.0)
#: The pages the machine walks: the two that show the image and the stage controls, and two
#: that show neither.
PAGES = ("explore", "compare", "gallery", "appendix")
IMAGE_PAGES = ("explore", "compare")

IMAGES = {"red.png": png((200, 40, 40), (90, 60)), "blue.png": png((40, 40, 200), (64, 64))}


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two tiny checkpoints: ARP in Conv4, and RP in Conv4."""
    folder = tmp_path_factory.mktemp("state")
    write_checkpoint(folder / "tiny_a_arp.safetensors", "arp", classes=6, input_size=64,
                     epochs=1, probes=(0,), split_size=8, perturb=0.0)
    write_checkpoint(folder / "tiny_b_rp.safetensors", "rp", classes=6, input_size=64,
                     epochs=1, probes=(0,), split_size=8, seed=1, perturb=0.0)
    return folder


class AppMachine(RuleBasedStateMachine):
    """Random sequences of what a user does on Explore, RP against ARP, the Gallery and
    Appendix A. ``set`` holds what the user set last since the last reset or checkpoint change
    (the trained values otherwise): ``(stage, "mode")``, ``(stage, "k", mode)`` (each mode keeps
    its own k), ``(stage, "dsr")`` and ``("tau",)``; ``image`` the image chosen last."""

    at: AppTest

    @initialize()
    def begin(self) -> None:
        self.at = start(120)
        self.page = "explore"
        self.image: tuple[str, object] | None = None
        self.set: dict[tuple, object] = {}

    # ------------------------------------------------------------------ actions

    def _run(self) -> None:
        run_app(self.at)

    def _on_image_page(self) -> bool:
        return getattr(self, "page", None) in IMAGE_PAGES

    def _on_explore(self) -> bool:
        return getattr(self, "page", None) == "explore"

    @rule(page=st.sampled_from(PAGES))
    def go(self, page: str) -> None:
        switch(self.at, page)
        self.page = page

    @rule(away=st.sampled_from(PAGES), back=st.sampled_from(IMAGE_PAGES))
    def round_trip(self, away: str, back: str) -> None:
        """To another page and back to one with the image: nothing the user set changes."""
        switch(self.at, away)
        self.page = away
        if away in IMAGE_PAGES:
            self.the_image_and_the_settings_are_the_last_chosen()
        defaults_are_values(self.at)
        switch(self.at, back)
        self.page = back

    @precondition(_on_image_page)
    @rule(stage=st.sampled_from(STAGES), k=st.sampled_from(K_VALUES))
    def move_k(self, stage: str, k: float) -> None:
        if self.page == "explore":
            key = f"k:{stage}"
            if not has_widget(self.at.selectbox, f"mode:{stage}"):
                return
            mode = self.at.selectbox(key=f"mode:{stage}").value
        else:  # the left side of RP against ARP runs ARP
            key, mode = f"k:{stage}:left", "arp"
        if has_widget(self.at.slider, key):
            self.at.slider(key=key).set_value(k)
            self._run()
            self.set[(stage, "k", mode)] = k

    @precondition(_on_image_page)
    @rule(stage=st.sampled_from(STAGES), dsr=st.sampled_from(DSR_VALUES))
    def move_dsr(self, stage: str, dsr: float) -> None:
        key = f"dsr:{stage}"
        if has_widget(self.at.slider, key):
            self.at.slider(key=key).set_value(dsr)
            self._run()
            self.set[(stage, "dsr")] = dsr

    @precondition(_on_image_page)
    @rule(tau=st.sampled_from(TAU_VALUES))
    def move_tau(self, tau: float) -> None:
        if has_widget(self.at.select_slider, "tau"):
            self.at.select_slider(key="tau").set_value(tau)
            self._run()
            self.set[("tau",)] = tau

    @precondition(_on_explore)
    @rule(stage=st.sampled_from(STAGES), mode=st.sampled_from(MODES))
    def switch_mode(self, stage: str, mode: str) -> None:
        key = f"mode:{stage}"
        if has_widget(self.at.selectbox, key):
            self.at.selectbox(key=key).set_value(mode)
            self._run()
            self.set[(stage, "mode")] = mode

    @precondition(_on_image_page)
    @rule()
    def reset(self) -> None:
        if has_widget(self.at.button, "reset"):
            self.at.button(key="reset").click()
            self._run()
            self.set.clear()

    @precondition(_on_image_page)
    @rule(name=st.sampled_from(sorted(IMAGES)))
    def upload(self, name: str) -> None:
        upload(self.at, name, IMAGES[name])
        self.image = ("upload", name)

    @precondition(_on_image_page)
    @rule(index=st.integers(0, 7))
    def sample(self, index: int) -> None:
        pick_sample(self.at, index)
        self.image = ("sample", index)

    @rule(which=st.sampled_from(("tiny_a_arp", "tiny_b_rp")))
    def checkpoint(self, which: str) -> None:
        box = self.at.selectbox(key="arpviz_checkpoint")
        before = box.value
        box.select(next(o for o in box.options if which in o))
        self._run()
        if self.at.selectbox(key="arpviz_checkpoint").value != before:
            self.set.clear()  # another checkpoint: its trained setting

    @precondition(_on_explore)
    @rule()
    def faithfulness(self) -> None:
        self.at.toggle(key="explore.faith").set_value(True)
        self._run()
        check = shown(self.at).faith
        view = shown(self.at).explore
        assert dict(check.overrides) == dict(view.overrides)
        assert check.box == view.stages[check.stage].image_box
        assert check.target == view.predictions.top1.index
        self.at.toggle(key="explore.faith").set_value(False)
        self._run()

    # ------------------------------------------------------------------ the invariants

    def _expect(self, key: tuple, value: object, what: str) -> None:
        """``value`` (shown or used) is what the user set last for ``key``, if they did."""
        if key in self.set:
            assert value == pytest.approx(self.set[key]), (what, key, value, self.set[key])

    def _steerable(self) -> list[str]:
        steering = state(self.at).steering
        return [s for s in STAGES if steering is not None and s in steering.stages]

    def _check_explore(self) -> None:
        view = shown(self.at).explore
        record = shown(self.at).records["explore"]
        selects = {s.key: s.value for s in self.at.selectbox}
        sliders = {s.key: s.value for s in self.at.slider}
        for stage in self._steerable():
            used = view.stages[stage]
            mode = selects[f"mode:{stage}"]
            self._expect((stage, "mode"), mode, "the mode shown")
            assert used.mode == mode, (stage, used.mode, mode)
            assert record.stages[stage].mode == mode
            if mode in ADAPTIVE:
                k = sliders[f"k:{stage}"]
                self._expect((stage, "k", mode), k, "the k shown")
                assert used.k == pytest.approx(k), (stage, used.k, k)
                assert record.stages[stage].k == pytest.approx(k)
            else:
                assert f"k:{stage}" not in sliders and used.k is None
            dsr = sliders[f"dsr:{stage}"]
            self._expect((stage, "dsr"), dsr, "the DSR shown")
            assert used.dsr == pytest.approx((dsr, dsr)), (stage, used.dsr, dsr)
            assert record.stages[stage].dsr is not None
            assert tuple(record.stages[stage].dsr) == pytest.approx((dsr, dsr))
        assert record.top5[0].index == view.predictions.top1.index
        caption = " ".join(texts(self.at.caption))
        for stage in self._steerable():
            assert view.stages[stage].label in caption  # the stage numbers show this view

    def _check_compare(self) -> None:
        comparison = shown(self.at).comparison
        assert comparison.modes == ("arp", "rp")
        sliders = {s.key: s.value for s in self.at.slider}
        for stage in self._steerable():
            left, right = comparison.first.stages[stage], comparison.second.stages[stage]
            assert (left.mode, right.mode) == ("arp", "rp"), stage
            k = sliders[f"k:{stage}:left"]
            self._expect((stage, "k", "arp"), k, "the k of the ARP side")
            assert left.k == pytest.approx(k), (stage, left.k, k)
            dsr = sliders[f"dsr:{stage}"]
            self._expect((stage, "dsr"), dsr, "the shared DSR")
            assert left.dsr == pytest.approx((dsr, dsr)) and right.dsr == left.dsr, stage
            assert right.rates == pytest.approx((dsr, dsr)), stage  # RP crops the DSR

    @invariant()
    def the_image_and_the_settings_are_the_last_chosen(self) -> None:
        if not self._on_image_page():
            return
        at = self.at
        if self.image is not None:
            kind, what = self.image
            title = image_title(at)
            expected = f"{what}, " if kind == "upload" else f"val #{what}, "
            assert title.startswith(expected), (self.image, title)
            assert at.radio(key="image.source").value == kind
            assert any(title in c for c in texts(at.caption))  # the page names it
        if has_widget(at.select_slider, "tau"):
            tau = at.select_slider(key="tau").value
            self._expect(("tau",), tau, "tau shown")
            assert state(at).steering.tau == pytest.approx(tau)
        if self.page == "explore":
            self._check_explore()
        else:
            self._check_compare()

    @invariant()
    def a_widget_mounted_afresh_shows_the_value_in_use(self) -> None:
        if getattr(self, "at", None) is not None:
            defaults_are_values(self.at)

    def teardown(self) -> None:
        self.at = None  # type: ignore[assignment]


AppMachine.TestCase.settings = settings(
    max_examples=12, stateful_step_count=16, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def test_no_page_ever_shows_stale_state(app_env: Path, two_checkpoints: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(two_checkpoints))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_ROOTS", str(two_checkpoints))
    AppMachine.TestCase().runTest()


def test_a_fixed_walk_across_the_pages(app_env: Path, two_checkpoints: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """One walk the machine may or may not draw, always taken: what is chosen on either image
    page (photo, sample, k, DSR, mode, tau) is what both show after visits elsewhere, and a
    checkpoint change brings its trained setting but keeps the image."""
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(two_checkpoints))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_ROOTS", str(two_checkpoints))
    machine = AppMachine()
    machine.begin()
    steps = [
        lambda: machine.go("compare"),
        lambda: machine.upload("red.png"),
        lambda: machine.move_k("conv4.local0", 1.5),
        lambda: machine.move_dsr("conv3", 0.75),
        lambda: machine.go("gallery"),
        lambda: machine.go("explore"),
        lambda: machine.switch_mode("conv4.local0", "arpfg"),
        lambda: machine.move_k("conv4.local0", 0.4),
        lambda: machine.move_tau(2.0),
        lambda: machine.round_trip("appendix", "compare"),
        lambda: machine.round_trip("gallery", "explore"),
        lambda: machine.sample(5),
        lambda: machine.go("compare"),
        lambda: machine.upload("blue.png"),
        lambda: machine.go("appendix"),
        lambda: machine.checkpoint("tiny_b_rp"),
        lambda: machine.go("explore"),
        lambda: machine.move_k("conv3", 0.1),
        lambda: machine.round_trip("gallery", "compare"),
        lambda: machine.reset(),
        lambda: machine.go("explore"),
    ]
    for step in steps:
        step()
        machine.the_image_and_the_settings_are_the_last_chosen()
        machine.a_widget_mounted_afresh_shows_the_value_in_use()
    assert machine.page == "explore" and machine.image == ("upload", "blue.png")
    assert image_title(machine.at).startswith("blue.png, ")
    # the reset brought back tiny_b_rp's trained setting: RP in Conv4, ARP k 1 in Conv3
    assert machine.at.selectbox(key="mode:conv4.local0").value == "rp"
    assert state(machine.at).steering.stages["conv3"].ks["arp"] == pytest.approx(1.0)
    machine.teardown()


def test_widgets_mounted_afresh_show_the_value_in_use(app_env: Path) -> None:
    """The sequence a browser once showed stale (moves, reset, a second upload): after each
    step every widget's default is its value, the sliders' included."""
    at = start(120)
    steps = [
        lambda: at.slider(key="k:conv4.local0").set_value(1.5),
        lambda: at.slider(key="dsr:conv4.local0").set_value(0.75),
        lambda: at.slider(key="k:conv3").set_value(0.4),
        lambda: at.button(key="reset").click(),
        lambda: at.radio(key="image.source").set_value("upload"),
        lambda: at.file_uploader(key="image.upload").set_value(
            ("red.png", IMAGES["red.png"], "image/png")),
        lambda: at.slider(key="k:conv3").set_value(0.4),
        lambda: at.file_uploader(key="image.upload").set_value(
            ("blue.png", IMAGES["blue.png"], "image/png")),
    ]
    for step in steps:
        step()
        run_app(at)
        defaults_are_values(at)
    assert at.slider(key="k:conv3").value == pytest.approx(0.4)
    assert at.slider(key="k:conv3").proto.default == pytest.approx([0.4])
    assert image_title(at).startswith("blue.png, ")


def _pick(at: AppTest, part: str) -> None:
    box = at.selectbox(key="arpviz_checkpoint")
    box.select(next(o for o in box.options if part in o))
    run_app(at)


def test_the_image_source_comes_back_after_a_checkpoint_without_samples(
        app_env: Path, tiny_checkpoint: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint trained on an image folder offers uploads only; back on a SynthBirds one,
    Explore, RP against ARP and the Gallery show samples again, as the user had chosen."""
    folder = tmp_path / "both"  # copies: a link out of the allowed roots is not listed
    folder.mkdir()
    shutil.copy(tiny_checkpoint, folder / "a_tiny.safetensors")
    rewrite_checkpoint(tiny_checkpoint, folder / "b_photos.safetensors", meta=lambda m: m.update(
        dataset={"name": "folder", "root": str(tmp_path / "photos"), "eval_split": "val"}))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(folder))
    at = start(180)
    for page, key, sample in (("explore", "image.source", "Data-set sample"),
                              ("compare", "image.source", "Data-set sample"),
                              ("gallery", "gallery.kind", "SynthBirds split")):
        switch(at, page)
        chosen = at.radio(key=key).value
        assert sample in at.radio(key=key).options, page
        _pick(at, "b_photos")
        assert sample not in at.radio(key=key).options, page
        _pick(at, "a_tiny")
        assert at.radio(key=key).value == chosen, page
        assert sample in at.radio(key=key).options, page
        assert not at.exception


def test_settings_outlive_a_visit_to_another_page(app_env: Path) -> None:
    """What a user set on RP against ARP and Appendix A is still set on coming back (Explore's
    stage controls: ``test_settings_survive_a_page_switch`` and the machine above)."""
    at = start(180)
    switch(at, "compare")
    at.selectbox(key="compare.right").set_value("arpfg")
    run_app(at)
    switch(at, "appendix")
    at.slider(key="appx.k").set_value(1.5)
    at.slider(key="appx2d.width").set_value(0.6)
    run_app(at)
    switch(at, "explore")
    defaults_are_values(at)
    switch(at, "compare")
    assert at.selectbox(key="compare.right").value == "arpfg"
    assert shown(at).comparison.modes == ("arp", "arpfg")
    defaults_are_values(at)
    switch(at, "appendix")
    assert at.slider(key="appx.k").value == pytest.approx(1.5)
    assert at.slider(key="appx2d.width").value == pytest.approx(0.6)
    defaults_are_values(at)
    assert not at.exception
