"""One image on one model, steered live: the controls, the results and :class:`LiveSession`.

- the stages a user can steer (:func:`stage_controls`: every stage's trained setting and the
  model's default ``k``, read from the model in this one place) and the one validated
  :class:`~arpviz.models.StageOverride` per changed stage of a slider setting
  (:func:`overrides_from`); the operator checks the values again, nothing falls back in between;
- :class:`LiveSession`: the :class:`~arpviz.models.StageCache` of ``model.prepare(x)``, so a new
  ``k`` or DSR recomputes only the stages at or after the first changed one. It returns
  :class:`ExploreView` (plain numpy, ready to draw); :meth:`LiveSession.sweep` runs ``k`` over a
  range for one stage and :meth:`LiveSession.compare_modes` runs RP and ARP side by side;
- the device and CPU threads of interactive use (:func:`resolve_device`, :func:`set_threads`).

Coordinates: every box is ``(x1, y1, x2, y2)`` in pixel-edge coordinates of the network's input
image (``input_size x input_size``), the image :attr:`PreparedImage.image` shows.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from arpviz.explorer.inputs import PreparedImage
from arpviz.models import (
    ADAPTIVE_MODES,
    MSGN,
    STEERABLE_MODES,
    MSGNExplanation,
    StageCache,
    StageOverride,
    StageSettings,
)
from arpviz.models.stages import mode_label, stage_label
from arpviz.pooling import output_size

__all__ = [
    "DSR_RANGE",
    "DSR_STEP",
    "K_RANGE",
    "K_STEP",
    "STEERABLE_MODES",
    "TAUS",
    "ExploreView",
    "KSweep",
    "Knob",
    "LiveSession",
    "ModeComparison",
    "Prediction",
    "PredictionTable",
    "StageControl",
    "StageView",
    "compare_predictions",
    "default_threads",
    "mode_label",
    "overrides_from",
    "resolve_device",
    "set_threads",
    "stage_controls",
    "stage_label",
]

logger = logging.getLogger(__name__)

#: Slider ranges for ARP's k and the DSR.
K_RANGE: tuple[float, float] = (0.1, 2.0)
K_STEP = 0.05
#: Confidence temperatures the app offers (beyond the paper; 1 is the paper).
TAUS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
DSR_RANGE: tuple[float, float] = (0.25, 1.0)
DSR_STEP = 0.05
_SWEEP_POINTS = 20


# ----------------------------------------------------------------------------- device


def resolve_device(choice: str) -> tuple[str, str | None]:
    """The torch device for ``"auto"``, ``"cpu"`` or ``"cuda"``, and a note when it fell back.

    ``auto`` picks CUDA when present; ``cuda`` without CUDA falls back to the CPU with a note.
    """
    if choice not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {choice!r}")
    cuda = torch.cuda.is_available()
    if choice == "auto":
        return ("cuda" if cuda else "cpu"), None
    if choice == "cuda" and not cuda:
        return "cpu", "CUDA is not available here; running on the CPU."
    return choice, None


def default_threads() -> int:
    """CPU threads for interactive use: env ``ARPVIZ_THREADS``, else half the cores, 1 to 4.

    Small models at interactive sizes gain little from more threads and lose a lot when the
    cores are shared (on 2 busy cores a k change took 8 ms with 1 thread, 100 ms with 2; see
    docs/benchmarks.md).
    """
    raw = os.environ.get("ARPVIZ_THREADS", "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            logger.warning("ignoring ARPVIZ_THREADS=%r (not an integer)", raw)
        else:
            if value >= 1:
                return value
            logger.warning("ignoring ARPVIZ_THREADS=%r (must be >= 1)", raw)
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def set_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads (``None``: :func:`default_threads`); returns the number set."""
    count = default_threads() if threads is None else int(threads)
    if count < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
        logger.info("torch CPU threads: %d", count)
    return count


# ----------------------------------------------------------------------------- controls


@dataclass(frozen=True)
class StageControl:
    """One stage of a model as the pages show it.

    ``steerable`` stages (RP, ARP, ARP-FG) get a mode choice and sliders; ``k`` and ``dsr``
    are the trained values (``k`` only for an adaptive mode; ``dsr`` ``None`` for a strided
    stage); ``mode_k`` is the ``k`` the model runs this stage with in each adaptive mode it can
    be switched to (empty for a stage that cannot be steered); ``crop`` is a trained RP stage's
    fixed crop rate where it differs from the DSR.
    """

    name: str
    label: str
    mode: str
    k: float | None
    dsr: tuple[float, float] | None
    mode_k: Mapping[str, float] = field(default_factory=dict)
    tau: float = 1.0
    crop: tuple[float, float] | None = None

    @property
    def steerable(self) -> bool:
        """RP, ARP and ARP-FG stages can be steered; strided, STN and oracle stages cannot
        (the oracle needs the object's mask, which an uploaded photo lacks)."""
        return self.mode in STEERABLE_MODES

    @property
    def arp_k(self) -> float | None:
        """The ``k`` of this stage switched to ARP (``None``: it cannot be steered)."""
        return self.mode_k.get("arp")

    def default_k(self, mode: str) -> float | None:
        """The ``k`` this stage runs with in ``mode`` (``None`` for a mode without ``k``)."""
        return self.mode_k.get(mode) if mode in ADAPTIVE_MODES else None

    def display(self, mode: str | None = None) -> str:
        """``Conv4 local 0 (ARP)``: the stage with ``mode`` (default: its trained mode)."""
        return stage_label(self.name, mode or self.mode)

    @property
    def trained_dsr(self) -> float | None:
        """The trained DSR as the one number a slider shows (the height's when they differ)."""
        return None if self.dsr is None else float(self.dsr[0])


@dataclass(frozen=True)
class Knob:
    """A slider setting of one stage: ``k`` of its mode (``None`` for RP, or the mode's
    default), the DSR (one number, for height and width), the confidence temperature ``tau``
    (beyond the paper; ``None``: the trained one) and the pooling ``mode`` (one of
    :data:`~arpviz.models.STEERABLE_MODES`; ``None``: the trained one)."""

    k: float | None = None
    dsr: float | None = None
    tau: float | None = None
    mode: str | None = None


def stage_controls(model: MSGN) -> tuple[StageControl, ...]:
    """Every stage of ``model`` with its trained settings, in execution order.

    A steerable stage's ``mode_k`` comes from the model itself (the settings it gives the stage
    when switched to each adaptive mode), so the default ``k`` is decided in one place, the
    model.
    """
    out = []
    for name, settings in model.stage_settings().items():
        mode_k: dict[str, float] = {}
        if settings.mode in STEERABLE_MODES:
            for mode in STEERABLE_MODES:
                if mode in ADAPTIVE_MODES:
                    k = model.stage_settings({name: StageOverride(mode=mode)})[name].k
                    mode_k[mode] = float(k)  # type: ignore[arg-type]
        out.append(StageControl(name, stage_label(name), settings.mode, settings.k,
                                settings.dsr, mode_k, settings.tau, settings.crop))
    return tuple(out)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)


def overrides_from(
    controls: Iterable[StageControl], knobs: Mapping[str, Knob], mode: str | None = None
) -> dict[str, StageOverride]:
    """The overrides that turn the trained setting into ``knobs``.

    Only stages whose mode, ``k`` or DSR differ from the trained values get an override (so
    the trained setting gives ``{}``). A knob's ``mode`` switches its stage; ``mode`` (one of
    :data:`~arpviz.models.STEERABLE_MODES`) switches every steerable stage, and an override
    then always names the mode and its ``k``. A knob's ``k`` belongs to the knob's mode (its
    ``mode``, else the stage's trained one): a stage run in another mode takes that mode's
    default ``k`` (:meth:`StageControl.default_k`). A knob's DSR applies to height and width;
    its ``tau`` (beyond the paper) overrides the stage's confidence temperature when it
    differs from the trained one.
    """
    if mode is not None and mode not in STEERABLE_MODES:
        raise ValueError(f"mode must be one of {STEERABLE_MODES} or None, got {mode!r}")
    out: dict[str, StageOverride] = {}
    for control in controls:
        if not control.steerable:
            continue
        knob = knobs.get(control.name, Knob())
        if knob.mode is not None and knob.mode not in STEERABLE_MODES:
            raise ValueError(f"knobs[{control.name!r}].mode must be one of {STEERABLE_MODES}, "
                             f"got {knob.mode!r}")
        knob_mode = knob.mode or control.mode
        target = mode or knob_mode
        switched = mode is not None or target != control.mode
        k = None
        if target in ADAPTIVE_MODES:
            k = knob.k if knob.k is not None and target == knob_mode else \
                control.default_k(target)
            if not switched and _close(k, control.k):
                k = None
        dsr = None
        if knob.dsr is not None:
            pair = (float(knob.dsr), float(knob.dsr))
            if control.dsr is None or not all(map(_close, pair, control.dsr)):
                dsr = pair
        tau = None
        if knob.tau is not None and not _close(float(knob.tau), control.tau):
            tau = float(knob.tau)
        if not switched and k is None and dsr is None and tau is None:
            continue
        out[control.name] = StageOverride(mode=target if switched else None,  # type: ignore
                                          k=k, dsr=dsr, tau=tau)
    return out


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class StageView:
    """One pooled stage of one explanation, in numbers ready to draw.

    Attributes:
        name, label: ``"conv4.local0"`` and ``"Conv4 local 0 (ARP)"`` (with its mode).
        mode, k, dsr: the settings used (``k`` ``None`` for RP/STN).
        rates: ``(rate_h, rate_w)``.
        box: ``(x1, y1, x2, y2)`` in the stage's input map.
        image_box: the same box in input-image pixels.
        frame: the region of the input image the stage's input map covers (the whole image for
            Conv3; Conv3's image box for Conv4 when Conv3 is pooled).
        map_size: ``(h, w)`` of the stage's input map; ``out_size``: of its resampled output.
        confidence: ``float32 [h, w]``, the keypoint confidence map.
    """

    name: str
    label: str
    mode: str
    k: float | None
    dsr: tuple[float, float] | None
    rates: tuple[float, float]
    box: tuple[float, float, float, float]
    image_box: tuple[float, float, float, float]
    frame: tuple[float, float, float, float]
    map_size: tuple[int, int]
    out_size: tuple[int, int]
    confidence: np.ndarray

    @property
    def crop_size(self) -> tuple[float, float]:
        """``(height, width)`` of the crop in input-image pixels (the order of ``rates`` and
        ``out_size``)."""
        x1, y1, x2, y2 = self.image_box
        return (y2 - y1, x2 - x1)


@dataclass(frozen=True)
class Prediction:
    """One row of the top-5: the class, its probability now and under the reference setting.

    ``rank`` and ``ref_rank`` are 1-based; ``rank_change`` is ``ref_rank - rank`` (positive:
    the class moved up); ``delta`` is ``prob - ref_prob``.
    """

    rank: int
    index: int
    name: str
    prob: float
    ref_prob: float
    ref_rank: int

    @property
    def delta(self) -> float:
        """Probability change against the reference."""
        return self.prob - self.ref_prob

    @property
    def rank_change(self) -> int:
        """Ranks gained (positive) or lost (negative) against the reference."""
        return self.ref_rank - self.rank


@dataclass(frozen=True)
class PredictionTable:
    """The top-k against a reference setting and whether the top-1 class flipped."""

    rows: tuple[Prediction, ...]
    ref_top1: int
    ref_top1_name: str
    ref_top1_prob: float

    @property
    def top1(self) -> Prediction:
        """The current top-1 row."""
        return self.rows[0]

    @property
    def flipped(self) -> bool:
        """The top-1 class differs from the reference's top-1."""
        return self.rows[0].index != self.ref_top1

    def markdown(self, reference: str = "trained setting") -> str:
        """The rows as a Markdown table with the full class names (they wrap, never cut):
        rank, class, probability, its change and the rank under ``reference``."""
        def cell(text: str) -> str:
            return re.sub(r"([\\`*_{}\[\]<>()#+!|~])", r"\\\1", text)

        lines = [f"| rank | class | p | | Δp | rank under the {cell(reference)} |",
                 "| ---: | --- | ---: | :--- | ---: | ---: |"]
        for r in self.rows:
            moved = "" if r.rank_change == 0 else f" ({r.rank_change:+d})"
            lines.append(f"| {r.rank} | {cell(r.name)} | {r.prob:.4f} | {_bar(r.prob)} | "
                         f"{r.delta:+.4f} | {r.ref_rank}{moved} |")
        return "\n".join(lines)


def _bar(p: float, width: int = 16) -> str:
    """A probability as a bar of block characters, ``width`` blocks for 1 (eighths between)."""
    eighths = round(min(max(p, 0.0), 1.0) * width * 8)
    return "\u2588" * (eighths // 8) + ("" if eighths % 8 == 0 else chr(0x2590 - eighths % 8))


def _ranks(probs: np.ndarray) -> np.ndarray:
    order = np.argsort(-probs, kind="stable")
    ranks = np.empty_like(order)
    ranks[order] = np.arange(1, len(probs) + 1)
    return ranks


def compare_predictions(
    probs: np.ndarray, reference: np.ndarray, class_names: Sequence[str], top: int = 5
) -> PredictionTable:
    """The ``top`` classes of ``probs`` with their probability and rank under ``reference``."""
    probs = np.asarray(probs, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if probs.shape != reference.shape or probs.ndim != 1:
        raise ValueError(f"probs and reference must be 1-D of equal length, "
                         f"got {probs.shape} and {reference.shape}")
    ranks, ref_ranks = _ranks(probs), _ranks(reference)
    order = np.argsort(ranks)[: min(top, len(probs))]

    def label(i: int) -> str:
        return class_names[i] if i < len(class_names) else str(i)

    rows = tuple(
        Prediction(int(ranks[i]), int(i), label(int(i)), float(probs[i]), float(reference[i]),
                   int(ref_ranks[i]))
        for i in order
    )
    ref_top = int(np.argmin(ref_ranks))
    return PredictionTable(rows, ref_top, label(ref_top), float(reference[ref_top]))


@dataclass(frozen=True)
class ExploreView:
    """One explanation of one image, in plain numbers.

    ``stages`` holds every pooled stage (RP, ARP, STN) by name; ``settings`` every stage's
    settings; ``probs`` the softmax over the classes; ``predictions`` the top-5 against the
    reference (the trained setting unless said otherwise); ``overrides`` what was changed.
    """

    image: np.ndarray
    settings: Mapping[str, StageSettings]
    stages: Mapping[str, StageView]
    probs: np.ndarray
    predictions: PredictionTable
    overrides: Mapping[str, StageOverride] = field(default_factory=dict)


@dataclass(frozen=True)
class KSweep:
    """How the prediction and one stage's crop move as ``k`` runs over a range (in ``mode``;
    ``trained_k`` is ``None`` when the stage was trained in another mode).

    ``probs`` is ``[n, num_classes]``; ``crop_w``/``crop_h`` the crop's size in input-image
    pixels; ``rates`` ``[n, 2]``; ``classes`` the tracked classes (the current top 3).
    """

    stage: str
    ks: np.ndarray
    probs: np.ndarray
    crop_w: np.ndarray
    crop_h: np.ndarray
    rates: np.ndarray
    classes: tuple[int, ...]
    class_names: tuple[str, ...]
    current_k: float | None
    trained_k: float | None
    mode: str = "arp"


@dataclass(frozen=True)
class ModeComparison:
    """The same image with every steerable stage in one mode and in another.

    ``modes`` are the two modes (e.g. ``("arp", "rp")``); ``first`` is compared against the
    trained setting, ``second`` against ``first``.
    """

    modes: tuple[str, str]
    first: ExploreView
    second: ExploreView

    @property
    def views(self) -> dict[str, ExploreView]:
        """``{mode label: view}`` of both sides (for the figures that take several views)."""
        return {mode_label(self.modes[0]): self.first, mode_label(self.modes[1]): self.second}


def _tuple(t: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in t.detach().float().cpu().tolist())


class LiveSession:
    """One image on one model, kept ready for fast re-explanation.

    Holds the :class:`~arpviz.models.StageCache` of ``model.prepare(x)`` and the trained
    setting's result. :meth:`explain` recomputes only the stages at or after the first stage
    whose setting changed (the rest comes from the cache).
    """

    def __init__(
        self,
        model: MSGN,
        image: PreparedImage,
        class_names: Sequence[str],
        *,
        device: str | torch.device = "cpu",
        max_entries: int = 32,
    ) -> None:
        self.model = model
        self.image = image
        self.class_names = tuple(class_names)
        self.device = torch.device(device)
        self.controls = stage_controls(model)
        with torch.no_grad():
            self.cache: StageCache = model.prepare(
                image.tensor.to(self.device), max_entries=max_entries)
            trained = model.explain_from(self.cache, None)
        probs = self._probs(trained)
        self.trained_probs = probs
        self.trained = self._view(trained, {}, probs, probs)

    # -------------------------------------------------------------- conversion

    @staticmethod
    def _probs(explanation: MSGNExplanation) -> np.ndarray:
        return explanation.logits[0].detach().float().softmax(0).cpu().numpy()

    def _view(
        self,
        explanation: MSGNExplanation,
        overrides: Mapping[str, StageOverride],
        probs: np.ndarray,
        reference: np.ndarray,
    ) -> ExploreView:
        height, width = explanation.image_size
        whole = (0.0, 0.0, float(width), float(height))
        conv3_frame = whole
        if "conv3" in explanation.image_boxes:
            conv3_frame = _tuple(explanation.image_boxes["conv3"][0])
        stages: dict[str, StageView] = {}
        for name, result in explanation.stages.items():
            settings = explanation.settings[name]
            map_size = explanation.map_sizes[name]
            frame = whole if name == "conv3" else conv3_frame
            out_size = tuple(result.features.shape[2:])
            if settings.dsr is not None:
                out_size = output_size(map_size[0], map_size[1], settings.dsr)
            stages[name] = StageView(
                name=name,
                label=stage_label(name, settings.mode),
                mode=settings.mode,
                k=settings.k,
                dsr=settings.dsr,
                rates=_tuple(result.rates[0]),  # type: ignore[arg-type]
                box=_tuple(result.boxes[0]),  # type: ignore[arg-type]
                image_box=_tuple(explanation.image_boxes[name][0]),  # type: ignore[arg-type]
                frame=frame,
                map_size=(int(map_size[0]), int(map_size[1])),
                out_size=(int(out_size[0]), int(out_size[1])),
                confidence=result.confidence[0].detach().float().cpu().numpy(),
            )
        table = compare_predictions(probs, reference, self.class_names)
        return ExploreView(self.image.image, dict(explanation.settings), stages, probs, table,
                           dict(overrides))

    # -------------------------------------------------------------- public

    def explain_overrides(
        self, overrides: Mapping[str, StageOverride], reference: np.ndarray | None = None
    ) -> ExploreView:
        """The view under ``overrides`` (predictions against ``reference``, default trained)."""
        if not overrides:
            if reference is None:
                return self.trained
        with torch.no_grad():
            explanation = self.model.explain_from(self.cache, dict(overrides))
        probs = self._probs(explanation)
        ref = self.trained_probs if reference is None else reference
        return self._view(explanation, overrides, probs, ref)

    def explain(self, knobs: Mapping[str, Knob] | None = None) -> ExploreView:
        """The view for a slider setting (``None`` or the trained values: the trained view)."""
        overrides = overrides_from(self.controls, knobs or {})
        return self.explain_overrides(overrides)

    def compare_modes(
        self, knobs: Mapping[str, Knob] | None = None, modes: Sequence[str] = ("arp", "rp")
    ) -> ModeComparison:
        """Every steerable stage in ``modes[0]`` against ``modes[1]`` (two of
        :data:`~arpviz.models.STEERABLE_MODES`), with ``knobs``: the DSR on both sides, a knob's
        ``k`` on the side whose mode is the knob's (else that mode's default ``k``)."""
        knobs = knobs or {}
        if len(modes) != 2:
            raise ValueError(f"modes must name two modes, got {modes!r}")
        first_mode, second_mode = modes
        first = self.explain_overrides(overrides_from(self.controls, knobs, mode=first_mode))
        second = self.explain_overrides(overrides_from(self.controls, knobs, mode=second_mode),
                                        reference=first.probs)
        return ModeComparison((first_mode, second_mode), first, second)

    def sweep(
        self,
        stage: str,
        knobs: Mapping[str, Knob] | None = None,
        ks: Sequence[float] | None = None,
        track: int = 3,
    ) -> KSweep:
        """Run ``k`` of ``stage`` over ``ks`` (default 20 steps over :data:`K_RANGE`), in the
        stage's mode from ``knobs`` when it is adaptive, else in ARP.

        The other stages keep ``knobs``. Uses a cache of its own (sharing the stem output) so
        the live cache keeps its entries. The tracked classes are the ``track`` most likely
        under ``knobs``.
        """
        control = {c.name: c for c in self.controls}.get(stage)
        if control is None or not control.steerable:
            steerable = [c.name for c in self.controls if c.steerable]
            raise ValueError(f"stage {stage!r} cannot be swept; steerable stages: {steerable}")
        knobs = dict(knobs or {})
        base = knobs.get(stage, Knob())
        sweep_mode = base.mode or control.mode
        if sweep_mode not in ADAPTIVE_MODES:
            sweep_mode = "arp"
        if ks is None:
            ks = np.linspace(K_RANGE[0], K_RANGE[1], _SWEEP_POINTS)
        ks_arr = np.asarray([float(k) for k in ks], dtype=np.float64)
        cache = StageCache(self.model, self.cache.image_size, self.cache.conv3_input,
                           max_entries=8)
        probs, widths, heights, rates = [], [], [], []
        with torch.no_grad():
            for k in ks_arr:
                knobs[stage] = Knob(float(k), base.dsr, base.tau, sweep_mode)
                overrides = overrides_from(self.controls, knobs)
                changed = overrides.get(stage, StageOverride())
                overrides[stage] = StageOverride(mode=sweep_mode,  # type: ignore[arg-type]
                                                 k=float(k), dsr=changed.dsr, tau=changed.tau)
                explanation = self.model.explain_from(cache, overrides)
                probs.append(self._probs(explanation))
                x1, y1, x2, y2 = _tuple(explanation.image_boxes[stage][0])
                widths.append(x2 - x1)
                heights.append(y2 - y1)
                rates.append(_tuple(explanation.stages[stage].rates[0]))
        current = self.explain(knobs | {stage: base})
        classes = tuple(int(r.index) for r in current.predictions.rows[:track])
        return KSweep(
            stage=stage,
            ks=ks_arr,
            probs=np.stack(probs),
            crop_w=np.asarray(widths),
            crop_h=np.asarray(heights),
            rates=np.asarray(rates),
            classes=classes,
            class_names=tuple(self.class_names[i] for i in classes),
            current_k=base.k if base.k is not None else control.default_k(sweep_mode),
            trained_k=control.k if sweep_mode == control.mode else None,
            mode=sweep_mode,
        )
