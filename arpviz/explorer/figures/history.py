"""Figures of the Training page: learning curves and the probe images' crops epoch by epoch.

Built from :class:`~arpviz.explorer.catalog.TrainingRecord` (one per run) and the probe images
of :func:`~arpviz.explorer.inputs.probe_images`. Probe images are laid out as one mosaic (one
image trace) with the boxes of a stage as one line trace, so a figure stays small however many
probes there are, and an animation over epochs only swaps the box traces and captions.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from plotly.subplots import make_subplots

from arpviz.checkpoint import EpochSnapshot
from arpviz.explorer.catalog import METRICS, TrainingRecord, metric_columns, stage_names
from arpviz.explorer.figures.palette import (
    MARK,
    RIGHT,
    SIDES,
    WRONG,
    series_colour,
    stage_colour,
)

__all__ = [
    "BoxLayer",
    "box_text",
    "comparison_figure",
    "confidence_figure",
    "learning_curves",
    "probe_figure",
    "rates_figure",
    "stage_rows",
    "tiles_figure",
]

logger = logging.getLogger(__name__)

_CAPTION = 22  # mosaic rows reserved above each tile for its caption, in image pixels
_GAP = 6


def _data_uri(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


@dataclass(frozen=True)
class BoxLayer:
    """Boxes to draw on the tiles of a mosaic: one box per tile (``None``: leave it out)."""

    name: str
    boxes: np.ndarray  # [T, 4] image pixels
    colour: str
    info: Sequence[str] | None = None  # hover text per tile
    dash: str = "solid"


class _Mosaic:
    """Tiles of equal size in a grid, each with a caption strip above it."""

    def __init__(self, tiles: np.ndarray, cols: int) -> None:
        if tiles.ndim != 4 or tiles.shape[-1] != 3:
            raise ValueError(f"tiles must be [T, H, W, 3], got {tiles.shape}")
        self.count, self.height, self.width = tiles.shape[:3]
        self.cols = max(1, min(cols, self.count))
        self.rows = -(-self.count // self.cols)
        self.pitch_x = self.width + _GAP
        self.pitch_y = self.height + _CAPTION + _GAP
        canvas = np.full(
            (self.rows * self.pitch_y, self.cols * self.pitch_x - _GAP, 3), 255, dtype=np.uint8
        )
        for t in range(self.count):
            x0, y0 = self.origin(t)
            canvas[y0 : y0 + self.height, x0 : x0 + self.width] = tiles[t]
        self.canvas = canvas

    def origin(self, tile: int) -> tuple[int, int]:
        """Top-left pixel of ``tile`` on the canvas."""
        row, col = divmod(tile, self.cols)
        return col * self.pitch_x, row * self.pitch_y + _CAPTION

    def image_trace(self) -> go.Image:
        return go.Image(source=_data_uri(self.canvas), x0=0.5, y0=0.5, dx=1, dy=1,
                        hoverinfo="skip", name="probes")

    def box_trace(self, layer: BoxLayer) -> go.Scatter:
        xs: list[float | None] = []
        ys: list[float | None] = []
        text: list[str | None] = []
        boxes = np.asarray(layer.boxes, dtype=np.float64)
        for t in range(min(self.count, len(boxes))):
            if not np.isfinite(boxes[t]).all():
                continue
            x0, y0 = self.origin(t)
            x1, y1, x2, y2 = (float(v) for v in boxes[t])
            xs += [x0 + x1, x0 + x2, x0 + x2, x0 + x1, x0 + x1, None]
            ys += [y0 + y1, y0 + y1, y0 + y2, y0 + y2, y0 + y1, None]
            tip = (
                f"{layer.name}<br>box ({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f})"
                + (f"<br>{layer.info[t]}" if layer.info is not None else "")
            )
            text += [tip] * 5 + [None]
        return go.Scatter(
            x=xs, y=ys, mode="lines", name=layer.name, text=text,
            line={"color": layer.colour, "width": 2, "dash": layer.dash},
            hovertemplate="%{text}<extra></extra>", hoveron="points",
        )

    def caption(self, tile: int, text: str, hover: str = "", colour: str = "#222") -> dict:
        x0, y0 = self.origin(tile)
        return {
            "x": x0 + self.width / 2, "y": y0 - 2, "xref": "x", "yref": "y", "text": text,
            "showarrow": False, "yanchor": "bottom", "font": {"size": 11, "color": colour},
            "hovertext": hover or None,
        }

    def layout(self, fig: go.Figure, tile_px: int) -> None:
        """Axes for the canvas; the figure is tall enough for tiles of ``tile_px`` pixels."""
        px_per_unit = tile_px / self.height
        width_units = self.cols * self.pitch_x - _GAP
        height_units = self.rows * self.pitch_y
        fig.update_xaxes(range=[0, width_units], visible=False, constrain="domain")
        fig.update_yaxes(range=[height_units, 0], visible=False, scaleanchor="x",
                         constrain="domain")
        fig.update_layout(
            height=int(height_units * px_per_unit) + 60,
            margin={"l": 5, "r": 5, "t": 10, "b": 10},
            legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
            plot_bgcolor="white",
        )


@dataclass(frozen=True)
class _Caption:
    """A probe's top-1 against its label at a snapshot, ready for a tile caption."""

    probe: int
    mark: str  # "✓", "✗" or "" without a label
    top_name: str
    prob: float
    hover: str
    colour: str

    def long(self) -> str:
        if self.prob != self.prob:  # NaN: a re-ID probe, no prediction
            return f"#{self.probe} {self.top_name}"
        return f"#{self.probe} {self.mark} {_short(self.top_name, 14)} {self.prob:.0%}"

    def short(self, tag: str) -> str:
        if self.prob != self.prob:
            return f"{tag} #{self.probe} {self.top_name}"
        return f"{tag} #{self.probe} {self.mark} {self.prob:.0%}"


def _prediction_caption(
    snapshot: EpochSnapshot, probe: int, labels: np.ndarray | None, class_names: Sequence[str],
    reid: bool = False,
) -> _Caption:
    """The probe's top-1 against its label; for a re-ID run (``reid``: the probes are query
    images of identities the classifier never saw) its identity only, no right or wrong."""
    indices, probs = snapshot.top5
    if reid:
        label = int(labels[probe]) if labels is not None and probe < len(labels) else None
        name = "query" if label is None else f"id {label}"
        return _Caption(probe, "", name, float("nan"), f"query image #{probe}, {name} (a test "
                        "identity: no classifier prediction to mark)", "#222")
    top = [int(v) for v in indices[probe].tolist()]
    p = [float(v) for v in probs[probe].tolist()]

    def cname(i: int) -> str:
        return class_names[i] if 0 <= i < len(class_names) else str(i)

    label = int(labels[probe]) if labels is not None and probe < len(labels) else None
    ranked = enumerate(zip(top, p, strict=True))
    hover = "<br>".join(f"{j + 1}. {cname(c)} {q:.1%}" for j, (c, q) in ranked)
    if label is None:
        return _Caption(probe, "", cname(top[0]), p[0], hover, "#222")
    ok = top[0] == label
    return _Caption(probe, "✓" if ok else "✗", cname(top[0]), p[0],
                    f"label: {cname(label)}<br>" + hover, RIGHT if ok else WRONG)


def _stage_info(values: Mapping[str, torch.Tensor]) -> list[str]:
    rates = values["rates"].float().numpy()
    boxes = values["boxes"].float().numpy()
    return [
        f"rates (h, w) ({r[0]:.2f}, {r[1]:.2f})<br>map box ({b[0]:.1f}, {b[1]:.1f}, "
        f"{b[2]:.1f}, {b[3]:.1f})"
        for r, b in zip(rates, boxes, strict=True)
    ]


def _probe_layers(snapshot: EpochSnapshot, stages: Sequence[str]) -> list[BoxLayer]:
    layers = []
    for stage in stages:
        values = snapshot.stages.get(stage)
        if values is None:
            continue
        layers.append(BoxLayer(stage, values["image_boxes"].float().numpy(),
                               stage_colour(stage), _stage_info(values)))
    return layers


def _select(images: np.ndarray, probes: Sequence[int] | None) -> list[int]:
    count = len(images)
    chosen = list(range(count)) if probes is None else [int(p) for p in probes]
    bad = [p for p in chosen if not 0 <= p < count]
    if bad or not chosen:
        raise ValueError(f"probes must be a non-empty list of indices below {count}, got {probes}")
    return chosen


def _pick(layer: BoxLayer, chosen: Sequence[int]) -> BoxLayer:
    info = [layer.info[p] for p in chosen] if layer.info is not None else None
    return BoxLayer(layer.name, layer.boxes[list(chosen)], layer.colour, info, layer.dash)


def _animate(fig: go.Figure, frames: list[go.Frame], labels: Sequence[str], active: int) -> None:
    fig.frames = frames
    steps = [
        {"method": "animate", "label": lab,
         "args": [[f.name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
                             "transition": {"duration": 0}}]}
        for f, lab in zip(frames, labels, strict=True)
    ]
    fig.update_layout(
        sliders=[{"active": active, "steps": steps, "currentvalue": {"prefix": "epoch "},
                  "pad": {"t": 10}, "x": 0.1, "len": 0.9}],
        updatemenus=[{
            "type": "buttons", "showactive": False, "x": 0.0, "y": 0, "xanchor": "left",
            "yanchor": "top", "pad": {"t": 10},
            "buttons": [
                {"label": "▶", "method": "animate",
                 "args": [None, {"frame": {"duration": 700, "redraw": True},
                                 "fromcurrent": True, "transition": {"duration": 0}}]},
                {"label": "❚❚", "method": "animate",
                 "args": [[None], {"mode": "immediate", "frame": {"duration": 0}}]},
            ],
        }],
    )
    fig.update_layout(margin={"b": 90}, height=(fig.layout.height or 400) + 80)


def _mosaic_figure(
    mosaic: _Mosaic,
    tile_px: int,
    draw: Callable[[Any], tuple[list[go.Scatter], list[dict]]],
    current: Any,
    frames: Sequence[tuple[str, Any]],
    active: int,
) -> go.Figure:
    """The mosaic image with ``draw(current)``'s box traces and captions; with two or more
    ``frames`` (``(epoch label, what draw takes)``) also a plotly frame per epoch, the slider at
    ``active``. Only the box traces and captions change between frames."""
    fig = go.Figure()
    fig.add_trace(mosaic.image_trace())
    traces, captions = draw(current)
    for trace in traces:
        fig.add_trace(trace)
    fig.update_layout(annotations=captions)
    mosaic.layout(fig, tile_px)
    if len(frames) > 1:
        plotly_frames = []
        for label, key in frames:
            tr, caps = draw(key)
            plotly_frames.append(go.Frame(data=tr, traces=list(range(1, 1 + len(tr))),
                                          layout={"annotations": caps}, name=label))
        _animate(fig, plotly_frames, [label for label, _ in frames], active)
    return fig


def tiles_figure(
    tiles: np.ndarray,
    layers: Sequence[BoxLayer],
    captions: Sequence[tuple[str, str, str]],
    *,
    cols: int = 5,
    tile_px: int = 160,
) -> go.Figure:
    """Images in a grid with boxes and a caption above each (the probe figures' mosaic).

    Args:
        tiles: ``uint8 [T, H, W, 3]``.
        layers: boxes to draw, one :class:`BoxLayer` each (``[T, 4]`` tile pixels; a NaN box
            leaves its tile out).
        captions: ``(text, hover, colour)`` per tile.
    """
    if len(captions) != len(tiles):
        raise ValueError(f"captions must have one entry per tile ({len(tiles)}), "
                         f"got {len(captions)}")
    mosaic = _Mosaic(np.asarray(tiles), cols)

    def draw(_: Any) -> tuple[list[go.Scatter], list[dict]]:
        return ([mosaic.box_trace(layer) for layer in layers],
                [mosaic.caption(t, *c) for t, c in enumerate(captions)])

    return _mosaic_figure(mosaic, tile_px, draw, None, [], 0)


# ----------------------------------------------------------------------------- figures


def probe_figure(
    images: np.ndarray,
    record: TrainingRecord,
    epoch: int,
    *,
    stages: Sequence[str] | None = None,
    probes: Sequence[int] | None = None,
    cols: int = 4,
    animate: bool = False,
    tile_px: int = 200,
) -> go.Figure:
    """The probe images with the boxes of every stage (and branch) at ``epoch``.

    Args:
        images: ``uint8 [P, S, S, 3]`` from :func:`probe_images`.
        record: the run; its snapshot at ``epoch`` gives the boxes and the predictions.
        stages: which stages to draw (default: all of the snapshot's).
        probes: which probe images (default: all).
        animate: add a plotly frame per epoch with its own slider and play button (the boxes
            and captions change; the images stay).
    """
    chosen = _select(images, probes)
    snap = record.at(epoch)
    stages = tuple(stages) if stages is not None else stage_names(snap)
    mosaic = _Mosaic(images[chosen], cols)
    names = record.meta.class_names

    def traces_and_captions(s: EpochSnapshot) -> tuple[list[go.Scatter], list[dict]]:
        layers = [_pick(layer, chosen) for layer in _probe_layers(s, stages)]
        present = {layer.name: layer for layer in layers}
        traces = []
        for stage in stages:  # a trace per requested stage, even if empty
            layer = present.get(stage) or BoxLayer(stage, np.zeros((0, 4)),
                                                   stage_colour(stage))
            traces.append(mosaic.box_trace(layer))
        captions = []
        for t, p in enumerate(chosen):
            cap = _prediction_caption(s, p, record.probe_labels, names, record.is_reid)
            captions.append(mosaic.caption(t, cap.long(), cap.hover, cap.colour))
        return traces, captions

    frames = [(str(s.epoch), s) for s in record.snapshots] if animate else []
    return _mosaic_figure(mosaic, tile_px, traces_and_captions, snap, frames,
                          record.epochs.index(snap.epoch))


def comparison_figure(
    images: np.ndarray,
    left: TrainingRecord,
    right: TrainingRecord,
    epoch: int,
    *,
    stage: str = "conv4.local0",
    probes: Sequence[int] | None = None,
    cols: int = 4,
    show_conv3: bool = True,
    animate: bool = False,
    tile_px: int = 200,
) -> go.Figure:
    """Two runs on the same probe images, side by side: tile pairs ``(left | right)``.

    Each probe shows up twice, the ``left`` run's ``stage`` box (and Conv3 box) on the first
    tile and the ``right`` run's on the second, with each run's prediction in the caption.
    """
    chosen = _select(images, probes)
    tiles = np.repeat(images[chosen], 2, axis=0)
    mosaic = _Mosaic(tiles, 2 * max(1, cols))
    runs = (left, right)
    tags = ("ARP" if left.conv4 == "arp" else left.conv4.upper(),
            "STN" if right.conv4 == "stn" else right.conv4.upper())
    colours = SIDES

    def traces_and_captions(e: int) -> tuple[list[go.Scatter], list[dict]]:
        traces, captions = [], []
        for side, run in enumerate(runs):
            snap = run.at(e)
            wanted = [stage] + (["conv3"] if show_conv3 else [])
            for stg in wanted:
                values = snap.stages.get(stg)
                boxes = np.full((len(tiles), 4), np.nan)
                info: list[str] = [""] * len(tiles)
                if values is not None:
                    per = values["image_boxes"].float().numpy()
                    per_info = _stage_info(values)
                    for t, p in enumerate(chosen):
                        boxes[2 * t + side] = per[p]
                        info[2 * t + side] = per_info[p]
                name = f"{tags[side]}: {stg}"
                colour = colours[side] if stg == stage else stage_colour("conv3")
                dash = "solid" if stg == stage else "dot"
                traces.append(mosaic.box_trace(BoxLayer(name, boxes, colour, info, dash)))
            for t, p in enumerate(chosen):
                cap = _prediction_caption(snap, p, run.probe_labels, run.meta.class_names,
                                          run.is_reid)
                captions.append(mosaic.caption(2 * t + side, cap.short(tags[side]),
                                               f"{run.name} (epoch {snap.epoch})<br>{cap.hover}",
                                               cap.colour))
        return traces, captions

    epochs = sorted(set(left.epochs) | set(right.epochs))
    active = max((i for i, e in enumerate(epochs) if e <= epoch), default=0)
    frames = [(str(e), e) for e in epochs] if animate else []
    return _mosaic_figure(mosaic, tile_px, traces_and_captions, epoch, frames, active)


def confidence_figure(record: TrainingRecord, epoch: int, probe: int) -> go.Figure:
    """The keypoint confidence map of every stage for one probe, with the stage's box on it."""
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
        titles.append(f"{stage} ({h}×{w})<br>rates ({rates[0]:.2f}, {rates[1]:.2f})")
    fig = make_subplots(rows=1, cols=len(stages), subplot_titles=titles,
                        horizontal_spacing=0.08)
    for i, stage in enumerate(stages):
        values = snap.stages[stage]
        conf = values["confidence"][probe].float().numpy()
        h, w = conf.shape
        fig.add_trace(
            go.Heatmap(z=conf, x0=0.5, dx=1, y0=0.5, dy=1, colorscale="Viridis",
                       showscale=i == len(stages) - 1, colorbar={"title": "C"},
                       hovertemplate="x %{x}<br>y %{y}<br>C %{z:.3f}<extra>" + stage
                       + "</extra>"),
            row=1, col=i + 1,
        )
        x1, y1, x2, y2 = (float(v) for v in values["boxes"][probe].tolist())
        fig.add_trace(
            go.Scatter(x=[x1, x2, x2, x1, x1], y=[y1, y1, y2, y2, y1], mode="lines",
                       line={"color": MARK, "width": 2}, name=f"{stage} box",
                       showlegend=False,
                       hovertemplate=f"{stage} box ({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f})"
                       "<extra></extra>"),
            row=1, col=i + 1,
        )
        axis = "" if i == 0 else str(i + 1)
        fig.update_xaxes(range=[0, w], row=1, col=i + 1, constrain="domain")
        fig.update_yaxes(range=[h, 0], row=1, col=i + 1, scaleanchor=f"x{axis}",
                         constrain="domain")
    fig.update_layout(height=340, margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


def stage_rows(record: TrainingRecord, epoch: int, probes: Sequence[int] | None = None
               ) -> list[dict[str, Any]]:
    """One row per (probe, stage) at ``epoch``: rates, image box and map box."""
    snap = record.at(epoch)
    rows = []
    for stage in stage_names(snap):
        values = snap.stages[stage]
        count = len(values["rates"])
        for p in range(count) if probes is None else probes:
            rate = values["rates"][p].float().tolist()
            ib = values["image_boxes"][p].float().tolist()
            mb = values["boxes"][p].float().tolist()
            rows.append({
                "epoch": snap.epoch, "probe": int(p), "stage": stage,
                "rate_h": round(rate[0], 4), "rate_w": round(rate[1], 4),
                "x1": round(ib[0], 2), "y1": round(ib[1], 2),
                "x2": round(ib[2], 2), "y2": round(ib[3], 2),
                "map_box": "({:.1f}, {:.1f}, {:.1f}, {:.1f})".format(*mb),
            })
    return rows


def box_text(record: TrainingRecord, epoch: int, probes: Sequence[int] = (0,)) -> str:
    """The image boxes of ``probes`` at ``epoch`` as text: ``#p stage (x1, y1, x2, y2)``."""
    snap = record.at(epoch)
    parts = []
    for p in probes:
        for stage in stage_names(snap):
            box = snap.stages[stage]["image_boxes"][p].float().tolist()
            parts.append(f"#{p} {stage} ({box[0]:.1f}, {box[1]:.1f}, {box[2]:.1f}, {box[3]:.1f})")
    return f"epoch {snap.epoch}: " + "; ".join(parts)


def _epoch_ticks(fig: go.Figure, epochs: Sequence[float]) -> None:
    """Whole-number epoch ticks (one per epoch up to 20 epochs)."""
    if epochs and max(epochs) <= 20:
        fig.update_xaxes(dtick=1, tick0=1)
    else:
        fig.update_xaxes(tickformat="d")


def rates_figure(records: Sequence[TrainingRecord], epoch: int | None = None) -> go.Figure:
    """Mean rate (area ``rate_h * rate_w``) over the probes per epoch, per run and stage."""
    fig = go.Figure()
    for r, record in enumerate(records):
        if not record.snapshots:
            continue
        for i, stage in enumerate(stage_names(record.snapshots[-1])):
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
                x=epochs, y=mean, mode="lines+markers", name=f"{record.name}: {stage}",
                line={"color": series_colour(r),
                      "dash": "dot" if stage == "conv3" else "solid"},
                marker={"symbol": ("circle", "square", "diamond", "triangle-up")[i % 4]},
                customdata=np.stack([low, high], axis=1) if epochs else None,
                hovertemplate="epoch %{x}<br>mean area %{y:.3f}<br>min %{customdata[0]:.3f}, "
                              "max %{customdata[1]:.3f}<extra>%{fullData.name}</extra>",
            ))
    if epoch is not None:
        fig.add_vline(x=epoch, line_dash="dash", line_color="#888")
    _epoch_ticks(fig, [s.epoch for r in records for s in r.snapshots])
    fig.update_layout(
        xaxis_title="epoch", yaxis_title="crop area / map area (mean over probes)",
        yaxis_range=[0, 1.05], height=300, margin={"l": 50, "r": 10, "t": 10, "b": 40},
        legend={"orientation": "h", "y": -0.3},
    )
    return fig


def learning_curves(records: Sequence[TrainingRecord], epoch: int | None = None) -> go.Figure:
    """Loss, top-1 (train and val; val top-5 dotted) and learning rate against epoch; re-ID
    runs show their test mAP (solid, thick) and rank-1 (dash-dot) in the middle panel.

    Every run gets its own colour; ``epoch`` draws a marker line on each panel.
    """
    reid = any(r.is_reid for r in records)
    middle = "top-1 / mAP / rank-1 (%)" if reid else "top-1 / top-5 (%)"
    if reid and all(r.is_reid for r in records):
        middle = "train top-1, test mAP / rank-1 (%)"
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", middle, "learning rate"),
                        horizontal_spacing=0.07)
    for r, record in enumerate(records):
        cols = metric_columns(record.meta)
        colour = series_colour(r)
        epochs = cols["epoch"]
        panels = (
            ("train_loss", 1, "solid"), ("train_top1", 2, "dash"), ("val_top1", 2, "solid"),
            ("val_top5", 2, "dot"), ("mAP", 2, "solid"), ("rank1", 2, "dashdot"),
            ("lr", 3, "solid"),
        )
        for key, col, dash in panels:
            if key not in cols:
                continue
            fig.add_trace(
                go.Scatter(
                    x=epochs, y=cols[key], mode="lines+markers", name=f"{record.name}: "
                    f"{METRICS[key]}", legendgroup=record.name,
                    line={"color": colour, "dash": dash, "width": 3.5 if key == "mAP" else 2},
                    marker={"size": 5, "symbol": "diamond" if key == "mAP" else "circle"},
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
            fig.add_vline(x=epoch, line_dash="dash", line_color="#888", row=1, col=col)
    fig.update_layout(height=360 + 22 * len(records), margin={"l": 40, "r": 10, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": -0.22, "yanchor": "top"})
    return fig
