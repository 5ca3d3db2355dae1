"""Safe checkpoints: one safetensors file, metadata as JSON in its header, no pickle anywhere.

Layout of a checkpoint file (``*.safetensors``):

- tensors ``model.<state-dict key>``: the MSGN weights and buffers;
- tensors ``snap.<epoch>.<stage>.<field>``: the epoch snapshots (see :class:`EpochSnapshot`);
- tensor ``probe.labels``: the probe images' labels;
- header metadata ``arpviz``: a JSON object with ``format`` (``"arpviz-msgn"``), ``version``,
  ``config`` (:class:`~arpviz.models.MSGNConfig`), ``class_names``, ``input`` (size, mean, std),
  ``recipe``, ``history`` (one dict per epoch), ``dataset`` (name, its config and how to get
  the probe images back) and ``created``.

:func:`load` reads the file with ``safetensors`` only (never ``pickle``/``torch.load``), checks
every part, and raises :class:`CheckpointError` (a ``ValueError``) saying what is wrong.
Optimizer state for resuming lives beside it (:func:`save_training_state`), also safetensors.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from arpviz.models import MSGN, MSGNConfig
from arpviz.validation import check_device
from arpviz.weights import file_sha256

__all__ = [
    "FORMAT",
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

FORMAT = "arpviz-msgn"
VERSION = 1
MAX_BYTES = 2 * 1024**3
SNAPSHOT_FIELDS = ("boxes", "image_boxes", "rates", "confidence")


class CheckpointError(ValueError):
    """The file is not a valid arpviz checkpoint (the message says why)."""


@dataclass(frozen=True)
class EpochSnapshot:
    """What the probe images looked like after one epoch.

    Attributes:
        epoch: 1-based epoch number.
        stages: per pooled stage name, a dict with ``boxes`` ``[P, 4]`` (stage input map),
            ``image_boxes`` ``[P, 4]`` (image pixels), ``rates`` ``[P, 2]`` and ``confidence``
            ``[P, h, w]`` (float16).
        top5: ``(indices [P, 5] int64, probabilities [P, 5] float32)``.
    """

    epoch: int
    stages: Mapping[str, Mapping[str, Tensor]]
    top5: tuple[Tensor, Tensor]


@dataclass(frozen=True)
class CheckpointMeta:
    """The JSON part of a checkpoint."""

    config: MSGNConfig
    class_names: tuple[str, ...]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    recipe: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[Mapping[str, Any], ...] = ()
    dataset: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""
    version: int = VERSION

    def to_json(self) -> str:
        """The header JSON."""
        return json.dumps(
            {
                "format": FORMAT,
                "version": self.version,
                "config": self.config.to_dict(),
                "class_names": list(self.class_names),
                "input": {"size": self.input_size, "mean": list(self.mean), "std": list(self.std)},
                "recipe": dict(self.recipe),
                "history": [dict(h) for h in self.history],
                "dataset": dict(self.dataset),
                "created": self.created,
            },
            allow_nan=False,
        )


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


def _looks_pickled(data: bytes) -> bool:
    """A pickle (protocol 2+) or torch.save zip, and not a safetensors header starting 0x80."""
    if data[8:9] == b"{":  # safetensors: 8-byte length, then the JSON header
        return False
    return data.startswith(b"PK\x03\x04") or (data[:1] == b"\x80" and data[1:2] in
                                                b"\x02\x03\x04\x05")


_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
               (b"GIF8", "a GIF image"), (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"),
               (b"MM\x00*", "a TIFF image"), (b"%PDF", "a PDF document"),
               (b"\x1f\x8b", "a gzip archive"))


def _what_it_is(data: bytes) -> str:
    """What a file that is not safetensors looks like, for the error message."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP image"
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    if data[:1] in (b"(", b"c", b"]", b"}", b"I", b"S", b"V") and data.rstrip().endswith(b"."):
        return "it looks like a text pickle; arpviz never unpickles files"
    return "bad header length"


def _header(data: bytes, name: str, total: int | None = None) -> dict[str, Any]:
    """Parse and check the safetensors header and the arpviz metadata, without the tensors.

    ``data`` is the file or at least its first ``8 + header length`` bytes; ``total`` is the
    file's size (default ``len(data)``), against which truncation is checked.
    """
    total = len(data) if total is None else total
    if total == 0:
        raise CheckpointError(f"{name}: the file is empty")
    if _looks_pickled(data):
        raise CheckpointError(
            f"{name}: this is a pickle / torch.save file; arpviz never unpickles files, "
            "it reads only .safetensors checkpoints written by arpviz"
        )
    if total < 8 or len(data) < 8:
        raise CheckpointError(f"{name}: truncated (no safetensors header)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len <= 0 or header_len > 100 * 1024**2:
        raise CheckpointError(f"{name}: not a safetensors file ({_what_it_is(data)})")
    if 8 + header_len > min(total, len(data)):
        raise CheckpointError(f"{name}: truncated (the header runs past the end of the file)")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{name}: not a safetensors file (header is not JSON)") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: not a safetensors file (header is not an object)")
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items()
                   if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v),
                  default=0)
        metadata = header.get("__metadata__") or {}
        raw = metadata.get("arpviz") if isinstance(metadata, dict) else None
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise CheckpointError(f"{name}: malformed safetensors header ({exc})") from exc
    if 8 + header_len + end > total:
        raise CheckpointError(f"{name}: truncated ({total} bytes, the header needs more)")
    if not isinstance(raw, str):
        raise CheckpointError(f"{name}: a safetensors file, but not an arpviz checkpoint")
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{name}: the arpviz metadata is not valid JSON") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{name}: not an arpviz checkpoint (format {found!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{name}: checkpoint format version {meta.get('version')!r} is not supported "
            f"(this arpviz reads version {VERSION})"
        )
    return meta


def _parse_meta(raw: Mapping[str, Any], name: str) -> CheckpointMeta:
    history = raw.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise CheckpointError(f"{name}: invalid metadata: history must be a list of objects")
    if not isinstance(raw.get("dataset", {}), dict) or not isinstance(raw.get("recipe", {}), dict):
        raise CheckpointError(f"{name}: invalid metadata: dataset and recipe must be objects")
    try:
        config = MSGNConfig.from_dict(raw["config"])
        inp = raw["input"]
        meta = CheckpointMeta(
            config=config,
            class_names=tuple(str(c) for c in raw["class_names"]),
            input_size=int(inp["size"]),
            mean=tuple(float(v) for v in inp["mean"]),
            std=tuple(float(v) for v in inp["std"]),
            recipe=dict(raw.get("recipe", {})),
            history=tuple(dict(h) for h in raw.get("history", [])),
            dataset=dict(raw.get("dataset", {})),
            created=str(raw.get("created", "")),
        )
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise CheckpointError(f"{name}: invalid metadata: {type(exc).__name__}: "
                              f"{str(exc)[:200]}") from exc
    if len(meta.class_names) != config.num_classes:
        raise CheckpointError(
            f"{name}: {len(meta.class_names)} class names for {config.num_classes} classes"
        )
    if (len(meta.mean) != 3 or len(meta.std) != 3 or not all(s > 0 for s in meta.std)
            or not all(math.isfinite(v) for v in meta.mean + meta.std)):
        raise CheckpointError(f"{name}: input mean/std must be 3 finite numbers (std > 0)")
    if not 16 <= meta.input_size <= 4096:
        raise CheckpointError(f"{name}: input size {meta.input_size} out of range [16, 4096]")
    return meta


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
        return _parse_meta(_header(data, "checkpoint"), "checkpoint")
    file = _checked_file(path)
    head, size = _read_head(file)
    return _parse_meta(_header(head, file.name, size), file.name)


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
    meta = _parse_meta(_header(data, name), name)
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
    if _looks_pickled(data):
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
