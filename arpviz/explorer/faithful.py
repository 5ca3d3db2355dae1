"""Whether the prediction on Explore's image rests on a stage's crop, as plain numbers.

:func:`crop_check` runs :func:`arpviz.faithfulness.crop_faithfulness` and
:func:`arpviz.faithfulness.crop_curves` on the image and box of a live
:class:`~arpviz.explorer.session.ExploreView` (the sliders' overrides included) and returns a
:class:`CropCheck` of floats and arrays for a figure. The numbers are explained in
docs/explain.md ("Faithfulness of the crop").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from arpviz.explorer.session import ExploreView, LiveSession
from arpviz.faithfulness import crop_curves, crop_faithfulness
from arpviz.models import StageOverride

__all__ = ["CropCheck", "crop_check", "default_crop_stage"]


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
