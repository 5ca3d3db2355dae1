"""Line figures of the Training page against the epoch: :func:`learning_curves` (loss, top-1 or
mAP, learning rate) and :func:`rates_figure` (the mean crop area per stage). Colour: the run;
line style: the metric or the stage, each with its own legend under the plot."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from arpviz.explorer.catalog import METRICS, TrainingRecord, metric_columns, stage_names
from arpviz.explorer.figures.history.names import shared_stage_title, stage_title
from arpviz.palette import CROP_SIZE, series_colour

__all__ = ["learning_curves", "rates_figure"]


def _epoch_ticks(fig: go.Figure, epochs: Sequence[float]) -> None:
    """Whole-number epoch ticks (one per epoch up to 10 epochs)."""
    if epochs and max(epochs) <= 10:
        fig.update_xaxes(dtick=1, tick0=1)
    else:
        fig.update_xaxes(tickformat="d", nticks=8)


_EPOCH_LINE = {"dash": "dash", "color": "#888"}  # the chosen epoch (no series uses grey)
_PLOT_PX = 300  # height of the plot area of the line figures


def _key_legends(fig: go.Figure, runs: Sequence[tuple[str, str]],
                 styles: Sequence[tuple[str, dict]], first_title: str = "run",
                 second_title: str = "line style") -> None:
    """Two legends under the plot: one entry per run in its colour (a click hides the run's
    lines), and one per line style in the neutral :data:`~arpviz.palette.CROP_SIZE` (what a dash or
    marker means); the figure grows by their rows."""
    for name, colour in runs:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name, legendgroup=name,
                                 line={"color": colour, "width": 3}, hoverinfo="skip",
                                 legend="legend"))
    for name, style in styles:
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="lines+markers" if "symbol" in style else "lines",
            name=name, legendgroup=f"style:{name}", hoverinfo="skip", legend="legend2",
            line={"color": CROP_SIZE, "dash": style.get("dash", "solid"),
                  "width": style.get("width", 2)},
            marker={"symbol": style.get("symbol", "circle"), "size": 6},
        ))
    run_rows = -(-len(runs) // 2)
    style_rows = 0 if not styles else -(-len(styles) // 3)
    first = 48  # below the plot: tick labels and the x title
    second = first + 24 * run_rows + 8
    bottom = second + 24 * style_rows + 10
    entry = {"orientation": "h", "x": 0, "xanchor": "left", "yanchor": "top",
             "traceorder": "normal", "font": {"size": 12}}
    top = fig.layout.margin.t if fig.layout.margin.t is not None else 40
    fig.update_layout(
        height=top + _PLOT_PX + bottom,
        margin={"t": top, "b": bottom},
        legend={**entry, "y": -first / _PLOT_PX,
                "title": {"text": first_title + " ", "side": "left"}},
        legend2={**entry, "y": -second / _PLOT_PX, "itemclick": False, "itemdoubleclick": False,
                 "title": {"text": second_title + " ", "side": "left"}},
    )


def rates_figure(records: Sequence[TrainingRecord], epoch: int | None = None) -> go.Figure:
    """Mean crop area (``rate_h * rate_w``) over the probes per epoch, per run and stage.

    Colour: the run; line style and marker: the stage (Conv3 dotted), each with its own legend.
    No curves (only the legends' entries) when no run has a pooled stage.
    """
    fig = go.Figure()
    runs, stages = [], []
    for r, record in enumerate(records):
        if not record.snapshots or not stage_names(record.snapshots[-1]):
            continue
        runs.append((record.name, series_colour(r)))
        for stage in stage_names(record.snapshots[-1]):
            if stage not in stages:
                stages.append(stage)
            epochs, mean, low, high = [], [], [], []
            for snap in record.snapshots:
                values = snap.stages.get(stage)
                if values is None:
                    continue
                area = (values["rates"][:, 0] * values["rates"][:, 1]).float().numpy()
                epochs.append(snap.epoch)
                mean.append(float(area.mean()))
                low.append(float(area.min()))
                high.append(float(area.max()))
            fig.add_trace(go.Scatter(
                x=epochs, y=mean, mode="lines+markers", legendgroup=record.name,
                name=f"{record.name}: {stage_title(record, stage)}", showlegend=False,
                line={"color": series_colour(r), **_stage_style(stages.index(stage), stage)},
                marker={"symbol": _SYMBOLS[stages.index(stage) % len(_SYMBOLS)]},
                customdata=np.stack([low, high], axis=1) if epochs else None,
                hovertemplate="epoch %{x}<br>mean area %{y:.3f}<br>min %{customdata[0]:.3f}, "
                              "max %{customdata[1]:.3f}<extra>%{fullData.name}</extra>",
            ))
    if epoch is not None:
        fig.add_vline(x=epoch, line_dash=_EPOCH_LINE["dash"], line_color=_EPOCH_LINE["color"])
    _epoch_ticks(fig, [s.epoch for r in records for s in r.snapshots])
    fig.update_layout(xaxis_title="epoch", yaxis_title="crop area / map area",
                      yaxis_range=[0, 1.05], margin={"l": 60, "r": 10, "t": 10})
    with_stages = [r for r in records if r.snapshots]
    styles = [(shared_stage_title(with_stages, stage),
               {**_stage_style(i, stage), "symbol": _SYMBOLS[i % len(_SYMBOLS)]})
              for i, stage in enumerate(stages)]
    _key_legends(fig, runs, styles, second_title="stage")
    return fig


_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x")


def _stage_style(index: int, stage: str) -> dict:
    return {"dash": "dot" if stage == "conv3" else "solid"}


#: The learning curves' metrics: (history key, panel, line style).
_PANELS = (
    ("train_loss", 1, {}), ("train_top1", 2, {"dash": "dash"}), ("val_top1", 2, {}),
    ("val_top5", 2, {"dash": "dot"}), ("mAP", 2, {"width": 3.5, "symbol": "diamond"}),
    ("rank1", 2, {"dash": "dashdot"}), ("lr", 3, {}),
)


def learning_curves(records: Sequence[TrainingRecord], epoch: int | None = None) -> go.Figure:
    """Loss, top-1 (train dashed, val solid; val top-5 dotted) and learning rate against epoch;
    re-ID runs show their test mAP (solid, thick, diamonds) and rank-1 (dash-dot) in the middle
    panel.

    Colour: the run (a legend of runs); line style: the metric (a legend of the middle panel's
    styles). ``epoch`` draws a grey dashed line on each panel.
    """
    reid = any(r.is_reid for r in records)
    middle = "top-1 / mAP / rank-1 (%)" if reid else "top-1 / top-5 (%)"
    if reid and all(r.is_reid for r in records):
        middle = "train top-1, test mAP / rank-1 (%)"
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", middle, "learning rate"),
                        horizontal_spacing=0.08)
    shown: list[str] = []
    for r, record in enumerate(records):
        cols = metric_columns(record.meta)
        colour = series_colour(r)
        epochs = cols["epoch"]
        for key, col, style in _PANELS:
            if key not in cols:
                continue
            if col == 2 and key not in shown:
                shown.append(key)
            fig.add_trace(
                go.Scatter(
                    x=epochs, y=cols[key], mode="lines+markers", showlegend=False,
                    name=f"{record.name}: {METRICS[key]}", legendgroup=record.name,
                    line={"color": colour, "dash": style.get("dash", "solid"),
                          "width": style.get("width", 2)},
                    marker={"size": 5, "symbol": style.get("symbol", "circle")},
                    hovertemplate=f"{record.name}<br>epoch %{{x:.0f}}<br>{METRICS[key]} "
                    "%{y:.4g}<extra></extra>",
                ),
                row=1, col=col,
            )
    fig.update_yaxes(type="log", dtick=1, exponentformat="power", row=1, col=3)  # 10^k ticks
    fig.update_xaxes(title_text="epoch", row=1, col=2)
    _epoch_ticks(fig, [e for r in records for e in metric_columns(r.meta)["epoch"]])
    if epoch is not None:
        for col in (1, 2, 3):
            fig.add_vline(x=epoch, line_dash=_EPOCH_LINE["dash"],
                          line_color=_EPOCH_LINE["color"], row=1, col=col)
    fig.update_layout(margin={"l": 40, "r": 10, "t": 40})
    order = [key for key, _, _ in _PANELS]
    styles = [(METRICS[key], dict(_PANELS[order.index(key)][2]))
              for key in sorted(shown, key=order.index)]
    _key_legends(fig, [(r.name, series_colour(i)) for i, r in enumerate(records)],
                 styles if len(styles) > 1 else [], second_title="middle panel")
    return fig
