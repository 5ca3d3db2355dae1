"""The k scrubber: a sweep of one stage's ``k`` computed once on the server, played in the
browser (a plotly slider over frames), with every stage's box, the swept stage's crop and the
top-5 following each step without a round trip.

Built from a :class:`~arpviz.explorer.results.KSweep` (which keeps every step's boxes, crop and
probabilities) as plain dicts, like the other Explore figures.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from arpviz.explorer.figures.explore import png_uri
from arpviz.explorer.results import KSweep
from arpviz.models.stages import mode_label, stage_label
from arpviz.palette import stage_colour
from arpviz.text import figure_text

__all__ = ["scrub_figure"]

_TOP = 5


def _rect(box: np.ndarray) -> tuple[list[float], list[float]]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, x2, x2, x1, x1], [y1, y1, y2, y2, y1]


def _boxes(sweep: KSweep, step: int, stages: list[str], labels: Mapping[str, str]) -> list[dict]:
    traces = []
    for name in stages:
        xs, ys = _rect(sweep.boxes[name][step])
        width, height = xs[1] - xs[0], ys[2] - ys[0]
        traces.append({"type": "scatter", "x": xs, "y": ys, "mode": "lines",
                       "name": labels.get(name, stage_label(name)), "legendgroup": name,
                       "line": {"color": stage_colour(name), "width": 3},
                       "hovertemplate": f"{labels.get(name, stage_label(name))}: crop "
                                        f"{height:.1f} x {width:.1f} px<extra></extra>"})
    return traces


def _crop(sweep: KSweep, step: int, frame: tuple[float, float, float, float]) -> dict:
    crop = sweep.crops[step]  # type: ignore[index]
    x1, y1, x2, y2 = frame
    return {"type": "image", "source": png_uri(crop), "xaxis": "x2", "yaxis": "y2",
            "x0": 0.5, "y0": 0.5, "dx": 1.0, "dy": 1.0, "name": "crop",
            "hovertemplate": f"{stage_label(sweep.stage)}'s crop, resampled<extra></extra>"}


def _bars(sweep: KSweep, step: int) -> dict:
    top = sweep.top(step, _TOP)
    return {"type": "bar", "orientation": "h", "xaxis": "x3", "yaxis": "y3",
            "y": [f"#{i + 1}" for i in range(len(top))], "x": [p for _, p in top],
            "text": [f"{figure_text(name)}  {p:.3f}" for name, p in top],
            "textposition": "auto",
            "insidetextanchor": "start", "cliponaxis": False, "name": "top-5",
            "marker": {"color": "#4c78a8"}, "showlegend": False,
            "customdata": [figure_text(name) for name, _ in top],
            "hovertemplate": "%{customdata}: p %{x:.4f}<extra></extra>"}


def scrub_figure(sweep: KSweep, image: np.ndarray, labels: Mapping[str, str] | None = None,
                 height: int = 430) -> go.Figure:
    """The sweep as frames: left, the network's input with every stage's box at ``k``; middle,
    the swept stage's crop as the next layer sees it; right, the top-5 at ``k``. A slider
    under the figure scrubs ``k``; it opens at the current ``k``.

    ``labels`` names the stages (``{stage: "Conv4 local 0 (ARP)"}``); ``image`` is the
    network's input (``uint8 [S, S, 3]``), the pixels the boxes are in.
    """
    labels = dict(labels or {})
    stages = [name for name in sweep.boxes if name in labels] or list(sweep.boxes)
    size_h, size_w = image.shape[:2]
    has_crop = sweep.crops is not None
    crop_h, crop_w = (sweep.crops.shape[1:3] if has_crop else (1, 1))  # type: ignore[union-attr]
    current = 0
    if sweep.current_k is not None:
        current = int(np.argmin(np.abs(sweep.ks - sweep.current_k)))

    def frame_data(step: int) -> list[dict]:
        data = _boxes(sweep, step, stages, labels)
        if has_crop:
            data.append(_crop(sweep, step, (0, 0, crop_w, crop_h)))
        data.append(_bars(sweep, step))
        return data

    base = [{"type": "image", "source": png_uri(image), "x0": 0.5, "y0": 0.5, "dx": 1.0,
             "dy": 1.0, "name": "input", "hovertemplate": "x %{x:.0f}, y %{y:.0f}<extra></extra>"}]
    moving = list(range(1, 1 + len(frame_data(0))))
    frames = [{"name": f"{k:.2f}", "data": frame_data(i), "traces": moving}
              for i, k in enumerate(sweep.ks)]
    slider = {
        "active": current, "currentvalue": {"prefix": f"k ({mode_label(sweep.mode)}, "
                                                      f"{stage_label(sweep.stage)}): "},
        "pad": {"t": 30}, "len": 1.0, "x": 0.0,
        "steps": [{"label": f"{k:.2f}", "method": "animate",
                   "args": [[f"{k:.2f}"], {"mode": "immediate", "frame": {"duration": 0,
                                                                          "redraw": True},
                                           "transition": {"duration": 0}}]}
                  for k in sweep.ks],
    }
    layout = {
        "height": height, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0},
        "sliders": [slider],
        "xaxis": {"domain": [0.0, 0.36], "range": [0, size_w], "showgrid": False,
                  "zeroline": False, "constrain": "domain"},
        "yaxis": {"range": [size_h, 0], "scaleanchor": "x", "showgrid": False,
                  "zeroline": False, "constrain": "domain"},
        "xaxis2": {"domain": [0.40, 0.58], "range": [0, crop_w], "visible": False,
                   "anchor": "y2", "constrain": "domain"},
        "yaxis2": {"range": [crop_h, 0], "scaleanchor": "x2", "visible": False, "anchor": "x2",
                   "constrain": "domain"},
        "xaxis3": {"domain": [0.62, 1.0], "range": [0, 1], "anchor": "y3",
                   "title": {"text": "probability"}},
        "yaxis3": {"autorange": "reversed", "anchor": "x3", "type": "category"},
        "annotations": [
            {"text": "every stage's box", "x": 0.18, "y": 1.0, "xref": "paper", "yref": "paper",
             "showarrow": False, "yanchor": "bottom"},
            {"text": f"{stage_label(sweep.stage)}'s crop" if has_crop else "", "x": 0.49,
             "y": 1.0, "xref": "paper", "yref": "paper", "showarrow": False,
             "yanchor": "bottom"},
            {"text": "top-5", "x": 0.81, "y": 1.0, "xref": "paper", "yref": "paper",
             "showarrow": False, "yanchor": "bottom"}],
    }
    return go.Figure(data=base + frame_data(current), layout=layout, frames=frames,
                     _validate=False)
