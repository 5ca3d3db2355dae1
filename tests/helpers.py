"""Helpers the tests share (and the load test and screenshot script reuse): the one checkpoint
factory, a checkpoint rewriter, and the harness that runs the app in a real browser.

Tests import it as ``helpers`` (pytest puts ``tests/`` on the path); ``benchmarks/load_test.py``
and ``scripts/screenshots.py`` as ``tests.helpers``. Heavy imports stay inside the functions.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- checkpoints


def write_checkpoint(
    path: Path,
    conv4: str = "arp",
    *,
    classes: int = 6,
    input_size: int = 64,
    epochs: int = 3,
    probes: tuple[int, ...] = (0, 1, 2),
    split_size: int = 12,
    seed: int = 0,
    perturb: float = 0.05,
) -> Path:
    """A tiny untrained MSGN checkpoint "trained on SynthBirds", with ``epochs`` rows of history
    and snapshots of the SynthBirds ``val`` images ``probes``.

    The weights (torch seed ``seed``) get ``perturb`` times Gaussian noise before every snapshot,
    so the boxes move from one epoch to the next (``perturb=0``: the initial weights
    throughout). History: ``val_top1 = 8 * epoch``, ``train_loss = 2 - 0.3 * epoch``, and so on.
    """
    import torch

    from arpviz import checkpoint as ckpt
    from arpviz.data.synthbirds import SynthBirds, SynthBirdsConfig, class_names
    from arpviz.data.transforms import default_resize, eval_transform
    from arpviz.images import IMAGENET_MEAN, IMAGENET_STD
    from arpviz.models import MSGN, MSGNConfig
    from arpviz.train import snapshot

    torch.manual_seed(seed)
    config = MSGNConfig(backbone="tiny", num_classes=classes, conv4=conv4)
    model = MSGN(config).eval()
    synth = SynthBirdsConfig(num_classes=classes, image_size=default_resize(input_size),
                             train_size=split_size, val_size=split_size, test_size=split_size)
    data = SynthBirds(synth, "val", transform=eval_transform(input_size))
    images = torch.stack([data[i][0] for i in probes])
    snaps = []
    for epoch in range(1, epochs + 1):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(perturb * torch.randn_like(p))
        snaps.append(snapshot(model, images, epoch))
    history = tuple(
        {"epoch": e, "train_loss": 2.0 - 0.3 * e, "train_top1": 10.0 * e, "val_top1": 8.0 * e,
         "val_top5": 30.0 + 5 * e, "lr": 0.01 * 0.1 ** (e // 2), "seconds": 1.5}
        for e in range(1, epochs + 1)
    )
    meta = ckpt.CheckpointMeta(
        config=config, class_names=class_names(classes), input_size=input_size,
        mean=IMAGENET_MEAN, std=IMAGENET_STD,
        recipe={"epochs": epochs, "image_size": input_size, "model": {"backbone": "tiny"}},
        history=history,
        dataset={"name": "synthbirds", "config": synth.to_dict(), "eval_split": "val",
                 "probe_indices": list(probes)},
    )
    labels = torch.tensor([data.label(i) for i in probes])
    return ckpt.save(path, model, meta, tuple(snaps), labels)


def rewrite_checkpoint(source: Path, target: Path, *, meta: Callable | None = None,
                       tensors: Callable | None = None) -> Path:
    """A copy of checkpoint ``source`` with its arpviz metadata and/or tensors changed by the
    callables ``meta(dict)`` and ``tensors(dict)`` (in place)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(source), framework="pt") as handle:
        raw = json.loads(handle.metadata()["arpviz"])
    data = load_file(str(source))
    if meta:
        meta(raw)
    if tensors:
        tensors(data)
    save_file(data, str(target), metadata={"arpviz": json.dumps(raw)})
    return target


# --------------------------------------------------------------------------- the browser harness

#: Debian's chromium (``apt-get install -y chromium``); ``ARPVIZ_CHROMIUM`` points elsewhere.
CHROMIUM = os.environ.get("ARPVIZ_CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NAV = '[data-testid="stSidebarNav"] a'
EXCEPTION = '[data-testid="stException"]'
APP_STATE = '[data-testid="stApp"]'


def browser_problem() -> str | None:
    """Why no browser test can run here, or ``None`` when chromium and Playwright are there."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright)"
    if not Path(CHROMIUM).is_file():
        return (f"no browser at {CHROMIUM} (Debian: apt-get install -y chromium; the test never "
                "downloads a browser)")
    return None


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (``VmRSS``), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Server:
    """A running ``streamlit run app.py``."""

    process: subprocess.Popen
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@contextlib.contextmanager
def streamlit_server(
    checkpoints: Path, log: Path, *, timeout: float = 120.0, extra_env: dict | None = None
) -> Iterator[Server]:
    """Start the app headless on a free loopback port with ``checkpoints`` as its bundled folder;
    stop it (terminate, then kill) on exit."""
    port = free_port()
    env = dict(os.environ)
    env.update({"ARPVIZ_BUNDLED_DIR": str(checkpoints), "PYTHONUNBUFFERED": "1"})
    env.pop("ARPVIZ_CHECKPOINT_DIR", None)
    env.update(extra_env or {})
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless=true", f"--server.port={port}", "--server.address=127.0.0.1",
        "--browser.gatherUsageStats=false", "--server.fileWatcherType=none",
        "--server.runOnSave=false", "--global.developmentMode=false",
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(server.url + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit not healthy after {timeout:.0f} s:\n"
                                   f"{server.log_tail()}")
            time.sleep(0.3)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


#: JavaScript: count finished reruns of the page (the app root's script state goes back to
#: ``notRunning``), wherever the app root is re-mounted; installed once per page load.
WATCH_RERUNS = """
() => {
  if (window.__arpvizWatched) return true;
  window.__arpvizWatched = true;
  window.__arpvizRuns = window.__arpvizRuns || 0;
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.target.getAttribute('data-test-script-state') === 'notRunning'
          && r.oldValue !== 'notRunning') window.__arpvizRuns += 1;
    }
  }).observe(document.body, {attributes: true, subtree: true, attributeOldValue: true,
                             attributeFilter: ['data-test-script-state']});
  return true;
}
"""
RUNS = "() => window.__arpvizRuns || 0"
IDLE = ("() => document.querySelector('[data-testid=\"stApp\"]')"
        "?.getAttribute('data-test-script-state') === 'notRunning'")
#: JavaScript: turn a plotly array (plain, typed, or ``{dtype, bdata, shape}`` as plotly.py
#: encodes numpy arrays) into a flat plain array.
DECODE_JS = """
const decode = (v) => {
  if (v == null) return [];
  if (Array.isArray(v)) return v.flat(Infinity);
  if (ArrayBuffer.isView(v)) return Array.from(v);
  if (v.bdata !== undefined) {
    const raw = Uint8Array.from(atob(v.bdata), c => c.charCodeAt(0)).buffer;
    const kinds = {u1: Uint8Array, i1: Int8Array, u2: Uint16Array, i2: Int16Array,
                   u4: Uint32Array, i4: Int32Array, f4: Float32Array, f8: Float64Array};
    return Array.from(new (kinds[v.dtype] || Float64Array)(raw));
  }
  return [];
};
"""
#: JavaScript: mean RGB of the image trace of a keyed plotly chart.
MEAN_COLOUR = "(key) => {" + DECODE_JS + """
  const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);
  if (!el || !el.data || !el.data.length || el.data[0].z == null) return null;
  const z = decode(el.data[0].z); let r = 0, g = 0, b = 0;
  const n = z.length / 3;
  for (let i = 0; i < z.length; i += 3) { r += z[i]; g += z[i + 1]; b += z[i + 2]; }
  return n ? [r / n, g / n, b / n] : null;
}
"""
#: JavaScript: the scatter traces of a keyed plotly chart as JSON ``[[name, xs, ys], ...]``
#: (``null`` where a line breaks).
BOXES = "(key) => {" + DECODE_JS + """
  const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);
  if (!el || !el.data) return null;
  return JSON.stringify(el.data.filter(t => t.type === 'scatter' || t.type === undefined)
    .map(t => [t.name, decode(t.x), decode(t.y)]));
}
"""


def open_app(browser, url: str, timeout_ms: float, *, height: int = 1000):
    """A new tab (1400 px wide) of a sync Playwright ``browser`` on the app at ``url``, waited
    until Explore has rendered and the app is idle, with the rerun counter installed."""
    context = browser.new_context(viewport={"width": 1400, "height": height})
    context.set_default_timeout(timeout_ms)
    tab = context.new_page()
    tab.goto(url + "/", timeout=timeout_ms)
    tab.locator(".st-key-explore_source").wait_for(timeout=timeout_ms)
    tab.wait_for_function(IDLE, timeout=timeout_ms)
    tab.evaluate(WATCH_RERUNS)
    return tab


def session_colour(index: int) -> tuple[int, int, int]:
    """A distinct, saturated colour per session."""
    import colorsys

    hue = (index * 0.61803398875) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)


def session_image(index: int, size: tuple[int, int] = (160, 120)) -> bytes:
    """A PNG of the session's colour with a few darker shapes (so the pooling has structure)."""
    from PIL import Image, ImageDraw

    colour = session_colour(index)
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    dark = tuple(int(c * 0.55) for c in colour)
    w, h = size
    draw.ellipse((w * 0.30, h * 0.30, w * 0.55, h * 0.60), fill=dark)
    draw.rectangle((w * 0.65, h * 0.15, w * 0.75, h * 0.30), fill=dark)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def nearest_colour(mean: list[float], count: int) -> int:
    """The session whose colour is nearest to ``mean`` (RGB)."""
    def dist(i: int) -> float:
        return sum((a - b) ** 2 for a, b in zip(mean, session_colour(i), strict=True))

    return min(range(count), key=dist)
