"""What a live explanation shows, in plain numbers: the results :mod:`arpviz.explorer.live`
returns and the figures draw.

- :class:`StageView`: one pooled stage (settings, rates, boxes in the stage's map and in the
  network's input pixels, its confidence map);
- :class:`PredictionTable` of :class:`Prediction` rows: the top-5 against a reference setting
  (:func:`compare_predictions`);
- :class:`ExploreView`: one image under one setting; :class:`ModeComparison`: two of them;
  :class:`KSweep`: one stage's ``k`` over a range, with every stage's box and the top-5 at each
  value (what the browser-side scrubber plays).

Boxes are ``(x1, y1, x2, y2)`` in pixel-edge coordinates of the network's input image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from arpviz.models import StageOverride, StageSettings
from arpviz.models.stages import mode_label

__all__ = [
    "ExploreView",
    "KSweep",
    "ModeComparison",
    "Prediction",
    "PredictionTable",
    "StageView",
    "compare_predictions",
]


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
    """How the prediction and every crop move as one stage's ``k`` runs over a range (in
    ``mode``; ``trained_k`` is ``None`` when the stage was trained in another mode).

    ``probs`` is ``[n, num_classes]``; ``crop_w``/``crop_h`` the swept stage's crop size in
    input-image pixels; ``rates`` ``[n, 2]``; ``classes`` the tracked classes (the current top
    3); ``boxes`` every pooled stage's box in input-image pixels at each ``k``
    (``{stage: [n, 4]}``: a stage after the swept one moves with it); ``crops`` the swept
    stage's resampled region at each ``k`` (``uint8 [n, h, w, 3]`` of the input image).
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
    boxes: Mapping[str, np.ndarray] = field(default_factory=dict)
    crops: np.ndarray | None = None
    class_list: tuple[str, ...] = ()

    def top(self, index: int, count: int = 5) -> list[tuple[str, float]]:
        """The ``count`` most likely classes at ``ks[index]``, ``(name, probability)``."""
        probs = self.probs[index]
        order = np.argsort(-probs, kind="stable")[:count]
        names = self.class_list
        return [(names[i] if i < len(names) else str(i), float(probs[i])) for i in order]


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
