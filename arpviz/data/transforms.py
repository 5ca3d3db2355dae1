"""Training and evaluation transforms (the paper: resize 512, crop 448, flip; test centre crop).

For CUB ``train_transform(448)`` resizes to 512 x 512, takes a random 448 x 448 crop and flips
horizontally at random; ``eval_transform(448)`` resizes to 512 x 512 and takes the centre crop.
Other sizes keep the same ratio: the resize defaults to ``round(image_size * 8 / 7)`` (SynthBirds
at 128 px: resize 146, crop 128). Both end with ``ToDtype`` to float in [0, 1] and ImageNet
normalisation. Inputs may be PIL images, HxWx3 uint8 arrays or [3, H, W] tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

from arpviz.images import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "default_resize",
    "eval_transform",
    "train_transform",
]


def default_resize(image_size: int) -> int:
    """The resize that goes with a crop of ``image_size`` (448 -> 512)."""
    _check_size("image_size", image_size)
    return round(image_size * 8 / 7)


def _check_size(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def _check_stats(mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
    if (mean is None) != (std is None):
        raise ValueError("mean and std must both be given or both be None")
    if mean is None or std is None:
        return
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std must have 3 values, got {mean!r} and {std!r}")
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be > 0, got {std!r}")


def _head(image_size: int, resize: int | None, keep_aspect: bool) -> tuple[list, int]:
    _check_size("image_size", image_size)
    resize = default_resize(image_size) if resize is None else _check_size("resize", resize)
    if resize < image_size:
        raise ValueError(f"resize must be >= image_size, got {resize} < {image_size}")
    target = resize if keep_aspect else (resize, resize)
    return [v2.ToImage(), v2.Resize(target, antialias=True)], resize


def _tail(mean: Sequence[float] | None, std: Sequence[float] | None) -> list:
    _check_stats(mean, std)
    steps: list = [v2.ToDtype(torch.float32, scale=True)]
    if mean is not None and std is not None:
        steps.append(v2.Normalize(list(mean), list(std)))
    steps.append(v2.ToPureTensor())
    return steps


def train_transform(
    image_size: int = 448,
    resize: int | None = None,
    *,
    hflip: bool = True,
    keep_aspect: bool = False,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] | None = IMAGENET_STD,
) -> v2.Compose:
    """Resize (square unless ``keep_aspect``), random crop, random flip, scale, normalise.

    ``keep_aspect`` resizes the shorter side instead of to a square. ``mean``/``std`` None
    skips normalisation.
    """
    steps, _ = _head(image_size, resize, keep_aspect)
    steps.append(v2.RandomCrop(image_size))
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps + _tail(mean, std))


def eval_transform(
    image_size: int = 448,
    resize: int | None = None,
    *,
    keep_aspect: bool = False,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] | None = IMAGENET_STD,
) -> v2.Compose:
    """Resize (square unless ``keep_aspect``), centre crop, scale, normalise."""
    steps, _ = _head(image_size, resize, keep_aspect)
    steps.append(v2.CenterCrop(image_size))
    return v2.Compose(steps + _tail(mean, std))
