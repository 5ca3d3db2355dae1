"""The Gallery page under AppTest: sources, filters, Explore's k, opening an image in Explore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from app_helpers import image_captions, image_title, shown, state, texts, view
from helpers import APP, run_app
from PIL import Image
from streamlit.testing.v1 import AppTest

TIMEOUT = 180
pytestmark = pytest.mark.slow


def _gallery() -> AppTest:
    at = run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.switch_page("pages/gallery.py")
    return run_app(at)


def test_synthbirds_split_filters_and_open_in_explore(app_env: Path) -> None:
    at = _gallery()
    items = shown(at).gallery_items
    assert len(items) == 32 and all(i.thumbnail and i.label is not None for i in items)
    assert "trained ones" in " ".join(texts(at.caption))
    at.radio(key="gallery.correct").set_value("incorrect")
    run_app(at)
    wrong = shown(at).gallery_shown
    assert wrong and all(i.correct is False for i in wrong)
    assert len(wrong) == sum(i.correct is False for i in items)
    at.radio(key="gallery.correct").set_value("all")
    at.selectbox(key="gallery.sort").set_value("confidence, high first")
    run_app(at)
    ordered = shown(at).gallery_shown
    assert [i.confidence for i in ordered] == sorted((i.confidence for i in items), reverse=True)
    assert at.number_input(key="gallery.page").max == 3  # 32 images, 12 a page
    pick = ordered[0]
    at.button(key=f"gallery_open:{pick.index}").click()
    run_app(at)
    assert at.number_input(key="image.sample").value == pick.index
    assert at.radio(key="image.source").value == "sample"
    assert image_title(at).startswith(f"val #{pick.index}, ")
    assert view(at).predictions.top1.index == pick.top1


def test_explores_k_reaches_the_gallery_and_flips(app_env: Path) -> None:
    at = run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.slider(key="k:conv3").set_value(0.1)
    at.slider(key="k:conv4.local0").set_value(0.1)
    run_app(at)
    at.switch_page("pages/gallery.py")
    run_app(at)
    items = shown(at).gallery_items
    assert all(i.record.stages["conv4.local0"].k == pytest.approx(0.1) for i in items)
    assert all(i.flipped is not None for i in items)
    at.checkbox(key="gallery.flips").check()
    run_app(at)
    flipped = shown(at).gallery_shown
    assert len(flipped) == sum(bool(i.flipped) for i in items)
    at.slider(key="gallery.rates").set_value((0.0, 0.3))
    run_app(at)
    assert all(i.rate("conv4.local0") <= 0.3 + 1e-9 for i in shown(at).gallery_shown)


def test_folder_inside_and_outside_the_roots(app_env: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (50 + 10 * i, 80, 3), dtype=np.uint8)).save(
            folder / f"p{i}.png")
    (folder / "bad.png").write_bytes(b"nope")
    at = _gallery()
    at.radio(key="gallery.kind").set_value("Image folder")
    run_app(at)
    at.text_input(key="gallery.folder").input("/etc")
    run_app(at)
    assert any("outside the folders" in w for w in texts(at.warning))
    at.text_input(key="gallery.folder").input(str(folder))
    run_app(at)
    items = shown(at).gallery_items
    assert [i.record.ok for i in items] == [False, True, True, True]
    # the file's error under its name (escaped: a file name is shown as typed, never as Markdown)
    assert any("bad.png" in m for m in texts(at.markdown))
    at.button(key="gallery_open:2").click()
    run_app(at)
    assert state(at).image.file.path == str(folder / "p1.png")
    assert at.radio(key="image.source").value == "file"
    assert image_title(at) == "p1.png, 80 x 60 px (opened from the Gallery)"
    assert image_captions(at) == [f"Image: **{image_title(at)}**"]
    assert view(at).predictions.top1.index == items[2].top1
    record = shown(at).records["explore"]
    assert record.size == (80, 60) and record.file == "p1.png"
    # the file is the image of RP against ARP too
    at.switch_page("pages/rp_vs_arp.py")
    run_app(at)
    assert image_title(at) == "p1.png, 80 x 60 px (opened from the Gallery)"
    assert shown(at).records["compare_left"].file == "p1.png"
