"""torchvision's ImageNet weights: the catalogue of files and where torch keeps them.

A :class:`WeightsEntry` is made from torchvision's weights enum (``ResNet50_Weights.IMAGENET1K_V2``:
its URL, its file name, whose ``-<hex>.`` part is the beginning of the file's SHA-256 as
``torch.hub`` checks it, its size and its evaluation resize); the file lives where ``torch.hub``
keeps it, ``torch.hub.get_dir()/checkpoints/<file name>``. Here: the entries
(:func:`weights_entries`, :func:`resolve_weights`, :func:`register_weights` for tests or a site's
own files), the cache layout (:attr:`WeightsEntry.cache_path`, the mirror's URL, the way by hand),
:func:`offline`, the errors (:class:`WeightsError` and its kinds) and the checksums of files on
disk (:func:`file_sha256`, :func:`verify_file`). Nothing here touches the network: the bounded
download is :mod:`arpviz.weights_download`. :mod:`arpviz.weights` re-exports both.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from urllib.parse import urlparse, urlsplit

import torch

__all__ = [
    "MAX_UNKNOWN_BYTES",
    "MIRROR_ENV",
    "OFFLINE_ENV",
    "READ_CHUNK",
    "ChecksumError",
    "DownloadInterrupted",
    "Progress",
    "WeightsEntry",
    "WeightsError",
    "file_sha256",
    "is_web_url",
    "offline",
    "register_weights",
    "resolve_weights",
    "unregister_weights",
    "verify_file",
    "weights_entries",
]


MIRROR_ENV = "ARPVIZ_WEIGHTS_MIRROR"
OFFLINE_ENV = "ARPVIZ_OFFLINE"
#: The SHA-256 prefix in a file name, as torch.hub reads it: the hex digits (8 or more) after
#: the last ``-`` (``resnet50-11ad3fa6.pth``).
_HASH = re.compile(r"-([a-f0-9]{8,})\.[^-]*$")
#: Bytes read at a time, from a file or the network.
READ_CHUNK = 1 << 20
#: The most bytes read of a file whose size nobody announced (torchvision's ResNets: 340 MB
#: at most).
MAX_UNKNOWN_BYTES = 1 << 30
#: Slack on torchvision's file sizes, which its metadata rounds (to 0.01 MB or finer).
_SIZE_SLACK_MB = 0.01

Progress = Callable[[float, str], None]
"""``progress(fraction in [0, 1], message)``, e.g. ``st.progress(fraction, text=message)``."""


class WeightsError(OSError):
    """Weights that could not be had; ``manual`` says how to put the file in place by hand."""

    def __init__(self, message: str, manual: str = "") -> None:
        super().__init__(f"{message}. {manual}" if manual else message)
        self.message = message
        self.manual = manual


class ChecksumError(WeightsError):
    """A downloaded (or hand-placed) file whose SHA-256 does not begin with the prefix in its
    file name."""


class DownloadInterrupted(WeightsError):
    """SIGTERM or SIGINT stopped a download (the temporary file was removed); ``signum`` says
    which."""

    def __init__(self, message: str, manual: str = "", signum: int = signal.SIGTERM) -> None:
        super().__init__(message, manual)
        self.signum = int(signum)


@dataclass(frozen=True)
class WeightsEntry:
    """One weights file of an architecture.

    Attributes:
        arch: the torchvision architecture (``"resnet50"``).
        name: the weights' full name (``"ResNet50_Weights.IMAGENET1K_V2"``).
        url: where torchvision downloads it; its file name carries the SHA-256 prefix.
        size_mb: the file's size in MB (torchvision's ``meta["_file_size"]``), if known.
        resize: the evaluation resize of the shorter side (torchvision's ``transforms()``:
            256, or 232 for the V2 weights) before the centre crop of ``crop``.
        crop: the evaluation crop (224).
    """

    arch: str
    name: str
    url: str
    size_mb: float | None = None
    resize: int = 256
    crop: int = 224

    def __post_init__(self) -> None:
        for field_name in ("arch", "name", "url"):
            if not isinstance(getattr(self, field_name), str) or not getattr(self, field_name):
                raise ValueError(f"{field_name} must be a non-empty string, "
                                 f"got {getattr(self, field_name)!r}")
        if not _HASH.search(self.file_name):
            raise ValueError(f"url: the file name {self.file_name!r} carries no SHA-256 prefix "
                             "('<name>-<hex digits>.pth', as torch.hub names files)")

    @property
    def file_name(self) -> str:
        """The file's name in the cache, torchvision's (``resnet50-11ad3fa6.pth``)."""
        return os.path.basename(urlparse(self.url).path)

    @property
    def short_name(self) -> str:
        """The name without its enum (``"IMAGENET1K_V2"``)."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        """The beginning of the file's SHA-256, as its file name carries it."""
        match = _HASH.search(self.file_name)
        assert match is not None  # checked in __post_init__
        return match.group(1)

    @property
    def cache_path(self) -> Path:
        """Where torch.hub keeps the file: ``torch.hub.get_dir()/checkpoints/<file name>``."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name

    @property
    def is_cached(self) -> bool:
        """Whether the file is in the torch cache."""
        return self.cache_path.is_file()

    @property
    def size_text(self) -> str:
        """``"98 MB"``, or ``"size unknown"``."""
        return f"{self.size_mb:.0f} MB" if self.size_mb else "size unknown"

    @property
    def max_bytes(self) -> int:
        """The most bytes a download of this file may bring: its size from torchvision's
        metadata (with the metadata's rounding), or :data:`MAX_UNKNOWN_BYTES` when unknown."""
        if not self.size_mb:
            return MAX_UNKNOWN_BYTES
        return math.ceil((float(self.size_mb) + _SIZE_SLACK_MB) * 2**20)

    def download_url(self) -> str:
        """The URL a download reads: ``$ARPVIZ_WEIGHTS_MIRROR/<file name>`` when the mirror is
        set, else torchvision's."""
        mirror = os.environ.get(MIRROR_ENV, "").strip()
        return f"{mirror.rstrip('/')}/{self.file_name}" if mirror else self.url

    def manual(self) -> str:
        """One sentence on putting the file in place by hand; behind a mirror it names the
        mirror's URL first (torchvision's may be out of reach there)."""
        url = self.download_url()
        where = url if url == self.url or not is_web_url(url) else (
            f"{url} (the mirror {MIRROR_ENV} names; torchvision's own is {self.url})")
        return (f"To install it by hand, download {where} and put it at {self.cache_path} "
                "(torch.hub's cache; set TORCH_HOME to move it)")


def is_web_url(url: str) -> bool:
    """Whether ``url`` is an ``http``/``https`` URL with a host and no fragment."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.fragment


# ----------------------------------------------------------------------------- the registry

_REGISTERED: list[tuple[WeightsEntry, bool]] = []
_LOCK = threading.Lock()


def register_weights(entry: WeightsEntry, *, default: bool = False) -> WeightsEntry:
    """Add ``entry`` to its architecture's weights (first of all when ``default``: then
    ``"DEFAULT"`` names it); a test's served file, or a site's own. Returns ``entry``."""
    if not isinstance(entry, WeightsEntry):
        raise TypeError(f"entry must be a WeightsEntry, got {type(entry).__name__}")
    with _LOCK:
        _REGISTERED[:] = [(e, d) for e, d in _REGISTERED if e != entry]
        _REGISTERED.insert(0, (entry, bool(default)))
    return entry


def unregister_weights(entry: WeightsEntry) -> None:
    """Undo :func:`register_weights` (nothing when ``entry`` is not registered)."""
    with _LOCK:
        _REGISTERED[:] = [(e, d) for e, d in _REGISTERED if e != entry]


def _family(arch: str) -> type[Enum]:
    from torchvision.models import get_model_weights

    try:
        return get_model_weights(arch)
    except (ValueError, KeyError, AttributeError):
        raise ValueError(f"arch {arch!r} has no torchvision weights") from None


@cache
def _torchvision_entries(arch: str) -> tuple[WeightsEntry, ...]:
    """torchvision's 1000-class ImageNet weights of ``arch``, its default first."""
    family = _family(arch)
    members = [family.DEFAULT] + [w for w in family if w is not family.DEFAULT]
    out = []
    for weights in members:
        meta = weights.meta
        if len(meta.get("categories") or ()) != 1000:
            continue
        keywords = getattr(weights.transforms, "keywords", {})
        resize = keywords.get("resize_size", 256)
        crop = keywords.get("crop_size", 224)
        out.append(WeightsEntry(arch=arch, name=f"{family.__name__}.{weights.name}",
                                url=weights.url, size_mb=meta.get("_file_size"),
                                resize=int(resize), crop=int(crop)))
    return tuple(out)


def weights_entries(arch: str) -> list[WeightsEntry]:
    """Every weights file of ``arch``: registered defaults, then torchvision's (its default
    first), then the other registered ones.

    Raises:
        ValueError: ``arch`` has no torchvision weights.
    """
    if not isinstance(arch, str):
        raise TypeError(f"arch must be a string, got {type(arch).__name__}")
    with _LOCK:
        registered = [(e, d) for e, d in _REGISTERED if e.arch == arch]
    first = [e for e, d in registered if d]
    last = [e for e, d in registered if not d]
    return [*first, *_torchvision_entries(arch), *last]


def resolve_weights(arch: str, weights: str | Enum = "DEFAULT") -> WeightsEntry:
    """The entry ``weights`` names for ``arch``.

    Args:
        arch: ``"resnet50"``, ...
        weights: ``"DEFAULT"``, a short name (``"IMAGENET1K_V2"``), a full name
            (``"ResNet50_Weights.IMAGENET1K_V2"``) or a torchvision weights enum member.

    Raises:
        ValueError: weights of another architecture, or a name ``arch`` has no weights of
            (the message lists the names it has).
    """
    entries = weights_entries(arch)
    family = _family(arch)
    if isinstance(weights, Enum):
        if not isinstance(weights, family):
            raise ValueError(f"weights {weights} are not {arch} weights ({family.__name__})")
        wanted = f"{family.__name__}.{weights.name}"
    elif isinstance(weights, str):
        wanted = weights.strip()
    else:
        raise TypeError(f"weights must be a name or a torchvision weights enum, "
                        f"got {type(weights).__name__}")
    if wanted in ("DEFAULT", f"{family.__name__}.DEFAULT"):
        if not entries:
            raise ValueError(f"{arch} has no ImageNet weights")
        return entries[0]
    if "." in wanted:
        prefix = wanted.rsplit(".", 1)[0]
        if prefix != family.__name__:
            raise ValueError(f"weights {wanted!r} are not {arch} weights ({family.__name__})")
        match = [e for e in entries if e.name == wanted]
    else:
        match = [e for e in entries if e.short_name == wanted]
    if not match:
        names = ["DEFAULT", *dict.fromkeys(e.short_name for e in entries)]
        raise ValueError(f"weights {wanted!r} is not a torchvision weights name for {arch}; "
                         f"try one of {names} (or '{family.__name__}.<NAME>')")
    return match[0]


def offline() -> bool:
    """Whether this deployment turned downloads off (``ARPVIZ_OFFLINE`` set to 1, true, yes)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")



def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of a regular file's bytes (read in 1 MiB blocks).

    Raises:
        FileNotFoundError: no such file, or not a regular file (a FIFO or ``/dev/zero`` would
            never end).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(READ_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(entry: WeightsEntry, path: str | os.PathLike | None = None) -> str:
    """The SHA-256 of ``entry``'s file (default: the one in the torch cache), checked against
    the prefix its name carries, as ``torch.hub`` checks a download: a file put there by hand
    that is another file is refused. Returns the full hex digest.

    Raises:
        ChecksumError: the digest does not begin with :attr:`WeightsEntry.sha256_prefix`.
        FileNotFoundError: no such file.
    """
    path = Path(entry.cache_path if path is None else path)
    found = file_sha256(path)
    if not found.startswith(entry.sha256_prefix):
        raise ChecksumError(
            f"{path} is not {entry.name}: its SHA-256 begins {found[:len(entry.sha256_prefix)]}, "
            f"its file name says {entry.sha256_prefix} (a damaged or other file put there by "
            "hand?); delete it and download it again", entry.manual())
    return found
