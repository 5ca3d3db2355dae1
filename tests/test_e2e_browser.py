"""Real browser end to end: ``streamlit run app.py`` driven by Debian's chromium via Playwright.

Every page is opened from the sidebar navigation, an image is uploaded on Explore, sliders are
moved with the keyboard, and after each step no exception may show and the box must have moved
(read from the plotly figure in the DOM, or from the text the page renders with the box
numbers). Screenshots of every page go to a temporary folder, or to ``$ARPVIZ_E2E_SHOTS`` when
set (``ARPVIZ_E2E_SHOTS=docs/img`` refreshes the pictures docs/app_part2.md shows, by hand).

Without chromium (``/usr/bin/chromium``) or the playwright package the tests skip and say why;
with ``CI=true`` in the environment that is a failure instead. The browser is never downloaded.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    APPENDIX_TITLES,
    BOXES,
    BROWSER_ARGS,
    CHROMIUM,
    DECODE_JS,
    EXCEPTION,
    HAS_IMAGE,
    IDLE,
    IMAGE_SOURCE,
    IMAGE_UPLOAD,
    MEAN_COLOUR,
    NAV,
    RUNS,
    WATCH_RERUNS,
    Server,
    appendix_crops,
    browser_problem,
    expected_appendix_crops,
    nearest_colour,
    open_app,
    session_colour,
    session_image,
    streamlit_server,
    write_checkpoint,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
TIMEOUT_MS = 180_000


def _need_browser() -> None:
    problem = browser_problem()
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but the browser test cannot run: {problem}")
    pytest.skip(f"browser end-to-end test skipped: {problem}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _need_browser()
    folder = tmp_path_factory.mktemp("e2e_checkpoints")
    write_checkpoint(folder / "msgn_arp.safetensors", "arp", epochs=4)
    write_checkpoint(folder / "msgn_stn.safetensors", "stn", epochs=4, seed=1)
    log = tmp_path_factory.mktemp("e2e_server") / "server.log"
    with streamlit_server(folder, log) as running:
        yield running


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (never a tracked folder unless ``ARPVIZ_E2E_SHOTS`` says so)."""
    chosen = os.environ.get("ARPVIZ_E2E_SHOTS", "").strip()
    return Path(chosen) if chosen else tmp_path_factory.mktemp("e2e_shots")


@pytest.fixture(scope="module")
def page(server: Server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield open_app(browser, server.url, TIMEOUT_MS)
        finally:
            browser.close()


def _settle(page) -> None:
    page.wait_for_function(IDLE, timeout=TIMEOUT_MS)
    page.evaluate(WATCH_RERUNS)


def _rerun(page, action) -> None:
    """Do ``action()`` and wait until the rerun it causes has finished."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    before = page.evaluate(RUNS)
    action()
    try:
        page.wait_for_function(f"() => (window.__arpvizRuns || 0) > {before}", timeout=20_000)
    except PlaywrightTimeout:
        # a rerun so quick that the browser never rendered "running" leaves no trace in the
        # counter: go on once the app is idle (every test then checks the page's state itself)
        pass
    page.wait_for_function(IDLE, timeout=TIMEOUT_MS)


def _press(page, slider: str, key: str, times: int = 1) -> None:
    thumb = page.locator(f"{slider} input[type=range]")
    for _ in range(times):
        thumb.focus()
        _rerun(page, lambda: thumb.press(key))


def _no_exception(page, where: str) -> None:
    shown = page.locator(EXCEPTION)
    if shown.count():
        pytest.fail(f"exception shown on {where}: {shown.first.inner_text()[:1500]}")


def _open(page, title: str, ready: str) -> None:
    page.locator(NAV, has_text=title).first.click()
    page.locator(ready).first.wait_for(timeout=TIMEOUT_MS)
    _settle(page)


def _shot(page, folder: Path, name: str) -> None:
    """Screenshot of the whole page to ``folder/e2e_<name>.png``: the viewport grows to the
    height of the main column."""
    folder.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return Math.max(m ? m.scrollHeight : 0, document.body.scrollHeight); }")
    page.set_viewport_size({"width": size["width"], "height": int(min(max(height, 800), 7000))})
    page.wait_for_timeout(1500)  # let plotly redraw at the new size
    page.screenshot(path=str(folder / f"e2e_{name}.png"), full_page=True)
    page.set_viewport_size(size)
    page.wait_for_timeout(300)


def _boxes(page, key: str) -> list:
    """The scatter traces ``[name, xs, ys]`` of the keyed plotly chart (waits for it)."""
    page.locator(f".st-key-{key} .js-plotly-plot").first.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(f"(key) => {{ const f = ({BOXES}); return f(key) !== null; }}",
                           arg=key, timeout=TIMEOUT_MS)
    return json.loads(page.evaluate(BOXES, key))


def _boxes_changed(page, key: str, before: list, timeout_ms: float = 20_000) -> list:
    """The chart's traces once they differ from ``before`` (plotly redraws asynchronously)."""
    old = page.evaluate("(v) => JSON.stringify(v)", before)  # the same number formatting
    try:
        page.wait_for_function(
            f"([key, old]) => {{ const f = ({BOXES}); const now = f(key);"
            " return now !== null && now !== old; }",
            arg=[key, old], timeout=timeout_ms)
    except Exception:  # noqa: BLE001 - report below with the numbers
        pass
    return _boxes(page, key)


def _numbers(text: str) -> list[tuple[float, ...]]:
    return [tuple(map(float, m)) for m in
            re.findall(r"\(([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+)\)", text)]


def _inside(box: tuple[float, ...], size: float) -> bool:
    x1, y1, x2, y2 = box
    return 0 <= x1 < x2 <= size + 1e-3 and 0 <= y1 < y2 <= size + 1e-3


#: Explore's stage sliders (keys ``k:<stage>``, ``dsr:<stage>``) as CSS classes.
CONV4_K, CONV4_DSR = ".st-key-k-conv4-local0", ".st-key-dsr-conv4-local0"
CONV3_K = ".st-key-k-conv3"


def _explore_k(page) -> float:
    return float(page.locator(f"{CONV4_K} input[type=range]").get_attribute("aria-valuetext"))


def test_explore_upload_and_k_slider(page, shots, tmp_path):
    # Explore, RP against ARP, Gallery, Adaptivity, Appendix A, Training, Retrieval
    assert page.locator(NAV).count() == 7
    _no_exception(page, "Explore (sample)")
    assert _explore_k(page) == pytest.approx(0.7)  # the trained k
    before = _boxes(page, "explore_boxes")
    _press(page, CONV4_K, "ArrowLeft", times=2)
    _no_exception(page, "Explore after moving k")
    assert _explore_k(page) == pytest.approx(0.6)
    after = _boxes_changed(page, "explore_boxes", before)
    assert [b[0] for b in after] == [b[0] for b in before]  # the same stages
    assert after != before, "the Conv4 box did not move when k changed"
    _rerun(page, lambda: page.locator(IMAGE_SOURCE).get_by_text("Your photo").click())
    image = tmp_path / "upload.png"
    image.write_bytes(session_image(0))
    _rerun(page, lambda: page.locator(IMAGE_UPLOAD).set_input_files(str(image)))
    page.locator(".st-key-explore_boxes .js-plotly-plot").wait_for(timeout=TIMEOUT_MS)
    _no_exception(page, "Explore after the upload")
    mean = page.evaluate(MEAN_COLOUR, "explore_boxes")
    assert mean is not None and nearest_colour(mean, 8) == 0, (mean, session_colour(0))
    before = _boxes(page, "explore_boxes")
    _press(page, CONV4_K, "ArrowRight", times=2)
    _no_exception(page, "Explore after moving k on the upload")
    after = _boxes_changed(page, "explore_boxes", before)
    assert after != before, "the Conv4 box did not move when k changed"
    width, height = 160, 120  # the upload, drawn at its own size and aspect
    for name, xs, ys in after:  # every box and the network's input frame on the photo
        xs, ys = [v for v in xs if v is not None], [v for v in ys if v is not None]
        assert min(xs) >= 0 and max(xs) <= width + 1e-3, name
        assert min(ys) >= 0 and max(ys) <= height + 1e-3, name
    assert "network input" in [name for name, _, _ in after]
    _shot(page, shots, "explore")


def _main_text(page) -> str:
    """The main column's text as the browser renders it."""
    return page.locator("[data-testid='stMain']").inner_text()


def _wait_text(page, text: str, timeout_ms: float = 60_000) -> None:
    """Wait until the main column shows ``text``; fail naming the image it shows instead."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "(text) => (document.querySelector(\"[data-testid='stMain']\")?.innerText || '')"
            ".includes(text)", arg=text, timeout=timeout_ms)
    except PlaywrightTimeout:
        lines = [line for line in _main_text(page).splitlines() if line.startswith("Image")]
        pytest.fail(f"the page never showed {text!r}; it shows {lines}")


def _slider_value(page, key: str) -> float:
    return float(page.locator(f".st-key-{key} input[type=range]").get_attribute("aria-valuetext"))


def _used(page) -> dict[str, tuple[float, float]]:
    """``{stage label: (k, DSR)}`` as the page's stage numbers report them."""
    pattern = re.compile(r"(Conv3|Conv4 local 0) \(ARP\): k ([\d.]+), DSR ([\d.]+)")
    text = _main_text(page)
    return {m.group(1): (float(m.group(2)), float(m.group(3))) for m in pattern.finditer(text)}


def _sliders_match_the_page(page) -> None:
    used = _used(page)
    assert set(used) == {"Conv3", "Conv4 local 0"}, used
    for label, stage in (("Conv3", "conv3"), ("Conv4 local 0", "conv4-local0")):
        shown = (_slider_value(page, f"k-{stage}"), _slider_value(page, f"dsr-{stage}"))
        assert shown == pytest.approx(used[label]), (
            f"{label}: the sliders show k, DSR = {shown} but the page used {used[label]}")


def test_explore_sliders_show_the_k_in_use(page):
    """The k slider shows the k the page reports it used (after the upload above too)."""
    _sliders_match_the_page(page)


def test_explore_no_stale_sliders_after_moves_reset_and_uploads(page, tmp_path):
    """The sequence a user once saw go stale: after it, every slider shows what the page
    uses, and the faithfulness check runs on the same setting."""
    _press(page, CONV4_K, "ArrowLeft", times=6)
    _press(page, CONV4_K, "ArrowRight", times=12)
    _press(page, CONV4_DSR, "ArrowRight", times=4)
    _press(page, CONV3_K, "ArrowLeft", times=6)
    _sliders_match_the_page(page)
    _rerun(page, lambda: page.get_by_role("button", name="Reset to trained").click())
    _sliders_match_the_page(page)
    assert _used(page) == {"Conv3": (1.0, 0.5), "Conv4 local 0": (0.7, 0.5)}
    image = tmp_path / "second.png"
    image.write_bytes(session_image(3))
    _rerun(page, lambda: page.locator(IMAGE_UPLOAD).set_input_files(str(image)))
    page.locator(".st-key-explore_boxes .js-plotly-plot").wait_for(timeout=TIMEOUT_MS)
    _settle(page)
    _no_exception(page, "Explore after the second upload")
    _wait_text(page, "Image: second.png, 160 x 120 px (your photo)")
    _sliders_match_the_page(page)
    assert _used(page) == {"Conv3": (1.0, 0.5), "Conv4 local 0": (0.7, 0.5)}


def test_rp_vs_arp(page, shots):
    _open(page, "RP against ARP", ".st-key-compare-left")
    page.locator(".st-key-compare_boxes_left .js-plotly-plot").wait_for(timeout=TIMEOUT_MS)
    _no_exception(page, "RP against ARP")
    arp, rp = _boxes(page, "compare_boxes_left"), _boxes(page, "compare_boxes_right")
    assert arp and rp
    before = _boxes(page, "compare_boxes_left")
    _press(page, ".st-key-k-conv3-left", "ArrowLeft", times=3)  # the ARP side's k
    _no_exception(page, "RP against ARP after moving k")
    assert _boxes_changed(page, "compare_boxes_left", before) != before
    _shot(page, shots, "rp_vs_arp")


def _appendix_crops(page) -> list[str]:
    """Figure 7's crops once the figure shows them."""
    page.wait_for_function(f"() => {{ const t = ({APPENDIX_TITLES})(); return t && t.length; }}",
                           timeout=TIMEOUT_MS)
    return appendix_crops(page.evaluate(APPENDIX_TITLES))


def test_appendix_a(page, shots):
    _open(page, "Appendix A", ".st-key-appx-k")
    _no_exception(page, "Appendix A")
    assert _slider_value(page, "appx-k") == pytest.approx(1.0)
    assert page.locator(".st-key-appx_grid .js-plotly-plot").count() == 1
    before = _appendix_crops(page)
    assert before == expected_appendix_crops(seed=0, k=1.0)  # the defaults' crops
    _press(page, ".st-key-appx-k", "ArrowLeft", times=4)
    _no_exception(page, "Appendix A after moving k")
    assert _slider_value(page, "appx-k") == pytest.approx(0.8)
    expected = expected_appendix_crops(seed=0, k=0.8)
    try:  # plotly redraws asynchronously
        page.wait_for_function(
            f"(want) => {{ const t = ({APPENDIX_TITLES})();"
            " return !!t && t.length > 0 && t[0].includes('crop ' + want); }",
            arg=expected[0], timeout=20_000)
    except Exception:  # noqa: BLE001 - reported below with the numbers
        pass
    after = _appendix_crops(page)
    assert after == expected, "the crops are not k 0.8's"
    assert after != before, "the crops did not move when k changed"
    # the red area of Figure 7 follows the crop of distribution #0
    start, end = (float(v) for v in after[0].strip("[]").split(", "))
    red = page.evaluate(
        "() => {" + DECODE_JS + """
         const el = document.querySelector('.st-key-appx_grid .js-plotly-plot');
         const t = el.data.find(t => t.fillcolor && t.fillcolor.startsWith('rgba(214'));
         const x = decode(t.x); return [x[0], x[x.length - 1]]; }""")
    assert red[0] == pytest.approx(start, abs=0.051) and red[1] == pytest.approx(end, abs=0.051)
    _shot(page, shots, "appendix_a")


def test_training(page, shots):
    _open(page, "Training", ".st-key-train-epoch")
    _no_exception(page, "Training")
    before = _boxes(page, "train_probe_fig_0")
    assert [b[0] for b in before] == ["Conv3 (ARP)", "Conv4 local 0 (ARP)"]
    assert page.get_by_text("Probe images at epoch 4").count() == 1
    assert page.locator(".st-key-train_pair_fig .js-plotly-plot").count() == 1
    assert page.locator(".st-key-train_curves .js-plotly-plot").count() == 1  # drawn once
    _press(page, ".st-key-train-epoch", "ArrowLeft", times=2)
    _no_exception(page, "Training after moving the epoch")
    assert page.get_by_text("Probe images at epoch 2").count() == 1
    after = _boxes_changed(page, "train_probe_fig_0", before)
    assert [b[0] for b in after] == ["Conv3 (ARP)", "Conv4 local 0 (ARP)"]
    assert after != before, "the boxes did not change with the epoch"
    _shot(page, shots, "training")


def test_gallery_opens_an_image_in_explore(page, shots):
    button = "[class*='st-key-gallery_open'] button"
    _open(page, "Gallery", button)
    _no_exception(page, "Gallery")
    assert page.locator(button).count() == 12  # a full first page of thumbnails
    page.wait_for_function(  # the thumbnails load after the buttons
        "() => Array.from(document.querySelectorAll('[data-testid=\"stMain\"] img'))"
        ".filter(i => i.complete && i.naturalWidth > 0).length >= 12", timeout=TIMEOUT_MS)
    _shot(page, shots, "gallery")
    _rerun(page, lambda: page.locator(button).nth(1).click())
    page.locator(".st-key-explore_boxes .js-plotly-plot").first.wait_for(timeout=TIMEOUT_MS)
    _settle(page)
    _no_exception(page, "Explore opened from the Gallery")
    assert page.locator(".st-key-image-sample input").input_value() == "1"
    assert "Image: val #1, " in _main_text(page)


def _press_to(page, slider: str, value: float, step: float = 0.05) -> None:
    """Move a slider to ``value`` with the arrow keys (one rerun per press)."""
    current = float(page.locator(f"{slider} input[type=range]").get_attribute("aria-valuetext"))
    presses = round((value - current) / step)
    if presses:
        _press(page, slider, "ArrowRight" if presses > 0 else "ArrowLeft", times=abs(presses))


def test_one_photo_and_one_k_across_the_pages(page, tmp_path):
    """A photo uploaded on Explore and Conv4's k set there with the keyboard are the photo and
    the ARP side's k of RP against ARP, opened from the sidebar; after the Gallery, Explore
    shows the same photo with the same k."""
    _open(page, "Explore", CONV4_K)
    image = tmp_path / "flow.png"
    image.write_bytes(session_image(5))
    _rerun(page, lambda: page.locator(IMAGE_SOURCE).get_by_text("Your photo").click())
    _rerun(page, lambda: page.locator(IMAGE_UPLOAD).set_input_files(str(image)))
    caption = "Image: flow.png, 160 x 120 px (your photo)"
    _wait_text(page, caption)
    _settle(page)
    _no_exception(page, "Explore after uploading flow.png")
    _press_to(page, CONV4_K, 0.85)
    _no_exception(page, "Explore after setting k")
    assert _explore_k(page) == pytest.approx(0.85)
    assert _used(page)["Conv4 local 0"][0] == pytest.approx(0.85)

    _open(page, "RP against ARP", ".st-key-compare-left")
    page.locator(".st-key-compare_boxes_left .js-plotly-plot").wait_for(timeout=TIMEOUT_MS)
    _settle(page)
    _no_exception(page, "RP against ARP with the photo")
    assert caption in _main_text(page)
    assert _slider_value(page, "k-conv4-local0-left") == pytest.approx(0.85)
    assert _used(page)["Conv4 local 0"][0] == pytest.approx(0.85)  # the ARP side's numbers
    page.wait_for_function(f"() => ({HAS_IMAGE})('compare_boxes_left')", timeout=TIMEOUT_MS)
    mean = page.evaluate(MEAN_COLOUR, "compare_boxes_left")
    assert mean is not None and nearest_colour(mean, 8) == 5, (mean, session_colour(5))

    _open(page, "Gallery", "[class*='st-key-gallery_open'] button")
    _no_exception(page, "Gallery after RP against ARP")

    _open(page, "Explore", CONV4_K)
    page.locator(".st-key-explore_boxes .js-plotly-plot").wait_for(timeout=TIMEOUT_MS)
    _settle(page)
    _no_exception(page, "Explore after the Gallery")
    assert caption in _main_text(page)
    assert _explore_k(page) == pytest.approx(0.85)
    assert _used(page)["Conv4 local 0"][0] == pytest.approx(0.85)
    _sliders_match_the_page(page)
    page.wait_for_function(f"() => ({HAS_IMAGE})('explore_boxes')", timeout=TIMEOUT_MS)
    mean = page.evaluate(MEAN_COLOUR, "explore_boxes")
    assert mean is not None and nearest_colour(mean, 8) == 5, (mean, session_colour(5))


def test_server_log_has_no_traceback(server, page):
    assert "Traceback" not in server.log_tail(200_000), server.log_tail()
