"""Load test of the app: concurrent browser sessions on one Streamlit server.

Starts ``streamlit run app.py`` headless on a free loopback port, opens ``--sessions`` browser
contexts in one Debian chromium (Playwright, never a downloaded browser) and lets every session,
at the same time:

1. open Explore and upload an image of its own colour, then check that the figure shows that
   colour (not another session's image);
2. move Conv4's k slider with the keyboard, half of ``--interactions`` times, checking after
   every rerun that its own image is still the one on screen;
3. open Appendix A, type its own seed, and move the k slider the other half of the times,
   checking after every rerun that Figure 7 shows the crops of this session's k and seed (as
   :func:`arpviz.appendix.analyse` computes them for that setting, not another session's).

Meanwhile the server's resident memory (``VmRSS`` of ``/proc/<pid>/status``) is sampled. The
result: sessions, interactions, errors, isolation failures, p50/p95/max interaction latency
(key press to the end of the rerun, as the browser sees it), the server's own time per script
run (p50/p95 of the runs the app logs to ``ARPVIZ_RUN_LOG``, apart from the browser round
trip, which many browsers on few cores dominate: wall clock, which includes waiting for the
other sessions' runs and the browsers on the same cores, and the CPU time of the script's
thread), server RSS at the start (after one warm-up
session) and at its peak. Run::

    .venv/bin/python -m benchmarks.load_test --sessions 8 --interactions 50 \
        --checkpoints checkpoints --json artifacts/load.json

``tests/test_load.py`` runs a small version on made-up checkpoints through this CLI. The server
and browser helpers live in ``tests/helpers.py`` (the browser end-to-end test uses them too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.helpers import (
    APPENDIX_TITLES,
    BOXES,
    BROWSER_ARGS,
    CHROMIUM,
    EXCEPTION,
    HAS_IMAGE,
    IDLE,
    IMAGE_SOURCE,
    IMAGE_UPLOAD,
    MEAN_COLOUR,
    NAV,
    ROOT,
    RUNS,
    WATCH_RERUNS,
    Server,
    appendix_crops,
    browser_problem,
    expected_appendix_crops,
    nearest_colour,
    rss_mb,
    session_image,
    streamlit_server,
)

logger = logging.getLogger("load_test")


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
    server_runs: int
    server_run_p50_s: float
    server_run_p95_s: float
    server_run_max_s: float
    server_cpu_p50_s: float
    server_cpu_p95_s: float
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


def _crops_are(expected: list[str]) -> str:
    """JavaScript expression: Figure 7's crops (its subplot titles) are ``expected``."""
    return (f"(() => {{ const t = ({APPENDIX_TITLES})(); if (!t) return false;"
            " const c = t.map(x => (x.match(/crop (\\[[\\d.]+, [\\d.]+\\])/) || [])[1]);"
            f" return JSON.stringify(c) === {_js(json.dumps(expected, separators=(',', ':')))};"
            " })()")


async def _session(browser, url: str, index: int, count: int, interactions: int,
                   folder: Path, timeout_ms: float) -> SessionResult:
    result = SessionResult(index)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(timeout_ms)  # clicks and key presses wait as long as reruns
    page = await context.new_page()
    step = "opening the app"
    try:
        await page.goto(url + "/", timeout=timeout_ms)
        await page.locator(IMAGE_SOURCE).wait_for(timeout=timeout_ms)
        await page.wait_for_function(IDLE, timeout=timeout_ms)
        await page.evaluate(WATCH_RERUNS)
        # 1. its own image on Explore
        step = "choosing the upload"
        await page.locator(IMAGE_SOURCE).get_by_text("Your photo").click()
        await page.locator(IMAGE_UPLOAD).wait_for(state="attached", timeout=timeout_ms)
        await page.wait_for_function(IDLE, timeout=timeout_ms)
        step = "uploading"
        image = folder / f"session_{index}.png"
        image.write_bytes(session_image(index))
        await page.locator(IMAGE_UPLOAD).set_input_files(str(image))
        await page.wait_for_function(
            f"() => ({HAS_IMAGE})('explore_boxes') && ({IDLE})()",
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
        slider = ".st-key-k-conv4-local0"
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
        # 3. own seed on Appendix A, then k back and forth: done when Figure 7 shows the crops
        # of this session's seed and k
        step = "opening Appendix A"
        await _open_page(page, "Appendix A", ".st-key-appx-k", timeout_ms)
        slider = ".st-key-appx-k"
        k = float(await page.locator(f"{slider} input[type=range]").get_attribute(
            "aria-valuetext") or "nan")
        seed = 1000 + index
        step = "typing the seed"
        field_ = page.locator(".st-key-appx-seed input")
        await field_.fill(str(seed))
        await field_.press("Enter")
        await page.wait_for_function(
            f"() => ({_crops_are(expected_appendix_crops(seed=seed, k=k))}) && ({IDLE})()",
            timeout=timeout_ms)
        for i in range(interactions - explore_moves):
            step = f"appendix move {i}"
            up = (i // 3) % 2 == 0
            k = round(k + (0.05 if up else -0.05), 2)
            expected = expected_appendix_crops(seed=seed, k=k)
            shown = _crops_are(expected)
            try:
                result.latencies.append(await _press(
                    page, slider, "ArrowRight" if up else "ArrowLeft", timeout_ms, shown))
            except Exception:
                crops = appendix_crops(await page.evaluate(APPENDIX_TITLES))
                result.isolation_failures.append(
                    f"session {index} appendix move {i}: expected the crops of k {k:.2f}, "
                    f"seed {seed} {expected[:3]}, the page shows {crops[:3]}")
                raise
            result.interactions += 1
            _progress(result)
            crops = appendix_crops(await page.evaluate(APPENDIX_TITLES))
            if crops != expected:
                result.isolation_failures.append(
                    f"session {index} appendix move {i}: expected the crops of k {k:.2f}, "
                    f"seed {seed} {expected[:3]}, the page shows {crops[:3]}")
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
               timeout_ms: float) -> tuple[list[SessionResult], float, float, float, float, int]:
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
            run_log = folder / "runs.jsonl"
            mark = run_log.stat().st_size if run_log.exists() else 0
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
    return list(results), start_rss, peak, rss_mb(server.pid), wall, mark


def server_run_seconds(run_log: Path, offset: int = 0, field: str = "seconds") -> list[float]:
    """``field`` (``"seconds"``: wall clock, ``"cpu_seconds"``: the script thread's CPU time) of
    every script run the app logged to ``run_log`` after byte ``offset``."""
    try:
        with open(run_log, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    seconds = []
    for line in text.splitlines():
        try:
            seconds.append(float(json.loads(line)[field]))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by the server's exit
    return seconds


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
        run_log = folder / "runs.jsonl"
        with streamlit_server(Path(checkpoints), folder / "server.log",
                              extra_env={"ARPVIZ_RUN_LOG": str(run_log)}) as server:
            results, start, peak, end, wall, mark = asyncio.run(
                _run(server, sessions, interactions, folder, timeout_s * 1000))
            log = server.log_tail(20000)
        runs = server_run_seconds(run_log, mark)
        cpu = server_run_seconds(run_log, mark, "cpu_seconds")
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
        server_runs=len(runs),
        server_run_p50_s=round(_percentile(runs, 0.5), 4),
        server_run_p95_s=round(_percentile(runs, 0.95), 4),
        server_run_max_s=round(max(runs, default=float("nan")), 4),
        server_cpu_p50_s=round(_percentile(cpu, 0.5), 4),
        server_cpu_p95_s=round(_percentile(cpu, 0.95), 4),
        rss_start_mb=round(start, 1),
        rss_peak_mb=round(peak, 1),
        rss_end_mb=round(end, 1),
        wall_s=round(wall, 1),
        error_messages=(errors + isolation)[:20],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sessions", type=int, default=8, help="concurrent browser sessions")
    parser.add_argument("--interactions", type=int, default=50,
                        help="slider moves per session (half on Explore, half on Appendix A)")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints",
                        help="the folder the server lists checkpoints from")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per wait")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
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
