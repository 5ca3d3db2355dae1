"""A loopback HTTP server for the download tests (no test reaches the internet).

:func:`serve` runs ``http.server`` on ``127.0.0.1`` in a thread and serves bytes by file name
(``GET /<name>``), optionally cutting a response short (a ``Content-Length`` larger than the
body, then the connection closes); :func:`closed_port` is a port nobody listens on (a server
that is down). :func:`weights_payload` and :func:`weights_entry` make a real ResNet state dict
and a :class:`arpviz.weights.WeightsEntry` whose file name carries its SHA-256 prefix, as
torchvision's do.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    """What the server serves and what it was asked for."""

    files: dict[str, bytes] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    base: str = ""


@contextlib.contextmanager
def serve(files: dict[str, bytes] | None = None,
          truncated: set[str] | None = None) -> Iterator[Served]:
    """Serve ``files`` on ``http://127.0.0.1:<port>/`` (``Served.base``) while in the block;
    names in ``truncated`` announce 1000 bytes more than they send."""
    state = Served(dict(files or {}), set(truncated or ()))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            name = self.path.lstrip("/")
            state.requests.append(name)
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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


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
