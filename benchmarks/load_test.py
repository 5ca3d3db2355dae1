"""Load test of the app: concurrent browser sessions on one Streamlit server.

Starts ``streamlit run app.py`` headless on a free loopback port, opens ``--sessions`` browser
contexts in one Debian chromium (Playwright, never a downloaded browser) and lets every session,
at the same time:

1. open Explore and upload an image of its own colour, then check that the figure shows that
   colour (not another session's image);
2. move Conv4's k slider with the keyboard, half of ``--interactions`` times, checking after
   every rerun that its own image is still the one on screen;
3. open Appendix A, type its own seed, and move the k slider the other half of the times,
   checking after every rerun that the page echoes this session's k and seed.

Meanwhile the server's resident memory (``VmRSS`` of ``/proc/<pid>/status``) is sampled. The
result: sessions, interactions, errors, isolation failures, p50/p95/max interaction latency
(key press to the end of the rerun), server RSS at the start (after one warm-up session) and at
its peak. Run::

    .venv/bin/python -m benchmarks.load_test --sessions 8 --interactions 50 \
        --checkpoints checkpoints --json artifacts/load.json

``tests/test_load.py`` runs a small version on made-up checkpoints; the test suite's browser
end-to-end test (``tests/test_e2e_browser.py``) uses the server helpers here too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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

logger = logging.getLogger("load_test")

# --------------------------------------------------------------------------- shared helpers


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


# --------------------------------------------------------------------------- the load run


@dataclass
class SessionResult:
    """What one browser session saw."""

    index: int
    interactions: int = 0
    errors: list[str] = field(default_factory=list)
    isolation_failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


@dataclass
class LoadResult:
    """The figures of a load run."""

    sessions: int
    interactions_per_session: int
    interactions: int
    errors: int
    isolation_failures: int
    latency_p50_s: float
    latency_p95_s: float
    latency_max_s: float
    rss_start_mb: float
    rss_peak_mb: float
    rss_end_mb: float
    wall_s: float
    error_messages: list[str]


async def _wait_rerun(page, before: int, timeout_ms: float, done: str = "false") -> None:
    """Wait until a rerun has finished after ``before`` was read, or the JavaScript expression
    ``done`` holds, and the app is idle."""
    await page.wait_for_function(
        f"() => ((window.__arpvizRuns || 0) > {before} || ({done})) && ({IDLE})()",
        timeout=timeout_ms)


async def _open_page(page, title: str, ready: str, timeout_ms: float) -> None:
    await page.locator(NAV, has_text=title).first.click()
    await page.locator(ready).first.wait_for(timeout=timeout_ms)
    await page.wait_for_function(IDLE, timeout=timeout_ms)
    await page.evaluate(WATCH_RERUNS)


async def _press(page, slider: str, key: str, timeout_ms: float, done: str = "false") -> float:
    """Press ``key`` on a slider's thumb; seconds until its rerun has finished (or ``done``)."""
    thumb = page.locator(f"{slider} input[type=range]")
    await thumb.focus()
    before = await page.evaluate(RUNS)
    start = time.perf_counter()
    await thumb.press(key)
    await _wait_rerun(page, before, timeout_ms, done)
    return time.perf_counter() - start


def _progress(result: SessionResult) -> None:
    if result.interactions % 10 == 0:
        logger.info("session %d: %d interactions, last %.2f s", result.index,
                    result.interactions, result.latencies[-1])


def _js(value: object) -> str:
    return json.dumps(value)


async def _session(browser, url: str, index: int, count: int, interactions: int,
                   folder: Path, timeout_ms: float) -> SessionResult:
    result = SessionResult(index)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(timeout_ms)  # clicks and key presses wait as long as reruns
    page = await context.new_page()
    step = "opening the app"
    try:
        await page.goto(url + "/", timeout=timeout_ms)
        await page.locator(".st-key-explore_source").wait_for(timeout=timeout_ms)
        await page.wait_for_function(IDLE, timeout=timeout_ms)
        await page.evaluate(WATCH_RERUNS)
        # 1. its own image on Explore
        step = "choosing the upload"
        await page.locator(".st-key-explore_source").get_by_text("Upload an image").click()
        await page.locator(".st-key-explore_upload input[type=file]").wait_for(
            state="attached", timeout=timeout_ms)
        await page.wait_for_function(IDLE, timeout=timeout_ms)
        step = "uploading"
        image = folder / f"session_{index}.png"
        image.write_bytes(session_image(index))
        await page.locator(".st-key-explore_upload input[type=file]").set_input_files(str(image))
        await page.wait_for_function(
            f"() => ({MEAN_COLOUR})('explore_boxes') !== null && ({IDLE})()",
            timeout=timeout_ms)

        async def check_image(step: str) -> None:
            mean = await page.evaluate(MEAN_COLOUR, "explore_boxes")
            if mean is None:
                result.isolation_failures.append(f"session {index} {step}: no image on screen")
            elif nearest_colour(mean, count) != index:
                result.isolation_failures.append(
                    f"session {index} {step}: shows session {nearest_colour(mean, count)}'s "
                    "image")

        await check_image("after upload")
        # 2. k of Conv4 on Explore, back and forth: done when the boxes changed
        explore_moves = interactions // 2
        slider = ".st-key-explore_k-conv4-local0"
        for i in range(explore_moves):
            step = f"explore move {i}"
            key = "ArrowLeft" if i % 2 == 0 else "ArrowRight"
            boxes = await page.evaluate(BOXES, "explore_boxes")
            changed = f"({BOXES})('explore_boxes') !== {_js(boxes)}"
            result.latencies.append(await _press(page, slider, key, timeout_ms, changed))
            result.interactions += 1
            _progress(result)
            await check_image(f"explore move {i}")
            if await page.locator(EXCEPTION).count():
                result.errors.append(f"session {index}: exception on Explore after move {i}")
        # 3. own seed on Appendix A, then k back and forth: done when the page echoes them
        step = "opening Appendix A"
        await _open_page(page, "Appendix A", ".st-key-appx_k", timeout_ms)
        seed = 1000 + index
        step = "typing the seed"
        field_ = page.locator(".st-key-appx_seed input")
        await field_.fill(str(seed))
        await field_.press("Enter")
        echo = "() => Array.from(document.querySelectorAll('[data-testid=stCaptionContainer]'))" \
               ".map(e => e.textContent).find(t => t.startsWith('appendix crops')) || ''"
        await page.wait_for_function(
            f"() => ({echo})().includes('seed {seed})') && ({IDLE})()", timeout=timeout_ms)
        slider = ".st-key-appx_k"
        k = float(await page.locator(f"{slider} input[type=range]").get_attribute(
            "aria-valuetext") or "nan")
        for i in range(interactions - explore_moves):
            step = f"appendix move {i}"
            up = (i // 3) % 2 == 0
            k = round(k + (0.05 if up else -0.05), 2)
            expected = f"(k {k:.2f}, DSR 0.50, seed {seed})"
            shown = f"({echo})().includes({_js(expected)})"
            try:
                result.latencies.append(await _press(
                    page, slider, "ArrowRight" if up else "ArrowLeft", timeout_ms, shown))
            except Exception:
                caption = await page.evaluate(echo)
                result.isolation_failures.append(
                    f"session {index} appendix move {i}: expected {expected}, page says "
                    f"{caption[:90]!r}")
                raise
            result.interactions += 1
            _progress(result)
            caption = await page.evaluate(echo)
            if expected not in caption:
                result.isolation_failures.append(
                    f"session {index} appendix move {i}: expected {expected}, page says "
                    f"{caption[:90]!r}")
            if await page.locator(EXCEPTION).count():
                result.errors.append(f"session {index}: exception on Appendix A after move {i}")
    except Exception as exc:  # a timeout or a lost page: the session failed
        result.errors.append(
            f"session {index} ({step}): {type(exc).__name__}: {str(exc)[:300]}")
        with contextlib.suppress(Exception):
            await page.screenshot(path=str(folder / f"session_{index}_error.png"))
    finally:
        with contextlib.suppress(Exception):
            await context.close()
    return result


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def _run(server: Server, sessions: int, interactions: int, folder: Path,
               timeout_ms: float) -> tuple[list[SessionResult], float, float, float, float]:
    from playwright.async_api import async_playwright

    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb(server.pid))
            stop.wait(0.25)

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            # warm-up: one session loads the model and the pages' caches
            warm = await _session(browser, server.url, 0, 1, 2, folder, timeout_ms)
            if warm.errors:
                raise RuntimeError(f"warm-up session failed: {warm.errors}")
            start_rss = rss_mb(server.pid)
            peak = start_rss
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            began = time.perf_counter()
            results = await asyncio.gather(*(
                _session(browser, server.url, i, sessions, interactions, folder, timeout_ms)
                for i in range(sessions)
            ))
            wall = time.perf_counter() - began
            stop.set()
            sampler.join()
        finally:
            await browser.close()
    return list(results), start_rss, peak, rss_mb(server.pid), wall


def run_load(
    checkpoints: Path, *, sessions: int = 8, interactions: int = 50, workdir: Path | None = None,
    timeout_s: float = 180.0,
) -> LoadResult:
    """Start a server on ``checkpoints`` and run the load; the figures as :class:`LoadResult`."""
    problem = browser_problem()
    if problem:
        raise RuntimeError(problem)
    own = workdir is None
    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="arpviz_load_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with streamlit_server(Path(checkpoints), folder / "server.log") as server:
            results, start, peak, end, wall = asyncio.run(
                _run(server, sessions, interactions, folder, timeout_s * 1000))
            log = server.log_tail(20000)
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)
    latencies = [t for r in results for t in r.latencies]
    errors = [e for r in results for e in r.errors]
    if "Traceback" in log:
        errors.append("the server log holds a traceback:\n" + log[log.index("Traceback"):][:2000])
    isolation = [e for r in results for e in r.isolation_failures]
    return LoadResult(
        sessions=sessions,
        interactions_per_session=interactions,
        interactions=sum(r.interactions for r in results),
        errors=len(errors),
        isolation_failures=len(isolation),
        latency_p50_s=round(_percentile(latencies, 0.5), 3),
        latency_p95_s=round(_percentile(latencies, 0.95), 3),
        latency_max_s=round(max(latencies, default=float("nan")), 3),
        rss_start_mb=round(start, 1),
        rss_peak_mb=round(peak, 1),
        rss_end_mb=round(end, 1),
        wall_s=round(wall, 1),
        error_messages=(errors + isolation)[:20],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--interactions", type=int, default=50,
                        help="slider moves per session (half on Explore, half on Appendix A)")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints",
                        help="the folder the server lists checkpoints from")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per wait")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run_load(args.checkpoints, sessions=args.sessions,
                      interactions=args.interactions, timeout_s=args.timeout)
    text = json.dumps(asdict(result), indent=2)
    logger.info("%s", text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0 if result.errors == 0 and result.isolation_failures == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
