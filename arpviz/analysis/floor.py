"""A checkpoint's confidence floor: how far above 0 its keypoint confidence stays off the object,
on the scale of Appendix A's simulator (:func:`arpviz.simulate.simulate`'s ``background``), for
the Appendix A page's "as measured" floor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arpviz.analysis.measure import analyse
from arpviz.validation import check_count

__all__ = ["ConfidenceFloor", "measure_confidence_floor"]


@dataclass(frozen=True)
class ConfidenceFloor:
    """The background level of one stage's keypoint confidence maps in a checkpoint.

    Attributes:
        stage: the stage name (``"conv3"``, ``"conv4.local0"``, ...).
        level: mean confidence off the object box (SynthBirds ground truth), averaged over
            images: the floor as the sigmoid gives it (about 0.5).
        peak: mean over images of the map's maximum.
        relative: ``level / (peak - level)``, the :func:`arpviz.simulate.simulate`
            ``background`` (relative to the envelope's peak) that gives the same
            floor-to-peak ratio.
        count: images measured.
    """

    stage: str
    level: float
    peak: float
    relative: float
    count: int


def measure_confidence_floor(
    checkpoint: object, *, count: int = 16, split: str = "val", tau: float = 1.0
) -> dict[str, ConfidenceFloor]:
    """The confidence floor of every pooled stage of a SynthBirds checkpoint.

    Args:
        checkpoint: a loaded :class:`arpviz.checkpoint.Checkpoint` (SynthBirds).
        count: how many images of ``split`` to measure (the first ``count``).
        split: ``"val"`` or ``"test"``.
        tau: confidence temperature (beyond the paper; 1 is the paper).

    Returns:
        ``{stage: ConfidenceFloor}`` for every RP/ARP/STN stage, in execution order.

    Raises:
        ValueError: not a SynthBirds checkpoint, no pooled stage, or a bad ``count``.
    """
    count = check_count(count, "count")
    report = analyse(checkpoint, split, limit=count, tau=tau, n_random=1, k_values=(),
                     n_boot=0, batch_size=count, show_progress=False)
    if not report.ground_truth:
        raise ValueError("measuring the floor needs SynthBirds ground truth")
    out: dict[str, ConfidenceFloor] = {}
    for name in report.stages:
        columns = report.per_image["stages"][name]
        level = float(np.nanmean(columns["background_conf"]))
        peak = float(np.mean(columns["conf_max"]))
        out[name] = ConfidenceFloor(stage=name, level=level, peak=peak,
                                    relative=level / max(peak - level, 1e-6), count=report.count)
    return out
