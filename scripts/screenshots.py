"""Screenshots of every page of the app on the bundled checkpoints, for the README and docs.

Starts ``streamlit run app.py`` headless on a free loopback port with ``checkpoints/`` as its
bundled folder (the server helpers of ``tests/helpers.py``), drives Debian's chromium
through Playwright (``executable_path``; nothing is downloaded) and writes one PNG per
page to ``docs/img/<page>.png``: Explore and RP against ARP on the default SynthBirds sample with
the trained rates, Adaptivity on the first 32 validation images (computed, then cached in
``$ARPVIZ_CACHE/analysis``), Appendix A at its defaults, Training as it opens (the ARP run with its
STN counterpart), the Gallery on the default checkpoint's SynthBirds split, Explore's
faithfulness panel opened (``explore_faithfulness.png``), Explore on a photo-like upload at its
own aspect (``explore_photo.png``) and RP against ARP on it (``rp_vs_arp_photo.png``), and,
with the re-ID checkpoint ``synthreid_msgn_arp`` chosen in the sidebar, Retrieval on its first
query and Training on that re-ID run.
Run::

    .venv/bin/python scripts/screenshots.py [--out docs/img] [--width 1366] [--checkpoints ...]
    .venv/bin/python scripts/screenshots.py --out docs/img/1920 --width 1920

The tests' own screenshots go to a temporary folder (``ARPVIZ_E2E_SHOTS=docs/img`` makes
``tests/test_e2e_browser.py`` refresh ``docs/img/e2e_*.png``, taken on small made-up
checkpoints); these are the pictures of the real bundled models.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: make ``tests.helpers`` importable
    sys.path.insert(0, str(ROOT))

from tests.helpers import (  # noqa: E402
    BROWSER_ARGS,
    CHROMIUM,
    EXCEPTION,
    IDLE,
    IMAGE_SOURCE,
    IMAGE_UPLOAD,
    NAV,
    browser_problem,
    open_app,
    streamlit_server,
)

logger = logging.getLogger("screenshots")
#: page title in the navigation, a selector that shows once the page has rendered, file name,
#: window height (Streamlit scrolls inside its own container, so the window sets what is seen),
#: and the checkpoint to choose in the sidebar first (None: keep the one chosen)
PAGES = [
    ("Explore", ".st-key-explore_stages .js-plotly-plot", "explore", 1300, None),
    ("RP against ARP", ".st-key-compare_crops .js-plotly-plot", "rp_vs_arp", 1600, None),
    ("Adaptivity", ".st-key-adapt_contrast .js-plotly-plot", "adaptivity", 4300, None),
    ("Appendix A", ".st-key-appx_sweep .js-plotly-plot", "appendix_a", 3900, None),
    ("Training", ".st-key-train_pair_fig .js-plotly-plot", "training", 4600, None),
    ("Gallery", "[class*='st-key-gallery_open'] button", "gallery", 2000, None),
    ("Retrieval", ".st-key-retrieval_results_fig .js-plotly-plot", "retrieval", 1300,
     "synthreid_msgn_arp"),
    ("Training", ".st-key-train_probe_fig_0 .js-plotly-plot", "training_reid", 3000, None),
]


def _choose_checkpoint(page, name: str, timeout_ms: float) -> None:
    """Pick the sidebar's checkpoint whose label contains ``name``."""
    page.locator("[data-testid='stSidebar'] input[role='combobox'][aria-label='Checkpoint']"
                 ).first.click()
    page.locator("[role='option']", has_text=name).first.click()
    page.wait_for_timeout(500)
    page.wait_for_function(IDLE, timeout=timeout_ms)


def _settle(page, timeout_ms: float) -> None:
    """Wait until the app is idle and plotly has drawn (a short pause for its transitions)."""
    page.wait_for_function(IDLE, timeout=timeout_ms)
    page.wait_for_timeout(1500)
    page.wait_for_function(IDLE, timeout=timeout_ms)


def _capture(page, target, path: Path, what: str, timeout_ms: float) -> Path:
    """Once the app is idle and shows no exception, screenshot ``target`` (the page, or one
    element's locator) to ``path``."""
    _settle(page, timeout_ms)
    if page.locator(EXCEPTION).count():
        raise RuntimeError(f"{what} shows an exception")
    target.screenshot(path=str(path))
    logger.info("%s: %s", what, path)
    return path


def _faithfulness(page, out: Path, timeout_ms: float, width: int) -> Path:
    """Explore's faithfulness panel, opened and run, as an element screenshot."""
    page.set_viewport_size({"width": width, "height": 1200})
    page.locator(NAV, has_text="Explore").first.click()
    page.locator(".st-key-explore_stages .js-plotly-plot").first.wait_for(timeout=timeout_ms)
    _settle(page, timeout_ms)
    panel = page.locator("[data-testid='stExpander']", has_text="faithfulness").first
    opened = "e => (e.matches('details') ? e : e.querySelector('details')).open"
    if not panel.evaluate(opened):  # the app keeps an expander open across pages
        panel.locator("summary").click()
    toggle = panel.locator(".st-key-explore-faith")  # key explore.faith
    chart = page.locator(".st-key-explore_faith_chart .js-plotly-plot")
    for _ in range(3):  # a click that lands while a rerun is in flight can be undone by it
        if not toggle.locator("input").is_checked():
            toggle.locator("label").click()
        page.wait_for_function(IDLE, timeout=timeout_ms)
        try:
            chart.wait_for(timeout=60_000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: try once more
            logger.info("the faithfulness chart did not show; toggling again")
    chart.wait_for(timeout=timeout_ms)
    return _capture(page, panel, out / "explore_faithfulness.png",
                    "Explore's faithfulness panel", timeout_ms)


def _photo(page, out: Path, timeout_ms: float, width: int) -> list[Path]:
    """Explore on a photo-like upload (741 x 500): the image at its own aspect, the network's
    input framed; then RP against ARP on the same photo."""
    from benchmarks.browser_latency import photo

    page.set_viewport_size({"width": width, "height": 1300})
    page.locator(NAV, has_text="Explore").first.click()
    page.locator(IMAGE_SOURCE).get_by_text("Your photo").click()
    page.locator(IMAGE_UPLOAD).wait_for(state="attached")
    image = photo(Path(tempfile.mkdtemp(prefix="arpviz_photo_")) / "photo.jpg")
    page.locator(IMAGE_UPLOAD).set_input_files(str(image))
    page.locator(".st-key-explore_boxes .js-plotly-plot").first.wait_for(timeout=timeout_ms)
    paths = [_capture(page, page, out / "explore_photo.png", "Explore on a photo", timeout_ms)]
    # the same photo on RP against ARP (it carries across pages), at its aspect on both sides
    page.set_viewport_size({"width": width, "height": 1600})
    page.locator(NAV, has_text="RP against ARP").first.click()
    page.locator(".st-key-compare_crops .js-plotly-plot").first.wait_for(timeout=timeout_ms)
    paths.append(_capture(page, page, out / "rp_vs_arp_photo.png", "RP against ARP on a photo",
                          timeout_ms))
    # back to the sample on Explore (the photo would otherwise be every image page's image)
    page.locator(NAV, has_text="Explore").first.click()
    page.locator(IMAGE_SOURCE).get_by_text("Data-set sample").click()
    _settle(page, timeout_ms)
    return paths


def take(checkpoints: Path, out: Path, *, timeout_s: float = 300.0,
         only: list[str] | None = None, width: int = 1366) -> list[Path]:
    """Write a screenshot of every page (a window ``width`` pixels wide, its height per
    :data:`PAGES`; ``only``: those file names) to ``out``; the files written."""
    from playwright.sync_api import sync_playwright

    problem = browser_problem()
    if problem:
        raise RuntimeError(problem)
    timeout_ms = timeout_s * 1000
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    log = Path(tempfile.mkdtemp(prefix="arpviz_shots_")) / "server.log"
    with streamlit_server(checkpoints, log) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = open_app(browser, server.url, timeout_ms)
            for title, ready, name, height, checkpoint in PAGES:
                if checkpoint:
                    _choose_checkpoint(page, checkpoint, timeout_ms)
                if only and name not in only:
                    continue
                page.set_viewport_size({"width": width, "height": height})
                page.locator(NAV, has_text=title).first.click()
                page.locator(ready).first.wait_for(timeout=timeout_ms)
                written.append(_capture(page, page, out / f"{name}.png", f"the {title} page",
                                        timeout_ms))
                if name == "gallery" and not only:  # still on the default checkpoint
                    written.append(_faithfulness(page, out, timeout_ms, width))
                    written.extend(_photo(page, out, timeout_ms, width))
        finally:
            browser.close()
    if "Traceback" in server.log_tail(20000):
        raise RuntimeError("the server logged a traceback:\n" + server.log_tail(4000))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per wait")
    parser.add_argument("--width", type=int, default=1366,
                        help="the window's width in pixels (a laptop's 1366; 1920 for a desktop)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="file names (without .png) of the pages to take; default all: "
                        + ", ".join(name for _, _, name, _, _ in PAGES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    take(args.checkpoints, args.out, timeout_s=args.timeout, only=args.only, width=args.width)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
