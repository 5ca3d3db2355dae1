"""Figures of the Explore and RP-against-ARP pages, built from :mod:`arpviz.explorer.session`'s
plain results.

Every figure shows values on hover. Images are drawn in input-image pixel coordinates (x to the
right, y down), so boxes, confidence maps and crops line up with what the network saw.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from arpviz.explorer.faithful import CropCheck
from arpviz.explorer.figures.palette import (
    REFERENCE,
    TRUTH,
    series_colour,
    stage_colour,
)
from arpviz.explorer.inputs import GroundTruth, crop_image
from arpviz.explorer.session import ExploreView, KSweep, PredictionTable, StageView
from arpviz.models.stages import stage_label

__all__ = [
    "boxes_figure",
    "confidence_figure",
    "crops_figure",
    "faithfulness_figure",
    "predictions_figure",
    "rates_figure",
    "sweep_figure",
]

logger = logging.getLogger(__name__)


def _image_axes(fig: go.Figure, width: float, height: float, row: int | None = None,
                col: int | None = None) -> None:
    kwargs = {} if row is None else {"row": row, "col": col}
    fig.update_xaxes(range=[0, width], showgrid=False, zeroline=False, constrain="domain",
                     **kwargs)
    fig.update_yaxes(range=[height, 0], showgrid=False, zeroline=False, scaleanchor="x"
                     if row is None else None, constrain="domain", **kwargs)


def _image_trace(image: np.ndarray, x0: float = 0.0, y0: float = 0.0, dx: float = 1.0,
                 dy: float = 1.0, name: str = "image") -> go.Image:
    return go.Image(
        z=np.asarray(image, dtype=np.uint8), x0=x0 + dx / 2, y0=y0 + dy / 2, dx=dx, dy=dy,
        name=name, hovertemplate="x %{x:.1f}, y %{y:.1f}<br>RGB %{z}<extra></extra>",
    )


def _rect(box: Sequence[float]) -> tuple[list[float], list[float]]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, x2, x2, x1, x1], [y1, y1, y2, y2, y1]


def _stage_hover(stage: StageView) -> str:
    x1, y1, x2, y2 = stage.image_box
    k = "-" if stage.k is None else f"{stage.k:.2f}"
    return (
        f"<b>{stage.label}</b>, k {k}<br>"
        f"box x {x1:.1f}-{x2:.1f}, y {y1:.1f}-{y2:.1f}<br>"
        f"crop {y2 - y1:.1f} x {x2 - x1:.1f} px (height x width)<br>"
        f"rates {stage.rates[0]:.3f} x {stage.rates[1]:.3f} (height x width)<extra></extra>"
    )


def _box_trace(stage: StageView, dash: str | None = None, legend: str | None = None,
               showlegend: bool = True) -> go.Scatter:
    xs, ys = _rect(stage.image_box)
    return go.Scatter(
        x=xs, y=ys, mode="lines", name=legend or stage.label,
        line={"color": stage_colour(stage.name), "width": 3, "dash": dash},
        hovertemplate=_stage_hover(stage), showlegend=showlegend,
        legendgroup=stage.name,
    )


def _truth_traces(truth: GroundTruth) -> list[go.Scatter]:
    xs, ys = _rect(truth.box)
    traces = [go.Scatter(
        x=xs, y=ys, mode="lines", name=f"truth: {truth.name}",
        line={"color": TRUTH, "width": 2, "dash": "dash"},
        hovertemplate=f"ground truth box<br>{truth.name}<extra></extra>",
    )]
    if truth.keypoints:
        names = list(truth.keypoints)
        pts = np.array([truth.keypoints[n] for n in names], dtype=float)
        traces.append(go.Scatter(
            x=pts[:, 0], y=pts[:, 1], mode="markers", name="truth: keypoints", text=names,
            marker={"color": TRUTH, "size": 8, "symbol": "x",
                    "line": {"color": "#000000", "width": 1}},
            hovertemplate="%{text}<br>x %{x:.1f}, y %{y:.1f}<extra></extra>",
        ))
    return traces


def _layout(fig: go.Figure, title: str | None, height: int) -> go.Figure:
    """Title on top, then a horizontal legend above the plot area, tight margins."""
    fig.update_layout(
        title={"text": title, "y": 0.99, "yanchor": "top", "x": 0.0, "font": {"size": 14}}
        if title else None,
        height=height, margin={"l": 10, "r": 10, "t": 75 if title else 45, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0},
        hovermode="closest",
    )
    return fig


def _short(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def boxes_figure(
    view: ExploreView,
    truth: GroundTruth | None = None,
    title: str | None = None,
    height: int = 460,
) -> go.Figure:
    """The input image with every pooled stage's crop box (a colour per branch, a legend).

    ``truth`` adds the ground-truth box (dashed white) and keypoints (crosses).
    """
    h, w = view.image.shape[:2]
    fig = go.Figure(_image_trace(view.image))
    for stage in view.stages.values():
        fig.add_trace(_box_trace(stage))
    if truth is not None:
        for trace in _truth_traces(truth):
            fig.add_trace(trace)
    _image_axes(fig, w, h)
    return _layout(fig, title, height)


def confidence_figure(
    view: ExploreView,
    stage: str,
    opacity: float = 0.6,
    title: str | None = None,
    height: int = 400,
) -> go.Figure:
    """A stage's keypoint confidence map laid over the image, on the region its map covers.

    Conv3's map covers the whole image; Conv4's covers Conv3's crop (its frame, drawn
    dotted). The stage's crop box is drawn on top.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {opacity!r}")
    if stage not in view.stages:
        raise ValueError(f"no pooled stage {stage!r}; stages: {list(view.stages)}")
    s = view.stages[stage]
    h, w = view.image.shape[:2]
    conf = np.asarray(s.confidence, dtype=np.float32)
    fx1, fy1, fx2, fy2 = s.frame
    dx, dy = (fx2 - fx1) / conf.shape[1], (fy2 - fy1) / conf.shape[0]
    fig = go.Figure(_image_trace(view.image))
    fig.add_trace(go.Heatmap(
        z=conf, x0=fx1 + dx / 2, dx=dx, y0=fy1 + dy / 2, dy=dy, opacity=opacity,
        colorscale="Inferno", name="confidence", colorbar={"title": "C", "thickness": 12},
        hovertemplate="x %{x:.1f}, y %{y:.1f}<br>confidence %{z:.4f}<extra></extra>",
    ))
    if s.frame != (0.0, 0.0, float(w), float(h)):
        xs, ys = _rect(s.frame)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="map covers (Conv3 crop)",
                                 line={"color": stage_colour("conv3"), "width": 2,
                                       "dash": "dot"}, hoverinfo="skip"))
    fig.add_trace(_box_trace(s, legend=f"{s.label} crop"))
    _image_axes(fig, w, h)
    return _layout(fig, title or f"{s.label}: keypoint confidence ({conf.shape[0]} x "
                   f"{conf.shape[1]} map)", height)


def crops_figure(
    views: ExploreView | Mapping[str, ExploreView],
    long_side: int = 128,
    height: int = 260,
) -> go.Figure:
    """The image region of every stage's crop, resampled to the stage's output aspect.

    ``views`` is one view (one row) or ``{row title: view}`` (a row each, e.g. ARP and RP).
    Hover shows input-image coordinates.
    """
    rows = {"": views} if isinstance(views, ExploreView) else dict(views)
    names: list[str] = []
    for view in rows.values():
        names += [n for n in view.stages if n not in names]
    if not names:
        fig = go.Figure()
        fig.add_annotation(text="no pooled stage in this model", showarrow=False)
        return _layout(fig, None, 120)
    titles = []
    for title, view in rows.items():
        for n in names:
            s = view.stages.get(n)
            if s is None:
                titles.append("")
                continue
            ch, cw = s.crop_size
            prefix = f"{title}: " if title else ""
            titles.append(f"{prefix}{s.label}<br>{ch:.0f} x {cw:.0f} px -> "
                          f"{s.out_size[0]} x {s.out_size[1]} cells")
    fig = make_subplots(rows=len(rows), cols=len(names), subplot_titles=titles,
                        horizontal_spacing=0.04, vertical_spacing=0.12)
    for r, view in enumerate(rows.values(), start=1):
        for c, n in enumerate(names, start=1):
            s = view.stages.get(n)
            if s is None:
                continue
            crop = crop_image(view.image, s.image_box, s.out_size, long_side)
            x1, y1, x2, y2 = s.image_box
            fig.add_trace(_image_trace(crop, x1, y1, (x2 - x1) / crop.shape[1],
                                       (y2 - y1) / crop.shape[0], name=s.label), row=r, col=c)
            fig.update_xaxes(range=[x1, x2], showgrid=False, zeroline=False, row=r, col=c)
            fig.update_yaxes(range=[y2, y1], showgrid=False, zeroline=False, row=r, col=c)
    fig.update_annotations(font_size=12)
    return _layout(fig, None, height * len(rows))


def rates_figure(
    views: ExploreView | Mapping[str, ExploreView],
    title: str | None = None,
    height: int = 300,
) -> go.Figure:
    """The adaptive rates ``(rate_h, rate_w)`` of every pooled stage, with its DSR marked.

    ``views`` is one view or ``{name: view}`` (e.g. ``{"ARP": ..., "RP": ...}``): grouped bars.
    """
    rows = {"": views} if isinstance(views, ExploreView) else dict(views)
    fig = go.Figure()
    patterns = ("", "/", ".", "x")
    for i, (series, view) in enumerate(rows.items()):
        labels, values, texts, colours = [], [], [], []
        for s in view.stages.values():
            for axis, rate in zip(("h", "w"), s.rates, strict=True):
                labels.append(f"{stage_label(s.name)} {axis}")
                values.append(rate)
                colours.append(stage_colour(s.name))
                dsr = "-" if s.dsr is None else f"{s.dsr[0 if axis == 'h' else 1]:.2f}"
                k = "-" if s.k is None else f"{s.k:.2f}"
                texts.append(f"k {k}, DSR {dsr}")
        fig.add_trace(go.Bar(
            x=labels, y=values, name=series or "rate", customdata=texts,
            marker={"color": colours, "pattern": {"shape": patterns[i % len(patterns)]}},
            hovertemplate="%{x}: rate %{y:.3f}<br>%{customdata}<extra>" + series + "</extra>",
        ))
        dsr_x, dsr_y = [], []
        for s in view.stages.values():
            if s.dsr is not None:
                dsr_x += [f"{stage_label(s.name)} h", f"{stage_label(s.name)} w"]
                dsr_y += [s.dsr[0], s.dsr[1]]
        if dsr_x and i == 0:
            fig.add_trace(go.Scatter(
                x=dsr_x, y=dsr_y, mode="markers", name="DSR (lower bound)",
                marker={"symbol": "line-ew", "size": 28, "line": {"width": 3,
                                                                   "color": "#000000"}},
                hovertemplate="%{x}: DSR %{y:.3f}<extra></extra>",
            ))
    fig.update_yaxes(range=[0, 1.05], title="rate")
    fig.update_layout(barmode="group")
    return _layout(fig, title, height)


def predictions_figure(
    table: PredictionTable,
    reference: str = "trained setting",
    height: int = 280,
) -> go.Figure:
    """The top-5 probabilities now and under the reference (horizontal bars, hover deltas)."""
    rows = list(table.rows)[::-1]
    names = [f"{r.rank}. {_short(r.name)}" for r in rows]
    hover = [
        f"<b>{r.name}</b><br>now {r.prob:.4f} (rank {r.rank})<br>"
        f"{reference}: {r.ref_prob:.4f} (rank {r.ref_rank})<br>"
        f"change {r.delta:+.4f}, rank {r.rank_change:+d}" for r in rows
    ]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=names, x=[r.ref_prob for r in rows], orientation="h",
                         name=reference, marker={"color": REFERENCE}, customdata=hover,
                         hovertemplate="%{customdata}<extra></extra>"))
    fig.add_trace(go.Bar(y=names, x=[r.prob for r in rows], orientation="h", name="now",
                         marker={"color": series_colour(0)}, customdata=hover,
                         hovertemplate="%{customdata}<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="probability", rangemode="tozero")
    return _layout(fig, None, height)


def sweep_figure(sweep: KSweep, height: int = 420) -> go.Figure:
    """Tracked class probabilities (top) and the crop's size (bottom) against ``k``."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("class probability", "crop size (input pixels)"))
    for i, (index, name) in enumerate(zip(sweep.classes, sweep.class_names, strict=True)):
        fig.add_trace(go.Scatter(
            x=sweep.ks, y=sweep.probs[:, index], mode="lines+markers", name=name,
            line={"color": series_colour(i)},
            hovertemplate="k %{x:.2f}: p %{y:.4f}<extra>" + name + "</extra>",
        ), row=1, col=1)
    colour = stage_colour(sweep.stage)
    fig.add_trace(go.Scatter(x=sweep.ks, y=sweep.crop_w, mode="lines+markers", name="crop width",
                             line={"color": colour},
                             hovertemplate="k %{x:.2f}: width %{y:.1f} px<extra></extra>"),
                  row=2, col=1)
    fig.add_trace(go.Scatter(x=sweep.ks, y=sweep.crop_h, mode="lines+markers",
                             name="crop height", line={"color": colour, "dash": "dash"},
                             hovertemplate="k %{x:.2f}: height %{y:.1f} px<extra></extra>"),
                  row=2, col=1)
    marks = [(sweep.trained_k, "trained", "dot"), (sweep.current_k, "now", "solid")]
    if sweep.trained_k is not None and sweep.current_k is not None \
            and abs(sweep.trained_k - sweep.current_k) < 1e-9:
        marks = [(sweep.current_k, "trained = now", "solid")]
    for k, label, dash in marks:
        if k is None:
            continue
        fig.add_vline(x=k, line={"color": "#444444", "dash": dash, "width": 1})
        fig.add_annotation(x=k, xref="x", y=1.0, yref="y domain", text=f"{label} k {k:.2f}",
                           showarrow=False, yanchor="bottom", font={"size": 11})
    fig.update_xaxes(title="k", row=2, col=1)
    return _layout(fig, None, height)


def faithfulness_figure(check: CropCheck, height: int = 340) -> go.Figure:
    """Left: the target's probability with only the box kept / the box removed, for the crop, a
    centred and random boxes of its size (the full image as a line). Right: the insertion and
    deletion curves over the box's scale (hover: the scaled box's share of the image)."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], horizontal_spacing=0.1)
    boxes = ["crop", "centre", "random"]
    keep = [check.keep, check.centre_keep, check.random_keep]
    remove = [check.remove, check.centre_remove, check.random_remove]
    colour = stage_colour(check.stage)
    for name, values, pattern in (("keep only the box", keep, ""),
                                  ("remove the box", remove, "/")):
        fig.add_trace(go.Bar(
            x=boxes, y=values, name=name,
            marker={"color": [colour, REFERENCE, REFERENCE], "pattern": {"shape": pattern}},
            hovertemplate="%{x} box, " + name + ": p = %{y:.4f}<extra></extra>",
        ), row=1, col=1)
    fig.add_trace(go.Scatter(
        x=boxes, y=[check.full] * 3, mode="lines", name="whole image",
        line={"color": "#000000", "dash": "dot"},
        hovertemplate="whole image: p = %{y:.4f}<extra></extra>"), row=1, col=1)
    area = [f"{a:.1%}" for a in check.curve_area]
    for name, values, i in (("insertion (only the box kept)", check.insertion, 0),
                            ("deletion (the box filled)", check.deletion, 1)):
        fig.add_trace(go.Scatter(
            x=check.scales, y=values, mode="lines+markers", name=name, customdata=area,
            line={"color": series_colour(i)},
            hovertemplate="scale %{x:.2f} (%{customdata} of the image): p = %{y:.4f}"
                          "<extra>" + name.split(" ")[0] + "</extra>",
        ), row=1, col=2)
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.02], title="p(" + _short(check.target_name, 24) + ")", row=1,
                     col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_xaxes(title="box of the same size as the crop", row=1, col=1)
    fig.update_xaxes(title="the crop scaled about its centre (1 = the crop)", row=1, col=2)
    return _layout(fig, None, height)
