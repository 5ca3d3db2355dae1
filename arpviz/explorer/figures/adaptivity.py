"""Figures of the Adaptivity page, from an :class:`arpviz.analysis.AdaptivityReport` and the
plain values of :mod:`arpviz.explorer.adaptivity`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from arpviz.analysis import AdaptivityReport
from arpviz.explorer.adaptivity import PLACEMENTS, KCurve, RatePoints
from arpviz.explorer.figures.palette import REFERENCE, RIGHT, WRONG, series_colour, stage_colour
from arpviz.explorer.session import stage_label

__all__ = [
    "contrast_histogram",
    "k_curves_figure",
    "placement_figure",
    "rate_scatter",
]

_PLACEMENT_NAMES = {"arp": "as chosen", "centred": "centred", "random": "random",
                    "least_confident": "least confident"}


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 380) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=height,
                      margin={"l": 50, "r": 20, "t": 50, "b": 45}, legend={"orientation": "h",
                                                                          "y": -0.2})
    return fig


def rate_scatter(points: RatePoints, class_names: Sequence[str] = ()) -> go.Figure:
    """One point per image: the stage's rate against the object's size (share of the stage's
    frame), green when top-1 is right, red when wrong; the dotted line is rate = size (a crop
    that follows the object exactly). Each point's ``customdata`` starts with the image index."""
    fig = go.Figure()
    axis = points.axis
    for correct, name, colour in ((True, "correct", RIGHT), (False, "incorrect", WRONG)):
        keep = points.correct == correct
        if not keep.any():
            continue
        names = [class_names[i] if 0 <= i < len(class_names) else str(i)
                 for i in points.label[keep]]
        custom = np.stack([points.index[keep], points.spread[keep]], axis=1).tolist()
        fig.add_trace(go.Scatter(
            x=points.size[keep], y=points.rate[keep], mode="markers", name=name,
            marker={"color": colour, "size": 7, "opacity": 0.75}, customdata=custom,
            text=names,
            hovertemplate=(f"image %{{customdata[0]}} (%{{text}})<br>object {axis} %{{x:.3f}}"
                           f"<br>rate %{{y:.3f}}<br>keypoint spread %{{customdata[1]:.3f}}"
                           "<extra>%{fullData.name}</extra>"),
        ))
    finite = np.isfinite(points.size)
    if finite.any():
        lo = float(np.nanmin(points.size))
        hi = float(np.nanmax(points.size))
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="rate = size",
                                 line={"color": REFERENCE, "dash": "dot"}, hoverinfo="skip"))
    return _layout(fig, f"{stage_label(points.stage)}: rate against the object's {axis}",
                   f"object {axis} (share of the stage's frame)", f"rate ({axis})", 420)


def k_curves_figure(curves: Sequence[KCurve]) -> go.Figure:
    """Top-1 against k, one line per checkpoint and ARP stage; a marker at each trained k."""
    fig = go.Figure()
    labels = list(dict.fromkeys(c.label for c in curves))
    for curve in curves:
        colour = series_colour(labels.index(curve.label))
        dash = "solid" if curve.stage.startswith("conv4") else "dash"
        name = f"{curve.label} · {stage_label(curve.stage)}"
        fig.add_trace(go.Scatter(x=list(curve.k), y=list(curve.top1), mode="lines+markers",
                                 name=name, line={"color": colour, "dash": dash},
                                 hovertemplate="k %{x:g}<br>top-1 %{y:.1f}%<extra>"
                                               + name + "</extra>"))
        if curve.trained_k is not None and curve.trained_k in curve.k:
            at = curve.k.index(curve.trained_k)
            fig.add_trace(go.Scatter(x=[curve.trained_k], y=[curve.top1[at]], mode="markers",
                                     marker={"color": colour, "size": 13, "symbol": "star"},
                                     name=f"{name}: trained k", showlegend=False,
                                     hovertemplate="trained k %{x:g}<br>top-1 %{y:.1f}%"
                                                   "<extra></extra>"))
    return _layout(fig, "Top-1 against k (stars: the trained k)", "k", "top-1 (%)")


def placement_figure(report: AdaptivityReport) -> go.Figure:
    """Top-1 with each pooled stage's box as chosen, centred, random and least confident."""
    fig = go.Figure()
    names = [_PLACEMENT_NAMES[p] for p in PLACEMENTS]
    for stage, st in report.stages.items():
        values = [st.placement.get(p) for p in PLACEMENTS]
        fig.add_trace(go.Bar(x=names, y=values, name=stage_label(stage),
                             marker_color=stage_colour(stage),
                             text=[None if v is None else f"{v:.1f}" for v in values],
                             textposition="outside",
                             hovertemplate="%{x}: top-1 %{y:.1f}%<extra>"
                                           + stage_label(stage) + "</extra>"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 105])
    return _layout(fig, "Top-1 with the same-size box placed elsewhere", "placement",
                   "top-1 (%)")


def contrast_histogram(per_stage: Mapping[str, Sequence[float | None]]) -> go.Figure:
    """Histogram per stage of the per-image confidence contrast (mean confidence on the object
    box minus off it)."""
    fig = go.Figure()
    for stage, values in per_stage.items():
        clean = [v for v in values if v is not None and np.isfinite(v)]
        fig.add_trace(go.Histogram(x=clean, name=stage_label(stage), opacity=0.65,
                                   marker_color=stage_colour(stage), nbinsx=30))
    fig.update_layout(barmode="overlay")
    fig.add_vline(x=0.0, line={"color": REFERENCE, "dash": "dot"})
    return _layout(fig, "Confidence on the object minus off it, per image", "contrast",
                   "images")
