"""The charts beside Explore's images: rates per stage (RP against ARP), the top-5 against a
reference, the k sweep and the faithfulness panel; plain trace and layout dicts like the image
figures of :mod:`arpviz.explorer.figures.explore`."""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from arpviz.explorer.faithful import CropCheck
from arpviz.explorer.figures.explore import _figure, _layout, _wrap
from arpviz.explorer.results import ExploreView, KSweep, PredictionTable
from arpviz.models.stages import mode_label, stage_label
from arpviz.palette import CROP_SIZE, REFERENCE, series_colour, stage_colour
from arpviz.text import figure_text

__all__ = ["faithfulness_figure", "predictions_figure", "rates_figure", "sweep_figure"]


def rates_figure(
    views: ExploreView | Mapping[str, ExploreView],
    title: str | None = None,
    height: int = 300,
) -> go.Figure:
    """The rates ``(rate_h, rate_w)`` of every pooled stage, with its DSR marked.

    ``views`` is one view or ``{name: view}`` (e.g. ``{"ARP": ..., "RP": ...}``): grouped bars.
    """
    rows = {"": views} if isinstance(views, ExploreView) else dict(views)
    data: list[dict] = []
    patterns = ("", "/", ".", "x")
    for i, (series, view) in enumerate(rows.items()):
        labels, values, texts, colours = [], [], [], []
        for s in view.stages.values():
            for axis, rate in zip(("h", "w"), s.rates, strict=True):
                labels.append(f"{stage_label(s.name)} {axis}")
                values.append(float(rate))
                colours.append(stage_colour(s.name))
                dsr = "-" if s.dsr is None else f"{s.dsr[0 if axis == 'h' else 1]:.2f}"
                k = "-" if s.k is None else f"{s.k:.2f}"
                texts.append(f"{s.label}, k {k}, DSR {dsr}")
        data.append({
            "type": "bar", "x": labels, "y": values, "name": series or "rate",
            "customdata": texts,
            "marker": {"color": colours, "pattern": {"shape": patterns[i % len(patterns)]}},
            "hovertemplate": "%{x}: rate %{y:.3f}<br>%{customdata}<extra>" + series
                             + "</extra>",
        })
        dsr_x, dsr_y = [], []
        for s in view.stages.values():
            if s.dsr is not None:
                dsr_x += [f"{stage_label(s.name)} h", f"{stage_label(s.name)} w"]
                dsr_y += [s.dsr[0], s.dsr[1]]
        if dsr_x and i == 0:
            data.append({
                "type": "scatter", "x": dsr_x, "y": dsr_y, "mode": "markers",
                "name": "DSR (ARP's lower bound; the output size)",
                "marker": {"symbol": "line-ew", "size": 28,
                           "line": {"width": 3, "color": "#000000"}},
                "hovertemplate": "%{x}: DSR %{y:.3f}<extra></extra>",
            })
    return _figure(data, _layout(title, height, barmode="group",
                                 yaxis={"range": [0, 1.05], "title": {"text": "rate"}}))


def predictions_figure(
    table: PredictionTable,
    reference: str = "trained setting",
    height: int = 280,
) -> go.Figure:
    """The top-5 probabilities now and under the reference (horizontal bars, full class names
    wrapped; hover: the changes)."""
    rows = list(table.rows)[::-1]
    names = [f"{r.rank}. {_wrap(figure_text(r.name), 34)}" for r in rows]
    height = max(height, 60 + 22 * sum(n.count("<br>") + 2 for n in names))
    hover = [
        f"<b>{figure_text(r.name)}</b><br>now {r.prob:.4f} (rank {r.rank})<br>"
        f"{reference}: {r.ref_prob:.4f} (rank {r.ref_rank})<br>"
        f"change {r.delta:+.4f}, rank {r.rank_change:+d}" for r in rows
    ]
    data = [
        {"type": "bar", "y": names, "x": [r.ref_prob for r in rows], "orientation": "h",
         "name": reference, "marker": {"color": REFERENCE}, "customdata": hover,
         "hovertemplate": "%{customdata}<extra></extra>"},
        {"type": "bar", "y": names, "x": [r.prob for r in rows], "orientation": "h",
         "name": "now", "marker": {"color": series_colour(0)}, "customdata": hover,
         "hovertemplate": "%{customdata}<extra></extra>"},
    ]
    return _figure(data, _layout(None, height, barmode="group", xaxis={
        "title": {"text": "probability"}, "rangemode": "tozero"}))


def sweep_figure(sweep: KSweep, height: int = 460) -> go.Figure:
    """Tracked class probabilities (top) and the crop's size (bottom) against ``k``.

    Classes take the series colours, the crop's size the neutral :data:`CROP_SIZE` (never a
    class's colour); the legend sits on the right, the trained and current ``k`` are labelled
    at the foot of the top panel, so nothing overlaps the titles.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("class probability", "crop size (input pixels)"))
    for i, (index, name) in enumerate(zip(sweep.classes, sweep.class_names, strict=True)):
        fig.add_trace(go.Scatter(
            x=sweep.ks, y=sweep.probs[:, index], mode="lines+markers",
            name=_wrap(figure_text(name)),
            line={"color": series_colour(i)}, legendgroup="classes",
            hovertemplate="k %{x:.2f}: p %{y:.4f}<extra>" + figure_text(name) + "</extra>",
        ), row=1, col=1)
    for values, label, dash in ((sweep.crop_h, "crop height", "solid"),
                                (sweep.crop_w, "crop width", "dash")):
        fig.add_trace(go.Scatter(
            x=sweep.ks, y=values, mode="lines+markers", name=label, legendgroup="crop",
            line={"color": CROP_SIZE, "dash": dash}, marker={"symbol": "square", "size": 5},
            hovertemplate="k %{x:.2f}: " + label.split()[1] + " %{y:.1f} px<extra></extra>",
        ), row=2, col=1)
    marks = [(sweep.trained_k, "trained", "dot"), (sweep.current_k, "now", "solid")]
    if sweep.trained_k is not None and sweep.current_k is not None \
            and abs(sweep.trained_k - sweep.current_k) < 1e-9:
        marks = [(sweep.current_k, "trained = now", "solid")]
    for k, label, dash in marks:
        if k is None:
            continue
        fig.add_vline(x=k, line={"color": "#444444", "dash": dash, "width": 1})
        fig.add_annotation(x=k, xref="x", y=0.0, yref="y domain", text=f"{label} k {k:.2f}",
                           showarrow=False, yanchor="bottom", xanchor="left", xshift=3,
                           font={"size": 11}, bgcolor="rgba(255,255,255,0.8)")
    fig.update_xaxes(title=f"k ({mode_label(sweep.mode)})", row=2, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_layout(**_layout(None, height))
    fig.update_layout(legend={"orientation": "v", "x": 1.02, "y": 1, "xanchor": "left",
                              "yanchor": "top"},
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


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
    fig.update_yaxes(range=[0, 1.02], title="p(top-1 class)", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_xaxes(title="box of the same size as the crop", row=1, col=1)
    fig.update_xaxes(title="the crop scaled about its centre (1 = the crop)", row=1, col=2)
    title = f"top-1 class: {_wrap(figure_text(check.target_name), 90)}"
    fig.update_layout(**_layout(title, height))
    return fig
