"""A loopback HTTP server for the download tests (no test reaches the internet).

:func:`serve` runs ``http.server`` on ``127.0.0.1`` in a thread and serves bytes by file name
(``GET /<name>``), optionally cutting a response short (a ``Content-Length`` larger than the
body, then the connection closes); ``replies`` gives a name a hostile answer of its own
(:func:`trickle`, :func:`silent`, :func:`announce`, :func:`unannounced`, :func:`redirect`);
:func:`closed_port` is a port nobody listens on (a server that is down).
:func:`weights_payload` and :func:`weights_entry` make a real ResNet state dict
and a :class:`arpviz.weights.WeightsEntry` whose file name carries its SHA-256 prefix, as
torchvision's do.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: A hostile answer: called with the request handler and an event set when the server stops
#: (a reply that waits must return when it is set).
Reply = Callable[[BaseHTTPRequestHandler, threading.Event], None]


@dataclass
class Served:
    """What the server serves and what it was asked for."""

    files: dict[str, bytes] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    base: str = ""
    replies: dict[str, Reply] = field(default_factory=dict)
    stopped: threading.Event = field(default_factory=threading.Event)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up on a hostile reply is the point of the test


@contextlib.contextmanager
def serve(files: dict[str, bytes] | None = None,
          truncated: set[str] | None = None,
          replies: dict[str, Reply] | None = None) -> Iterator[Served]:
    """Serve ``files`` on ``http://127.0.0.1:<port>/`` (``Served.base``) while in the block;
    names in ``truncated`` announce 1000 bytes more than they send; names in ``replies`` get
    that reply instead."""
    state = Served(dict(files or {}), set(truncated or ()), replies=dict(replies or {}))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            name = self.path.lstrip("/")
            state.requests.append(name)
            reply = state.replies.get(name)
            if reply is not None:
                reply(self, state.stopped)
                self.close_connection = True
                return
            body = state.files.get(name)
            if body is None:
                self.send_error(404, "no such file")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            extra = 1000 if name in state.truncated else 0
            self.send_header("Content-Length", str(len(body) + extra))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = _QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield state
    finally:
        state.stopped.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _headers(handler: BaseHTTPRequestHandler, length: int | None, code: int = 200,
             extra: dict[str, str] | None = None) -> None:
    handler.send_response(code)
    handler.send_header("Content-Type", "application/octet-stream")
    if length is not None:
        handler.send_header("Content-Length", str(length))
    for key, value in (extra or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.flush()


def trickle(body: bytes, *, step: int = 1, every: float = 0.1, length: int | None = None,
            first: int = 0) -> Reply:
    """Announce ``length`` (default ``len(body)``) bytes, send ``first`` at once, then ``step``
    bytes every ``every`` seconds (``step=0``: nothing more, a stall) until the body is out or
    the server stops."""

    def reply(handler: BaseHTTPRequestHandler, stopped: threading.Event) -> None:
        _headers(handler, len(body) if length is None else length)
        with contextlib.suppress(OSError):
            handler.wfile.write(body[:first])
            handler.wfile.flush()
            sent = first
            while sent < len(body) and not stopped.wait(every):
                if step:
                    handler.wfile.write(body[sent : sent + step])
                    handler.wfile.flush()
                    sent += step

    return reply


def silent(handler: BaseHTTPRequestHandler, stopped: threading.Event) -> None:
    """Take the request and never answer (until the server stops)."""
    stopped.wait(60)


def announce(body: bytes, length: int) -> Reply:
    """Announce ``length`` bytes (a lie when it is not ``len(body)``), then send ``body``."""

    def reply(handler: BaseHTTPRequestHandler, stopped: threading.Event) -> None:
        _headers(handler, length)
        with contextlib.suppress(OSError):
            handler.wfile.write(body)
            handler.wfile.flush()

    return reply


def unannounced(body: bytes) -> Reply:
    """Send ``body`` with no ``Content-Length`` (the end is the connection's close)."""

    def reply(handler: BaseHTTPRequestHandler, stopped: threading.Event) -> None:
        _headers(handler, None)
        with contextlib.suppress(OSError):
            for start in range(0, len(body), 1 << 16):
                handler.wfile.write(body[start : start + (1 << 16)])
            handler.wfile.flush()

    return reply


def redirect(location: str, code: int = 302) -> Reply:
    """Answer ``code`` with ``Location: location``."""

    def reply(handler: BaseHTTPRequestHandler, stopped: threading.Event) -> None:
        _headers(handler, 0, code, {"Location": location})

    return reply


def closed_port() -> int:
    """A loopback port with nothing listening on it (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def weights_payload(arch: str = "resnet18", seed: int = 0) -> bytes:
    """``torch.save`` of a randomly initialised torchvision ``arch``'s state dict."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    buffer = io.BytesIO()
    torch.save(getattr(torchvision.models, arch)(weights=None).state_dict(), buffer)
    return buffer.getvalue()


def weights_entry(payload: bytes, arch: str = "resnet18", name: str = "TEST_RANDOM",
                  *, wrong_checksum: bool = False):
    """A weights entry for ``payload`` named like torchvision's files
    (``<arch>-<first 8 hex digits of its SHA-256>.pth``); ``wrong_checksum`` names another
    prefix. The URL is unreachable on purpose: downloads go through the mirror variable."""
    from arpviz.weights import WeightsEntry

    prefix = hashlib.sha256(payload).hexdigest()[:8]
    if wrong_checksum:
        prefix = "".join("0123456789abcdef"[(int(c, 16) + 1) % 16] for c in prefix)
    family = {"resnet18": "ResNet18_Weights", "resnet50": "ResNet50_Weights"}.get(arch, arch)
    return WeightsEntry(arch=arch, name=f"{family}.{name}",
                        url=f"https://weights.invalid/models/{arch}-{prefix}.pth",
                        size_mb=len(payload) / 2**20)
