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


# --------------------------------------------------------------------------- AppTest

APP = str(ROOT / "app.py")
#: Seconds one AppTest run may take (the app's first run loads a model and imports plotly).
APP_TIMEOUT = 180


def run_app(at, timeout: float = APP_TIMEOUT):
    """``at.run()`` and assert that no exception shows in the app; returns ``at``."""
    at.run(timeout=timeout)
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_page(page: str, checkpoint: str, timeout: float = APP_TIMEOUT):
    """A fresh AppTest of the app with the sidebar's checkpoint whose label contains
    ``checkpoint`` chosen, switched to ``page`` (e.g. ``"pages/retrieval.py"``)."""
    from streamlit.testing.v1 import AppTest

    at = run_app(AppTest.from_file(APP, default_timeout=timeout), timeout)
    box = at.selectbox(key="arpviz_checkpoint")
    box.select(next(o for o in box.options if checkpoint in o)).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# --------------------------------------------------------------------------- data sets


def tiny_reid_config():
    """The SynthReID setting of the re-ID tests: 8 train and 6 test identities, 64 px."""
    from arpviz.data.synthreid import SynthReIDConfig

    return SynthReIDConfig(train_ids=8, test_ids=6, num_cameras=3, cameras_per_id=2,
                           images_per_camera=3, image_size=64)


def write_reid_checkpoint(path: Path, conv4: str = "arp", *, epochs: int = 2,
                          config=None, seed: int = 0) -> Path:
    """A tiny untrained re-ID MSGN checkpoint (strided Conv3, ``conv4`` in Conv4) on SynthReID
    ``config``, with ``epochs`` rows of made-up history (``mAP = 10 * epoch``, ``rank1 = 12 *
    epoch``) and snapshots of the first 3 query images."""
    import torch

    from arpviz import checkpoint as ckpt
    from arpviz.datasources import build
    from arpviz.images import IMAGENET_MEAN, IMAGENET_STD
    from arpviz.models import MSGN, MSGNConfig
    from arpviz.reid import reid_labels
    from arpviz.train import snapshot

    config = tiny_reid_config() if config is None else config
    torch.manual_seed(seed)
    size = config.image_size
    model = MSGN(MSGNConfig(backbone="tiny", num_classes=config.train_ids, conv3="stride",
                            conv4=conv4)).eval()
    record = {"name": "synthreid", "config": config.to_dict()}
    sources = build(record, size)
    probes = [0, 1, 2]
    images = torch.stack([sources.query[i][0] for i in probes])
    with torch.no_grad():
        snaps = tuple(snapshot(model, images, e) for e in range(1, epochs + 1))
    history = tuple({"epoch": e, "train_loss": 5.0 - e, "train_top1": 5.0 * e,
                     "mAP": 10.0 * e, "rank1": 12.0 * e, "rank5": 40.0, "rank10": 60.0,
                     "lr": 0.01, "seconds": 1.0} for e in range(1, epochs + 1))
    meta = ckpt.CheckpointMeta(
        config=model.config, class_names=sources.class_names, input_size=size,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, recipe={"epochs": epochs}, history=history,
        dataset={**sources.record, "eval_split": "query", "probe_indices": probes},
    )
    labels = torch.tensor(reid_labels(sources.query)[0][:3])
    return ckpt.save(path, model, meta, snaps, labels)


CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
# (image id, class id 1-based, train flag, size (w, h), box x y w h)
CUB_IMAGES = [
    (1, 1, 1, (40, 30), (2.0, 3.0, 20.0, 10.0)),
    (2, 1, 0, (32, 32), (0.0, 0.0, 32.0, 32.0)),
    (3, 2, 1, (24, 36), (5.5, 6.5, 10.0, 12.0)),
    (4, 3, 1, (30, 20), (1.0, 1.0, 5.0, 5.0)),
    (5, 3, 0, (20, 30), (3.0, 4.0, 8.0, 9.0)),
    (6, 2, 0, (28, 28), (0.0, 2.0, 27.0, 20.0)),
]


def make_cub(root: Path) -> Path:
    """A miniature CUB-200-2011 folder (3 classes, 6 images, the real file layout) at ``root``."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    lines: dict[str, list[str]] = {
        name: []
        for name in (
            "images.txt",
            "train_test_split.txt",
            "image_class_labels.txt",
            "bounding_boxes.txt",
        )
    }
    for image_id, cls, flag, (w, h), (bx, by, bw, bh) in CUB_IMAGES:
        rel = f"{CUB_CLASSES[cls - 1]}/img_{image_id:04d}.jpg"
        (root / "images" / rel).parent.mkdir(exist_ok=True)
        Image.new("RGB", (w, h), (40 * cls, 20, 200)).save(root / "images" / rel, quality=90)
        lines["images.txt"].append(f"{image_id} {rel}")
        lines["train_test_split.txt"].append(f"{image_id} {flag}")
        lines["image_class_labels.txt"].append(f"{image_id} {cls}")
        lines["bounding_boxes.txt"].append(f"{image_id} {bx} {by} {bw} {bh}")
    lines["classes.txt"] = [f"{i + 1} {c}" for i, c in enumerate(CUB_CLASSES)]
    for name, rows in lines.items():
        (root / name).write_text("\n".join(rows) + "\n")
    return root


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
#: The image control every image page shares (widget keys ``image.source``, ``image.upload``;
#: Streamlit's CSS class replaces every character but letters, digits, ``_`` and ``-`` by ``-``).
IMAGE_SOURCE = ".st-key-image-source"
IMAGE_UPLOAD = ".st-key-image-upload input[type=file]"


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


def wait_healthy(url: str, process: subprocess.Popen, timeout: float) -> bool:
    """Whether the Streamlit server at ``url`` answers its health check within ``timeout``
    seconds (``False`` as soon as ``process`` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def stop(process: subprocess.Popen) -> None:
    """Terminate ``process``, then kill it if it lingers."""
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


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
        if not wait_healthy(server.url, process, timeout):
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{server.log_tail()}")
            raise RuntimeError(f"streamlit not healthy after {timeout:.0f} s:\n"
                               f"{server.log_tail()}")
        yield server
    finally:
        stop(process)


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
#: JavaScript: whether a keyed plotly chart shows an image trace (as numbers or a data URI).
HAS_IMAGE = """(key) => {
  const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);
  return !!(el && el.data && el.data.length && (el.data[0].z != null || el.data[0].source));
}"""
#: JavaScript: mean RGB of the image trace of a keyed plotly chart (a promise: a data URI is
#: decoded on a canvas first).
MEAN_COLOUR = "(key) => new Promise((resolve) => {" + DECODE_JS + """
  const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);
  if (!el || !el.data || !el.data.length) return resolve(null);
  const trace = el.data[0];
  if (trace.z != null) {  // an image as numbers
    const z = decode(trace.z); let r = 0, g = 0, b = 0; const n = z.length / 3;
    for (let i = 0; i < z.length; i += 3) { r += z[i]; g += z[i + 1]; b += z[i + 2]; }
    return resolve(n ? [r / n, g / n, b / n] : null);
  }
  if (!trace.source) return resolve(null);
  const img = new Image();  // an image as a data URI: decode it on a canvas
  img.onerror = () => resolve(null);
  img.onload = () => {
    const canvas = document.createElement('canvas');
    canvas.width = img.width; canvas.height = img.height;
    const ctx = canvas.getContext('2d'); ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let r = 0, g = 0, b = 0; const n = d.length / 4;
    for (let i = 0; i < d.length; i += 4) { r += d[i]; g += d[i + 1]; b += d[i + 2]; }
    resolve(n ? [r / n, g / n, b / n] : null);
  };
  img.src = trace.source;
})
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
    tab.locator(IMAGE_SOURCE).wait_for(timeout=timeout_ms)
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


# --------------------------------------------------------------------------- Appendix A, browser

#: JavaScript: the subplot titles of Appendix A's Figure 7 (``#0: rate 0.53, crop [12.3, 41.9],
#: mass 91%``, one per distribution shown), ``null`` before the figure is drawn.
APPENDIX_TITLES = """() => {
  const el = document.querySelector('.st-key-appx_grid .js-plotly-plot');
  if (!el || !el.layout) return null;
  return (el.layout.annotations || []).map(a => a.text || '').filter(t => t.startsWith('#'));
}"""


def appendix_crops(titles: list[str] | None) -> list[str]:
    """The crops ``"[12.3, 41.9]"`` in Figure 7's subplot titles (:data:`APPENDIX_TITLES`)."""
    import re

    return [m for t in titles or [] for m in re.findall(r"crop (\[[\d.]+, [\d.]+\])", t)]


def expected_appendix_crops(*, seed: int = 0, k: float = 1.0, dsr: float = 0.5,
                            count: int = 9) -> list[str]:
    """The crops Figure 7 titles at Appendix A's defaults but ``seed``, ``k``, ``dsr`` and
    ``count``, as :func:`appendix_crops` reads them: what the page shows for that setting and
    no other session's."""
    from arpviz.appendix import SimulationSettings, analyse

    analysis = analyse(SimulationSettings(count=count, seed=seed, k=k, dsr=dsr))
    return [f"[{a:.1f}, {b:.1f}]" for a, b in analysis.intervals[:count]]


def assert_gradient_inside_box(x, box) -> None:
    """``x.grad`` (after a backward of a crop's features) is non-zero inside ``box`` (``x1, y1,
    x2, y2`` of sample 0, pixel edges) and zero beyond the cells it touches."""
    import math

    x1, y1, x2, y2 = (float(v) for v in box)
    grad = x.grad.abs().sum(1)[0]
    assert grad[math.ceil(y1):math.floor(y2), math.ceil(x1):math.floor(x2)].sum() > 0
    far = grad.clone()
    far[max(0, math.floor(y1) - 1):math.ceil(y2) + 1,
        max(0, math.floor(x1) - 1):math.ceil(x2) + 1] = 0
    assert far.abs().max() == 0
