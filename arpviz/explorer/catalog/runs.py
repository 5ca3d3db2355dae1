"""What a checkpoint says about its training, and which runs the Training page shows.

:class:`TrainingRecord` (read by :func:`load_record` through
:func:`arpviz.checkpoint.read_snapshots`, or :func:`record_from_checkpoint` of a loaded one; no
model is built), its history as columns (:func:`metric_columns`, :data:`METRICS`,
:func:`record_epochs`), a snapshot's stages (:func:`stage_names`); the choice of runs
(:func:`discover_runs`, :func:`unique_name`, :func:`default_runs`, :func:`comparison_pairs`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from arpviz.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointMeta,
    EpochSnapshot,
    read_snapshots,
)
from arpviz.explorer.catalog.sources import BUNDLED_DEFAULT

__all__ = [
    "METRICS",
    "TrainingRecord",
    "comparison_pairs",
    "default_runs",
    "discover_runs",
    "load_record",
    "metric_columns",
    "recipe_note",
    "record_epochs",
    "record_from_checkpoint",
    "stage_names",
    "unique_name",
]

logger = logging.getLogger(__name__)

#: history keys the learning curves know, with their display names.
METRICS: dict[str, str] = {
    "train_loss": "train loss",
    "train_top1": "train top-1 %",
    "val_top1": "val top-1 %",
    "val_top5": "val top-5 %",
    "mAP": "test mAP %",
    "rank1": "test rank-1 %",
    "rank5": "test rank-5 %",
    "rank10": "test rank-10 %",
    "lr": "learning rate",
    "seconds": "seconds",
}


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
    def is_reid(self) -> bool:
        """Whether the run is re-ID training (history: test ``mAP``/``rank1``; probes: query
        images of test identities, which the classifier never saw)."""
        from arpviz.reid import is_reid

        return is_reid(self.meta.dataset)

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
    read = read_snapshots(source)
    label = name or (read.path.stem if read.path is not None else "upload")
    labels = read.probe_labels
    probe_labels = labels.numpy().astype(np.int64) if labels is not None else None
    logger.info("read %s: %d history rows, %d snapshots", label, len(read.meta.history),
                len(read.snapshots))
    return TrainingRecord(label, read.meta, read.snapshots, probe_labels, read.path)


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


def stage_names(snapshot: EpochSnapshot) -> tuple[str, ...]:
    """The snapshot's pooled stages, Conv3 first, then Conv4 of each branch in name order."""
    names = list(snapshot.stages)
    return tuple(sorted(names, key=lambda n: (not n.startswith("conv3"), n)))


# ----------------------------------------------------------------------------- run choice


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


#: The training recipe's keys that make two runs' curves comparable (the schedule).
_SCHEDULE_KEYS = ("epochs", "lr", "warmup_fraction", "milestones", "schedule", "batch_size")


def _schedule(record: TrainingRecord) -> str:
    recipe = record.meta.recipe or {}
    epochs = recipe.get("epochs", "?")
    if recipe.get("schedule") == "cosine":
        decay = "cosine decay"
    else:
        points = recipe.get("milestones") or ()
        decay = ("lr x0.1 at " + ", ".join(f"{float(m):.0%}" for m in points)) if points else "step"
    return f"{epochs} epochs, {decay}"


def recipe_note(records: Sequence[TrainingRecord]) -> str | None:
    """A sentence saying that the runs were trained with different schedules (epochs, learning
    rate, warm-up, decay, batch), naming each; ``None`` when they share one (or there is one
    run): their curves and crops then compare like for like."""
    if len(records) < 2:
        return None
    keys = [tuple(repr((r.meta.recipe or {}).get(k)) for k in _SCHEDULE_KEYS) for r in records]
    if len(set(keys)) == 1:
        return None
    each = "; ".join(f"{r.name}: {_schedule(r)}" for r in records)
    return (f"These runs were trained with different schedules ({each}): where one ends is "
            "not where the other would, so their curves and crops are not a like-for-like "
            "comparison.")


def unique_name(name: str, fallback: str, taken: Mapping[str, Any]) -> str:
    """``name``, else ``fallback``, else ``fallback`` with a number: not a key of ``taken``."""
    if name not in taken:
        return name
    candidate, number = fallback, 2
    while candidate in taken:
        candidate, number = f"{fallback} #{number}", number + 1
    return candidate


def discover_runs(
    paths: Iterable[Path],
    read: Callable[[Path], TrainingRecord] = load_record,
    upload: tuple[Checkpoint, str] | None = None,
) -> tuple[dict[str, TrainingRecord], list[str]]:
    """Every checkpoint with a training history, keyed by a unique name, and the skipped ones.

    Args:
        paths: checkpoint files (see :func:`find_checkpoints`).
        read: reads one file's record (a page passes its cached :func:`load_record`).
        upload: an uploaded checkpoint and its label, listed after the files.

    Returns:
        ``({name: record}, ["file: why it was skipped", ...])``.
    """
    records: dict[str, TrainingRecord] = {}
    skipped: list[str] = []

    def add(record: TrainingRecord, fallback: str) -> None:
        name = unique_name(record.name, fallback, records)
        records[name] = record if name == record.name else replace(record, name=name)

    for path in paths:
        try:
            record = read(path)
        except (CheckpointError, OSError) as exc:
            skipped.append(f"{path.name}: {exc}")
            continue
        if not record.has_history:
            skipped.append(f"{path.name}: no training history")
            continue
        add(record, f"{record.name} ({path.parent})")
    if upload is not None:
        checkpoint, label = upload
        try:
            record = record_from_checkpoint(checkpoint, label)
        except CheckpointError as exc:
            skipped.append(f"{label}: {exc}")
        else:
            if record.has_history:
                add(record, f"{record.name} (upload)")
    return records, skipped


def default_runs(
    records: Mapping[str, TrainingRecord], current: Path | str | None = None
) -> list[str]:
    """The runs a page shows first: ``current`` (a checkpoint path, or an upload's label) when
    it has a history, else the bundled default, else the first; with its ARP or STN
    counterpart when there is one (the comparison then shows at once)."""
    if not records:
        raise ValueError("records must not be empty")
    first = _first_run(records, current)
    for arp, stn in comparison_pairs(list(records.values())):
        if first in (arp.name, stn.name):
            return [arp.name, stn.name]
    return [first]


def _first_run(records: Mapping[str, TrainingRecord], current: Path | str | None) -> str:
    if isinstance(current, Path):
        for name, record in records.items():
            if record.path is not None and Path(record.path).resolve() == current.resolve():
                return name
    elif isinstance(current, str) and current in records and records[current].path is None:
        return current
    for name, record in records.items():
        if record.path is not None and Path(record.path).name == BUNDLED_DEFAULT:
            return name
    return next(iter(records))
