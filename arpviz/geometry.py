"""A checkpoint's evaluation geometry: how an image of any size becomes the network's square
input, and back.

:func:`eval_resize` is the one decision of a checkpoint's evaluation resize (square, or for a
converted torchvision ImageNet network the aspect kept); :class:`InputGeometry` maps boxes
between the network input's pixels and the image's own pixels through that resize and the
centre crop of :func:`arpviz.data.transforms.eval_transform`. The batch command
(:mod:`arpviz.explain`), the app's inputs, photos and export all use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from arpviz.data.transforms import default_resize
from arpviz.datasources import REID_DATASETS

if TYPE_CHECKING:
    from arpviz.checkpoint import CheckpointMeta

__all__ = ["InputGeometry", "eval_resize"]


def eval_resize(meta: CheckpointMeta) -> tuple[int, bool]:
    """``(resize, keep_aspect)`` of a checkpoint's evaluation transform: the one place that
    decides it.

    A converted torchvision network (``dataset`` ``keep_aspect`` true, or ``name``
    ``"imagenet"``) is evaluated as torchvision evaluates it: the shorter side resized to the
    recorded ``resize`` (256 for a 224 input; 232 for the V2 weights), the aspect kept, then the
    centre crop. A re-ID checkpoint (SynthReID, VeRi-776, Market-1501) is evaluated with a
    square resize to the input size, no crop (:func:`arpviz.datasources.build_reid`). Every
    other checkpoint (SynthBirds, CUB, class folders) was trained with a square resize to
    :func:`~arpviz.data.transforms.default_resize` and is evaluated so.
    """
    size = int(meta.input_size)
    dataset = meta.dataset
    if dataset.get("name") in REID_DATASETS:
        return size, False
    keep = bool(dataset.get("keep_aspect", dataset.get("name") == "imagenet"))
    if not keep:
        return default_resize(size), False
    resize = dataset.get("resize")
    valid = isinstance(resize, int) and not isinstance(resize, bool) and resize >= size
    return (int(resize) if valid else default_resize(size)), True


@dataclass(frozen=True)
class InputGeometry:
    """How the eval transform maps an image of ``width x height`` onto the network's input.

    The image is resized to ``resized`` (``resize x resize``, stretched; or with
    ``keep_aspect`` its shorter side to ``resize``, the longer one in proportion, rounded down
    as torchvision's ``Resize`` does) and the centre ``input_size`` square is cut at
    ``(left, top)`` of the resized image (torchvision's ``CenterCrop`` rounding), as
    :func:`arpviz.data.transforms.eval_transform` does. :meth:`of_checkpoint` takes the
    resize from the checkpoint (:func:`eval_resize`).
    """

    width: int
    height: int
    input_size: int
    resize: int
    left: int
    top: int
    keep_aspect: bool = False

    @classmethod
    def of(cls, width: int, height: int, input_size: int, *, resize: int | None = None,
           keep_aspect: bool = False) -> InputGeometry:
        """The geometry of an image of ``width x height`` for a model of ``input_size``
        (``resize`` defaults to :func:`~arpviz.data.transforms.default_resize`)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"width and height must be > 0, got {width}x{height}")
        resize = default_resize(input_size) if resize is None else int(resize)
        if resize < input_size:
            raise ValueError(f"resize must be >= input_size, got {resize} < {input_size}")
        new_w, new_h = _resized(width, height, resize, keep_aspect)
        left = int(round((new_w - input_size) / 2.0))
        top = int(round((new_h - input_size) / 2.0))
        return cls(width, height, input_size, resize, left, top, bool(keep_aspect))

    @classmethod
    def of_checkpoint(cls, width: int, height: int, meta: CheckpointMeta) -> InputGeometry:
        """The geometry of an image of ``width x height`` under ``meta``'s evaluation
        transform (:func:`eval_resize`)."""
        resize, keep = eval_resize(meta)
        return cls.of(width, height, int(meta.input_size), resize=resize, keep_aspect=keep)

    @property
    def resized(self) -> tuple[int, int]:
        """``(width, height)`` of the image after the resize, before the crop."""
        return _resized(self.width, self.height, self.resize, self.keep_aspect)

    def to_image(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """A box ``(x1, y1, x2, y2)`` in input pixels -> the same box in image pixels."""
        new_w, new_h = self.resized
        sx, sy = self.width / new_w, self.height / new_h
        x1, y1, x2, y2 = (float(v) for v in box)
        return ((x1 + self.left) * sx, (y1 + self.top) * sy,
                (x2 + self.left) * sx, (y2 + self.top) * sy)

    def to_input(self, x: float, y: float) -> tuple[float, float]:
        """A point in image pixels -> the same point in input pixels (may lie outside)."""
        new_w, new_h = self.resized
        return (x * new_w / self.width - self.left, y * new_h / self.height - self.top)

    @property
    def crop_area(self) -> tuple[float, float, float, float]:
        """The part of the image the network sees, in image pixels."""
        return self.to_image((0.0, 0.0, self.input_size, self.input_size))


def _resized(width: int, height: int, resize: int, keep_aspect: bool) -> tuple[int, int]:
    """``(width, height)`` after torchvision's ``Resize``: ``resize`` square, or the shorter
    side to ``resize`` and the longer one ``int(resize * long / short)``."""
    if not keep_aspect:
        return resize, resize
    if width <= height:
        return resize, int(resize * height / width)
    return int(resize * width / height), resize
