"""Safe checkpoints: one safetensors file, metadata as JSON in its header, no pickle anywhere.

Layout of a checkpoint file (``*.safetensors``):

- tensors ``model.<state-dict key>``: the MSGN weights and buffers;
- tensors ``snap.<epoch>.<stage>.<field>``: the epoch snapshots (see :class:`EpochSnapshot`);
- tensor ``probe.labels``: the probe images' labels;
- header metadata ``arpviz``: a JSON object with ``format`` (``"arpviz-msgn"``), ``version``,
  ``config`` (:class:`~arpviz.models.MSGNConfig`), ``class_names``, ``input`` (size, mean, std),
  ``recipe``, ``history`` (one dict per epoch), ``dataset`` (name, its config and how to get
  the probe images back) and ``created``.

This module is the only reader and writer of these files: :func:`save`, :func:`load` (the
model), :func:`read_meta` (the header only), :func:`read_snapshots` (metadata, snapshots and
probe labels without the weights) and :func:`file_digest` (a file's SHA-256). :func:`load`
reads the file with ``safetensors`` only (never ``pickle``/``torch.load``), checks every part,
and raises :class:`CheckpointError` (a ``ValueError``) saying what is wrong. What the header
holds and how each value is checked (:class:`CheckpointMeta`, :class:`EpochSnapshot`,
:data:`MAX_INPUT_SIZE`, ...) lives in :mod:`arpviz.checkpoint_format` and is re-exported here.
Optimizer state for resuming lives beside it (:func:`save_training_state`), also safetensors.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from arpviz.checkpoint_format import (
    DATASET_FIELDS,
    FORMAT,
    MAX_INPUT_SIZE,
    MIN_INPUT_SIZE,
    RECIPE_FIELDS,
    SNAPSHOT_FIELDS,
    VERSION,
    CheckpointError,
    CheckpointMeta,
    EpochSnapshot,
    looks_pickled,
    parse_header,
    parse_meta,
)
from arpviz.models import MSGN, MSGNConfig
from arpviz.validation import check_device
from arpviz.weights_catalog import file_sha256

__all__ = [
    "DATASET_FIELDS",
    "FORMAT",
    "MAX_BYTES",
    "MAX_INPUT_SIZE",
    "MIN_INPUT_SIZE",
    "RECIPE_FIELDS",
    "SNAPSHOT_FIELDS",
    "VERSION",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMeta",
    "EpochSnapshot",
    "SnapshotRecord",
    "file_digest",
    "load",
    "load_training_state",
    "read_meta",
    "read_snapshots",
    "save",
    "save_training_state",
]

logger = logging.getLogger(__name__)

#: The largest checkpoint file read (bytes).
MAX_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode, on the requested device) and its record."""

    model: MSGN
    meta: CheckpointMeta
    snapshots: tuple[EpochSnapshot, ...]
    probe_labels: Tensor | None
    path: Path | None = None

    @property
    def config(self) -> MSGNConfig:
        """The model's configuration."""
        return self.meta.config


# ----------------------------------------------------------------------------- saving


def _snapshot_tensors(snapshots: tuple[EpochSnapshot, ...]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for snap in snapshots:
        prefix = f"snap.{snap.epoch:04d}"
        for stage, values in snap.stages.items():
            for name in SNAPSHOT_FIELDS:
                tensor = values[name].detach().cpu()
                if name == "confidence":
                    tensor = tensor.half()
                out[f"{prefix}.{stage}.{name}"] = tensor.contiguous().clone()
        out[f"{prefix}.top5.indices"] = snap.top5[0].detach().cpu().long().clone()
        out[f"{prefix}.top5.probs"] = snap.top5[1].detach().cpu().float().clone()
    return out


def save(
    path: str | os.PathLike,
    model: MSGN,
    meta: CheckpointMeta,
    snapshots: tuple[EpochSnapshot, ...] = (),
    probe_labels: Tensor | None = None,
) -> Path:
    """Write ``model``'s weights, ``meta`` and ``snapshots`` to one safetensors file.

    The file is written to a temporary name and renamed, so a crash never leaves half a file
    under ``path``.
    """
    if not isinstance(model, MSGN):
        raise TypeError(f"model must be an MSGN, got {type(model).__name__}")
    if model.config != meta.config:
        raise ValueError("meta.config must equal model.config")
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update(_snapshot_tensors(tuple(snapshots)))
    if probe_labels is not None:
        tensors["probe.labels"] = probe_labels.detach().cpu().long().contiguous()
    meta = meta if meta.created else _with_created(meta)
    data = st_save(tensors, metadata={"arpviz": meta.to_json()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    logger.info("saved checkpoint %s (%.1f MB)", path, len(data) / 1e6)
    return path


def _with_created(meta: CheckpointMeta) -> CheckpointMeta:
    from dataclasses import replace

    return replace(meta, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


# ----------------------------------------------------------------------------- loading


def _checked_file(source: str | os.PathLike) -> Path:
    """``source`` as a path to an existing file within the size limit."""
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"path must be a path or bytes, got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise CheckpointError(f"{path.name}: {size / 1e9:.1f} GB is larger than the 2 GB limit")
    return path


def _read_bytes(source: str | os.PathLike | bytes) -> tuple[bytes, Path | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    path = _checked_file(source)
    return path.read_bytes(), path




def _read_head(path: Path) -> tuple[bytes, int]:
    """The first bytes of a file up to the end of its safetensors header, and the file's size."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        header_len = int.from_bytes(head, "little") if len(head) == 8 else 0
        # the header when its length is sane, else a few bytes for the error message's checks
        head += handle.read(header_len if 0 < header_len <= 100 * 1024**2 else 8)
    return head, size


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes (read in 1 MiB blocks): a checkpoint's identity in
    caches and records."""
    if not Path(path).is_file():  # a FIFO or /dev/zero would never end
        raise FileNotFoundError(f"no checkpoint file at {path}")
    return file_sha256(path)


def read_meta(path: str | os.PathLike | bytes) -> CheckpointMeta:
    """Read and check only the metadata of a checkpoint (cheap: no model is built).

    A file is read only up to the end of its safetensors header (the tensors stay on disk);
    bytes are checked whole.
    """
    if isinstance(path, (bytes, bytearray, memoryview)):
        data = bytes(path)
        return parse_meta(parse_header(data, "checkpoint"), "checkpoint")
    file = _checked_file(path)
    head, size = _read_head(file)
    return parse_meta(parse_header(head, file.name, size), file.name)


def _parse_snapshots(tensors: Mapping[str, Tensor], name: str) -> tuple[EpochSnapshot, ...]:
    grouped: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith("snap."):
            continue
        parts = key.split(".")
        try:
            epoch = int(parts[1])
        except (IndexError, ValueError) as exc:
            raise CheckpointError(f"{name}: bad snapshot key {key!r}") from exc
        if len(parts) < 4 or epoch < 1:
            raise CheckpointError(f"{name}: bad snapshot key {key!r}")
        entry = grouped.setdefault(epoch, {"stages": {}, "top5": {}})
        if parts[2] == "top5":
            entry["top5"][parts[3]] = value
        else:
            stage, fld = ".".join(parts[2:-1]), parts[-1]
            entry["stages"].setdefault(stage, {})[fld] = value.float() if fld == "confidence" \
                else value
    out = []
    for epoch in sorted(grouped):
        entry = grouped[epoch]
        if set(entry["top5"]) != {"indices", "probs"}:
            raise CheckpointError(f"{name}: snapshot of epoch {epoch} lacks its top-5")
        for stage, values in entry["stages"].items():
            if set(values) != set(SNAPSHOT_FIELDS):
                raise CheckpointError(f"{name}: snapshot {epoch}/{stage} lacks fields")
        out.append(EpochSnapshot(epoch, entry["stages"],
                                 (entry["top5"]["indices"], entry["top5"]["probs"])))
    return tuple(out)


@dataclass(frozen=True)
class SnapshotRecord:
    """A checkpoint's metadata, epoch snapshots and probe labels, read without the weights."""

    meta: CheckpointMeta
    snapshots: tuple[EpochSnapshot, ...]
    probe_labels: Tensor | None
    path: Path | None = None


def read_snapshots(path: str | os.PathLike | bytes) -> SnapshotRecord:
    """Read and check a checkpoint's metadata and epoch snapshots (no model is built).

    A file is opened with ``safetensors.safe_open`` and only the ``snap.*`` and ``probe.*``
    tensors are read (the weights stay on disk); bytes are parsed whole.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a valid arpviz checkpoint.
    """
    meta = read_meta(path)
    wanted = ("snap.", "probe.")
    tensors: dict[str, Tensor] = {}
    file: Path | None = None
    if isinstance(path, (bytes, bytearray, memoryview)):
        name = "checkpoint"
        try:
            everything = st_load(bytes(path))
        except (SafetensorError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{name}: corrupt safetensors data: {exc}") from exc
        tensors = {k: v for k, v in everything.items() if k.startswith(wanted)}
    else:
        file = _checked_file(path)
        name = file.name
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                    if key.startswith(wanted):
                        tensors[key] = handle.get_tensor(key)
        except Exception as exc:  # safetensors raises several types
            raise CheckpointError(f"{name}: corrupt safetensors data: {exc}") from exc
    snapshots = _parse_snapshots(tensors, name)
    return SnapshotRecord(meta, snapshots, tensors.get("probe.labels"), file)


def load(
    path: str | os.PathLike | bytes, device: str | torch.device = "cpu"
) -> Checkpoint:
    """Load and validate a checkpoint written by :func:`save`; never unpickles anything.

    Args:
        path: a file path, or the file's bytes (an upload, say).
        device: where the model goes.

    Returns:
        :class:`Checkpoint` with the model in eval mode.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: (a ``ValueError``) empty, truncated, pickle, foreign format, unknown
            version, invalid metadata, missing or unexpected weights, mismatched shapes.
    """
    device = check_device(device)
    data, file = _read_bytes(path)
    name = file.name if file else "checkpoint"
    meta = parse_meta(parse_header(data, name), name)
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{name}: corrupt safetensors data: {exc}") from exc
    # the shapes the config implies, from a model on the meta device (no memory, no init):
    # a header whose config asks for huge layers is refused before anything is allocated
    with torch.device("meta"):
        expected = MSGN(meta.config).state_dict()
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{name}: weights do not fit {meta.config.backbone} MSGN: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    wrong = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise CheckpointError(f"{name}: mismatched shapes: {wrong[:5]}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{name}: non-finite weights in {bad[:5]}")
    model = MSGN(meta.config)
    model.load_state_dict(state)
    model.eval().to(device)
    snapshots = _parse_snapshots(tensors, name)
    return Checkpoint(model, meta, snapshots, tensors.get("probe.labels"), file)


# ----------------------------------------------------------------------------- resume state


def save_training_state(
    path: str | os.PathLike, optimizer: torch.optim.Optimizer, model: torch.nn.Module,
    info: Mapping[str, Any],
) -> Path:
    """Save SGD momentum buffers (by parameter name) and ``info`` (JSON) for resuming."""
    names = {id(p): n for n, p in model.named_parameters()}
    tensors = {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            buf = optimizer.state.get(param, {}).get("momentum_buffer")
            if buf is not None:
                tensors[f"momentum.{names[id(param)]}"] = buf.detach().cpu().contiguous()
    payload = json.dumps(dict(info), allow_nan=False)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(st_save(tensors, metadata={"arpviz-train": payload}))
    os.replace(tmp, path)
    return path


def load_training_state(
    path: str | os.PathLike, optimizer: torch.optim.Optimizer, model: torch.nn.Module
) -> dict[str, Any]:
    """Restore momentum buffers saved by :func:`save_training_state`; returns its ``info``."""
    data, file = _read_bytes(path)
    name = file.name if file else "state"
    if looks_pickled(data):
        raise CheckpointError(f"{name}: a pickle file; arpviz never unpickles files")
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        raw = json.loads(data[8 : 8 + header_len])["__metadata__"]["arpviz-train"]
        info = json.loads(raw)
    except (SafetensorError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{name}: not an arpviz training state: {exc}") from exc
    params = dict(model.named_parameters())
    for key, value in tensors.items():
        pname = key[len("momentum."):]
        if pname not in params or params[pname].shape != value.shape:
            raise CheckpointError(f"{name}: momentum for unknown or mismatched {pname!r}")
        param = params[pname]
        optimizer.state[param]["momentum_buffer"] = value.to(param.device, param.dtype)
    return info
