"""torchvision's ImageNet weights: which file, where torch keeps it, and its download on request.

Nothing here runs unless a user asks: ``arpviz-convert --download``, ``arpviz-train --pretrained
DEFAULT --download`` or the app's download button call :func:`download_weights`; everything else
only names files and looks in the cache.

The files are torchvision's own: a :class:`WeightsEntry` is made from torchvision's weights enum
(``ResNet50_Weights.IMAGENET1K_V2``: its URL, its file name, whose ``-<hex>.`` part is the
beginning of the file's SHA-256 as ``torch.hub`` checks it, its size and its evaluation resize)
and the file lives where ``torch.hub`` keeps it, ``torch.hub.get_dir()/checkpoints/<file name>``
(``$TORCH_HOME/hub/checkpoints``). A file arpviz fetched is therefore the file
``torchvision.models.resnet50(weights="DEFAULT")`` would use, and the other way round.

- ``ARPVIZ_WEIGHTS_MIRROR=URL``: download from ``URL/<file name>`` instead of torchvision's server
  (for machines that reach weights only through a mirror); the checksum is checked all the same.
- ``ARPVIZ_OFFLINE=1``: :func:`offline` says so; the app then offers no download button (the
  command-line tools still download when told to).

A download goes to a temporary file in the cache folder, is checked (length, SHA-256 prefix) and
only then moved into place with :func:`os.replace`: a failed, cut-short or wrong file leaves
nothing in the cache. Every failure is a :class:`WeightsError` (an ``OSError``; a wrong file a
:class:`ChecksumError`) whose message is one line and whose :attr:`WeightsError.manual` says how
to put the file in place by hand.

Tests (or a site with its own files) add entries with :func:`register_weights`.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

import torch

__all__ = [
    "MIRROR_ENV",
    "OFFLINE_ENV",
    "ChecksumError",
    "WeightsEntry",
    "WeightsError",
    "download_weights",
    "ensure_weights",
    "offline",
    "register_weights",
    "resolve_weights",
    "unregister_weights",
    "weights_entries",
]

logger = logging.getLogger(__name__)

MIRROR_ENV = "ARPVIZ_WEIGHTS_MIRROR"
OFFLINE_ENV = "ARPVIZ_OFFLINE"
#: torch.hub's pattern of the SHA-256 prefix in a file name (``resnet50-11ad3fa6.pth``).
_HASH = re.compile(r"-([a-f0-9]+)\.")
_CHUNK = 1 << 20

Progress = Callable[[float, str], None]
"""``progress(fraction in [0, 1], message)``, e.g. ``st.progress(fraction, text=message)``."""


class WeightsError(OSError):
    """Weights that could not be had; ``manual`` says how to put the file in place by hand."""

    def __init__(self, message: str, manual: str = "") -> None:
        super().__init__(f"{message}. {manual}" if manual else message)
        self.message = message
        self.manual = manual


class ChecksumError(WeightsError):
    """A downloaded file whose SHA-256 does not begin with the prefix in its file name."""


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

    def download_url(self) -> str:
        """The URL a download reads: ``$ARPVIZ_WEIGHTS_MIRROR/<file name>`` when the mirror is
        set, else torchvision's."""
        mirror = os.environ.get(MIRROR_ENV, "").strip()
        return f"{mirror.rstrip('/')}/{self.file_name}" if mirror else self.url

    def manual(self) -> str:
        """One sentence on putting the file in place by hand."""
        return (f"To install it by hand, download {self.url} and put it at {self.cache_path} "
                "(torch.hub's cache; set TORCH_HOME to move it)")


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


# ----------------------------------------------------------------------------- download


def _reason(exc: BaseException) -> str:
    """One line on why a request failed."""
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, URLError):
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused (the server is down or the machine is offline)"
        if isinstance(reason, socket.gaierror):
            return f"the host name did not resolve ({reason.strerror or reason}; offline?)"
        return str(reason)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "no answer in time (offline?)"
    if isinstance(exc, http.client.IncompleteRead):
        return f"the connection closed after {len(exc.partial)} bytes"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _new_partial(folder: Path, name: str) -> tuple[Path, object]:
    """A new temporary file in ``folder`` (the cache's file system, so the final move is atomic;
    made with the usual permissions, not ``mkstemp``'s private ones)."""
    while True:
        path = folder / f".{name}.{uuid.uuid4().hex[:12]}.partial"
        try:
            return path, open(path, "xb")  # noqa: SIM115 - closed by the caller
        except FileExistsError:
            continue


def download_weights(
    entry: WeightsEntry,
    *,
    progress: Progress | None = None,
    timeout: float = 60.0,
    force: bool = False,
) -> Path:
    """Download ``entry``'s file into the torch cache and return its path there.

    The file goes to a temporary file beside its place in the cache, is checked (the length the
    server announced; the SHA-256 against the prefix in the file name) and then moved into place
    with :func:`os.replace`. A file already in the cache is returned at once (``force``: fetched
    again). ``ARPVIZ_WEIGHTS_MIRROR`` redirects the download (:meth:`WeightsEntry.download_url`).

    Args:
        entry: what to fetch (:func:`resolve_weights`).
        progress: called with ``(fraction, message)`` as the bytes come in.
        timeout: seconds to wait for the server at each step.
        force: download even when the file is in the cache.

    Raises:
        ChecksumError: the file's SHA-256 does not begin with the file name's prefix (nothing
            is kept).
        WeightsError: the server cannot be reached, answers with an error, or sends fewer bytes
            than it announced; the cache folder cannot be written (nothing is kept).
    """
    if not isinstance(entry, WeightsEntry):
        raise TypeError(f"entry must be a WeightsEntry, got {type(entry).__name__}")
    target = entry.cache_path
    if target.is_file() and not force:
        if progress is not None:
            progress(1.0, f"{entry.file_name} is in the torch cache")
        return target
    url = entry.download_url()
    manual = entry.manual()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial, handle = _new_partial(target.parent, entry.file_name)
    except OSError as exc:
        raise WeightsError(f"cannot write into the torch cache {target.parent}: {_reason(exc)}",
                           manual) from None
    digest = hashlib.sha256()
    received, total = 0, None
    try:
        with handle:  # type: ignore[attr-defined]
            request = Request(url, headers={"User-Agent": "arpviz (torch.hub layout)"})
            try:
                with urlopen(request, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    logger.info("downloading %s (%s bytes) into %s", url, total, target)
                    shown = -1.0
                    last = time.monotonic()
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        handle.write(chunk)  # type: ignore[attr-defined]
                        digest.update(chunk)
                        received += len(chunk)
                        fraction = received / total if total else 0.0
                        now = time.monotonic()
                        if progress is not None and (fraction - shown >= 0.01
                                                     or now - last > 1.0):
                            shown, last = fraction, now
                            size = f" of {total / 1e6:.0f}" if total else ""
                            progress(min(fraction, 1.0), f"downloading {entry.file_name}: "
                                     f"{received / 1e6:.0f}{size} MB")
            except (URLError, OSError, http.client.HTTPException, ValueError) as exc:
                raise WeightsError(f"could not download {entry.file_name} from {url}: "
                                   f"{_reason(exc)}", manual) from None
        if total is not None and received != total:
            raise WeightsError(f"the download of {entry.file_name} from {url} was cut short "
                               f"({received} of {total} bytes); nothing was kept", manual)
        found = digest.hexdigest()
        if not found.startswith(entry.sha256_prefix):
            raise ChecksumError(
                f"{entry.file_name} from {url} failed the checksum: its SHA-256 begins "
                f"{found[:len(entry.sha256_prefix)]}, its file name says "
                f"{entry.sha256_prefix}; the file was deleted, nothing was kept", manual)
        try:
            os.replace(partial, target)
        except OSError as exc:
            raise WeightsError(f"cannot move the download to {target}: {_reason(exc)}",
                               manual) from None
    finally:
        partial.unlink(missing_ok=True)
    if progress is not None:
        progress(1.0, f"{entry.file_name}: {received / 1e6:.0f} MB, checksum verified")
    logger.debug("downloaded %s (%d bytes, SHA-256 %s...)", target, received, found[:12])
    return target


def ensure_weights(
    arch: str,
    weights: str | Enum = "DEFAULT",
    *,
    download: bool = False,
    progress: Progress | None = None,
) -> Path:
    """The cached file of ``arch``'s ``weights``; downloaded first when ``download`` is set.

    Raises:
        ValueError: a name ``arch`` has no weights of (:func:`resolve_weights`).
        FileNotFoundError: not in the cache and ``download`` is not set (the message says how
            to get it).
        WeightsError: the download failed (:func:`download_weights`).
    """
    entry = resolve_weights(arch, weights)
    if entry.is_cached:
        return entry.cache_path
    if not download:
        raise FileNotFoundError(
            f"{entry.name} ({entry.size_text}) is not in the torch cache ({entry.cache_path}); "
            f"add --download to fetch it. {entry.manual()}")
    return download_weights(entry, progress=progress)
