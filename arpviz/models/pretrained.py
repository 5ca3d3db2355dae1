"""Initialise MSGN from torchvision ImageNet weights.

A torchvision weights name is used from the torch hub cache (``torch.hub.get_dir()/checkpoints``,
:mod:`arpviz.weights`); it is downloaded only on request (:func:`fetch_pretrained`, which
``arpviz-train --download`` calls). Files are read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor

from arpviz.models.config import MSGNConfig
from arpviz.models.msgn import MSGN
from arpviz.weights import Progress, WeightsEntry, ensure_weights, resolve_weights

__all__ = [
    "cached_weights_path",
    "fetch_pretrained",
    "from_torchvision",
    "load_backbone_state_dict",
    "pretrained_entry",
    "read_state_dict",
]

logger = logging.getLogger(__name__)

_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")


def cached_weights_path(weights: Enum) -> Path:
    """Where ``torch.hub`` keeps ``weights``' file (it may not exist).

    ``weights`` is a torchvision weights enum member (``get_weight("ResNet50_Weights.DEFAULT")``).
    """
    filename = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _looks_like_path(weights: object) -> bool:
    if isinstance(weights, os.PathLike):
        return True
    if not isinstance(weights, str):
        return False
    return (
        os.path.exists(weights)
        or weights.lower().endswith(_FILE_SUFFIXES)
        or os.sep in weights
        or "/" in weights
    )


def pretrained_entry(backbone: str, weights: object) -> WeightsEntry | None:
    """The torchvision weights ``weights`` names for ``backbone``
    (:func:`arpviz.weights.resolve_weights`), or ``None`` when ``weights`` is a file path.

    Raises:
        ValueError: a name ``backbone`` has no weights of, or weights of another architecture.
        TypeError: neither a name, an enum member nor a path.
    """
    if _looks_like_path(weights):
        return None
    if not isinstance(weights, (str, Enum)):
        raise TypeError(
            "weights must be a torchvision weights enum, its name, or a state dict path; "
            f"got {type(weights).__name__}"
        )
    try:
        return resolve_weights(backbone, weights)
    except ValueError as exc:
        text = str(exc).replace(" is not a torchvision", " is neither a file nor a torchvision")
        raise ValueError(text) from None


def fetch_pretrained(backbone: str, weights: object, *,
                     progress: Progress | None = None) -> Path | None:
    """Download the torchvision weights ``weights`` names for ``backbone`` into the torch cache
    unless they are there (:func:`arpviz.weights.download_weights`: checksum verified); returns
    the cached file, or ``None`` for a file path (nothing to fetch).

    Raises:
        ValueError: not a weights name of ``backbone``.
        arpviz.weights.WeightsError: the download failed (nothing is left in the cache).
    """
    entry = pretrained_entry(backbone, weights)
    if entry is None:
        return None
    return ensure_weights(backbone, entry.name, download=True, progress=progress)


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"RIFF", "a RIFF file (WebP image?)"),
    (b"%PDF", "a PDF document"),
)
_NOT_STATE_DICT = "is not a PyTorch state dict"


def _sniff(path: Path) -> str | None:
    """What a file is when its first bytes say so plainly (an image, a safetensors file)."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 27:
        return "a safetensors file (an arpviz checkpoint? open it in the app or arpviz-explain)"
    return None


def _load_failure(exc: Exception) -> str:
    """One line on why ``torch.load(weights_only=True)`` refused or failed."""
    text = str(exc)
    code = re.search(r"GLOBAL ([\w.]+)", text)
    if code:
        return (f"holds Python objects other than tensors ({code.group(1)}), refused by the "
                "weights-only loader; nothing in it was run")
    if text.startswith("Weights only load failed"):
        detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
        reason = detail.group(1).strip()[:200] if detail else "unsupported content"
        return (f"{_NOT_STATE_DICT} the weights-only loader accepts ({reason}); nothing was "
                "run")
    first = (text.strip().splitlines() or [type(exc).__name__])[0][:200]
    return f"{_NOT_STATE_DICT} (truncated or damaged?): {first}"


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a saved state dict safely: ``torch.load(..., weights_only=True)``, never code.

    A ``{"state_dict": {...}}`` or ``{"model": {...}}`` wrapper (one key) is unwrapped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an empty, truncated or unreadable file, a pickle that would run code (refused
            by the weights-only unpickler, never executed), or not a mapping of tensors; the
            message is one line naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no state dict file at {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path.name} {_NOT_STATE_DICT}: the file is empty")
    what = _sniff(path)
    if what is not None:
        raise ValueError(f"{path.name} {_NOT_STATE_DICT}: it is {what}")
    try:
        with warnings.catch_warnings():  # the weights-only unpickler warns on old protocols
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of an untrusted file is one message
        failure = _load_failure(exc)
        raise ValueError(f"{path.name} {failure}" if failure.startswith(_NOT_STATE_DICT)
                         else f"{path.name}: {failure}") from None
    if isinstance(state, Mapping) and len(state) == 1:  # {"state_dict": ...} / {"model": ...}
        (only,) = state.values()
        if isinstance(only, Mapping):
            state = only
    if not isinstance(state, Mapping) or not state or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise ValueError(f"{path.name} {_NOT_STATE_DICT}: it does not hold a state dict of "
                         "tensors")
    return dict(state)


def _backbone_state(backbone: str, weights: object) -> dict[str, Tensor]:
    entry = pretrained_entry(backbone, weights)
    if entry is None:
        return read_state_dict(weights)  # type: ignore[arg-type]
    path = entry.cache_path
    if not path.is_file():
        raise FileNotFoundError(
            f"{entry.name} is not in the torch hub cache ({path}); arpviz downloads only on "
            f"request: add --download to arpviz-train (or call arpviz.models.pretrained."
            f"fetch_pretrained), or download {entry.url} and put it at {path} (set TORCH_HOME "
            "to move the cache), or pass the file's path as weights."
        )
    logger.info("loading %s from %s", entry.name, path)
    return read_state_dict(path)


def _target_keys(model: MSGN, key: str) -> list[str]:
    """The MSGN state-dict keys a torchvision backbone key maps to ([] for ``fc.*``)."""
    head, _, rest = key.partition(".")
    if head in ("conv1", "bn1"):
        return [f"stem.{key}"]
    if head in ("layer1", "layer2"):
        return [key]
    if head in ("layer3", "layer4"):
        return [f"branches.{name}.{head}.{rest}" for name in model.branches]
    return []


def load_backbone_state_dict(model: MSGN, state_dict: Mapping[str, Tensor]) -> MSGN:
    """Copy a torchvision ResNet state dict into the trunk and every branch copy of ``model``.

    ``conv1``/``bn1`` go to ``stem``, ``layer1``/``layer2`` to themselves, ``layer3``/``layer4``
    to every branch; ``fc`` is ignored; the embedding, classifier and STN keep their values.

    Raises:
        ValueError: a key without a counterpart, a shape mismatch, or trunk keys left unset.
    """
    own = model.state_dict()
    mapped: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("fc."):
            continue
        targets = _target_keys(model, key)
        if not targets or any(t not in own for t in targets):
            raise ValueError(f"state dict key {key!r} has no counterpart in MSGN "
                             f"({model.config.backbone})")
        for target in targets:
            if own[target].shape != value.shape:
                raise ValueError(
                    f"shape mismatch for {key!r}: state dict {tuple(value.shape)}, MSGN "
                    f"{target!r} {tuple(own[target].shape)} (wrong backbone?)"
                )
            mapped[target] = value
    trunk = [
        k for k in own
        if k.startswith(("stem.", "layer1.", "layer2."))
        or (k.startswith("branches.") and k.split(".")[2] in ("layer3", "layer4"))
    ]
    missing = sorted(set(trunk) - set(mapped))
    if missing:
        raise ValueError(f"state dict lacks {len(missing)} trunk key(s), e.g. {missing[:5]}")
    model.load_state_dict(mapped, strict=False)
    return model


def from_torchvision(config: MSGNConfig, weights: object) -> MSGN:
    """Build :class:`MSGN` and initialise its trunk and branch copies from ImageNet weights.

    Args:
        config: the model's configuration (not ``backbone="tiny"``: it has no ImageNet weights).
        weights: a torchvision weights enum (``ResNet50_Weights.IMAGENET1K_V2``), its name
            (``"ResNet50_Weights.IMAGENET1K_V2"``, ``"IMAGENET1K_V2"`` or ``"DEFAULT"``), read
            from the torch hub cache (:func:`fetch_pretrained` puts it there on request); or the
            path of a saved torchvision state dict (read with ``weights_only=True``).

    Raises:
        ValueError: ``tiny`` backbone, weights of another architecture, or a state dict that
            does not fit.
        FileNotFoundError: the file is neither given nor cached (with how to get it).
    """
    if not isinstance(config, MSGNConfig):
        raise TypeError(f"config must be an MSGNConfig, got {type(config).__name__}")
    if config.backbone == "tiny":
        raise ValueError("backbone 'tiny' has no ImageNet weights; build MSGN(config) instead")
    state = _backbone_state(config.backbone, weights)
    return load_backbone_state_dict(MSGN(config), state)
