"""What the app exports: the explain record of the view on screen, and its overlay.

:func:`view_record` turns a live :class:`~arpviz.explorer.results.ExploreView` into the
:class:`arpviz.explain.ImageRecord` the batch command writes (``python -m arpviz.explain``),
reusing what the page computed instead of running the model again: the boxes go from input
pixels to the image's own pixels through :class:`arpviz.geometry.InputGeometry`, the one place
that mapping lives. :func:`record_json` and :func:`record_overlay` are the downloads.
"""

from __future__ import annotations

import json

from arpviz.explain import ClassScore, ImageRecord, StageRecord, overlay_png, record_to_json
from arpviz.explorer.inputs import PreparedImage
from arpviz.explorer.results import ExploreView
from arpviz.geometry import InputGeometry

__all__ = ["record_json", "record_overlay", "view_record"]

_TOP = 5


def view_record(view: ExploreView, image: PreparedImage, input_size: int) -> ImageRecord:
    """The explain record of ``view`` (the view of ``image`` on a model of ``input_size``).

    ``file`` is the image's name, ``size`` its decoded size, ``top5`` the view's five most
    probable classes, ``stages`` every pooled stage with ``box`` in the image's pixels and
    ``input_box`` in the network input's pixels, as :func:`arpviz.explain.explain_images` gives.
    """
    if not isinstance(view, ExploreView):
        raise TypeError(f"view must be an ExploreView, got {type(view).__name__}")
    if not isinstance(image, PreparedImage):
        raise TypeError(f"image must be a PreparedImage, got {type(image).__name__}")
    width, height = image.source_size
    geometry = image.geometry  # the evaluation transform that made the view's input
    if geometry is None or geometry.input_size != int(input_size):
        geometry = InputGeometry.of(int(width), int(height), int(input_size))
    top5 = tuple(ClassScore(int(r.index), r.name, float(r.prob))
                 for r in view.predictions.rows[:_TOP])
    stages = {
        name: StageRecord(mode=s.mode, box=geometry.to_image(s.image_box), input_box=s.image_box,
                          rates=s.rates, k=s.k, dsr=s.dsr)
        for name, s in view.stages.items()
    }
    return ImageRecord(file=image.name or "image", ok=True, size=(int(width), int(height)),
                       top5=top5, stages=stages, notes=tuple(image.notes))


def record_json(record: ImageRecord) -> str:
    """The record as the JSON text of one ``results.jsonl`` line (indented)."""
    return json.dumps(record_to_json(record), indent=1)


def record_overlay(record: ImageRecord, image: PreparedImage) -> bytes:
    """The overlay PNG of ``record`` on ``image``'s decoded original (its own size).

    Raises:
        ValueError: the image keeps no decoded original.
    """
    if image.original is None:
        raise ValueError("this image keeps no decoded original to draw the overlay on")
    return overlay_png(image.original, record)
