"""Figures of the Retrieval page: the query and its top-k gallery images with their crops.

Built from a :class:`~arpviz.explorer.retrieval.SearchView` with the probe figures' mosaic
(:func:`~arpviz.explorer.figures.history.tiles_figure`): each pooled stage's crop box in the
stage's colour, named as the setting runs it (``"Conv4 local 0 (ARP) crop"``), a true match
framed and captioned in :data:`~arpviz.palette.RIGHT`, a wrong one captioned in
:data:`~arpviz.palette.WRONG`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from arpviz.explorer.figures.history import BoxLayer, tiles_figure
from arpviz.explorer.retrieval import SearchView
from arpviz.models.stages import stage_label
from arpviz.palette import RIGHT, WRONG, stage_colour

__all__ = ["query_figure", "results_figure"]


def _stage_layers(boxes: Mapping[str, np.ndarray], labels: Mapping[str, str]) -> list[BoxLayer]:
    return [BoxLayer(f"{labels.get(stage) or stage_label(stage)} crop",
                     np.asarray(b, dtype=np.float64), stage_colour(stage))
            for stage, b in sorted(boxes.items())]


def query_figure(view: SearchView, tile_px: int = 220) -> go.Figure:
    """The query image with its crop box of every pooled stage under the current setting."""
    q = view.query
    caption = q.name if q.pid < 0 else f"{q.name}: id {q.pid}, camera {q.camid}"
    boxes = {s: np.asarray([b]) for s, b in view.query_boxes.items()}
    fig = tiles_figure(q.image[None], _stage_layers(boxes, view.stage_labels),
                       [(caption, "", "#222")], cols=1, tile_px=tile_px)
    fig.update_layout(showlegend=bool(boxes))  # the crop's name even with one stage
    return fig


def results_figure(view: SearchView, cols: int = 5, tile_px: int = 110) -> go.Figure:
    """The top-k gallery images, best first, with their crops; true matches framed."""
    count, height, width = view.top_images.shape[:3]
    frame = np.full((count, 4), np.nan)
    frame[view.ranking.matches] = (1.0, 1.0, width - 1.0, height - 1.0)
    layers = _stage_layers(dict(view.top_boxes), view.stage_labels)
    if view.ranking.matches.any():
        layers.append(BoxLayer("true match (the query's identity)", frame, RIGHT))
    known = view.query.pid >= 0
    captions = []
    for rank in range(count):
        match = bool(view.ranking.matches[rank])
        mark = ("✓ " if match else "✗ ") if known else ""
        pid, cam = int(view.top_pids[rank]), int(view.top_camids[rank])
        dist = float(view.ranking.distances[rank])
        colour = (RIGHT if match else WRONG) if known else "#222"
        captions.append((f"{rank + 1}. {mark}id {pid} cam {cam}",
                         f"rank {rank + 1}: id {pid}, camera {cam}, distance {dist:.3f}",
                         colour))
    return tiles_figure(view.top_images, layers, captions, cols=cols, tile_px=tile_px)
