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
  (for machines that reach weights only through a mirror; an ``http`` or ``https`` URL, nothing
  else); the checksum is checked all the same.
- ``ARPVIZ_OFFLINE=1``: :func:`offline` says so; the app then offers no download button and
  :func:`download_weights` refuses to download (the commands' ``--download`` included).

A download goes to a temporary file in the cache folder, is checked (length, SHA-256 prefix) and
only then moved into place with :func:`os.replace`: a failed, cut-short or wrong file leaves
nothing in the cache. It is bounded: :data:`TIMEOUT` to connect and between reads, at least
:data:`MIN_RATE` bytes a second over every :data:`TIMEOUT` window (a trickling server is cut
off), :data:`DEADLINE` for the whole transfer, never more bytes than the file's expected size
(:attr:`WeightsEntry.max_bytes`; a larger ``Content-Length`` is refused before the first byte),
redirects only to ``http``/``https`` (and from ``http`` to ``https`` only on the same host).
One download at a time per cache folder (a lock), which first removes the temporary files
killed downloads left. SIGTERM and SIGINT during a download remove the temporary file and raise
:class:`DownloadInterrupted` (in the main thread). Every failure is a :class:`WeightsError` (an
``OSError``; a wrong file a :class:`ChecksumError`) whose message is one line and whose
:attr:`WeightsError.manual` says how to put the file in place by hand. :func:`verify_file`
checks a file put in the cache by hand against the SHA-256 prefix its name carries.

Tests (or a site with its own files) add entries with :func:`register_weights`.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import math
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urljoin, urlparse, urlsplit
from urllib.request import (
    HTTPDefaultErrorHandler,
    HTTPErrorProcessor,
    HTTPHandler,
    HTTPRedirectHandler,
    HTTPSHandler,
    OpenerDirector,
    ProxyHandler,
    Request,
)

import torch

__all__ = [
    "DEADLINE",
    "MAX_UNKNOWN_BYTES",
    "MIN_RATE",
    "MIRROR_ENV",
    "OFFLINE_ENV",
    "TIMEOUT",
    "ChecksumError",
    "DownloadInterrupted",
    "WeightsEntry",
    "WeightsError",
    "download_weights",
    "ensure_weights",
    "file_sha256",
    "offline",
    "register_weights",
    "resolve_weights",
    "unregister_weights",
    "verify_file",
    "weights_entries",
]

logger = logging.getLogger(__name__)

MIRROR_ENV = "ARPVIZ_WEIGHTS_MIRROR"
OFFLINE_ENV = "ARPVIZ_OFFLINE"
#: The SHA-256 prefix in a file name, as torch.hub reads it: the hex digits (8 or more) after
#: the last ``-`` (``resnet50-11ad3fa6.pth``).
_HASH = re.compile(r"-([a-f0-9]{8,})\.[^-]*$")
_CHUNK = 1 << 20
#: Seconds to connect, to wait for the answer, and between any two reads (the read timeout).
TIMEOUT = 30.0
#: The slowest transfer accepted, in bytes a second: fewer than ``MIN_RATE * TIMEOUT`` bytes in
#: any ``TIMEOUT`` window (the answer's headers included) cut a trickling server off.
MIN_RATE = 20_000
#: Seconds a whole transfer may take (one that trickles just above :data:`MIN_RATE`).
DEADLINE = 3600.0
#: The most bytes read of a file whose size nobody announced (torchvision's ResNets: 340 MB
#: at most).
MAX_UNKNOWN_BYTES = 1 << 30
#: Slack on torchvision's file sizes, which its metadata rounds (to 0.01 MB or finer).
_SIZE_SLACK_MB = 0.01
#: The temporary files of :func:`download_weights` (``.<file name>.<12 hex digits>.partial``).
_PARTIAL = re.compile(r"^\..+\.[0-9a-f]{12}\.partial$")

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
        where = url if url == self.url or not _is_web(url) else (
            f"{url} (the mirror {MIRROR_ENV} names; torchvision's own is {self.url})")
        return (f"To install it by hand, download {where} and put it at {self.cache_path} "
                "(torch.hub's cache; set TORCH_HOME to move it)")


def _is_web(url: str) -> bool:
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


# ----------------------------------------------------------------------------- download


def _reason(exc: BaseException, timeout: float | None = None) -> str:
    """One line on why a request failed (``timeout``: the read timeout in force)."""
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, URLError):
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused (the server is down or the machine is offline)"
        if isinstance(reason, socket.gaierror):
            return f"the host name did not resolve ({reason.strerror or reason}; offline?)"
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return _reason(reason, timeout)
        return str(reason)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        wait = f" in {timeout:g} s" if timeout else " in time"
        return f"no answer{wait} (the server stalled, or the machine is offline?)"
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


@contextlib.contextmanager
def _folder_lock(folder: Path, progress: Progress | None, name: str) -> Iterator[None]:
    """Hold the cache folder's lock (one download at a time in it; other processes wait), then
    remove the temporary files that killed downloads left there: while the lock is held, no
    other download is writing one."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, and only the stale files of this name go
        fcntl = None  # type: ignore[assignment]
    handle = os.open(folder, os.O_RDONLY) if fcntl is not None else None
    try:
        if fcntl is not None and handle is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if progress is not None:
                    progress(0.0, f"waiting for another download into {folder} to finish")
                fcntl.flock(handle, fcntl.LOCK_EX)
        for stale in folder.iterdir():
            if _PARTIAL.match(stale.name) and (fcntl is not None
                                               or stale.name.startswith(f".{name}.")):
                logger.info("removing %s, left by a download that was killed", stale)
                stale.unlink(missing_ok=True)
        yield
    finally:
        if handle is not None:
            os.close(handle)  # releases the lock


class _Stopped(BaseException):
    """Raised by the signal handler of :func:`_signals_stop` (not an ``Exception``, so no
    ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_stop() -> Iterator[None]:
    """While in the block, SIGTERM and SIGINT raise :class:`_Stopped` (so ``finally`` blocks
    clean up); in the main thread only, and not for a signal the process ignores or whose
    handler was set outside Python."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise _Stopped(signum)

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        current = signal.getsignal(signum)
        if current is not None and current is not signal.SIG_IGN:  # None: set outside Python
            previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Watch:
    """The time limits of one transfer, kept by a thread: the deadline, and at least
    :data:`MIN_RATE` bytes a second over every :data:`TIMEOUT` window. When one is broken it
    shuts the transfer's sockets down (a blocked read then returns) and says why in
    :attr:`reason`."""

    def __init__(self, timeout: float) -> None:
        self.timeout, self.min_rate, self.deadline = timeout, MIN_RATE, float(DEADLINE)
        self.received = 0
        self.reason: str | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arpviz-download-watch",
                                        daemon=True)

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def add(self, sock: socket.socket | None) -> None:
        """Watch ``sock`` (cut at once when a limit is already broken)."""
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.reason is not None:
                _shut(sock)

    def connection(self, cls: type) -> Callable[..., http.client.HTTPConnection]:
        """A factory of ``cls`` connections whose sockets this watch can cut."""
        watch = self

        def make(*args: object, **kwargs: object) -> http.client.HTTPConnection:
            conn = cls(*args, **kwargs)
            connect = conn.connect

            def watched_connect() -> None:
                connect()
                watch.add(conn.sock)

            conn.connect = watched_connect  # type: ignore[method-assign]
            return conn

        return make

    def _cut(self, reason: str) -> None:
        with self._lock:
            self.reason = reason
            for sock in self._sockets:
                _shut(sock)

    def _run(self) -> None:
        start = window = time.monotonic()
        at_window = 0
        tick = min(0.25, self.timeout / 4)
        while not self._done.wait(tick):
            now = time.monotonic()
            if now - start > self.deadline:
                self._cut(f"the transfer took longer than {self.deadline:g} s (the limit); "
                          f"{self.received} bytes came")
                return
            if now - window >= self.timeout:
                got = self.received - at_window
                if got < self.min_rate * self.timeout:
                    self._cut(f"nothing came in {self.timeout:g} s (the server stalled)" if not got
                              else f"the server sent {got} bytes in {self.timeout:g} s "
                              f"(trickling; at least {self.min_rate / 1000:g} kB/s is needed)")
                    return
                window, at_window = now, self.received


def _shut(sock: socket.socket) -> None:
    """Shut a socket down from another thread (an SSL socket's own ``shutdown`` would drop its
    SSL object under the reading thread, so the plain socket's is called)."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Redirects(HTTPRedirectHandler):
    """Redirects only to ``http``/``https``, and across schemes only ``http`` -> ``https`` of
    the same host (checked before urllib looks at the new URL)."""

    def http_error_302(self, req, fp, code, msg, headers):  # noqa: ANN001, ANN201
        location = headers.get("location") or headers.get("uri")
        if location:
            old, newurl = urlsplit(req.full_url), urljoin(req.full_url, location.strip())
            new = urlsplit(newurl)
            if new.scheme not in ("http", "https"):
                fp.close()
                raise ValueError(f"the server redirected to {newurl!r}, not an http or https "
                                 "URL; refused")
            if new.scheme != old.scheme and not (old.scheme == "http"
                                                 and new.hostname == old.hostname):
                fp.close()
                raise ValueError(f"the server redirected from {old.scheme} to {newurl!r} "
                                 "(another scheme, or another host); refused")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _opener(watch: _Watch) -> OpenerDirector:
    """An opener for ``http``/``https`` only (no ``file:``, ``ftp:`` or ``data:``), proxies from
    the environment, :class:`_Redirects`, its sockets watched by ``watch``."""

    class Watched:
        def do_open(self, http_class, req, **kwargs):  # noqa: ANN001, ANN201
            return super().do_open(watch.connection(http_class), req,  # type: ignore[misc]
                                   **kwargs)

    class Plain(Watched, HTTPHandler):
        pass

    class Secure(Watched, HTTPSHandler):
        pass

    opener = OpenerDirector()
    for handler in (ProxyHandler(), Plain(), Secure(), _Redirects(), HTTPDefaultErrorHandler(),
                    HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def _announced(response: http.client.HTTPResponse) -> int | None:
    length = response.headers.get("Content-Length")
    return int(length) if length and length.strip().isdigit() else None


def _transfer(entry: WeightsEntry, url: str, handle: object, digest: hashlib._Hash,
              progress: Progress | None, manual: str, timeout: float) -> int:
    """Read ``url`` into ``handle`` and ``digest`` within the limits (``timeout`` to connect and
    between reads); the byte count."""
    limit = entry.max_bytes
    received = 0
    with _Watch(timeout) as watch:
        try:
            request = Request(url, headers={"User-Agent": "arpviz (torch.hub layout)"})
            with _opener(watch).open(request, timeout=timeout) as response:
                total = _announced(response)
                if total is not None and total > limit:
                    raise WeightsError(
                        f"{url} announces {total} bytes, more than the {limit} bytes "
                        f"{entry.file_name} can have; refused before reading (nothing was "
                        "kept)", manual)
                logger.info("downloading %s (%s bytes) into %s", url, total, entry.cache_path)
                shown, last = -1.0, time.monotonic()
                while True:
                    chunk = response.read1(min(_CHUNK, limit + 1 - received))
                    if not chunk:
                        break
                    received += len(chunk)
                    watch.received = received
                    if received > limit:
                        raise WeightsError(
                            f"{url} sent more than the {limit} bytes {entry.file_name} can "
                            "have; stopped there (nothing was kept)", manual)
                    handle.write(chunk)  # type: ignore[attr-defined]
                    digest.update(chunk)
                    fraction = received / total if total else 0.0
                    now = time.monotonic()
                    if progress is not None and (fraction - shown >= 0.01 or now - last > 1.0):
                        shown, last = fraction, now
                        size = f" of {total / 1e6:.0f}" if total else ""
                        progress(min(fraction, 1.0), f"downloading {entry.file_name}: "
                                 f"{received / 1e6:.0f}{size} MB")
        except WeightsError:
            raise
        except (URLError, OSError, http.client.HTTPException, ValueError) as exc:
            why = watch.reason or _reason(exc, timeout)
            raise WeightsError(f"could not download {entry.file_name} from {url}: {why}",
                               manual) from None
        if watch.reason is not None:  # cut while the read returned the end
            raise WeightsError(f"could not download {entry.file_name} from {url}: "
                               f"{watch.reason}", manual)
    if total is not None and received != total:
        raise WeightsError(f"the download of {entry.file_name} from {url} was cut short "
                           f"({received} of {total} bytes); nothing was kept", manual)
    return received


def _check_url(url: str, manual: str) -> None:
    if not _is_web(url):
        source = f"{MIRROR_ENV}={os.environ.get(MIRROR_ENV, '').strip()!r}" \
            if os.environ.get(MIRROR_ENV, "").strip() else "the weights URL"
        raise WeightsError(f"{source}: downloads come only from http or https URLs "
                           f"(with a host, no '#'), not {url!r}; nothing was fetched", manual)


def download_weights(
    entry: WeightsEntry,
    *,
    progress: Progress | None = None,
    timeout: float | None = None,
    force: bool = False,
) -> Path:
    """Download ``entry``'s file into the torch cache and return its path there.

    The file goes to a temporary file beside its place in the cache, is checked (the length the
    server announced; the SHA-256 against the prefix in the file name) and then moved into place
    with :func:`os.replace`. A file already in the cache is returned at once (``force``: fetched
    again). ``ARPVIZ_WEIGHTS_MIRROR`` redirects the download (:meth:`WeightsEntry.download_url`).
    The limits are the module's (:data:`TIMEOUT`, :data:`MIN_RATE`, :data:`DEADLINE`,
    :attr:`WeightsEntry.max_bytes`); one download at a time per cache folder.

    Args:
        entry: what to fetch (:func:`resolve_weights`).
        progress: called with ``(fraction, message)`` as the bytes come in.
        timeout: seconds to connect and between reads (default :data:`TIMEOUT`).
        force: download even when the file is in the cache.

    Raises:
        ChecksumError: the file's SHA-256 does not begin with the file name's prefix (nothing
            is kept).
        DownloadInterrupted: SIGTERM or SIGINT came during the download (nothing is kept).
        WeightsError: downloads are off (``ARPVIZ_OFFLINE``); a mirror that is not an http(s)
            URL; the server cannot be reached, answers with an error, redirects elsewhere than
            http(s), stalls, trickles, runs past the deadline, announces or sends more bytes
            than the file has, or sends fewer than it announced; the cache folder cannot be
            written (nothing is kept).
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
    if offline():
        raise WeightsError(f"downloads are turned off on this machine ({OFFLINE_ENV}=1): "
                           f"{entry.file_name} was not fetched", manual)
    _check_url(url, manual)
    timeout = float(TIMEOUT) if timeout is None else timeout
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"cannot write into the torch cache {target.parent}: {_reason(exc)}",
                           manual) from None
    digest = hashlib.sha256()
    partial: Path | None = None
    try:
        with _signals_stop(), _folder_lock(target.parent, progress, entry.file_name):
            if target.is_file() and not force:  # another process fetched it meanwhile
                return target
            try:
                partial, handle = _new_partial(target.parent, entry.file_name)
            except OSError as exc:
                raise WeightsError(f"cannot write into the torch cache {target.parent}: "
                                   f"{_reason(exc)}", manual) from None
            with handle:  # type: ignore[attr-defined]
                received = _transfer(entry, url, handle, digest, progress, manual,
                                     float(timeout))
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
    except _Stopped as stop:
        name = signal.Signals(stop.signum).name
        raise DownloadInterrupted(f"the download of {entry.file_name} was stopped by {name}; "
                                  "its temporary file was removed, nothing was kept", manual,
                                  stop.signum) from None
    except OSError as exc:
        if isinstance(exc, WeightsError):
            raise
        raise WeightsError(f"cannot write into the torch cache {target.parent}: "
                           f"{_reason(exc)}", manual) from None
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
    if progress is not None:
        progress(1.0, f"{entry.file_name}: {received / 1e6:.0f} MB, checksum verified")
    logger.debug("downloaded %s (%d bytes, SHA-256 %s...)", target, received, found[:12])
    return target


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
        for block in iter(lambda: handle.read(_CHUNK), b""):
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
