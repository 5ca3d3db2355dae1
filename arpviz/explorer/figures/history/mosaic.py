"""The probe images' mosaic: tiles in a grid, each with a caption strip, and boxes drawn on them
(:class:`BoxLayer`), as one image trace and one line trace per layer, so a figure stays small
however many tiles there are and an animation over epochs only swaps the box traces and
captions. :func:`tiles_figure` (shared with the Retrieval figures), :func:`probe_figure` (a
run's probes at an epoch) and :func:`comparison_figure` (two runs side by side).
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image

from arpviz.checkpoint import EpochSnapshot
from arpviz.explorer.catalog import TrainingRecord, stage_names
from arpviz.explorer.figures.history.names import _size, stage_mode, stage_title
from arpviz.models.stages import mode_label
from arpviz.palette import RIGHT, SIDES, WRONG, stage_colour
from arpviz.text import figure_text

__all__ = ["BoxLayer", "comparison_figure", "probe_figure", "tiles_figure"]

_FONT = 11  # caption font size, screen pixels
_LINE_PX = 15  # screen pixels per caption line
_CHAR_PX = 6.2  # about one character of the caption font, screen pixels
_GAP_PX = 8  # screen pixels between tiles
_MAX_LINES = 3  # a caption wraps onto at most this many lines (the hover has all of it)


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
        return figure_text(class_names[i]) if 0 <= i < len(class_names) else str(i)

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
