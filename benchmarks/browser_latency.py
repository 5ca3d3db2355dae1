"""How fast Explore answers a slider step, in a real browser: one user, the bundled default.

Starts ``streamlit run app.py`` headless on a free loopback port with ``checkpoints/`` as its
bundled folder, opens Explore in Debian's chromium (Playwright with ``executable_path``; nothing
is downloaded), uploads a photo-like image (741 x 500, made here: gradients, shapes and noise),
then presses the arrow key ``--steps`` times on each of three sliders (Conv3 k, Conv4 k, Conv4
DSR), alternating direction so the value stays in range. For every step it records:

- **update**: from the key press until the page's stage numbers show the new value (the boxes
  and the prediction are drawn in the same pass, before and right after that text);
- **rerun**: from the key press until the app is idle again (the whole rerun drawn).

Times are wall clock as the test driver sees them (Playwright's round trip included), so they
are an upper bound of what a user sees. With ``--scrub`` it also turns on Explore's k sweep for
Conv4 (39 values computed once) and plays every step of the k scrubber (its own frame) as a
dragged range input does, timing in the page itself each step from the input event until the
browser has painted it (no server round trip: the **k scrub** line). Prints medians and maxima
per slider and writes them as JSON. Run on an idle machine::

    .venv/bin/python -m benchmarks.browser_latency --steps 10 --json artifacts/latency.json
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tests.helpers import (
    BROWSER_ARGS,
    CHROMIUM,
    IDLE,
    IMAGE_SOURCE,
    IMAGE_UPLOAD,
    ROOT,
    RUNS,
    WATCH_RERUNS,
    browser_problem,
    open_app,
    streamlit_server,
)

#: (name, the slider's CSS class without ``st-key-`` (widget keys ``k:<stage>``,
#: ``dsr:<stage>``), the stage label and field the stage numbers print)
SLIDERS = (
    ("Conv3 k", "k-conv3", "Conv3", "k"),
    ("Conv4 k", "k-conv4-local0", "Conv4 local 0", "k"),
    ("Conv4 DSR", "dsr-conv4-local0", "Conv4 local 0", "DSR"),
)
TIMEOUT_MS = 120_000


def photo(path: Path, size: tuple[int, int] = (741, 500), seed: int = 0) -> Path:
    """A photo-like test image: smooth gradients, a few shapes and sensor-like noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([120 + 80 * np.sin(xx / 97), 140 + 60 * np.cos(yy / 71),
                     100 + 50 * np.sin((xx + yy) / 130)], axis=-1)
    image = Image.fromarray(np.clip(base + rng.normal(0, 8, base.shape), 0, 255)
                            .astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, w - 120)), int(rng.integers(0, h - 90))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        draw.ellipse((x, y, x + int(rng.integers(40, 160)), y + int(rng.integers(30, 120))),
                     fill=colour)
    image.save(path, quality=90)
    return path


def _value(page, stage: str, field: str) -> str | None:
    text = page.locator("[data-testid='stMain']").inner_text()
    match = re.search(rf"{re.escape(stage)} \([^)]*\): (?:k ([\d.]+), )?DSR ([\d.]+)", text)
    if match is None:
        return None
    return match.group(1) if field == "k" else match.group(2)


def measure(page, key: str, stage: str, field: str, steps: int) -> dict[str, list[float]]:
    """Press the slider's arrow keys ``steps`` times; the update and rerun times in seconds."""
    thumb = page.locator(f".st-key-{key} input[type=range]")
    updates, reruns = [], []
    for i in range(steps):
        direction = "ArrowRight" if (i // 2) % 2 == 0 else "ArrowLeft"
        before_value = _value(page, stage, field)
        runs = page.evaluate(RUNS)
        thumb.focus()
        start = time.perf_counter()
        thumb.press(direction)
        page.wait_for_function(
            "([stage, field, old]) => { const t = document.querySelector("
            "\"[data-testid='stMain']\").innerText; const m = t.match(new RegExp("
            "stage.replace(/[.*+?^${}()|[\\]\\\\]/g, '\\\\$&') + ' \\\\([^)]*\\\\): (?:k "
            "([\\\\d.]+), )?DSR ([\\\\d.]+)')); if (!m) return false;"
            " return (field === 'k' ? m[1] : m[2]) !== old; }",
            arg=[stage, field, before_value], timeout=TIMEOUT_MS, polling=5)
        updates.append(time.perf_counter() - start)
        idle_at_update = page.evaluate(IDLE)
        try:
            page.wait_for_function(f"() => (window.__arpvizRuns || 0) > {runs}",
                                   timeout=3_000, polling=5)
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: no rerun was seen
            if idle_at_update and page.evaluate(IDLE):
                # The rerun started and ended within one paint (the script-state attribute
                # never left "notRunning"): it was over when the update was seen.
                reruns.append(updates[-1])
                continue
        page.wait_for_function(IDLE, timeout=TIMEOUT_MS, polling=5)
        reruns.append(time.perf_counter() - start)
    return {"update": updates, "rerun": reruns}


#: Scrubs every step of the k scrubber (in its own frame) as a dragged range input does (an
#: ``input`` event per step) and times each step until the browser has painted it.
SCRUB = """async () => {
  const slider = document.getElementById('k');
  const out = [];
  for (let i = 0; i <= Number(slider.max); i++) {
    const t0 = performance.now();
    slider.value = i;
    slider.dispatchEvent(new Event('input', {bubbles: true}));
    if (window.__scrubShown !== i) { throw new Error('step ' + i + ' not shown'); }
    await new Promise(r => requestAnimationFrame(() => r()));
    out.push((performance.now() - t0) / 1000);
  }
  return out;
}"""


def scrub(page) -> list[float]:
    """Turn Explore's k sweep on for Conv4 (computed once on the server), then scrub k through
    every frame in the browser; the seconds each step took to show."""
    opener = page.locator(".st-key-explore-sweep_stage button[aria-label='Open']").first
    option = page.locator("[role='option']", has_text="Conv4 local 0").first
    for _ in range(5):  # a rerun that lands meanwhile closes the list: open it again
        opener.scroll_into_view_if_needed()
        opener.click()
        try:
            option.wait_for(timeout=5000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: try again
            continue
    option.click()
    page.wait_for_function(IDLE, timeout=TIMEOUT_MS)
    page.locator(".st-key-explore-sweep label").click()
    frame_element = page.locator(".st-key-explore_scrub iframe").first
    frame_element.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(IDLE, timeout=TIMEOUT_MS)
    frame_element.scroll_into_view_if_needed()
    frame = frame_element.element_handle().content_frame()
    frame.wait_for_function("() => window.__scrubShown !== undefined", timeout=TIMEOUT_MS)
    frame.evaluate(SCRUB)  # warm-up
    return frame.evaluate(SCRUB)


def run(steps: int, checkpoints: Path, with_scrub: bool = False) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    problem = browser_problem()
    if problem is not None:
        raise SystemExit(f"cannot run: {problem}")
    with tempfile.TemporaryDirectory() as folder:
        image = photo(Path(folder) / "photo.jpg")
        with streamlit_server(checkpoints, Path(folder) / "server.log") as server, \
                sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = open_app(browser, server.url, TIMEOUT_MS, height=1400)
            page.locator(IMAGE_SOURCE).get_by_text("Your photo").click()
            page.locator(IMAGE_UPLOAD).wait_for(state="attached")
            page.locator(IMAGE_UPLOAD).set_input_files(str(image))
            page.locator(".st-key-explore_boxes .js-plotly-plot").wait_for()
            page.wait_for_function(IDLE, timeout=TIMEOUT_MS)
            page.evaluate(WATCH_RERUNS)
            for _, key, stage, field in SLIDERS:  # warm up every path once
                measure(page, key, stage, field, 2)
            results = {name: measure(page, key, stage, field, steps)
                       for name, key, stage, field in SLIDERS}
            if with_scrub:
                results["k scrub"] = {"update": scrub(page)}
            browser.close()
    summary = {name: {kind: {"median": statistics.median(v), "max": max(v)}
                      for kind, v in values.items()} for name, values in results.items()}
    return {"steps": steps, "summary": summary, "raw": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.browser_latency",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="key presses per slider")
    parser.add_argument("--checkpoints", default=str(ROOT / "checkpoints"),
                        help="the bundled folder the app starts on")
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--scrub", action="store_true",
                        help="also time the k scrubber: every frame of Conv4's sweep played in "
                        "the browser (no server round trip)")
    args = parser.parse_args(argv)
    result = run(args.steps, Path(args.checkpoints), args.scrub)
    print(f"{'slider':<11}{'update median':>15}{'update max':>12}{'rerun median':>14}"
          f"{'rerun max':>11}")
    for name, kinds in result["summary"].items():
        u, r = kinds["update"], kinds.get("rerun")
        rerun = "" if r is None else f"{r['median']:>13.3f}s{r['max']:>10.3f}s"
        print(f"{name:<11}{u['median']:>14.3f}s{u['max']:>11.3f}s{rerun}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
