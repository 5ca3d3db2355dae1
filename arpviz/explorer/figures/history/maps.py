"""A probe's confidence maps at an epoch (:func:`confidence_figure`) and the numbers of its
pooled stages as table rows (:func:`stage_rows`, columns :data:`STAGE_COLUMNS`); sizes and
rates height x width."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from arpviz.explorer.catalog import TrainingRecord, stage_names
from arpviz.explorer.figures.history.names import _size, stage_title
from arpviz.palette import MARK
from arpviz.pooling import output_size

__all__ = ["STAGE_COLUMNS", "confidence_figure", "stage_rows"]


def confidence_figure(record: TrainingRecord, epoch: int, probe: int) -> go.Figure:
    """The confidence map of every pooled stage for one probe, with the stage's crop on it.

    One colour scale for all maps (so a colour means the same confidence in each); each title
    gives the stage, its map size and its crop rate, height x width. The figure's width suits
    its maps (``st.plotly_chart(width="content")`` keeps the scale beside them).
    """
    snap = record.at(epoch)
    stages = stage_names(snap)
    if not stages:
        raise ValueError(f"{record.name}: epoch {snap.epoch} has no pooled stage")
    count = len(snap.stages[stages[0]]["confidence"])
    if not 0 <= probe < count:
        raise ValueError(f"probe must be in [0, {count}), got {probe}")
    titles = []
    for stage in stages:
        rates = snap.stages[stage]["rates"][probe].float().tolist()
        h, w = snap.stages[stage]["confidence"].shape[1:]
        titles.append(f"{stage_title(record, stage)}<br>map {h} x {w}<br>"
                      f"crop rate {rates[0]:.2f} x {rates[1]:.2f}")
    spacing = min(0.14, 0.45 / (len(stages) - 1)) if len(stages) > 1 else 0.0  # room for ticks
    fig = make_subplots(rows=1, cols=len(stages), subplot_titles=titles,
                        horizontal_spacing=spacing)
    for i, stage in enumerate(stages):
        values = snap.stages[stage]
        conf = values["confidence"][probe].float().numpy()
        h, w = conf.shape
        title = stage_title(record, stage)
        fig.add_trace(
            go.Heatmap(z=conf, x0=0.5, dx=1, y0=0.5, dy=1, coloraxis="coloraxis",
                       hovertemplate="row %{y}, column %{x}<br>confidence %{z:.3f}"
                       f"<extra>{title}</extra>"),
            row=1, col=i + 1,
        )
        x1, y1, x2, y2 = (float(v) for v in values["boxes"][probe].tolist())
        fig.add_trace(
            go.Scatter(x=[x1, x2, x2, x1, x1], y=[y1, y1, y2, y2, y1], mode="lines",
                       line={"color": MARK, "width": 2}, name=f"{title} crop",
                       showlegend=False,
                       hovertemplate=f"{title} crop: {_size((x1, y1, x2, y2))} of {h} x {w} "
                       "(height x width)<extra></extra>"),
            row=1, col=i + 1,
        )
        ticks = {"nticks": 4, "tickfont": {"size": 9}}
        fig.update_xaxes(range=[0, w], row=1, col=i + 1, constrain="domain", **ticks)
        fig.update_yaxes(range=[h, 0], row=1, col=i + 1, scaleanchor=f"x{'' if i == 0 else i + 1}",
                         constrain="domain", constraintoward="top", **ticks)
    fig.update_annotations(font_size=12)
    fig.update_layout(
        height=310, width=230 * len(stages) + 110, margin={"l": 10, "r": 10, "t": 70, "b": 10},
        coloraxis={"colorscale": "Viridis",
                   "colorbar": {"title": {"text": "confidence", "side": "right"},
                                "thickness": 12, "len": 0.9, "y": 1, "yanchor": "top"}},
    )
    return fig


#: The columns of :func:`stage_rows`, in order.
STAGE_COLUMNS = ("run", "stage", "crop rate (h x w)", "crop (h x w px)", "crop top, left (px)",
                 "map (h x w)", "output (h x w)")


def stage_rows(record: TrainingRecord, epoch: int, probe: int) -> list[dict[str, str]]:
    """One row per pooled stage for ``probe`` at ``epoch`` (:data:`STAGE_COLUMNS`): the run,
    the stage, its crop rate, the crop in the image (size and top-left corner, in input
    pixels), its input map and its output size (feature-map cells); every size and rate height x
    width."""
    snap = record.at(epoch)
    dsr = record.meta.config.dsr
    rows = []
    for stage in stage_names(snap):
        values = snap.stages[stage]
        if not 0 <= probe < len(values["rates"]):
            raise ValueError(f"probe must be in [0, {len(values['rates'])}), got {probe}")
        rate = values["rates"][probe].float().tolist()
        box = values["image_boxes"][probe].float().tolist()
        h, w = values["confidence"].shape[1:]
        out_h, out_w = output_size(h, w, dsr)
        rows.append(dict(zip(STAGE_COLUMNS, (
            record.name, stage_title(record, stage), f"{rate[0]:.2f} x {rate[1]:.2f}",
            _size(box), f"{box[1]:.1f}, {box[0]:.1f}", f"{h} x {w}", f"{out_h} x {out_w}",
        ), strict=True)))
    return rows
