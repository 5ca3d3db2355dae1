"""Is the crop what the prediction rests on? Keep-only, remove, and the curves as it grows.

For an image, the class the network predicts on it (the *target*) and one stage's crop box (in
the network input's pixels, e.g. :attr:`arpviz.models.MSGNExplanation.image_boxes`), this module
runs the whole network again on altered copies of the image and reads the target's softmax
probability:

- ``keep``: only the box is kept, the rest of the image is *filled*;
- ``remove``: the box is filled, the rest kept;
- the same for a box of the same size at the image centre (``centre_*``) and for ``n_random``
  boxes of the same size at seeded random places (``random_*``, averaged);
- the insertion and deletion curves: ``keep`` and ``remove`` of the box scaled about its centre
  by each factor in ``scales`` (0 = nothing kept / nothing removed, 1 = the box itself).

*Fill* is ``"blur"`` (a Gaussian blur of the same image, ``blur_sigma`` pixels; default a 16th
of the image side) or ``"mean"`` (the normalisation mean: 0 in the normalised input, the image
data set's mean colour). Box edges cut pixels fractionally (a pixel half inside is half kept).
The network re-runs from the pixels, ARP included, so an ARP stage may pick a new box on the
altered image; the numbers measure the prediction, not the box. See ``docs/explain.md`` for what
each number means and how it relates to torch-cam's Average Drop / Increase in Confidence,
RISE's deletion/insertion and pytorch-grad-cam's ROAD.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from arpviz.models import MSGN, StageOverride
from arpviz.validation import check_count

__all__ = [
    "DEFAULT_SCALES",
    "CropCurves",
    "CropFaithfulness",
    "box_mask",
    "centre_boxes",
    "crop_curves",
    "crop_faithfulness",
    "fill_images",
    "gaussian_blur",
    "predict_probs",
    "random_boxes",
    "scale_boxes",
    "stage_boxes",
    "faithfulness_over_loader",
]

logger = logging.getLogger(__name__)

Fill = Literal["blur", "mean"]
FILLS: tuple[str, ...] = ("blur", "mean")
#: Box scale factors of the insertion/deletion curves.
DEFAULT_SCALES: tuple[float, ...] = tuple(i / 10 for i in range(11))


# ----------------------------------------------------------------------------- results


def _trapezoid(y: Tensor, x: Tensor) -> Tensor:
    """Area under ``y [B, S]`` over ``x [S]``, divided by the x range (a mean level)."""
    span = float(x[-1] - x[0])
    if span <= 0:
        return y[:, 0].clone()
    return torch.trapezoid(y, x, dim=1) / span


@dataclass(frozen=True)
class CropFaithfulness:
    """The target's probability under each alteration, per image (all ``Tensor[B]`` float32).

    Attributes:
        target: ``Tensor[B]`` int64, the class the probabilities are of.
        full: on the unaltered image.
        keep, remove: only the box kept / the box filled.
        centre_keep, centre_remove: the same for a same-size box at the image centre.
        random_keep, random_remove: the mean over the random same-size boxes.
        area: the box's share of the image area.
    """

    target: Tensor
    full: Tensor
    keep: Tensor
    remove: Tensor
    centre_keep: Tensor
    centre_remove: Tensor
    random_keep: Tensor
    random_remove: Tensor
    area: Tensor

    @property
    def drop(self) -> Tensor:
        """``max(0, full - keep) / full`` per image: torch-cam's Average Drop term, in [0, 1]."""
        return (self.full - self.keep).clamp(min=0) / self.full.clamp(min=1e-12)

    @property
    def increase(self) -> Tensor:
        """``keep > full`` per image (bool): torch-cam's Increase in Confidence term."""
        return self.keep > self.full


@dataclass(frozen=True)
class CropCurves:
    """Insertion and deletion curves of a box scaled about its centre.

    Attributes:
        scales: ``Tensor[S]``, increasing scale factors (x of the curves).
        area: ``Tensor[B, S]``, the scaled box's share of the image (non-decreasing in S).
        insertion: ``Tensor[B, S]``, the target's probability with only the scaled box kept.
        deletion: ``Tensor[B, S]``, the same with the scaled box filled.
        target: ``Tensor[B]`` int64.
    """

    scales: Tensor
    area: Tensor
    insertion: Tensor
    deletion: Tensor
    target: Tensor

    @property
    def insertion_auc(self) -> Tensor:
        """``Tensor[B]``: the insertion curve's mean level over the scales (higher: better)."""
        return _trapezoid(self.insertion, self.scales)

    @property
    def deletion_auc(self) -> Tensor:
        """``Tensor[B]``: the deletion curve's mean level over the scales (lower: better)."""
        return _trapezoid(self.deletion, self.scales)


# ----------------------------------------------------------------------------- checks


def _check_images(images: object) -> Tensor:
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"images must have shape [B, C, H, W] with B >= 1, "
                         f"got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point, got dtype {images.dtype}")
    return images


def _check_boxes(boxes: object, images: Tensor) -> Tensor:
    if not isinstance(boxes, Tensor):
        raise TypeError(f"boxes must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.shape != (images.shape[0], 4):
        raise ValueError(f"boxes must have shape [{images.shape[0]}, 4], "
                         f"got {tuple(boxes.shape)}")
    boxes = boxes.to(images.device, torch.float32)
    if not bool(((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()):
        raise ValueError("boxes must have x2 > x1 and y2 > y1")
    return boxes


def _check_fill(fill: object) -> str:
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    return str(fill)


def _check_scales(scales: Iterable[float]) -> Tensor:
    values = torch.tensor([float(s) for s in scales], dtype=torch.float32)
    if values.numel() < 2 or bool((values < 0).any()) or not bool((values.diff() > 0).all()):
        raise ValueError(f"scales must be >= 2 increasing factors >= 0, got {list(scales)}")
    return values


# ----------------------------------------------------------------------------- geometry


def box_mask(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """How much of each pixel lies inside each box.

    Args:
        boxes: ``Tensor[B, 4]`` pixel-edge ``(x1, y1, x2, y2)`` (an empty box gives zeros).
        size: ``(H, W)`` of the image.

    Returns:
        ``Tensor[B, 1, H, W]`` float32 in [0, 1]: the area of pixel ``(i, j)`` inside the box.
    """
    height, width = size
    boxes = boxes.float()
    rows = torch.arange(height, device=boxes.device, dtype=torch.float32)
    cols = torch.arange(width, device=boxes.device, dtype=torch.float32)

    def cover(lo: Tensor, hi: Tensor, index: Tensor) -> Tensor:  # [B, N]
        return (torch.minimum(hi[:, None], index + 1) - torch.maximum(lo[:, None], index)).clamp(
            0, 1)

    ys = cover(boxes[:, 1], boxes[:, 3], rows)
    xs = cover(boxes[:, 0], boxes[:, 2], cols)
    return (ys[:, :, None] * xs[:, None, :]).unsqueeze(1)


def _sizes(boxes: Tensor) -> tuple[Tensor, Tensor]:
    return boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]


def centre_boxes(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Boxes of the same sizes as ``boxes [B, 4]``, centred in an image of ``size = (H, W)``."""
    height, width = size
    w, h = _sizes(boxes.float())
    x1, y1 = (width - w) / 2, (height - h) / 2
    return torch.stack([x1, y1, x1 + w, y1 + h], dim=1)


def random_boxes(
    boxes: Tensor, size: tuple[int, int], count: int, generator: torch.Generator
) -> Tensor:
    """``count`` boxes per image of the sizes of ``boxes [B, 4]``, uniformly placed inside.

    Returns ``Tensor[B, count, 4]``; the positions come from ``generator`` (CPU) only.
    """
    count = check_count(count, "count")
    height, width = size
    boxes = boxes.float()
    w, h = _sizes(boxes)
    u = torch.rand(boxes.shape[0], count, 2, generator=generator).to(boxes.device)
    x1 = u[..., 0] * (width - w).clamp(min=0)[:, None]
    y1 = u[..., 1] * (height - h).clamp(min=0)[:, None]
    return torch.stack([x1, y1, x1 + w[:, None], y1 + h[:, None]], dim=2)


def scale_boxes(boxes: Tensor, factor: float, size: tuple[int, int]) -> Tensor:
    """``boxes [B, 4]`` scaled by ``factor`` about their centres, clipped to ``size = (H, W)``.

    ``factor`` 0 gives empty boxes (zero width and height at the centre).
    """
    height, width = size
    boxes = boxes.float()
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    w, h = _sizes(boxes)
    hw, hh = w * factor / 2, h * factor / 2
    return torch.stack([(cx - hw).clamp(0, width), (cy - hh).clamp(0, height),
                        (cx + hw).clamp(0, width), (cy + hh).clamp(0, height)], dim=1)


def _area(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    w, h = _sizes(boxes)
    return (w.clamp(min=0) * h.clamp(min=0)) / float(size[0] * size[1])


# ----------------------------------------------------------------------------- filling


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``images [B, C, H, W]`` (``sigma`` in pixels, edges
    replicated); the kernel reaches ``ceil(3 * sigma)`` pixels each way."""
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(images.dtype)
    channels = images.shape[1]
    out = F.pad(images, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def fill_images(images: Tensor, fill: Fill = "blur", blur_sigma: float | None = None) -> Tensor:
    """What removed pixels become: ``"blur"`` (Gaussian, ``blur_sigma`` pixels, default
    ``min(H, W) / 16``) or ``"mean"`` (zeros: the normalisation mean). Same shape as
    ``images``."""
    images = _check_images(images)
    fill = _check_fill(fill)
    if fill == "mean":
        return torch.zeros_like(images)
    sigma = min(images.shape[2:]) / 16 if blur_sigma is None else float(blur_sigma)
    return gaussian_blur(images, sigma)


# ----------------------------------------------------------------------------- forward passes


def _logits(model: Callable[[Tensor], Tensor] | MSGN, x: Tensor,
            overrides: Mapping[str, StageOverride] | None) -> Tensor:
    if overrides:
        if not isinstance(model, MSGN):
            raise TypeError("overrides need an MSGN model")
        return model.explain(x, overrides).logits
    return model(x)


@torch.no_grad()
def predict_probs(
    model: Callable[[Tensor], Tensor] | MSGN,
    images: Tensor,
    *,
    overrides: Mapping[str, StageOverride] | None = None,
    batch_size: int = 64,
) -> Tensor:
    """Softmax probabilities ``Tensor[N, classes]`` float32 of ``images [N, C, H, W]``, in
    chunks of ``batch_size`` (``overrides`` need an :class:`~arpviz.models.MSGN`)."""
    batch_size = check_count(batch_size, "batch_size")
    parts = [_logits(model, images[i : i + batch_size], overrides).float().softmax(dim=1)
             for i in range(0, images.shape[0], batch_size)]
    return torch.cat(parts)


def _target_probs(
    model: Callable[[Tensor], Tensor] | MSGN,
    images: Tensor,
    baseline: Tensor,
    boxes: Tensor,
    target: Tensor,
    keep: bool,
    overrides: Mapping[str, StageOverride] | None,
    batch_size: int,
) -> Tensor:
    """The target's probability ``[V, B]`` with each of ``boxes [V, B, 4]`` kept (``keep``) or
    filled; altered images are built ``batch_size`` at a time, never all at once."""
    count, batch = boxes.shape[:2]
    size = (images.shape[2], images.shape[3])
    flat = boxes.reshape(count * batch, 4)
    owner = torch.arange(batch, device=images.device).repeat(count)
    out = []
    for start in range(0, count * batch, batch_size):
        idx = owner[start : start + batch_size]
        inside = box_mask(flat[start : start + batch_size], size).to(images.dtype)
        if not keep:
            inside = 1 - inside
        x = inside * images[idx] + (1 - inside) * baseline[idx]
        probs = _logits(model, x, overrides).float().softmax(dim=1)
        out.append(probs.gather(1, target[idx][:, None]).squeeze(1))
    return torch.cat(out).view(count, batch)


def _resolve_target(model, images, target, overrides, batch_size) -> tuple[Tensor, Tensor]:
    probs = predict_probs(model, images, overrides=overrides, batch_size=batch_size)
    if target is None:
        target = probs.argmax(dim=1)
    else:
        if not isinstance(target, Tensor) or target.shape != (images.shape[0],):
            raise ValueError(f"target must be a Tensor[{images.shape[0]}] of class indices")
        target = target.to(probs.device, torch.long)
        if bool(((target < 0) | (target >= probs.shape[1])).any()):
            raise ValueError(f"target must hold class indices in [0, {probs.shape[1]})")
    return target, probs.gather(1, target[:, None]).squeeze(1)


@torch.no_grad()
def crop_faithfulness(
    model: Callable[[Tensor], Tensor] | MSGN,
    images: Tensor,
    boxes: Tensor,
    *,
    target: Tensor | None = None,
    fill: Fill = "blur",
    blur_sigma: float | None = None,
    n_random: int = 8,
    seed: int = 0,
    generator: torch.Generator | None = None,
    overrides: Mapping[str, StageOverride] | None = None,
    batch_size: int = 64,
) -> CropFaithfulness:
    """Keep-only and remove probabilities of ``boxes`` against centred and random boxes.

    Args:
        model: a classifier ``Tensor[B, C, H, W] -> logits`` (an MSGN when ``overrides``).
        images: ``Tensor[B, C, H, W]``, normalised network inputs.
        boxes: ``Tensor[B, 4]`` ``(x1, y1, x2, y2)`` in the inputs' pixels.
        target: ``Tensor[B]`` classes to score; default the prediction on ``images``.
        fill: ``"blur"`` or ``"mean"`` (see :func:`fill_images`).
        blur_sigma: the blur's sigma in pixels (default ``min(H, W) / 16``).
        n_random: random same-size boxes per image.
        seed: seeds the random boxes unless ``generator`` is given (a CPU generator).
        overrides: stage overrides for every forward pass (as :meth:`MSGN.explain` takes).
        batch_size: images per forward pass.

    Returns:
        :class:`CropFaithfulness`, probabilities in [0, 1].
    """
    images = _check_images(images)
    boxes = _check_boxes(boxes, images)
    size = (images.shape[2], images.shape[3])
    if generator is None:
        generator = torch.Generator().manual_seed(int(seed))
    rand = random_boxes(boxes, size, n_random, generator)  # [B, n, 4]
    target, full = _resolve_target(model, images, target, overrides, batch_size)
    baseline = fill_images(images, fill, blur_sigma)
    candidates = torch.cat([boxes[None], centre_boxes(boxes, size)[None],
                            rand.transpose(0, 1)])  # [2 + n, B, 4]
    kept = _target_probs(model, images, baseline, candidates, target, True, overrides,
                         batch_size)
    removed = _target_probs(model, images, baseline, candidates, target, False, overrides,
                            batch_size)
    return CropFaithfulness(
        target=target,
        full=full,
        keep=kept[0],
        remove=removed[0],
        centre_keep=kept[1],
        centre_remove=removed[1],
        random_keep=kept[2:].mean(dim=0),
        random_remove=removed[2:].mean(dim=0),
        area=_area(boxes, size),
    )


@torch.no_grad()
def crop_curves(
    model: Callable[[Tensor], Tensor] | MSGN,
    images: Tensor,
    boxes: Tensor,
    *,
    scales: Sequence[float] = DEFAULT_SCALES,
    target: Tensor | None = None,
    fill: Fill = "blur",
    blur_sigma: float | None = None,
    overrides: Mapping[str, StageOverride] | None = None,
    batch_size: int = 64,
) -> CropCurves:
    """Insertion (keep only) and deletion (fill) curves of ``boxes`` scaled by ``scales``.

    Arguments as :func:`crop_faithfulness`; ``scales`` are increasing factors ``>= 0`` (above
    1 the box grows past the crop, clipped to the image). Returns :class:`CropCurves`.
    """
    images = _check_images(images)
    boxes = _check_boxes(boxes, images)
    factors = _check_scales(scales)
    size = (images.shape[2], images.shape[3])
    target, _ = _resolve_target(model, images, target, overrides, batch_size)
    baseline = fill_images(images, fill, blur_sigma)
    scaled = torch.stack([scale_boxes(boxes, float(f), size) for f in factors])  # [S, B, 4]
    insertion = _target_probs(model, images, baseline, scaled, target, True, overrides,
                              batch_size)
    deletion = _target_probs(model, images, baseline, scaled, target, False, overrides,
                             batch_size)
    area = torch.stack([_area(b, size) for b in scaled], dim=1)
    return CropCurves(factors.to(images.device), area, insertion.T.contiguous(),
                      deletion.T.contiguous(), target)


# ----------------------------------------------------------------------------- a whole split


@torch.no_grad()
def stage_boxes(
    model: MSGN, images: Tensor, stage: str,
    overrides: Mapping[str, StageOverride] | None = None,
) -> Tensor:
    """``Tensor[B, 4]``: the crop box of ``stage`` in the input pixels of ``images``.

    Raises:
        ValueError: ``stage`` is not a pooled (RP/ARP/STN) stage of ``model``.
    """
    if not isinstance(model, MSGN):
        raise TypeError(f"model must be an MSGN, got {type(model).__name__}")
    explanation = model.explain(images, overrides)
    if stage not in explanation.image_boxes:
        raise ValueError(f"stage {stage!r} crops nothing in this model; pooled stages: "
                         f"{sorted(explanation.image_boxes)}")
    return explanation.image_boxes[stage].float()


def _batch_images(batch: Any) -> Tensor:
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    if isinstance(batch, Mapping) and isinstance(batch.get("image"), Tensor):
        return batch["image"]
    raise TypeError("the loader must yield image tensors, (images, ...) or {'image': ...}")


def _summary(parts: list[CropFaithfulness], curves: list[CropCurves]) -> dict[str, Any]:
    def cat(name: str) -> Tensor:
        return torch.cat([getattr(p, name).float().cpu() for p in parts])

    out: dict[str, Any] = {}
    for name in ("full", "keep", "remove", "centre_keep", "centre_remove", "random_keep",
                 "random_remove", "area"):
        out[name] = float(cat(name).mean())
    full = cat("full")
    for prefix, key in (("", "keep"), ("centre_", "centre_keep"), ("random_", "random_keep")):
        kept = cat(key)
        out[f"{prefix}average_drop"] = float(
            ((full - kept).clamp(min=0) / full.clamp(min=1e-12)).mean() * 100)
        out[f"{prefix}increase_in_confidence"] = float((kept > full).float().mean() * 100)
    insertion = torch.cat([c.insertion.cpu() for c in curves])
    deletion = torch.cat([c.deletion.cpu() for c in curves])
    out["insertion_auc"] = float(torch.cat([c.insertion_auc.cpu() for c in curves]).mean())
    out["deletion_auc"] = float(torch.cat([c.deletion_auc.cpu() for c in curves]).mean())
    out["curves"] = {
        "scales": curves[0].scales.cpu().tolist(),
        "area": torch.cat([c.area.cpu() for c in curves]).mean(dim=0).tolist(),
        "insertion": insertion.mean(dim=0).tolist(),
        "deletion": deletion.mean(dim=0).tolist(),
    }
    return out


@torch.no_grad()
def faithfulness_over_loader(
    model: MSGN,
    loader: Iterable[Any],
    stage: str,
    *,
    fill: Fill = "blur",
    blur_sigma: float | None = None,
    n_random: int = 8,
    seed: int = 0,
    scales: Sequence[float] = DEFAULT_SCALES,
    overrides: Mapping[str, StageOverride] | None = None,
    limit: int | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> dict[str, Any]:
    """Mean faithfulness of ``stage``'s crop over a loader of normalised images.

    ``loader`` yields image tensors ``[B, C, H, W]``, or tuples/lists whose first item is one
    (a DataLoader over ``(image, label)``), or dicts with ``"image"``. The target is each
    image's predicted class. Images go to the model's device; at most ``limit`` images.

    Returns:
        A JSON-ready dict: ``stage``, ``count``, the settings, the means of every
        :class:`CropFaithfulness` field, ``average_drop`` and ``increase_in_confidence`` (in %,
        torch-cam's definitions with the crop as the mask) for the crop, the centred box
        (``centre_``) and the random boxes (``random_``), ``insertion_auc``, ``deletion_auc`` and
        the mean ``curves`` (``scales``, ``area``, ``insertion``, ``deletion``).

    Raises:
        ValueError: ``stage`` is not a pooled stage, the loader is empty, bad settings.
    """
    if not isinstance(model, MSGN):
        raise TypeError(f"model must be an MSGN, got {type(model).__name__}")
    _check_fill(fill)
    _check_scales(scales)
    limit = check_count(limit, "limit", optional=True)
    model.stage_settings(overrides)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(int(seed))
    parts: list[CropFaithfulness] = []
    curves: list[CropCurves] = []
    count = 0
    total = limit if limit is not None else (len(loader.dataset)  # type: ignore[attr-defined]
                                             if hasattr(loader, "dataset") else None)
    bar = tqdm(total=total, desc=f"faithfulness {stage}", unit="img", disable=not progress)
    try:
        for batch in loader:
            images = _batch_images(batch)
            if limit is not None:
                images = images[: limit - count]
            if images.shape[0] == 0:
                break
            images = images.to(device)
            boxes = stage_boxes(model, images, stage, overrides)
            part = crop_faithfulness(model, images, boxes, fill=fill, blur_sigma=blur_sigma,
                                     n_random=n_random, generator=generator,
                                     overrides=overrides, batch_size=batch_size)
            parts.append(part)
            curves.append(crop_curves(model, images, boxes, scales=scales, target=part.target,
                                      fill=fill, blur_sigma=blur_sigma, overrides=overrides,
                                      batch_size=batch_size))
            count += images.shape[0]
            bar.update(images.shape[0])
            if limit is not None and count >= limit:
                break
    finally:
        bar.close()
    if not parts:
        raise ValueError("the loader yielded no images")
    summary = _summary(parts, curves)
    logger.info("faithfulness of %s over %d images: keep %.3f, remove %.3f (full %.3f)",
                stage, count, summary["keep"], summary["remove"], summary["full"])
    return {"stage": stage, "count": count, "fill": fill, "blur_sigma": blur_sigma,
            "n_random": n_random, "seed": seed, **summary}

