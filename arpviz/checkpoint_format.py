"""The checkpoint format: what an arpviz checkpoint's header holds, and every check of it.

A checkpoint is one safetensors file (layout in :mod:`arpviz.checkpoint`, which reads and writes
it). Here: the format's name and version, the bounds of its input size, :class:`CheckpointMeta`
(the JSON in the header) and :class:`EpochSnapshot`, :class:`CheckpointError`, and the checks
that run before any tensor is read: :func:`looks_pickled` (a pickle or ``torch.save`` file,
refused unopened), :func:`parse_header` (the safetensors header: length, JSON, truncation, the
``arpviz`` metadata's format and version) and :func:`parse_meta` (every metadata value, checked
where it is read). :mod:`arpviz.checkpoint` re-exports the public names.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from torch import Tensor

from arpviz.models import MSGNConfig
from arpviz.validation import (
    check_flag,
    check_int,
    check_k,
    check_number,
    check_rate_pair,
    check_text,
)

__all__ = [
    "DATASET_FIELDS",
    "FORMAT",
    "MAX_INPUT_SIZE",
    "MIN_INPUT_SIZE",
    "RECIPE_FIELDS",
    "SNAPSHOT_FIELDS",
    "VERSION",
    "CheckpointError",
    "CheckpointMeta",
    "EpochSnapshot",
    "looks_pickled",
    "parse_header",
    "parse_meta",
]

FORMAT = "arpviz-msgn"
VERSION = 1
#: The input sizes (pixels a side) a checkpoint may have: the largest the app's pages and the
#: commands run (a ResNet-50 MSGN at 1024 px takes about 21 times the memory of one at 224).
MIN_INPUT_SIZE = 16
MAX_INPUT_SIZE = 1024
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


# ----------------------------------------------------------------------------- checks


def looks_pickled(data: bytes) -> bool:
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


def parse_header(data: bytes, name: str, total: int | None = None) -> dict[str, Any]:
    """Parse and check the safetensors header and the arpviz metadata, without the tensors.

    ``data`` is the file or at least its first ``8 + header length`` bytes; ``total`` is the
    file's size (default ``len(data)``), against which truncation is checked.
    """
    total = len(data) if total is None else total
    if total == 0:
        raise CheckpointError(f"{name}: the file is empty")
    if looks_pickled(data):
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
    if type(meta.get("version")) is not int or meta["version"] != VERSION:
        raise CheckpointError(
            f"{name}: checkpoint format version {meta.get('version')!r} is not supported "
            f"(this arpviz reads version {VERSION})"
        )
    return meta


def _text_list(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings, got {value!r}"[:200])
    return value


def _index_list(value: object, name: str) -> list[int]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of ints >= 0, got {value!r}"[:200])
    for i, v in enumerate(value):
        check_int(v, f"{name}[{i}]", low=0)
    return value


def _object(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object, got {type(value).__name__}")
    return value


def _sha256(value: object, name: str) -> str:
    if not (isinstance(value, str) and len(value) == 64
            and all(c in "0123456789abcdef" for c in value)):
        raise ValueError(f"{name} must be 64 lower-case hex digits, got {value!r}"[:200])
    return value


def _optional_k(value: object, name: str) -> float | None:
    if value is None:
        return None
    try:
        return check_k(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: {exc}") from None


_Check = Callable[[object, str], object]
_TEXT: _Check = check_text
_OPTIONAL_TEXT: _Check = partial(check_text, optional=True)
_FLAG: _Check = check_flag
_NUMBER: _Check = check_number
_COUNT: _Check = partial(check_int, low=0)
_LIMIT: _Check = partial(check_int, low=1, optional=True)

#: What each known ``dataset`` field must be (unknown fields pass: newer files stay readable).
DATASET_FIELDS: dict[str, _Check] = {
    "name": _TEXT, "title": _TEXT, "source": _TEXT, "eval_split": _TEXT, "root": _TEXT,
    "val_root": _TEXT, "weights_file": _TEXT, "conv3": _TEXT, "conv4": _TEXT,
    "keep_aspect": _FLAG, "fine_tuned": _FLAG, "weights_bytes": _COUNT,
    "weights_sha256": _sha256, "limit_val": _LIMIT, "probe_indices": _index_list,
    "conv3_k": _optional_k, "conv4_k": _optional_k,
    "dsr": lambda value, name: None if value is None else check_rate_pair(value, name),
    "arp_inserted": _text_list, "pooled_stages": _text_list, "config": _object,
}
#: What each known ``recipe`` field must be (those ``arpviz-train`` and ``arpviz-convert``
#: write).
RECIPE_FIELDS: dict[str, _Check] = {
    **dict.fromkeys(("epochs", "workers", "probes"), _COUNT),
    "seed": check_int,
    **dict.fromkeys(("batch_size", "image_size", "instances_per_id"),
                    partial(check_int, low=1)),
    **dict.fromkeys(("threads", "limit_train", "limit_val", "stop_after"), _LIMIT),
    **dict.fromkeys(("lr", "momentum", "weight_decay", "gamma", "warmup_lr",
                     "warmup_fraction", "localisation_lr_scale", "triplet_margin"), _NUMBER),
    **dict.fromkeys(("amp", "cache", "progress", "trained"), _FLAG),
    **dict.fromkeys(("device", "out", "schedule", "tool"), _TEXT),
    "pretrained": _OPTIONAL_TEXT, "model": _object, "dataset": _object,
}


def _check_fields(record: Mapping[str, Any], fields: Mapping[str, _Check], where: str) -> None:
    for key, check in fields.items():
        if key in record:
            check(record[key], f"{where}.{key}")


def _check_history(history: object) -> tuple[dict[str, Any], ...]:
    """The training history: objects whose ``epoch`` (when present; else the row's position) is
    an int >= 1, increasing row by row, and whose other values are finite numbers or null."""
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ValueError("history must be a list of objects")
    previous = 0
    for i, row in enumerate(history):
        for key, value in row.items():
            if key == "epoch" or value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"history row {i}: {key} is not a number ({value!r})"[:200])
            if not math.isfinite(value):
                raise ValueError(f"history row {i}: {key} is not a finite number ({value!r})")
        epoch = row.get("epoch", i + 1)  # absent: numbered by position, as the curves do
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"history row {i}: epoch must be a finite positive int, got "
                             f"{epoch!r}"[:200])
        if epoch <= previous:
            raise ValueError(f"history row {i}: epoch {epoch} comes after epoch {previous} "
                             "(epochs must increase)")
        previous = epoch
    return tuple(dict(h) for h in history)


def _input_size(value: object) -> int:
    size = int(check_int(value, "input size"))  # type: ignore[arg-type]
    if not MIN_INPUT_SIZE <= size <= MAX_INPUT_SIZE:
        raise ValueError(f"input size {size} is outside [{MIN_INPUT_SIZE}, {MAX_INPUT_SIZE}] "
                         f"(the largest input the app and the commands run is "
                         f"{MAX_INPUT_SIZE} px)")
    return size


def _stats(value: object, name: str) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) != 3:
        raise ValueError(f"input {name} must be 3 finite numbers, got {value!r}"[:200])
    return tuple(check_number(v, f"input {name}") for v in value)  # type: ignore[return-value]


def parse_meta(raw: Mapping[str, Any], name: str) -> CheckpointMeta:
    """Every value of the metadata checked where it is read: the config (its own checks, ``k``
    at most :data:`~arpviz.validation.K_MAX`), class names (strings, one per class), the input
    (an int size in ``[16, MAX_INPUT_SIZE]``, 3 finite means and 3 stds > 0), the history
    (:func:`_check_history`), the known ``dataset`` and ``recipe`` fields
    (:data:`DATASET_FIELDS`, :data:`RECIPE_FIELDS`; a recorded evaluation ``resize`` an int in
    ``[size, 2 size]``) and ``created`` (a string)."""
    try:
        config = MSGNConfig.from_dict(_object(raw["config"], "config"))
        inp = _object(raw["input"], "input")
        size = _input_size(inp.get("size"))
        mean, std = _stats(inp.get("mean"), "mean"), _stats(inp.get("std"), "std")
        if not all(s > 0 for s in std):
            raise ValueError(f"input std must be > 0, got {list(std)}")
        dataset = _object(raw.get("dataset", {}), "dataset")
        recipe = _object(raw.get("recipe", {}), "recipe")
        _check_fields(dataset, DATASET_FIELDS, "dataset")
        _check_fields(recipe, RECIPE_FIELDS, "recipe")
        if "resize" in dataset:
            check_int(dataset["resize"], "dataset.resize", low=size, high=2 * size)
        meta = CheckpointMeta(
            config=config,
            class_names=tuple(_text_list(raw["class_names"], "class_names")),
            input_size=size, mean=mean, std=std, recipe=dict(recipe),
            history=_check_history(raw.get("history", [])),
            dataset=dict(dataset),
            created=check_text(raw.get("created", ""), "created") or "",
        )
    except KeyError as exc:
        raise CheckpointError(f"{name}: invalid metadata: {exc} is missing") from exc
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise CheckpointError(f"{name}: invalid metadata: {' '.join(str(exc).split())[:300]}"
                              ) from exc
    if len(meta.class_names) != config.num_classes:
        raise CheckpointError(
            f"{name}: {len(meta.class_names)} class names for {config.num_classes} classes"
        )
    return meta
