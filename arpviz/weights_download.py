"""The download of torchvision's weights into the torch cache: only on request, and bounded.

Nothing here runs unless a user asks: ``arpviz-convert --download``, ``arpviz-train --pretrained
DEFAULT --download`` or the app's download button call :func:`download_weights` (or
:func:`ensure_weights` with ``download=True``). The entries, the cache layout and the errors are
:mod:`arpviz.weights_catalog`'s; :mod:`arpviz.weights` re-exports both modules.

A download goes to a temporary file in the cache folder, is checked (length, SHA-256 prefix) and
only then moved into place with :func:`os.replace`: a failed, cut-short or wrong file leaves
nothing in the cache. It is bounded: :data:`TIMEOUT` to connect and between reads, at least
:data:`MIN_RATE` bytes a second over every :data:`TIMEOUT` window (a trickling server is cut
off), :data:`DEADLINE` for the whole transfer, never more bytes than the file's expected size
(:attr:`WeightsEntry.max_bytes`; a larger ``Content-Length`` is refused before the first byte),
redirects only to ``http``/``https`` (and from ``http`` to ``https`` only on the same host).
One download at a time per cache folder (a lock), which first removes the temporary files
killed downloads left. SIGTERM and SIGINT during a download remove the temporary file and raise
:class:`DownloadInterrupted` (in the main thread). ``ARPVIZ_WEIGHTS_MIRROR`` redirects it,
``ARPVIZ_OFFLINE=1`` refuses it. The limits are this module's globals (a test lowers them here).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urljoin, urlsplit
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

from arpviz.weights_catalog import (
    MIRROR_ENV,
    OFFLINE_ENV,
    READ_CHUNK,
    ChecksumError,
    DownloadInterrupted,
    Progress,
    WeightsEntry,
    WeightsError,
    is_web_url,
    offline,
    resolve_weights,
)

__all__ = ["DEADLINE", "MIN_RATE", "TIMEOUT", "download_weights", "ensure_weights"]

logger = logging.getLogger(__name__)

#: Seconds to connect, to wait for the answer, and between any two reads (the read timeout).
TIMEOUT = 30.0
#: The slowest transfer accepted, in bytes a second: fewer than ``MIN_RATE * TIMEOUT`` bytes in
#: any ``TIMEOUT`` window (the answer's headers included) cut a trickling server off.
MIN_RATE = 20_000
#: Seconds a whole transfer may take (one that trickles just above :data:`MIN_RATE`).
DEADLINE = 3600.0
#: The temporary files of :func:`download_weights` (``.<file name>.<12 hex digits>.partial``).
_PARTIAL = re.compile(r"^\..+\.[0-9a-f]{12}\.partial$")


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
                    chunk = response.read1(min(READ_CHUNK, limit + 1 - received))
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
    if not is_web_url(url):
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
