"""What the user is looking at, as one typed object, and the one module that keeps it in
``st.session_state``.

:class:`AppState` holds the checkpoint and device, the image (a data-set sample, an uploaded
photo or a Gallery file, each with what it needs to come back), every stage's setting
(:class:`Steering`: mode, ``k`` of each mode, DSR, ``tau``), the two sides of the comparison,
each page's own controls, and what the pages computed (:class:`Shown`, for the exports and the
tests). Pages get it with :func:`app_state` and never touch ``st.session_state`` themselves;
widgets show and change it through :func:`bind`. The model outlives the widgets: a widget that
was not drawn in some run (another page, a collapsed section) is drawn again with the value the
model holds, so every page shows the photo and the settings the user left on another.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from arpviz.checkpoint import Checkpoint, CheckpointMeta
from arpviz.explorer.controls import Knob, StageControl
from arpviz.models import MSGN
from arpviz.models.stages import ADAPTIVE_MODES, STEERABLE_MODES

__all__ = [
    "AdaptivitySettings",
    "AppState",
    "AppendixSettings",
    "Comparison",
    "ExploreSettings",
    "FileImage",
    "GallerySettings",
    "ImageChoice",
    "LoadedCheckpoint",
    "RetrievalSettings",
    "SampleImage",
    "Shown",
    "StageChoice",
    "Steering",
    "TrainingSettings",
    "UploadedImage",
    "app_state",
    "bind",
    "has_value",
]

#: The one ``st.session_state`` key of the app's own state.
STATE_KEY = "arpviz_state"


# ----------------------------------------------------------------------------- the checkpoint


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint loaded on a device; ``key`` names this file version (or upload) and device."""

    checkpoint: Checkpoint
    key: tuple
    label: str
    device: str

    @property
    def model(self) -> MSGN:
        """The model (eval mode, on ``device``)."""
        return self.checkpoint.model

    @property
    def meta(self) -> CheckpointMeta:
        """The checkpoint's record."""
        return self.checkpoint.meta

    @property
    def path(self) -> str | None:
        """The file it was loaded from (``None`` for an upload)."""
        return self.key[1] if self.key[0] == "file" else None


# ----------------------------------------------------------------------------- the image


@dataclass(frozen=True)
class SampleImage:
    """Image ``index`` of a data set's ``split``; ``dataset`` names the data set (a digest of
    its record and input size), so another checkpoint on the same data shows the same image."""

    dataset: str
    split: str
    index: int

    @property
    def label(self) -> str:
        """``val #3``."""
        return f"{self.split} #{self.index}"


@dataclass(frozen=True)
class UploadedImage:
    """A photo the user uploaded: its file name, the digest and the bytes as uploaded."""

    name: str
    digest: str
    data: bytes = field(repr=False, compare=False)

    @property
    def size_bytes(self) -> int:
        """The file's size in bytes."""
        return len(self.data)


@dataclass(frozen=True)
class FileImage:
    """An image file opened from the Gallery (a folder under the allowed roots)."""

    path: str

    @property
    def name(self) -> str:
        """The file's name."""
        return os.path.basename(self.path)


#: The kinds of image a page can show, in the order the image control offers them.
SOURCES: tuple[str, ...] = ("sample", "upload", "file")


@dataclass
class ImageChoice:
    """The image every image page shows: ``source`` says which of ``sample`` (``None``: the
    checkpoint's default sample), ``upload`` and ``file``; each is kept while another is shown,
    so switching back brings it back. ``upload_id`` is the uploader's id of the file taken last
    (a new id replaces the photo). ``show_truth`` draws a sample's ground truth."""

    source: str = "sample"
    sample: SampleImage | None = None
    upload: UploadedImage | None = None
    file: FileImage | None = None
    show_truth: bool = False
    upload_id: str = ""

    def show_sample(self, sample: SampleImage) -> None:
        """Make ``sample`` the image."""
        self.sample, self.source = sample, "sample"

    def show_upload(self, upload: UploadedImage, upload_id: str) -> None:
        """Make ``upload`` the image."""
        self.upload, self.upload_id, self.source = upload, upload_id, "upload"

    def show_file(self, path: str) -> None:
        """Make the Gallery file ``path`` the image."""
        self.file, self.source = FileImage(str(path)), "file"


# ----------------------------------------------------------------------------- the stages


@dataclass
class StageChoice:
    """One stage as the user set it: its ``mode``, the ``k`` of each adaptive mode (so a mode
    switched away from and back keeps its k) and the DSR (``None`` for a strided stage)."""

    mode: str
    ks: dict[str, float]
    dsr: float | None

    @property
    def k(self) -> float | None:
        """The ``k`` of the current mode (``None`` for RP and the learnt zoom)."""
        return self.ks.get(self.mode)

    def knob(self, tau: float, mode: str | None = None) -> Knob:
        """The library's :class:`~arpviz.explorer.controls.Knob` of this stage in ``mode``
        (default: its own), with that mode's ``k``."""
        mode = mode or self.mode
        return Knob(self.ks.get(mode), self.dsr, tau, mode)


@dataclass
class Steering:
    """Every steerable stage's setting for one loaded checkpoint (``checkpoint``: its key)."""

    checkpoint: tuple
    stages: dict[str, StageChoice]
    tau: float

    @classmethod
    def trained(cls, checkpoint: tuple, controls: Sequence[StageControl]) -> Steering:
        """The trained setting of ``controls``' steerable stages."""
        steering = cls(checkpoint, {}, 1.0)
        steering.reset(controls)
        return steering

    def reset(self, controls: Sequence[StageControl]) -> None:
        """Every stage back to what it was trained with."""
        steerable = [c for c in controls if c.steerable]
        self.stages = {
            c.name: StageChoice(c.mode, {m: float(k) for m in _ADAPTIVE
                                         if (k := c.default_k(m)) is not None},
                                c.trained_dsr)
            for c in steerable
        }
        self.tau = float(steerable[0].tau) if steerable else 1.0

    def knobs(self) -> dict[str, Knob]:
        """Every stage's :class:`~arpviz.explorer.controls.Knob`."""
        return {name: choice.knob(self.tau) for name, choice in self.stages.items()}

    def knobs_in(self, mode: str) -> dict[str, Knob]:
        """Every stage switched to ``mode``, each with its ``k`` for that mode (a side of the
        comparison)."""
        return {name: choice.knob(self.tau, mode) for name, choice in self.stages.items()}


#: the adaptive modes a stage can be switched to (each keeps its own k)
_ADAPTIVE = tuple(m for m in STEERABLE_MODES if m in ADAPTIVE_MODES)


@dataclass
class Comparison:
    """The two sides of RP against ARP: the mode every steerable stage runs on each side."""

    left: str = "arp"
    right: str = "rp"


# ----------------------------------------------------------------------------- page controls


@dataclass
class ExploreSettings:
    """Explore's own controls."""

    prefix = "explore"
    opacity: float = 0.6
    faith_stage: str = ""
    faith: bool = False
    sweep_stage: str = ""
    sweep: bool = False
    scrub: bool = False
    hidden: list[str] = field(default_factory=list)


@dataclass
class GallerySettings:
    """The Gallery's source, filters, order and page."""

    prefix = "gallery"
    kind: str = "SynthBirds split"
    folder: str = ""
    limit: int = 48
    classes: list[str] = field(default_factory=list)
    correct: str = "all"
    stage: str = ""
    rates: tuple[float, float] = (0.0, 1.0)
    flips: bool = False
    sort: str = ""
    page: int = 1


@dataclass
class AdaptivitySettings:
    """The Adaptivity page's controls."""

    prefix = "adapt"
    split: str = ""
    limit: int = 32
    tau: float = 1.0
    source: str = ""
    stage: str = ""
    axis: str = "height"
    index: int = 0
    others: list[str] = field(default_factory=list)
    reid_others: list[str] = field(default_factory=list)


@dataclass
class AppendixSettings:
    """Appendix A's controls (the 1-D simulation, then the 2-D object)."""

    prefix = "appx"
    seed: int = 0
    count: int = 9
    length: int = 56
    spikiness: float = 1.0
    floor_source: str = "set by hand"
    floor_stage: str = ""
    background: float = 0.02
    placement: tuple[float, float] = (0.1, 0.9)
    spread: tuple[float, float] = (0.03, 0.3)
    k: float = 1.0
    dsr: float = 0.5
    columns: int = 3
    show_true: bool = True
    summary_count: int = 1000
    width: float = 0.3
    height: float = 0.3
    cx: float = 0.5
    cy: float = 0.5
    clutter: float = 0.0
    clutter_seed: int = 0
    k2d: float = 1.0
    dsr2d: float = 0.5
    tau2d: float = 1.0
    region: str = "all"


@dataclass
class TrainingSettings:
    """The Training page's runs, player and layout."""

    prefix = "train"
    runs: list[str] | None = None
    epoch: int = 0
    playing: bool = False
    speed: float = 0.7
    stages: list[str] | None = None
    stage_options: list[str] = field(default_factory=list)
    probes: int = 8
    cols: int = 0
    animate: bool = False
    probe: int = 0
    pair: int = 0
    pair_branch: int = 0
    pair_probes: int = 4
    pair_cols: int = 2
    pair_conv3: bool = True
    step_at: float = 0.0


@dataclass
class RetrievalSettings:
    """The Retrieval page's query: from the split (``query``: its index) or the user's photo."""

    prefix = "retrieval"
    source: str = "split"
    query: int = 0


# ----------------------------------------------------------------------------- results


@dataclass
class Shown:
    """What the pages computed last in this session: the exports read it, and so do the tests
    (``AppTest``'s ``session_state``). Plain results of :mod:`arpviz.explorer`."""

    explore: Any = None
    faith: Any = None
    sweep: Any = None
    sweep_key: tuple | None = None
    comparison: Any = None
    records: dict[str, Any] = field(default_factory=dict)
    gallery_items: Any = None
    gallery_key: tuple | None = None
    gallery_shown: Any = None
    report: Any = None
    reid_curves: dict[str, Any] = field(default_factory=dict)
    retrieval: Any = None
    retrieval_metrics: Any = None
    image: Any = None


@dataclass
class AppState:
    """Everything the user set, and what they are looking at (see the module docstring)."""

    checkpoint: str | None = None
    checkpoint_default: bool = True
    folder: str = field(default_factory=lambda: os.environ.get("ARPVIZ_CHECKPOINT_DIR", ""))
    device: str = "auto"
    image: ImageChoice = field(default_factory=ImageChoice)
    steering: Steering | None = None
    comparison: Comparison = field(default_factory=Comparison)
    explore: ExploreSettings = field(default_factory=ExploreSettings)
    gallery: GallerySettings = field(default_factory=GallerySettings)
    adaptivity: AdaptivitySettings = field(default_factory=AdaptivitySettings)
    appendix: AppendixSettings = field(default_factory=AppendixSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    loaded: LoadedCheckpoint | None = None
    load_error: str | None = None
    load_wait: str | None = None
    open_offer: str | None = None
    shown: Shown = field(default_factory=Shown)
    widgets: dict[str, Any] = field(default_factory=dict, repr=False)

    def steering_for(self, loaded: LoadedCheckpoint,
                     controls: Sequence[StageControl]) -> Steering:
        """The stage settings of ``loaded``: kept while the checkpoint stays, the trained ones
        for a new checkpoint."""
        if self.steering is None or self.steering.checkpoint != loaded.key:
            self.steering = Steering.trained(loaded.key, controls)
        return self.steering


def app_state() -> AppState:
    """This session's :class:`AppState` (made on first use)."""
    state = st.session_state.get(STATE_KEY)
    if not isinstance(state, AppState):
        state = AppState()
        st.session_state[STATE_KEY] = state
    return state


# ----------------------------------------------------------------------------- binding


_OPTION_WIDGETS = ("selectbox", "radio")


def _plain(value: Any) -> Any:
    """A widget's value as the model keeps it (tuples for ranges, lists for multiselects)."""
    if isinstance(value, list):
        return list(value)
    return value


def has_value(key: str) -> bool:
    """Whether widget ``key`` holds a value in this session (it was drawn in an earlier run)."""
    return key in st.session_state


def _taken(owner: Any, name: str, key: str, then: Callable[[], None] | None) -> None:
    setattr(owner, name, _plain(st.session_state[key]))
    if then is not None:
        then()


def bind(widget: Callable[..., Any], label: str, owner: Any, name: str, *, key: str | None = None,
         options: Sequence[Any] | None = None, on_change: Callable[[], None] | None = None,
         **kwargs: Any) -> Any:
    """Draw ``widget`` (``st.slider``, ``st.selectbox``, ``column.toggle``, ...) showing
    ``owner.<name>`` and keep the user's change there.

    The widget's default is the model's value. When the model changed since the widget last
    drew (a reset, another page, a click elsewhere) the widget's own state is set to it first;
    when the user moved the widget since then, the model takes the widget's value. So whatever
    the browser mounts shows the value the page computes with, and ``owner`` may be a
    throw-away view of the model (a sample index) as well as a part of it. ``options`` go to
    the option widgets (selectbox, radio: the value's index; multiselect and select_slider:
    the value); a model value outside ``options`` becomes the first option. ``key`` defaults to
    ``"<owner's prefix>.<name>"``; ``on_change`` runs after the model took a change.

    Returns:
        The widget's value (also stored in ``owner.<name>``).
    """
    key = key or f"{getattr(owner, 'prefix', type(owner).__name__.lower())}.{name}"
    shown = app_state().widgets
    value = getattr(owner, name)
    kind = getattr(widget, "__name__", "")
    if key in st.session_state:
        current = _plain(st.session_state[key])
        # a radio or selectbox sends back its option's label: after the labels changed (the
        # photo's name in "Your photo: red.png") the browser may send an old one, no option
        stale = kind in _OPTION_WIDGETS and options is not None and current not in options
        if key in shown and current != shown[key] and not stale:  # the user moved it
            value = current
        elif current != value:  # the model moved (or a stale label): the widget follows
            st.session_state[key] = value
    args: tuple[Any, ...] = (label,)
    if options is not None:
        options = list(options)
        args = (label, options)
        if kind == "multiselect":
            value = [v for v in (value or []) if v in options]
        elif value not in options and options:
            value = options[0]
        if key in st.session_state and _plain(st.session_state[key]) != value:
            st.session_state[key] = value
    setattr(owner, name, value)
    if kind in _OPTION_WIDGETS:
        kwargs["index"] = options.index(value) if options else None
    elif kind == "multiselect":
        kwargs["default"] = value
    else:
        kwargs["value"] = value
    result = _plain(widget(*args, key=key, on_change=_taken, args=(owner, name, key, on_change),
                           **kwargs))
    shown[key] = result
    setattr(owner, name, result)
    return result
