"""Whether the prediction on Explore's image rests on a stage's crop, as plain numbers.

:func:`crop_check` runs :func:`arpviz.faithfulness.crop_faithfulness` and
:func:`arpviz.faithfulness.crop_curves` on the image and box of a live
:class:`~arpviz.explorer.results.ExploreView` (the sliders' overrides included) and returns a
:class:`CropCheck` of floats and arrays for a figure. The numbers are explained in
docs/explain.md ("Faithfulness of the crop").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from arpviz.explorer.live import LiveSession
from arpviz.explorer.results import ExploreView
from arpviz.faithfulness import crop_curves, crop_faithfulness
from arpviz.models import StageOverride

__all__ = ["MARGIN", "CropCheck", "conclusions", "crop_check", "default_crop_stage"]


@dataclass(frozen=True)
class CropCheck:
    """One stage's crop tested on one image (probabilities of the class ``target``).

    Attributes:
        stage, fill: the stage whose box was tested and how removed pixels were filled.
        target, target_name: the class predicted on the unaltered image.
        full, keep, remove: its probability on the image, with only the box kept, with the box
            filled.
        centre_keep, centre_remove: the same for a box of that size at the image centre.
        random_keep, random_remove: the mean over ``n_random`` boxes of that size at random.
        area: the box's share of the image.
        scales, curve_area, insertion, deletion: ``[S]`` arrays: the box scaled about its
            centre, its share of the image, and the probability with only it kept / it filled.
        insertion_auc, deletion_auc: the curves' mean levels.
        box: the box tested, ``(x1, y1, x2, y2)`` in input pixels.
        overrides: the stage overrides every forward pass used (the view's).
    """

    stage: str
    fill: str
    target: int
    target_name: str
    full: float
    keep: float
    remove: float
    centre_keep: float
    centre_remove: float
    random_keep: float
    random_remove: float
    area: float
    scales: np.ndarray
    curve_area: np.ndarray
    insertion: np.ndarray
    deletion: np.ndarray
    insertion_auc: float
    deletion_auc: float
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    overrides: Mapping[str, StageOverride] = field(default_factory=dict)


def default_crop_stage(view: ExploreView) -> str | None:
    """The last Conv4 stage of ``view`` (the finest crop), else its last stage, else None."""
    names = list(view.stages)
    conv4 = [n for n in names if n.startswith("conv4")]
    return (conv4 or names or [None])[-1]


def crop_check(
    live: LiveSession,
    view: ExploreView,
    stage: str,
    *,
    fill: str = "blur",
    n_random: int = 8,
    seed: int = 0,
) -> CropCheck:
    """Test ``stage``'s box of ``view`` (an explanation of ``live``'s image) for faithfulness.

    Every forward pass uses ``view.overrides``, so the numbers are those of the sliders'
    setting. Raises ``ValueError`` for an unknown stage (and what
    :func:`~arpviz.faithfulness.crop_faithfulness` raises, e.g. for an empty box).
    """
    if stage not in view.stages:
        raise ValueError(f"stage must be one of {list(view.stages)}, got {stage!r}")
    images = live.image.tensor.to(live.device)
    box = torch.tensor([view.stages[stage].image_box], dtype=torch.float32, device=live.device)
    overrides = dict(view.overrides) or None
    with torch.no_grad():
        parts = crop_faithfulness(live.model, images, box, fill=fill, n_random=n_random,
                                  seed=seed, overrides=overrides)
        curves = crop_curves(live.model, images, box, target=parts.target, fill=fill,
                             overrides=overrides)

    def one(t: torch.Tensor) -> float:
        return float(t.reshape(-1)[0])

    target = int(parts.target[0])
    names = live.class_names
    return CropCheck(
        stage=stage, fill=fill, target=target,
        target_name=names[target] if target < len(names) else str(target),
        full=one(parts.full), keep=one(parts.keep), remove=one(parts.remove),
        centre_keep=one(parts.centre_keep), centre_remove=one(parts.centre_remove),
        random_keep=one(parts.random_keep), random_remove=one(parts.random_remove),
        area=one(parts.area),
        scales=curves.scales.cpu().numpy(), curve_area=curves.area[0].cpu().numpy(),
        insertion=curves.insertion[0].cpu().numpy(), deletion=curves.deletion[0].cpu().numpy(),
        insertion_auc=one(curves.insertion_auc), deletion_auc=one(curves.deletion_auc),
        box=view.stages[stage].image_box, overrides=dict(view.overrides),
    )


#: Probability differences below this are read as "no difference" by :func:`conclusions`.
MARGIN = 0.02


def _compare(crop: float, others: float, margin: float) -> int:
    """+1 when ``crop`` exceeds ``others`` by more than ``margin``, -1 below, else 0."""
    return 0 if abs(crop - others) <= margin else (1 if crop > others else -1)


def conclusions(check: CropCheck, margin: float = MARGIN) -> list[str]:
    """What the scores of ``check`` say, one sentence each, computed from them: differences of
    at most ``margin`` in probability are "no difference" (a crop scoring 0.526 against random
    boxes at 0.529 is no better than any box its size)."""
    p = f"p({check.target_name})"
    lines = [f"**whole image** {check.full:.3f}: {p} unaltered."]
    others_keep = max(check.centre_keep, check.random_keep)
    keep = _compare(check.keep, others_keep, margin)
    alone = ("near the whole image: the box alone suffices"
             if check.keep >= check.full - margin else
             "below the whole image: the box alone does not hold all the evidence")
    versus = {1: "more than boxes of its size elsewhere", 0: f"no different (within "
              f"{margin:g}) from boxes of its size elsewhere", -1: "less than a box of its size "
              "elsewhere"}[keep]
    lines.append(f"**keep only the box** {check.keep:.3f} (centre {check.centre_keep:.3f}, "
                 f"random {check.random_keep:.3f}): {alone}; {versus}.")
    others_remove = min(check.centre_remove, check.random_remove)
    remove = _compare(check.remove, others_remove, margin)
    removed = {-1: "removing the box costs more than removing boxes of its size elsewhere: "
               "the evidence was in it", 0: f"removing it costs no more (within {margin:g}) "
               "than removing boxes of its size elsewhere", 1: "removing a box of its size "
               "elsewhere costs more: the evidence lies outside it"}[remove]
    lines.append(f"**remove the box** {check.remove:.3f} (centre {check.centre_remove:.3f}, "
                 f"random {check.random_remove:.3f}): {removed}.")
    if keep > 0 and remove < 0:
        verdict = "the crop beats its size: it keeps more and leaves less than other boxes."
    elif keep == 0 and remove == 0:
        verdict = "the crop does no better than any box of its size."
    else:
        verdict = "mixed: the crop beats boxes of its size on one test only."
    lines.append(f"**area** {check.area:.1%} of the image; {verdict}")
    lines.append(f"**insertion / deletion AUC** {check.insertion_auc:.3f} / "
                 f"{check.deletion_auc:.3f}: mean {p} as the box grows from its centre to the "
                 "crop, kept alone / blurred (high / low: faithful).")
    return lines
