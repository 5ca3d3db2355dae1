"""The Gallery page under AppTest: sources, filters, Explore's k, opening an image in Explore."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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
    items = at.session_state["gallery_items"][1]
    assert len(items) == 32 and all(i.thumbnail and i.label is not None for i in items)
    assert "trained ones" in " ".join(str(c.value) for c in at.caption)
    at.radio(key="gallery_correct").set_value("incorrect")
    run_app(at)
    wrong = at.session_state["gallery_shown"]
    assert wrong and all(i.correct is False for i in wrong)
    assert len(wrong) == sum(i.correct is False for i in items)
    at.radio(key="gallery_correct").set_value("all")
    at.selectbox(key="gallery_sort").set_value("confidence, high first")
    run_app(at)
    shown = at.session_state["gallery_shown"]
    assert [i.confidence for i in shown] == sorted((i.confidence for i in items), reverse=True)
    assert at.number_input(key="gallery_page").max == 3  # 32 images, 12 a page
    pick = shown[0]
    at.button(key=f"gallery_open:{pick.index}").click()
    run_app(at)
    view = at.session_state["arpviz_result"]
    assert at.session_state["explore_sample"] == pick.index
    assert view.predictions.top1.index == pick.top1


def test_explores_k_reaches_the_gallery_and_flips(app_env: Path) -> None:
    at = run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.slider(key="explore_k:conv3").set_value(0.1)
    at.slider(key="explore_k:conv4.local0").set_value(0.1)
    run_app(at)
    at.switch_page("pages/gallery.py")
    run_app(at)
    items = at.session_state["gallery_items"][1]
    assert all(i.record.stages["conv4.local0"].k == pytest.approx(0.1) for i in items)
    assert all(i.flipped is not None for i in items)
    at.checkbox(key="gallery_flips").check()
    run_app(at)
    shown = at.session_state["gallery_shown"]
    assert len(shown) == sum(bool(i.flipped) for i in items)
    at.slider(key="gallery_rates").set_value((0.0, 0.3))
    run_app(at)
    assert all(i.rate("conv4.local0") <= 0.3 + 1e-9 for i in at.session_state["gallery_shown"])


def test_folder_inside_and_outside_the_roots(app_env: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (50 + 10 * i, 80, 3), dtype=np.uint8)).save(
            folder / f"p{i}.png")
    (folder / "bad.png").write_bytes(b"nope")
    at = _gallery()
    at.radio(key="gallery_kind").set_value("Image folder")
    run_app(at)
    at.text_input(key="gallery_folder").input("/etc")
    run_app(at)
    assert any("outside the folders" in str(w.value) for w in at.warning)
    at.text_input(key="gallery_folder").input(str(folder))
    run_app(at)
    items = at.session_state["gallery_items"][1]
    assert [i.record.ok for i in items] == [False, True, True, True]
    assert any("bad.png" in str(m.value) for m in at.markdown)
    at.button(key="gallery_open:2").click()
    run_app(at)
    assert at.session_state["arpviz_open_file"] == str(folder / "p1.png")
    view = at.session_state["arpviz_result"]
    assert view.predictions.top1.index == items[2].top1
    record = at.session_state["explore_record"]
    assert record.size == (80, 60) and record.file == "p1.png"
