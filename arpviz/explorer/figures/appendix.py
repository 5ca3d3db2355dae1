"""Figures of the Appendix A page, from :func:`arpviz.appendix.analyse` and
:func:`arpviz.appendix.k_sweep`, and, in two dimensions, from
:func:`arpviz.simulate2d.simulate_object_2d` and :func:`arpviz.simulate2d.rate_against_size`.

Figure 7's colours: the distribution is a line, the area under it is red inside the crop and blue
outside (:mod:`~arpviz.palette`). In two dimensions the paper's ARP is drawn in
the ARP side's colour, ARP-FG (beyond the paper) in a series colour, the object in the
ground truth's white.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from arpviz.appendix import Analysis
from arpviz.palette import (
    INSIDE,
    LINE,
    OBJECT,
    OUTSIDE,
    REFERENCE,
    SIDES,
    TRUE_INTERVAL,
    series_colour,
)
from arpviz.simulate2d import ObjectSimulation, RateCurve

__all__ = [
    "ARP_COLOUR",
    "ARPFG_COLOUR",
    "ARPFG_NAME",
    "ARP_NAME",
    "coverage_histograms",
    "distributions_figure",
    "fill_segments",
    "k_sweep_figure",
    "length_scatter",
    "object_maps_figure",
    "rate_curve_figure",
]

#: The paper's ARP and ARP-FG (beyond the paper) in the two-dimensional figures.
ARP_COLOUR = SIDES[0]
ARPFG_COLOUR = series_colour(2)
ARP_NAME = "ARP (the paper)"
ARPFG_NAME = "ARP-FG (beyond the paper)"


def fill_segments(
    dist: np.ndarray, interval: Sequence[float]
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    """The distribution's line cut at the crop's edges: ``(inside, outside)`` pieces.

    The line runs through the cell centres (``j + 0.5``) and stays flat to the ends ``0`` and
    ``L``. Each piece is ``(x, y)``; the inside piece spans exactly ``[start, end]`` and the
    outside pieces ``[0, start]`` and ``[end, L]`` (empty pieces are left out).
    """
    values = np.asarray(dist, dtype=np.float64)
    if values.ndim != 1 or values.size < 1:
        raise ValueError(f"dist must be a 1-D array with at least one cell, got {values.shape}")
    length = values.size
    start, end = (float(v) for v in interval)
    if not 0.0 <= start <= end <= length:
        raise ValueError(f"interval must satisfy 0 <= start <= end <= {length}, got {interval}")
    xs = np.concatenate([[0.0], np.arange(length) + 0.5, [float(length)]])
    ys = np.concatenate([[values[0]], values, [values[-1]]])

    def piece(a: float, b: float) -> tuple[np.ndarray, np.ndarray] | None:
        if b - a <= 1e-9:
            return None
        inner = xs[(xs > a) & (xs < b)]
        px = np.concatenate([[a], inner, [b]])
        return px, np.interp(px, xs, ys)

    inside = [p for p in (piece(start, end),) if p is not None]
    outside = [p for p in (piece(0.0, start), piece(end, float(length))) if p is not None]
    return inside, outside


def _add_distribution(
    fig: go.Figure,
    dist: np.ndarray,
    interval: Sequence[float],
    true_interval: Sequence[float] | None,
    *,
    row: int | None = None,
    col: int | None = None,
    show_legend: bool = True,
    label: str = "",
) -> None:
    inside, outside = fill_segments(dist, interval)
    where = {"row": row, "col": col} if row is not None else {}
    for i, (x, y) in enumerate(outside):
        fig.add_trace(
            go.Scatter(
                x=x, y=y, fill="tozeroy", mode="none", fillcolor=OUTSIDE,
                name="outside the crop", legendgroup="outside",
                showlegend=show_legend and i == 0, hoverinfo="skip",
            ),
            **where,
        )
    for x, y in inside:
        fig.add_trace(
            go.Scatter(
                x=x, y=y, fill="tozeroy", mode="none", fillcolor=INSIDE,
                name="inside the crop", legendgroup="inside", showlegend=show_legend,
                hoverinfo="skip",
            ),
            **where,
        )
    cells = np.arange(len(dist))
    fig.add_trace(
        go.Scatter(
            x=cells + 0.5, y=dist, mode="lines", line={"color": LINE, "width": 1.5},
            name="distribution", legendgroup="line", showlegend=show_legend,
            customdata=cells,
            hovertemplate=f"{label}cell %{{customdata}}<br>confidence %{{y:.4f}}<extra></extra>",
        ),
        **where,
    )
    if true_interval is not None:
        top = float(np.max(dist)) * 1.05
        for j, edge in enumerate(true_interval):
            fig.add_trace(
                go.Scatter(
                    x=[edge, edge], y=[0, top], mode="lines",
                    line={"color": TRUE_INTERVAL, "width": 1, "dash": "dot"},
                    name="true interval (mean ± 2 std)", legendgroup="true",
                    showlegend=show_legend and j == 0,
                    hovertemplate=f"true interval edge {float(edge):.1f}<extra></extra>",
                ),
                **where,
            )


def distributions_figure(
    analysis: Analysis, *, cols: int = 3, show_true: bool = True, limit: int | None = None
) -> go.Figure:
    """A grid of the analysed distributions (Figure 7), each titled with its rate and crop."""
    count = len(analysis.rates) if limit is None else min(limit, len(analysis.rates))
    if count < 1:
        raise ValueError("nothing to draw: the analysis holds no distribution")
    cols = max(1, min(cols, count))
    rows = -(-count // cols)
    cov = analysis.coverage
    titles = [
        f"#{i}: rate {analysis.rates[i]:.2f}, crop [{analysis.intervals[i, 0]:.1f}, "
        f"{analysis.intervals[i, 1]:.1f}], mass {cov.mass_inside[i]:.0%}"
        for i in range(count)
    ]
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.04,
        vertical_spacing=min(0.12, 0.5 / rows),
    )
    length = analysis.sim.dist.shape[1]
    for i in range(count):
        _add_distribution(
            fig, analysis.sim.dist[i], analysis.intervals[i],
            analysis.sim.true_intervals[i] if show_true else None,
            row=i // cols + 1, col=i % cols + 1, show_legend=i == 0, label=f"#{i} ",
        )
    fig.update_xaxes(range=[0, length])
    fig.update_annotations(font_size=11)
    fig.update_layout(
        height=max(260, 190 * rows), margin={"l": 30, "r": 10, "t": 40, "b": 30},
        legend={"orientation": "h", "y": 1.0 + 0.35 / rows, "yanchor": "bottom"},
    )
    return fig


def coverage_histograms(analysis: Analysis, *, bins: int = 25) -> go.Figure:
    """Histograms of the mass inside the crop and of the crop's background share."""
    cov = analysis.coverage
    fig = make_subplots(
        rows=1, cols=2,
        subplot_titles=("mass inside the crop", "background share of the crop"),
    )
    for col, (values, colour, name) in enumerate(
        ((cov.mass_inside, INSIDE, "mass inside"),
         (cov.background_share, OUTSIDE, "background share")),
        start=1,
    ):
        fig.add_trace(
            go.Histogram(
                x=values, xbins={"start": 0.0, "end": 1.0 + 1e-9, "size": 1.0 / bins},
                marker={"color": colour, "line": {"color": LINE, "width": 0.5}},
                name=name, showlegend=False,
                hovertemplate=f"{name} %{{x}}<br>%{{y}} distributions<extra></extra>",
            ),
            row=1, col=col,
        )
        fig.add_vline(x=float(values.mean()), line_dash="dash", line_color=LINE,
                      row=1, col=col, annotation_text=f"mean {values.mean():.2f}",
                      annotation_position="top right", annotation={"yanchor": "top"})
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(title_text="distributions", row=1, col=1)
    fig.update_layout(height=320, margin={"l": 40, "r": 10, "t": 50, "b": 40}, bargap=0.05)
    return fig


def length_scatter(analysis: Analysis) -> go.Figure:
    """Crop length against true interval length, coloured by the mass inside, with ``y = x``."""
    cov = analysis.coverage
    index = np.arange(len(cov.crop_length))
    custom = np.stack(
        [index, analysis.rates, cov.mass_inside, cov.background_share,
         analysis.intervals[:, 0], analysis.intervals[:, 1]], axis=1,
    )
    top = float(max(cov.crop_length.max(), cov.true_length.max(), 1.0)) * 1.05
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, top], y=[0, top], mode="lines", name="crop = true length",
            line={"color": TRUE_INTERVAL, "dash": "dot", "width": 1}, hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=cov.true_length, y=cov.crop_length, mode="markers", name="distribution",
            marker={"color": cov.mass_inside, "colorscale": "RdBu_r", "cmin": 0.5, "cmax": 1.0,
                    "size": 6, "opacity": 0.8,
                    "colorbar": {"title": "mass<br>inside", "tickformat": ".0%"}},
            customdata=custom,
            hovertemplate=(
                "#%{customdata[0]:.0f}<br>true length %{x:.1f}<br>crop length %{y:.1f}"
                "<br>crop [%{customdata[4]:.1f}, %{customdata[5]:.1f}]"
                "<br>rate %{customdata[1]:.3f}<br>mass inside %{customdata[2]:.1%}"
                "<br>background %{customdata[3]:.1%}<extra></extra>"
            ),
        )
    )
    fig.update_layout(
        xaxis_title="true interval length (cells)", yaxis_title="crop length (cells)",
        height=380, margin={"l": 50, "r": 10, "t": 20, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    fig.update_xaxes(range=[0, top])
    fig.update_yaxes(range=[0, top])
    return fig


def k_sweep_figure(sweep: dict[str, np.ndarray], current_k: float | None = None) -> go.Figure:
    """The trade-off of ``k``: mean mass inside, background share and rate against ``k``."""
    fig = go.Figure()
    for key, name, colour in (
        ("mass_inside", "mean mass inside", series_colour(1)),
        ("background_share", "mean background share", series_colour(0)),
        ("rate", "mean rate", series_colour(2)),
    ):
        fig.add_trace(
            go.Scatter(
                x=sweep["k"], y=sweep[key], mode="lines+markers", name=name,
                line={"color": colour},
                hovertemplate=f"k %{{x:.2f}}<br>{name} %{{y:.3f}}<extra></extra>",
            )
        )
    if current_k is not None:
        fig.add_vline(x=float(current_k), line_dash="dash", line_color=TRUE_INTERVAL,
                      annotation_text=f"k = {current_k:.2f}")
    fig.update_layout(
        xaxis_title="k", yaxis_title="mean over the distributions", yaxis_range=[0, 1.05],
        height=320, margin={"l": 50, "r": 10, "t": 20, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


# ------------------------------------------------------------------ Appendix A in two dimensions

Box = tuple[float, float, float, float]


def _box_trace(box: Box, name: str, colour: str, *, dash: str = "solid", hover: str = "",
               show_legend: bool = True) -> go.Scatter:
    """A box ``(x1, y1, x2, y2)`` in pixel edges as a closed line, its numbers on hover."""
    x1, y1, x2, y2 = box
    return go.Scatter(
        x=[x1, x2, x2, x1, x1], y=[y1, y1, y2, y2, y1], mode="lines", name=name,
        legendgroup=name, showlegend=show_legend,
        line={"color": colour, "width": 2.5, "dash": dash},
        hovertemplate=(f"{name}<br>x {x1:.2f} to {x2:.2f}, y {y1:.2f} to {y2:.2f}"
                       f"{hover}<extra></extra>"),
    )


def object_maps_figure(sim: ObjectSimulation) -> go.Figure:
    """Three maps side by side: the perfect-feature input (every channel), the paper's
    confidence ``sigmoid(tau * s)`` with ARP's crop, and ARP-FG's ``relu(tau * s)`` with its
    crop; the object's cells outlined on each. Hover gives each cell's value and each box's
    edges and rates."""
    size = sim.map_size
    cells = np.arange(size) + 0.5
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    index = np.stack([rows, cols], axis=-1)
    (arp_h, arp_w), (fg_h, fg_w) = sim.arp_rates, sim.arpfg_rates
    # the sigmoid's map on its whole range [0, 1], so its floor shows as the mid-tone it is
    panels = (
        ("every channel of the input", sim.features, "Greys_r", "value", None, None),
        (f"{ARP_NAME}: sigmoid, rate {arp_w:.2f} × {arp_h:.2f}", sim.arp_confidence, "Viridis",
         "confidence", (0.0, 1.0), (sim.arp_box, ARP_NAME, ARP_COLOUR, sim.arp_rates)),
        (f"{ARPFG_NAME}: relu, rate {fg_w:.2f} × {fg_h:.2f}", sim.arpfg_confidence, "Viridis",
         "confidence", (0.0, max(float(sim.arpfg_confidence.max()), 1e-6)),
         (sim.arpfg_box, ARPFG_NAME, ARPFG_COLOUR, sim.arpfg_rates)),
    )
    fig = make_subplots(rows=1, cols=3, subplot_titles=[p[0] for p in panels],
                        horizontal_spacing=0.09)
    for col, (_, values, scale, what, bounds, crop) in enumerate(panels, start=1):
        domain = fig.layout[f"xaxis{'' if col == 1 else col}"].domain
        low, high = bounds or (None, None)
        fig.add_trace(
            go.Heatmap(
                x=cells, y=cells, z=values, colorscale=scale, customdata=index, zmin=low,
                zmax=high,
                colorbar={"x": domain[1] + 0.005, "len": 0.9, "thickness": 10, "xpad": 0},
                hovertemplate=(f"row %{{customdata[0]}}, column %{{customdata[1]}}<br>{what} "
                               "%{z:.3f}<extra></extra>"),
                name=what, showlegend=False,
            ),
            row=1, col=col,
        )
        fig.add_trace(
            _box_trace(sim.object_box, "the object", OBJECT, dash="dot", show_legend=col == 1,
                       hover=f"<br>extent {sim.ideal_rates[1]:.2f} × {sim.ideal_rates[0]:.2f} "
                             "of the map (the ideal rate)"),
            row=1, col=col,
        )
        if crop is not None:
            box, name, colour, (rate_h, rate_w) = crop
            fig.add_trace(
                _box_trace(box, f"{name} crop", colour,
                           hover=f"<br>rate {rate_w:.3f} across × {rate_h:.3f} down"),
                row=1, col=col,
            )
    fig.update_xaxes(range=[0, size], constrain="domain", showgrid=False, zeroline=False)
    for col in range(1, 4):
        fig.update_yaxes(range=[size, 0], scaleanchor=f"x{'' if col == 1 else col}",
                         scaleratio=1, constrain="domain", showgrid=False, zeroline=False,
                         row=1, col=col)
    fig.update_annotations(font_size=12)
    fig.update_layout(
        height=420, margin={"l": 30, "r": 30, "t": 50, "b": 20},
        legend={"orientation": "h", "y": -0.1, "yanchor": "top"},
        plot_bgcolor="rgba(0,0,0,0)",
    )
    return fig


def rate_curve_figure(curve: RateCurve, current: ObjectSimulation | None = None) -> go.Figure:
    """Rate against the object's size: across (width) and down (height), each against the
    object's extent on that axis, for the paper's ARP, ARP-FG (beyond the paper), the ideal
    (rate = extent), the paper's Eq. 9 on an ideal map (``k`` x extent, clamped at the DSR), the
    DSR bound and ARP-FG's lower bound; ``current`` marks the object drawn above."""
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=("across: rate against the object's width",
                                        "down: rate against the object's height"))
    # under the others, wide and faint: where the curves coincide each stays visible
    series = (
        ("ideal_arp", f"the paper's Eq. 9 on an ideal map (k × extent, DSR {curve.dsr:.2f} "
                      "bound)", ARP_COLOUR, "solid", "lines", 7, 0.35),
        ("ideal", "ideal: rate = the object's extent", TRUE_INTERVAL, "dot", "lines", 2, 1.0),
        ("arp", ARP_NAME, ARP_COLOUR, "solid", "lines+markers", 2, 1.0),
        ("arpfg", ARPFG_NAME, ARPFG_COLOUR, "solid", "lines+markers", 2, 1.0),
    )
    for col, (axis, along) in enumerate(((1, "width"), (0, "height")), start=1):
        extent = curve.ideal[:, axis]
        custom = np.stack([curve.sizes, extent], axis=1)
        for key, name, colour, dash, mode, line_width, opacity in series:
            rate = getattr(curve, key)[:, axis]
            fig.add_trace(
                go.Scatter(
                    x=extent, y=rate, mode=mode, name=name, legendgroup=key, opacity=opacity,
                    showlegend=col == 1,
                    line={"color": colour, "dash": dash, "width": line_width},
                    marker={"size": 5}, customdata=custom,
                    hovertemplate=(f"{name}<br>object {along} %{{customdata[1]:.3f}} "
                                   "(longer side %{customdata[0]:.2f})<br>rate %{y:.3f}"
                                   "<extra></extra>"),
                ),
                row=1, col=col,
            )
        for level, name, colour, dash in (
            (curve.dsr, f"DSR {curve.dsr:.2f}: ARP's lower bound", LINE, "dashdot"),
            (curve.min_rate, f"ARP-FG's lower bound {curve.min_rate:.3f}", REFERENCE, "dot"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=[0.0, 1.0], y=[level, level], mode="lines", name=name,
                    legendgroup=name, showlegend=col == 1,
                    line={"color": colour, "dash": dash, "width": 1.5},
                    hovertemplate=f"{name}<extra></extra>",
                ),
                row=1, col=col,
            )
        if current is not None:
            where = current.ideal_rates[axis]
            fig.add_trace(
                go.Scatter(
                    x=[where, where], y=[0.0, 1.05], mode="lines", name="the object above",
                    legendgroup="current", showlegend=col == 1,
                    line={"color": TRUE_INTERVAL, "width": 1},
                    hovertemplate=(f"the object above: {along} {where:.3f}<br>ARP "
                                   f"{current.arp_rates[axis]:.3f}, ARP-FG "
                                   f"{current.arpfg_rates[axis]:.3f}<extra></extra>"),
                ),
                row=1, col=col,
            )
        fig.update_xaxes(title_text=f"object's {along} (fraction of the map's side)",
                         range=[0, 1], row=1, col=col)
    fig.update_yaxes(title_text="rate (crop side / map side)", range=[0, 1.05], row=1, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(
        height=420, margin={"l": 50, "r": 10, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.22, "yanchor": "top"},
    )
    return fig


#: What the 2-D section's maps and curve show (Appendix A page, under the figures).
OBJECT_CAPTION = (
    "What you see: the paper's confidence (middle map) stays far above 0 off the object, at "
    "about 0.3 to 0.5. Each standardised channel averages 0 over the map, so the "
    "background's significance is only about -sqrt(p / (1 - p)) for an object covering a "
    "share p of it, and the sigmoid leaves a floor there. Summed over the many background "
    "cells the floor outweighs the object: ARP's crop spans most of the map, its rate stays "
    "near k and falls as the object grows (orange curve). ARP-FG's map is 0 off the object, "
    "so its rate is k times the object's extent (green; on the dotted ideal at k 1). A "
    "perfect map alone would not rescue the paper's ARP: the wide faint orange curve is "
    "Eq. 9 on the object's mask, and at k 0.7 and DSR 0.5 it lies on the DSR line for every "
    "object under 0.71 of the side, where ARP crops exactly what RP crops. Clutter widens "
    "ARP-FG's crop toward the distractors unless it keeps only the peak's region; tau "
    "sharpens the paper's sigmoid and lowers its floor (ARP-FG's rate does not depend on it)."
)
