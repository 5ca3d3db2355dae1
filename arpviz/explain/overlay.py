"""An :class:`~arpviz.explain.records.ImageRecord`'s stage boxes drawn on its image, as PNG bytes
(one colour per stage, the app's palette)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

from arpviz.explain.records import ImageRecord
from arpviz.models.stages import stage_label
from arpviz.palette import stage_colour
from arpviz.validation import check_count

__all__ = ["overlay_png"]


def _outline(colour: str) -> tuple[int, int, int]:
    """Black for a light ``#rrggbb`` colour, white for a dark one (relative luminance)."""
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return (0, 0, 0) if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else (255, 255, 255)


def overlay_png(image: Image.Image, record: ImageRecord, *, max_side: int | None = None,
                labels: bool = True) -> bytes:
    """The image with every stage's box of ``record`` drawn on it, as PNG bytes.

    ``image`` is the decoded PIL image the record belongs to (e.g.
    ``arpviz.images.load_image_info(...).image``); the PNG has its size. Each stage has its
    colour (:func:`arpviz.palette.stage_colour`) and a label (the stage's name
    and mode, outlined so it reads on any photo); the line width grows with the image.
    ``max_side`` (a thumbnail, e.g. for a gallery) shrinks a larger image first so that its
    longer side is ``max_side``, and draws the boxes at that scale. Stage ``i`` is drawn inset
    by ``i`` line widths and a pixel, so coincident boxes (Conv3 at rate 1 and a Conv4 crop of
    its whole map, say) stay visible side by side. ``labels`` off leaves the names out (a
    thumbnail too small to hold them: say which colour is which beside it).
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image, got {type(image).__name__}")
    if not isinstance(record, ImageRecord):
        raise TypeError(f"record must be an ImageRecord, got {type(record).__name__}")
    if record.size is not None and tuple(record.size) != image.size:
        raise ValueError(f"record is for a {record.size} image, got {image.size}")
    max_side = check_count(max_side, "max_side", optional=True)
    canvas = image.convert("RGB")  # a copy: the caller's image is untouched
    scale = 1.0
    if max_side is not None and max(canvas.size) > max_side:
        scale = max_side / max(canvas.size)
        canvas = canvas.resize((max(1, round(canvas.width * scale)),
                                max(1, round(canvas.height * scale))), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    side = min(canvas.size)
    width = max(1, round(side / 160))
    font_size = max(10, side // 30)
    font = ImageFont.load_default(size=font_size)
    stroke = max(1, font_size // 8)
    line = font.getbbox("Ag")[3] + 4 + 2 * stroke
    for row, (name, stage) in enumerate(record.stages.items()):
        colour = stage_colour(name)
        x1, y1, x2, y2 = (v * scale for v in stage.box)
        inset = min(row * (width + 1), max(0.0, (x2 - x1) / 2 - 1), max(0.0, (y2 - y1) / 2 - 1))
        x1, y1, x2, y2 = x1 + inset, y1 + inset, x2 - inset, y2 - inset
        # PIL's rectangle includes its far edge; a box under a pixel wide stays one pixel
        draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=colour, width=width)
        if not labels:
            continue
        label = stage_label(name, stage.mode)
        label = label if stage.k is None else f"{label} k={stage.k:g}"
        tx, ty = x1 + width + 1, y1 + width + 1 + row * line  # nested boxes: labels stack
        # outlined text: the stage's colour edged in black or white, whichever contrasts
        # with it, reads on any photo
        draw.text((tx, ty), label, fill=colour, font=font, stroke_width=stroke,
                  stroke_fill=_outline(colour))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
