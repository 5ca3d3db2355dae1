"""Figures of the Training page: learning curves and the probe images' crops epoch by epoch.

Built from :class:`~arpviz.explorer.catalog.TrainingRecord` (one per run) and the probe images
of :func:`~arpviz.explorer.inputs.probe_images`. Probe images are laid out as one mosaic (one
image trace) with the boxes of a stage as one line trace, so a figure stays small however many
probes there are, and an animation over epochs only swaps the box traces and captions.

Stages are named by :func:`arpviz.models.stages.stage_label` with the run's pooling mode
(:func:`stage_title`: ``"Conv4 local 0 (ARP)"``); sizes and rates read height x width.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import textwrap
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
from arpviz.models.stages import crop_text, mode_label, stage_label
from arpviz.palette import (
    CROP_SIZE,
    MARK,
    RIGHT,
    SIDES,
    WRONG,
    series_colour,
    stage_colour,
)
from arpviz.pooling import output_size

__all__ = [
    "STAGE_COLUMNS",
    "BoxLayer",
    "comparison_figure",
    "confidence_figure",
    "learning_curves",
    "probe_figure",
    "rates_figure",
    "run_label",
    "shared_stage_title",
    "stage_mode",
    "stage_rows",
    "stage_title",
    "tiles_figure",
]

logger = logging.getLogger(__name__)

_FONT = 11  # caption font size, screen pixels
_LINE_PX = 15  # screen pixels per caption line
_CHAR_PX = 6.2  # about one character of the caption font, screen pixels
_GAP_PX = 8  # screen pixels between tiles
_MAX_LINES = 3  # a caption wraps onto at most this many lines (the hover has all of it)


# ----------------------------------------------------------------------------- names


def stage_mode(record: TrainingRecord, stage: str) -> str:
    """The pooling mode ``stage`` ran with in ``record``'s model: Conv3's mode for ``conv3``,
    stride for the global branch, Conv4's mode for the local branches (or the one branch of a
    model without local branches)."""
    config = record.meta.config
    if stage == "conv3":
        return config.conv3
    if stage == "conv4.global":
        return "stride"
    return config.conv4


def stage_title(record: TrainingRecord, stage: str) -> str:
    """The name people read for ``stage`` of ``record``: ``"Conv4 local 0 (ARP)"``."""
    return stage_label(stage, stage_mode(record, stage))


def shared_stage_title(records: Sequence[TrainingRecord], stage: str) -> str:
    """``stage``'s name for several runs: with the mode when all the runs that pool it share
    it (``"Conv3 (ARP)"``; strided runs have no such stage to show), else without
    (``"Conv4 local 0"``)."""
    modes = {stage_mode(r, stage) for r in records} - {"stride"} or {"stride"}
    return stage_label(stage, modes.pop()) if len(modes) == 1 else stage_label(stage)


def run_label(record: TrainingRecord) -> str:
    """A run in one line: ``"name (tiny, 1 local branch, Conv3 ARP, Conv4 RP crop 0.7)"``."""
    cfg = record.meta.config
    branches = ("one branch" if cfg.local_branches == 0 else
                f"{cfg.local_branches} local branch{'es' if cfg.local_branches > 1 else ''}")
    conv4 = mode_label(cfg.conv4)
    if cfg.conv4_crop is not None:
        conv4 += f" crop {crop_text(cfg.conv4_crop)}"
    if cfg.conv4 == "stn" and cfg.stn_bounded:
        conv4 += " bounded"
    return (f"{record.name} ({cfg.backbone}, {branches}, Conv3 {mode_label(cfg.conv3)}, "
            f"Conv4 {conv4})")


def _wrap(text: str, tile_px: int, max_lines: int = _MAX_LINES) -> str:
    """``text`` wrapped to the width of a ``tile_px`` tile (``<br>`` between lines); past
    ``max_lines`` the last line ends in an ellipsis."""
    width = max(12, int(tile_px / _CHAR_PX))
    lines = textwrap.wrap(text, width) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1].rstrip() + "…"
    return "<br>".join(lines)


def _lines(text: str) -> int:
    return text.count("<br>") + 1


def _data_uri(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _size(box: Sequence[float]) -> str:
    """A box ``(x1, y1, x2, y2)``'s size as ``"h x w"``."""
    x1, y1, x2, y2 = box
    return f"{y2 - y1:.1f} x {x2 - x1:.1f}"


# ----------------------------------------------------------------------------- the mosaic


@dataclass(frozen=True)
class BoxLayer:
    """Boxes to draw on the tiles of a mosaic: one box per tile (``None``: leave it out)."""

    name: str
    boxes: np.ndarray  # [T, 4] image pixels
    colour: str
    info: Sequence[str] | None = None  # hover text per tile
    dash: str = "solid"
    group: str | None = None  # legend group: layers of one group share a legend entry
    legend: bool = True  # whether the layer has a legend entry


class _Mosaic:
    """Tiles of equal size in a grid, each with a caption strip of ``caption_lines`` lines above
    it; a tile is drawn ``tile_px`` screen pixels high."""

    def __init__(self, tiles: np.ndarray, cols: int, *, tile_px: int = 200,
                 caption_lines: int = 1) -> None:
        if tiles.ndim != 4 or tiles.shape[-1] != 3:
            raise ValueError(f"tiles must be [T, H, W, 3], got {tiles.shape}")
        self.count, self.height, self.width = tiles.shape[:3]
        self.tile_px = int(tile_px)
        units = self.height / self.tile_px  # image pixels per screen pixel
        self.strip = math.ceil((max(1, caption_lines) * _LINE_PX + 4) * units)
        self.gap = max(1, math.ceil(_GAP_PX * units))
        self.cols = max(1, min(cols, self.count))
        self.rows = -(-self.count // self.cols)
        self.pitch_x = self.width + self.gap
        self.pitch_y = self.height + self.strip + self.gap
        canvas = np.full(
            (self.rows * self.pitch_y, self.cols * self.pitch_x - self.gap, 3), 255,
            dtype=np.uint8,
        )
        for t in range(self.count):
            x0, y0 = self.origin(t)
            canvas[y0 : y0 + self.height, x0 : x0 + self.width] = tiles[t]
        self.canvas = canvas

    def origin(self, tile: int) -> tuple[int, int]:
        """Top-left pixel of ``tile`` on the canvas."""
        row, col = divmod(tile, self.cols)
        return col * self.pitch_x, row * self.pitch_y + self.strip

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
                f"{layer.name}<br>crop {_size((x1, y1, x2, y2))} px (height x width), "
                f"top-left at x {x1:.1f}, y {y1:.1f}"
                + (f"<br>{layer.info[t]}" if layer.info is not None else "")
            )
            text += [tip] * 5 + [None]
        return go.Scatter(
            x=xs, y=ys, mode="lines", name=layer.name, text=text,
            line={"color": layer.colour, "width": 2, "dash": layer.dash},
            hovertemplate="%{text}<extra></extra>", hoveron="points",
            legendgroup=layer.group or layer.name, showlegend=layer.legend,
        )

    def caption(self, tile: int, text: str, hover: str = "", colour: str = "#222") -> dict:
        x0, y0 = self.origin(tile)
        return {
            "x": x0 + self.width / 2, "y": y0 - 1, "xref": "x", "yref": "y", "text": text,
            "showarrow": False, "yanchor": "bottom", "valign": "bottom",
            "font": {"size": _FONT, "color": colour}, "hovertext": hover or None,
        }

    def layout(self, fig: go.Figure) -> None:
        """Axes for the canvas; the figure is tall enough for tiles of ``tile_px`` pixels."""
        px_per_unit = self.tile_px / self.height
        width_units = self.cols * self.pitch_x - self.gap
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

    def long(self, tile_px: int) -> str:
        """``#0 ✓ 53% <the full class name>``, wrapped to the tile."""
        if self.prob != self.prob:  # NaN: a re-ID probe, no prediction
            return _wrap(f"#{self.probe} {self.top_name}", tile_px)
        mark = f"{self.mark} " if self.mark else ""
        return _wrap(f"#{self.probe} {mark}{self.prob:.0%} {self.top_name}", tile_px)

    def short(self, tag: str) -> str:
        if self.prob != self.prob:
            return f"{tag} #{self.probe} {self.top_name}"
        mark = f"{self.mark} " if self.mark else ""
        return f"{tag} #{self.probe} {mark}{self.prob:.0%}"


def _caption_lines(record: TrainingRecord, tile_px: int) -> int:
    """Lines the longest caption of ``record``'s probes can take (any class as top-1)."""
    if record.is_reid:
        return 1
    names = record.meta.class_names or ("",)
    return max(_lines(_wrap(f"#00 ✓ 100% {name}", tile_px)) for name in names)


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
    h, w = values["confidence"].shape[1:]
    return [
        f"crop rate {r[0]:.2f} x {r[1]:.2f}; on the {h} x {w} map: {_size(b)}"
        for r, b in zip(rates, boxes, strict=True)
    ]


def _probe_layers(record: TrainingRecord, snapshot: EpochSnapshot,
                  stages: Sequence[str]) -> list[BoxLayer]:
    layers = []
    for stage in stages:
        values = snapshot.stages.get(stage)
        if values is None:
            continue
        layers.append(BoxLayer(stage_title(record, stage), values["image_boxes"].float().numpy(),
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
    return BoxLayer(layer.name, layer.boxes[list(chosen)], layer.colour, info, layer.dash,
                    layer.group, layer.legend)


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
    mosaic.layout(fig)
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
        captions: ``(text, hover, colour)`` per tile; ``text`` may hold ``<br>`` line breaks
            (the caption strip is as high as the caption with the most lines).
        tile_px: screen pixels of a tile's height.
    """
    if len(captions) != len(tiles):
        raise ValueError(f"captions must have one entry per tile ({len(tiles)}), "
                         f"got {len(captions)}")
    lines = max((_lines(c[0]) for c in captions), default=1)
    mosaic = _Mosaic(np.asarray(tiles), cols, tile_px=tile_px, caption_lines=lines)

    def draw(_: Any) -> tuple[list[go.Scatter], list[dict]]:
        return ([mosaic.box_trace(layer) for layer in layers],
                [mosaic.caption(t, *c) for t, c in enumerate(captions)])

    return _mosaic_figure(mosaic, draw, None, [], 0)


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

    Each caption gives the probe's top-1 class in full (wrapped), its probability and a
    ✓ / ✗ against the label (hover: the label and the top-5); a re-ID run's, the identity.

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
    mosaic = _Mosaic(images[chosen], cols, tile_px=tile_px,
                     caption_lines=_caption_lines(record, tile_px))
    names = record.meta.class_names

    def traces_and_captions(s: EpochSnapshot) -> tuple[list[go.Scatter], list[dict]]:
        layers = [_pick(layer, chosen) for layer in _probe_layers(record, s, stages)]
        present = {layer.name: layer for layer in layers}
        traces = []
        for stage in stages:  # a trace per requested stage, even if empty
            title = stage_title(record, stage)
            layer = present.get(title) or BoxLayer(title, np.zeros((0, 4)), stage_colour(stage))
            traces.append(mosaic.box_trace(layer))
        captions = []
        for t, p in enumerate(chosen):
            cap = _prediction_caption(s, p, record.probe_labels, names, record.is_reid)
            captions.append(mosaic.caption(t, cap.long(tile_px), cap.hover, cap.colour))
        return traces, captions

    frames = [(str(s.epoch), s) for s in record.snapshots] if animate else []
    return _mosaic_figure(mosaic, traces_and_captions, snap, frames,
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

    Each probe shows up twice, the ``left`` run's ``stage`` box (in ``SIDES[0]``) on the first
    tile and the ``right`` run's (``SIDES[1]``) on the second, each run's Conv3 box dotted in
    Conv3's colour (one legend entry when both runs pool Conv3 alike), and each run's prediction
    in the caption (its Conv4 mode's name, e.g. ``ARP #0 ✓ 53%``; hover: the classes).
    """
    chosen = _select(images, probes)
    tiles = np.repeat(images[chosen], 2, axis=0)
    mosaic = _Mosaic(tiles, 2 * max(1, cols), tile_px=tile_px)
    runs = (left, right)
    tags = tuple(mode_label(r.conv4) for r in runs)
    if tags[0] == tags[1]:
        tags = (left.name, right.name)
    same_conv3 = stage_mode(left, "conv3") == stage_mode(right, "conv3")

    def layer(run: TrainingRecord, side: int, stg: str, snap: EpochSnapshot) -> BoxLayer:
        values = snap.stages.get(stg)
        boxes = np.full((len(tiles), 4), np.nan)
        info: list[str] = [""] * len(tiles)
        if values is not None:
            per = values["image_boxes"].float().numpy()
            per_info = _stage_info(values)
            for t, p in enumerate(chosen):
                boxes[2 * t + side] = per[p]
                info[2 * t + side] = per_info[p]
        if stg == stage:
            return BoxLayer(f"{tags[side]} run: {stage_title(run, stg)}", boxes, SIDES[side],
                            info)
        if same_conv3:  # one meaning, one legend entry
            return BoxLayer(f"{stage_title(run, stg)}, both runs", boxes, stage_colour(stg),
                            info, "dot", group="conv3", legend=side == 0)
        return BoxLayer(f"{tags[side]} run: {stage_title(run, stg)}", boxes, stage_colour(stg),
                        info, ("dot", "dash")[side])

    def traces_and_captions(e: int) -> tuple[list[go.Scatter], list[dict]]:
        snaps = [run.at(e) for run in runs]
        traces = [mosaic.box_trace(layer(run, side, stg, snaps[side]))
                  for stg in [stage] + (["conv3"] if show_conv3 else [])
                  for side, run in enumerate(runs)]
        captions = []
        for side, run in enumerate(runs):
            for t, p in enumerate(chosen):
                cap = _prediction_caption(snaps[side], p, run.probe_labels,
                                          run.meta.class_names, run.is_reid)
                captions.append(mosaic.caption(
                    2 * t + side, cap.short(tags[side]),
                    f"{run.name} (epoch {snaps[side].epoch})<br>{cap.hover}", cap.colour))
        return traces, captions

    epochs = sorted(set(left.epochs) | set(right.epochs))
    active = max((i for i, e in enumerate(epochs) if e <= epoch), default=0)
    frames = [(str(e), e) for e in epochs] if animate else []
    return _mosaic_figure(mosaic, traces_and_captions, epoch, frames, active)


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
