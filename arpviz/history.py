"""Training histories: learning curves and the probe images' crops epoch by epoch.

A checkpoint written by :mod:`arpviz.train` keeps one row of metrics per epoch
(``meta.history``) and an :class:`~arpviz.checkpoint.EpochSnapshot` per epoch: the boxes, rates
and confidence maps of every pooled stage on a fixed set of probe images. :func:`load_record`
reads just that (no model is built), :func:`probe_images` renders the probe images as the network
saw them, and the ``*_figure`` functions draw plotly figures of it all.

Probe images are laid out as one mosaic (one image trace) with the boxes of a stage as one line
trace, so a figure stays small however many probes there are, and an animation over epochs only
swaps the box traces and captions.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from plotly.subplots import make_subplots
from safetensors import safe_open
from safetensors.torch import load as st_load

from arpviz.checkpoint import (
    MAX_BYTES,
    Checkpoint,
    CheckpointError,
    CheckpointMeta,
    EpochSnapshot,
    _parse_snapshots,
    read_meta,
)
from arpviz.data.synthbirds import SynthBirds
from arpviz.datasources import build, probe_batch, synth_config
from arpviz.figures import PALETTE

__all__ = [
    "METRICS",
    "BoxLayer",
    "TrainingRecord",
    "blank_images",
    "box_text",
    "comparison_figure",
    "comparison_pairs",
    "confidence_figure",
    "crop_center",
    "learning_curves",
    "load_record",
    "metric_columns",
    "probe_figure",
    "probe_images",
    "probe_images_or_blank",
    "rates_figure",
    "record_epochs",
    "record_from_checkpoint",
    "stage_colour",
    "stage_names",
    "stage_rows",
]

logger = logging.getLogger(__name__)

#: history keys the learning curves know, with their display names.
METRICS: dict[str, str] = {
    "train_loss": "train loss",
    "train_top1": "train top-1 %",
    "val_top1": "val top-1 %",
    "val_top5": "val top-5 %",
    "lr": "learning rate",
    "seconds": "seconds",
}
_RUN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
_SIDE_COLOURS = ("#ff7f0e", "#17becf")  # comparison: left run (ARP), right run (STN)
_CAPTION = 22  # mosaic rows reserved above each tile for its caption, in image pixels
_GAP = 6


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class TrainingRecord:
    """What a checkpoint says about its training (no model).

    Attributes:
        name: a display name (the file's stem unless given).
        meta: the checkpoint's metadata (``meta.history`` is the per-epoch metrics).
        snapshots: one :class:`EpochSnapshot` per recorded epoch, in epoch order.
        probe_labels: ``[P]`` labels of the probe images, or ``None``.
        path: the file, or ``None`` for bytes.
    """

    name: str
    meta: CheckpointMeta
    snapshots: tuple[EpochSnapshot, ...]
    probe_labels: np.ndarray | None
    path: Path | None = None

    def __post_init__(self) -> None:
        _check_record(self)

    @property
    def epochs(self) -> tuple[int, ...]:
        """Epochs with a snapshot, ascending."""
        return tuple(s.epoch for s in self.snapshots)

    @property
    def has_history(self) -> bool:
        """Whether there is anything to plot (metrics or snapshots)."""
        return bool(self.meta.history) or bool(self.snapshots)

    @property
    def conv4(self) -> str:
        """Conv4's downsampling of the local branch(es): stride, rp, arp or stn."""
        return self.meta.config.conv4

    @property
    def label(self) -> str:
        """A short description: name, backbone, branches, Conv3/Conv4 modes."""
        cfg = self.meta.config
        return (
            f"{self.name} ({cfg.backbone}, {cfg.local_branches} local, "
            f"Conv3 {cfg.conv3.upper()}, Conv4 {cfg.conv4.upper()}"
            f"{' bounded' if cfg.stn_bounded else ''})"
        )

    @property
    def probe_indices(self) -> tuple[int, ...]:
        """Indices of the probe images in the evaluation split."""
        return tuple(int(i) for i in self.meta.dataset.get("probe_indices", ()))

    @property
    def probe_count(self) -> int:
        """Probe images per snapshot (0 without snapshots)."""
        return int(self.snapshots[0].top5[0].shape[0]) if self.snapshots else 0

    def at(self, epoch: int) -> EpochSnapshot:
        """The snapshot of ``epoch``, or of the last epoch before it (the first if none)."""
        if not self.snapshots:
            raise ValueError(f"{self.name}: the checkpoint holds no epoch snapshots")
        best = self.snapshots[0]
        for snap in self.snapshots:
            if snap.epoch <= epoch:
                best = snap
        return best


def _check_record(record: TrainingRecord) -> None:
    """Raise :class:`CheckpointError` unless the history, probe indices and snapshots are
    well formed (numbers where numbers belong, one probe count, the documented shapes)."""
    name = record.name

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{name}: {what}")

    for i, row in enumerate(record.meta.history):
        if not isinstance(row, Mapping):
            raise bad(f"history row {i} is not an object")
        for key in ("epoch", *METRICS):
            value = row.get(key)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise bad(f"history row {i}: {key} is not a number ({value!r})")
        epoch = row.get("epoch", i + 1)  # absent: numbered by position, as the curves do
        if (isinstance(epoch, bool) or not isinstance(epoch, (int, float))
                or not math.isfinite(epoch)):
            raise bad(f"history row {i}: epoch must be a finite number, got {epoch!r}")
    indices = record.meta.dataset.get("probe_indices", ())
    if not isinstance(indices, (list, tuple)) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices):
        raise bad("dataset.probe_indices must be a list of ints >= 0")
    count = None
    widths = {"boxes": 4, "image_boxes": 4, "rates": 2}
    for snap in record.snapshots:
        indices_t, probs = snap.top5
        if indices_t.ndim != 2 or probs.shape != indices_t.shape:
            raise bad(f"snapshot {snap.epoch}: top-5 must be two [P, k] tensors")
        count = indices_t.shape[0] if count is None else count
        if indices_t.shape[0] != count:
            raise bad(f"snapshot {snap.epoch}: {indices_t.shape[0]} probes, earlier {count}")
        for stage, values in snap.stages.items():
            for field_name, width in widths.items():
                if tuple(values[field_name].shape) != (count, width):
                    raise bad(f"snapshot {snap.epoch}/{stage}: {field_name} must be "
                              f"[{count}, {width}], got {list(values[field_name].shape)}")
            conf = values["confidence"]
            if conf.ndim != 3 or conf.shape[0] != count or min(conf.shape) < 1:
                raise bad(f"snapshot {snap.epoch}/{stage}: confidence must be [{count}, h, w]")
    labels = record.probe_labels
    if labels is not None and count is not None and tuple(labels.shape) != (count,):
        raise bad(f"probe.labels must be [{count}], got {list(labels.shape)}")


def load_record(source: str | os.PathLike | bytes, name: str | None = None) -> TrainingRecord:
    """Read a checkpoint's metadata and epoch snapshots without building its model.

    Args:
        source: a ``.safetensors`` path, or the file's bytes.
        name: display name (default: the file's stem, or ``"upload"``).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a valid arpviz checkpoint (a ``ValueError``).
    """
    meta = read_meta(source)  # validates the header and the metadata
    tensors: dict[str, torch.Tensor] = {}
    path: Path | None = None
    if isinstance(source, (bytes, bytearray, memoryview)):
        try:
            everything = st_load(bytes(source))
        except Exception as exc:  # safetensors raises several types
            raise CheckpointError(f"checkpoint: corrupt safetensors data: {exc}") from exc
        tensors = {k: v for k, v in everything.items() if k.startswith(("snap.", "probe."))}
        label = name or "upload"
    else:
        path = Path(source)
        if path.stat().st_size > MAX_BYTES:
            raise CheckpointError(f"{path.name}: larger than the 2 GB limit")
        try:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                    if key.startswith(("snap.", "probe.")):
                        tensors[key] = handle.get_tensor(key)
        except Exception as exc:
            raise CheckpointError(f"{path.name}: corrupt safetensors data: {exc}") from exc
        label = name or path.stem
    snapshots = _parse_snapshots(tensors, label)
    labels = tensors.get("probe.labels")
    probe_labels = labels.numpy().astype(np.int64) if labels is not None else None
    logger.info("read %s: %d history rows, %d snapshots", label, len(meta.history), len(snapshots))
    return TrainingRecord(label, meta, snapshots, probe_labels, path)


def record_from_checkpoint(checkpoint: Checkpoint, name: str | None = None) -> TrainingRecord:
    """The :class:`TrainingRecord` of an already loaded checkpoint (shares its tensors)."""
    path = checkpoint.path
    labels = checkpoint.probe_labels
    return TrainingRecord(
        name or (path.stem if path is not None else "checkpoint"),
        checkpoint.meta,
        tuple(checkpoint.snapshots),
        labels.cpu().numpy().astype(np.int64) if labels is not None else None,
        path,
    )


def metric_columns(meta: CheckpointMeta) -> dict[str, list[float | None]]:
    """``meta.history`` as columns: ``epoch`` plus every key of :data:`METRICS` present."""
    rows = list(meta.history)
    out: dict[str, list[float | None]] = {"epoch": [float(r.get("epoch", i + 1))
                                                    for i, r in enumerate(rows)]}
    for key in METRICS:
        if any(key in r for r in rows):
            out[key] = [None if r.get(key) is None else float(r[key]) for r in rows]
    return out


def record_epochs(records: Sequence[TrainingRecord]) -> list[int]:
    """The epochs of ``records`` together (snapshots and history rows, numbered as
    :func:`metric_columns` numbers them), ascending; ``[1]`` when there are none."""
    epochs = {e for r in records for e in r.epochs}
    epochs |= {int(e) for r in records for e in metric_columns(r.meta)["epoch"]}
    return sorted(e for e in epochs if e > 0) or [1]


# ----------------------------------------------------------------------------- probe images


def crop_center(image: np.ndarray, size: int) -> np.ndarray:
    """Centre crop ``[H, W, C]`` to ``size x size`` exactly as torchvision's ``CenterCrop``."""
    height, width = image.shape[:2]
    if size > height or size > width:
        raise ValueError(f"cannot crop {size} px out of a {height} x {width} image")
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image[top : top + size, left : left + size]


def blank_images(count: int, size: int) -> np.ndarray:
    """``count`` light grey ``size x size`` tiles, to draw boxes on when images are missing."""
    return np.full((max(1, count), size, size, 3), 200, dtype=np.uint8)


def probe_images_or_blank(meta: CheckpointMeta, count: int) -> tuple[np.ndarray, str | None]:
    """:func:`probe_images`, or ``count`` blank tiles and the reason when they cannot be had."""
    try:
        images = probe_images(meta)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        logger.warning("probe images unavailable: %s", exc)
        return blank_images(count, meta.input_size), f"probe images unavailable: {exc}"
    if len(images) < count:
        note = f"the checkpoint names {len(images)} probe images for {count} snapshot rows"
        extra = blank_images(count - len(images), meta.input_size)
        return np.concatenate([images, extra]), note
    return images, None


def probe_images(meta: CheckpointMeta, indices: Sequence[int] | None = None) -> np.ndarray:
    """The probe images as the network saw them (after the eval resize and centre crop).

    SynthBirds images are rendered again from their seed (exact, no download); other data sets
    are read through their evaluation transform and the normalisation is undone.

    Returns:
        ``uint8 [P, S, S, 3]`` with ``S = meta.input_size``.

    Raises:
        ValueError: the record names no probe images, or the data set cannot be read.
    """
    record = dict(meta.dataset)
    if indices is None:
        indices = [int(i) for i in record.get("probe_indices", ())]
    if not indices:
        raise ValueError("the checkpoint names no probe images (dataset.probe_indices)")
    split = str(record.get("eval_split", "val"))
    size = meta.input_size
    if record.get("name") == "synthbirds":
        data = SynthBirds(synth_config(record, size), split)
        images = [crop_center(data.render(int(i)).image, size) for i in indices]
        return np.stack(images).astype(np.uint8)
    sources = build(record, size, eval_split=split)
    batch, _ = probe_batch(sources.val, [int(i) for i in indices])
    mean = torch.tensor(meta.mean).view(1, 3, 1, 1)
    std = torch.tensor(meta.std).view(1, 3, 1, 1)
    raw = (batch.float() * std + mean).clamp(0, 1).mul(255).round().byte()
    return raw.permute(0, 2, 3, 1).numpy()


# ----------------------------------------------------------------------------- helpers


def stage_names(snapshot: EpochSnapshot) -> tuple[str, ...]:
    """The snapshot's pooled stages, Conv3 first, then Conv4 of each branch in name order."""
    names = list(snapshot.stages)
    return tuple(sorted(names, key=lambda n: (not n.startswith("conv3"), n)))


def stage_colour(stage: str, index: int = 0) -> str:
    """The colour boxes of ``stage`` are drawn in."""
    return PALETTE.get(stage, _RUN_COLOURS[index % len(_RUN_COLOURS)])


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
        return f"#{self.probe} {self.mark} {_short(self.top_name, 14)} {self.prob:.0%}"

    def short(self, tag: str) -> str:
        return f"{tag} #{self.probe} {self.mark} {self.prob:.0%}"


def _prediction_caption(
    snapshot: EpochSnapshot, probe: int, labels: np.ndarray | None, class_names: Sequence[str]
) -> _Caption:
    indices, probs = snapshot.top5
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
                    f"label: {cname(label)}<br>" + hover, "#1a7f37" if ok else "#c62828")


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
    for i, stage in enumerate(stages):
        values = snapshot.stages.get(stage)
        if values is None:
            continue
        layers.append(BoxLayer(stage, values["image_boxes"].float().numpy(),
                               stage_colour(stage, i), _stage_info(values)))
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
        for i, stage in enumerate(stages):  # a trace per requested stage, even if empty
            layer = present.get(stage) or BoxLayer(stage, np.zeros((0, 4)),
                                                   stage_colour(stage, i))
            traces.append(mosaic.box_trace(layer))
        captions = []
        for t, p in enumerate(chosen):
            cap = _prediction_caption(s, p, record.probe_labels, names)
            captions.append(mosaic.caption(t, cap.long(), cap.hover, cap.colour))
        return traces, captions

    frames = [(str(s.epoch), s) for s in record.snapshots] if animate else []
    return _mosaic_figure(mosaic, tile_px, traces_and_captions, snap, frames,
                          record.epochs.index(snap.epoch))


def comparison_pairs(
    records: Sequence[TrainingRecord],
) -> list[tuple[TrainingRecord, TrainingRecord]]:
    """Pairs ``(ARP run, STN run)`` of MSGN runs with snapshots that share their probe images."""
    usable = [r for r in records if r.snapshots and r.meta.config.local_branches > 0]
    arp = [r for r in usable if r.conv4 == "arp"]
    stn = [r for r in usable if r.conv4 == "stn"]
    pairs = []
    for a in arp:
        for s in stn:
            if _same_probes(a, s):
                pairs.append((a, s))
    return pairs


def _same_probes(a: TrainingRecord, b: TrainingRecord) -> bool:
    da, db = dict(a.meta.dataset), dict(b.meta.dataset)
    return (
        a.meta.input_size == b.meta.input_size
        and da.get("name") == db.get("name")
        and da.get("config") == db.get("config")
        and da.get("eval_split", "val") == db.get("eval_split", "val")
        and a.probe_indices == b.probe_indices
        and bool(a.probe_indices)
    )


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
    colours = _SIDE_COLOURS

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
                cap = _prediction_caption(snap, p, run.probe_labels, run.meta.class_names)
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
                       line={"color": "#ff4d4d", "width": 2}, name=f"{stage} box",
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
                line={"color": _RUN_COLOURS[r % len(_RUN_COLOURS)],
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
    """Loss, top-1 (train and val; val top-5 dotted) and learning rate against epoch.

    Every run gets its own colour; ``epoch`` draws a marker line on each panel.
    """
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", "top-1 / top-5 (%)",
                                                        "learning rate"),
                        horizontal_spacing=0.07)
    for r, record in enumerate(records):
        cols = metric_columns(record.meta)
        colour = _RUN_COLOURS[r % len(_RUN_COLOURS)]
        epochs = cols["epoch"]
        panels = (
            ("train_loss", 1, "solid"), ("train_top1", 2, "dash"), ("val_top1", 2, "solid"),
            ("val_top5", 2, "dot"), ("lr", 3, "solid"),
        )
        for key, col, dash in panels:
            if key not in cols:
                continue
            fig.add_trace(
                go.Scatter(
                    x=epochs, y=cols[key], mode="lines+markers", name=f"{record.name}: "
                    f"{METRICS[key]}", legendgroup=record.name,
                    line={"color": colour, "dash": dash}, marker={"size": 5},
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
