"""Figures of the Adaptivity page, from an :class:`arpviz.analysis.AdaptivityReport` and the
plain values of :mod:`arpviz.explorer.adaptivity`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from arpviz.analysis import AdaptivityReport, ReIDKCurve
from arpviz.explorer.ablation import name as row_name
from arpviz.explorer.adaptivity import PLACEMENTS, ComparisonRow, KCurve, RatePoints
from arpviz.models.stages import stage_label
from arpviz.palette import REFERENCE, RIGHT, WRONG, series_colour, stage_colour
from arpviz.text import figure_text

__all__ = [
    "comparison_figure",
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
        names = [figure_text(class_names[i]) if 0 <= i < len(class_names) else str(i)
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


def _k_lines(fig: go.Figure, name: str, colour: str, dash: str, k: Sequence[float],
             values: Sequence[float], metric: str, trained_k: float | None,
             col: int | None, star: bool = True) -> None:
    """One k curve (and a star at the trained k) into ``fig`` (subplot column ``col``)."""
    where = {} if col is None else {"row": 1, "col": col}
    fig.add_trace(go.Scatter(x=list(k), y=list(values), mode="lines+markers", name=name,
                             line={"color": colour, "dash": dash},
                             hovertemplate=f"k %{{x:g}}<br>{metric} %{{y:.1f}}%<extra>"
                                           + name + "</extra>"), **where)
    if star and trained_k is not None and trained_k in k:
        at = list(k).index(trained_k)
        fig.add_trace(go.Scatter(x=[trained_k], y=[values[at]], mode="markers",
                                 marker={"color": colour, "size": 13, "symbol": "star"},
                                 name=f"{name}: trained k", showlegend=False,
                                 hovertemplate=f"trained k %{{x:g}}<br>{metric} %{{y:.1f}}%"
                                               "<extra></extra>"), **where)


def k_curves_figure(
    curves: Sequence[KCurve], reid_curves: Mapping[str, Sequence[ReIDKCurve]] | None = None
) -> go.Figure:
    """Top-1 against k, one line per checkpoint and ARP stage; a star at each trained k.

    ``reid_curves`` (label -> :class:`~arpviz.analysis.ReIDKCurve` list) adds the re-ID
    checkpoints' mAP (solid) and rank-1 (dotted) against k on their own axis ("mAP %"): a
    second subplot beside top-1, or the only one without classification curves.
    """
    reid = [(label, c) for label, found in (reid_curves or {}).items() for c in found]
    both = bool(curves) and bool(reid)
    fig = (make_subplots(rows=1, cols=2, subplot_titles=("classification: top-1",
                                                          "re-ID: mAP (dotted: rank-1)"))
           if both else go.Figure())
    labels = list(dict.fromkeys([c.label for c in curves] + [label for label, _ in reid]))
    for curve in curves:
        _k_lines(fig, f"{curve.label} · {stage_label(curve.stage)}",
                 series_colour(labels.index(curve.label)),
                 "solid" if curve.stage.startswith("conv4") else "dash", curve.k, curve.top1,
                 "top-1", curve.trained_k, 1 if both else None)
    for label, curve in reid:
        name = f"{label} · {stage_label(curve.stage)}"
        colour = series_colour(labels.index(label))
        col = 2 if both else None
        _k_lines(fig, f"{name}: mAP", colour, "solid", curve.k, curve.mAP, "mAP",
                 curve.trained_k, col)
        _k_lines(fig, f"{name}: rank-1", colour, "dot", curve.k, curve.rank1, "rank-1",
                 curve.trained_k, col, star=False)
    if not both:
        title, y = (("mAP and rank-1 (dotted) against k (stars: the trained k)", "mAP %")
                    if reid else ("Top-1 against k (stars: the trained k)", "top-1 (%)"))
        return _layout(fig, title, "k", y)
    fig.update_xaxes(title_text="k")
    fig.update_yaxes(title_text="top-1 (%)", row=1, col=1)
    fig.update_yaxes(title_text="mAP % (dotted: rank-1 %)", row=1, col=2)
    return _layout(fig, "Top-1 and mAP against k (stars: the trained k)", "k", "top-1 (%)",
                   420)


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


def _binned(size: np.ndarray, rate: np.ndarray, edges: np.ndarray, least: int = 5
            ) -> list[tuple[float, float, float, float, int, float, float]]:
    """Per bin of ``size`` with at least ``least`` images: (centre, median rate, lower and
    upper quartile, count, bin start, bin end)."""
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        keep = np.isfinite(size) & np.isfinite(rate) & (size >= lo) & (size <= hi)
        if keep.sum() >= least:
            q1, med, q3 = np.percentile(rate[keep], [25, 50, 75])
            out.append(((lo + hi) / 2, float(med), float(q1), float(q3), int(keep.sum()),
                        float(lo), float(hi)))
    return out


def comparison_figure(rows: Sequence[ComparisonRow], dsr: float = 0.5,
                      stage: str = "conv4.local0", bins: int = 8) -> go.Figure:
    """Rate against the object's height for several checkpoints (and the ideal maps), one
    colour each: the median rate per height bin with its interquartile range (every run's 600
    points at once would hide each other), with rate = size (what following the object means)
    and the DSR (ARP's lower bound) drawn as lines. Hover: the bin, its count, median and
    quartiles, and the run's Spearman correlation over all its images."""
    fig = go.Figure()
    sizes = [r.size[np.isfinite(r.size)] for r in rows if len(r.size)]
    lo = float(min(s.min() for s in sizes)) if sizes else 0.0
    hi = float(max(s.max() for s in sizes)) if sizes else 1.0
    edges = np.linspace(lo, hi, bins + 1)
    for i, row in enumerate(rows):
        ideal = row.label.startswith("ideal")
        rho = "" if row.spearman is None else f", Spearman {row.spearman:+.2f}"
        found = _binned(np.asarray(row.size, float), np.asarray(row.rate, float), edges)
        if not found:
            continue
        x, med, q1, q3, n, b0, b1 = (list(v) for v in zip(*found, strict=True))
        fig.add_trace(go.Scatter(
            x=x, y=med, mode="lines+markers", name=f"{figure_text(row.label)}{rho}",
            line={"color": series_colour(i), "dash": "dash" if ideal else "solid"},
            marker={"symbol": "diamond-open" if ideal else "circle", "size": 8},
            error_y={"type": "data", "symmetric": False,
                     "array": [b - m for b, m in zip(q3, med, strict=True)],
                     "arrayminus": [m - a for a, m in zip(q1, med, strict=True)],
                     "thickness": 1.2, "width": 3},
            customdata=np.stack([b0, b1, n, q1, q3], axis=1).tolist(),
            hovertemplate=(f"{figure_text(row.label)}{rho}<br>heights %{{customdata[0]:.2f}}"
                           "-%{customdata[1]:.2f} (%{customdata[2]} images)<br>median rate "
                           "%{y:.3f}, quartiles %{customdata[3]:.3f}-%{customdata[4]:.3f}"
                           "<extra></extra>")))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="rate = object size",
                             line={"color": "#000000", "dash": "dot"}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[dsr, dsr], mode="lines",
                             name=f"DSR {dsr:g} (ARP's lower bound)",
                             line={"color": REFERENCE, "dash": "dash"}, hoverinfo="skip"))
    fig.update_yaxes(range=[0, 1.05])
    return _layout(fig, f"{stage_label(stage)}: median rate against the bird's height "
                   "(bars: quartiles)", "bird height (share of the stage's frame)",
                   "rate (height)", 480)


def ablation_figure(items: Sequence, title: str = "") -> go.Figure:
    """Paired differences as a forest plot: each comparison's mean difference in test top-1
    (points) with its 95% interval, one line per comparison, coloured by its reading (ahead,
    behind, indistinguishable); hover: the per-seed differences and McNemar tests.

    ``items`` are :class:`~arpviz.analysis.paired.Comparison` s (the axis names both rows) or
    ``(label, comparison)`` (the axis shows the label, the hover both rows).
    """
    fig = go.Figure()
    colours = {"ahead": RIGHT, "behind": WRONG}
    labels = []
    for item in items:
        label, c = item if isinstance(item, tuple) else (None, item)
        text = f"{row_name(c.first)} − {row_name(c.second)}"
        labels.append(text if label is None else label)  # a step's rows: in its hover
        described = text if label is None else f"{label}: {text}"
        s = c.summary
        low = s["low"] if s["low"] is not None else s["mean"]
        high = s["high"] if s["high"] is not None else s["mean"]
        seeds = "<br>".join(f"seed {seed}: {d:+.1f} (McNemar {b}/{cc}, p {p:.2g})"
                            for seed, d, (b, cc, p) in zip(
                                c.seeds, c.differences,
                                [c.per_seed[x] for x in c.seeds], strict=True))
        fig.add_trace(go.Scatter(
            x=[s["mean"]], y=[labels[-1]], mode="markers", showlegend=False,
            marker={"size": 10, "color": colours.get(c.word, REFERENCE)},
            error_x={"type": "data", "symmetric": False, "array": [high - s["mean"]],
                     "arrayminus": [s["mean"] - low], "thickness": 2},
            hovertemplate=f"<b>{described}</b><br>{s['mean']:+.2f} points, 95% CI "
                          f"[{low:+.2f}, {high:+.2f}]<br>{c.word}<br>{seeds}<extra></extra>"))
    fig.add_vline(x=0, line={"color": "#666", "dash": "dash", "width": 1})
    fig.update_yaxes(autorange="reversed", automargin=True)
    return _layout(fig, title, "difference in test top-1 (points), 95% CI", "",
                   height=80 + 34 * len(labels))
