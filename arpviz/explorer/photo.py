"""The image as it was uploaded, for drawing: a display copy, and where the network's input and
every box lie on it.

The network sees the image through its checkpoint's evaluation transform (resize, centre crop;
:class:`arpviz.geometry.InputGeometry` is the one place that mapping lives). A :class:`Photo`
keeps the decoded original at a display size (a JPEG data URI, made once per image) with that
geometry, so a figure can draw the photo at its true aspect, the network's input as a frame on
it, and the boxes in the photo's own pixels.
"""

from __future__ import annotations

import base64
import io
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from arpviz.checkpoint import CheckpointMeta
from arpviz.explorer.inputs import PreparedImage
from arpviz.geometry import InputGeometry

__all__ = ["DISPLAY_SIDE", "SMALL_SIDE", "Photo", "photo_of"]

#: The display copy's longer side in pixels (the figure is never wider than the page).
DISPLAY_SIDE = 720
#: The small copy's longer side, for panels a column wide (one per stage): a slider step
#: redraws them, and a browser decodes a 720-pixel copy per panel in about 20 ms.
SMALL_SIDE = 320
_CACHE: OrderedDict[tuple, Photo] = OrderedDict()
_CACHE_SIZE = 16


@dataclass(frozen=True)
class Photo:
    """An image at its true aspect, ready to draw.

    Attributes:
        source: a ``data:image/jpeg`` URI of the display copy (longer side at most
            :data:`DISPLAY_SIDE`).
        width, height: the original's size in pixels (the figure's coordinates).
        geometry: how the evaluation transform maps the original onto the network's input.
        small: the same for a small copy (longer side at most :data:`SMALL_SIDE`); empty:
            use ``source``.
    """

    source: str
    width: int
    height: int
    geometry: InputGeometry
    small: str = ""

    def copy(self, small: bool = False) -> tuple[str, float]:
        """The data URI of the display copy (or of the small one) and how many original pixels
        one of its pixels spans."""
        side = max(self.width, self.height)
        if small and self.small:
            return self.small, side / min(side, SMALL_SIDE)
        return self.source, side / min(side, DISPLAY_SIDE)

    @property
    def input_frame(self) -> tuple[float, float, float, float]:
        """The part of the photo the network sees, ``(x1, y1, x2, y2)`` in its pixels."""
        return self.geometry.crop_area

    def to_image(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """A box in the network's input pixels -> the same box in the photo's pixels."""
        return self.geometry.to_image(box)

    @property
    def squeezed(self) -> float:
        """How much the evaluation transform changes the aspect: the ratio of the horizontal
        to the vertical scale (1: the aspect is kept)."""
        x1, y1, x2, y2 = self.input_frame
        size = self.geometry.input_size
        return ((x2 - x1) / size) / ((y2 - y1) / size)


def _data_uri(image: Image.Image, side: int = DISPLAY_SIDE) -> str:
    copy = image.convert("RGB")
    if max(copy.size) > side:
        copy.thumbnail((side, side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    copy.save(buffer, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def photo_of(image: PreparedImage, meta: CheckpointMeta) -> Photo | None:
    """The :class:`Photo` of a prepared image for a checkpoint (``None`` when the image kept no
    decoded original); made once per image and input size (a small LRU)."""
    original = image.original
    if original is None:
        return None
    key = (image.key, meta.input_size)
    cached = _CACHE.get(key)
    if cached is None:
        geometry = (image.geometry if image.geometry is not None
                    else InputGeometry.of_checkpoint(original.width, original.height, meta))
        cached = Photo(_data_uri(original), original.width, original.height, geometry,
                       small=_data_uri(original, SMALL_SIDE))
        _CACHE[key] = cached
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return cached
