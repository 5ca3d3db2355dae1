"""The app's Explore and RP-against-ARP pages driven with Streamlit's AppTest.

Every test runs ``app.py`` with the bundled folder pointed at an empty directory
(``ARPVIZ_BUNDLED_DIR``) and the checkpoint folder at the tiny untrained checkpoint
(``ARPVIZ_CHECKPOINT_DIR``), so the tests never depend on what ``checkpoints/`` holds.
"""

from __future__ import annotations

import html
import io
import json
import pickle
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from app_helpers import (
    image_captions,
    image_title,
    png,
    shown,
    state,
    switch,
    texts,
    upload,
    view,
)
from helpers import APP, run_app
from PIL import Image
from safetensors.torch import save as st_save
from streamlit.testing.v1 import AppTest

from arpviz.explain import InputGeometry

TIMEOUT = 120
pytestmark = pytest.mark.slow  # the app under AppTest: seconds per test


def _start() -> AppTest:
    return run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))


def _boxes(explained) -> dict[str, tuple[float, ...]]:
    return {name: stage.image_box for name, stage in explained.stages.items()}


# ----------------------------------------------------------------------------- explore


def _table_cells(body: str) -> list[list[str]]:
    """The text of every cell of an HTML table, row by row (tags dropped, entities read)."""
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell))
             for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", body)]


def test_explore_every_slider_moves_boxes_and_predictions(app_env: Path) -> None:
    at = _start()
    assert not at.error, texts(at.error)
    sidebar = " ".join(texts(at.sidebar.markdown))
    assert "tiny" in sidebar and "Conv4 local 0 (ARP), k 0.7, DSR 0.5" in sidebar  # model card
    trained = view(at)
    assert set(trained.stages) == {"conv3", "conv4.local0"}
    assert not trained.overrides
    assert "trained 1" in at.slider(key="k:conv3").label
    assert "trained 0.7" in at.slider(key="k:conv4.local0").label

    moves = {  # in an order where each move changes a box (a DSR above the rate widens it)
        "k:conv3": 0.3,
        "dsr:conv3": 0.75,
        "dsr:conv4.local0": 0.9,
        "k:conv4.local0": 1.6,
    }
    for key, value in moves.items():
        before = view(at)
        at.slider(key=key).set_value(value)
        run_app(at)
        after = view(at)
        assert _boxes(after) != _boxes(before), key
        assert not np.array_equal(after.probs, before.probs), key
        rows = after.predictions.rows
        assert len(rows) == 5 and rows[0].rank == 1
        assert any(abs(r.delta) > 0 for r in rows), key
        # the top-5 table on screen: a header on every column, a bar and the value per row
        cells = _table_cells(at.html[0].value)
        assert cells[0][:4] == ["rank", "class", "p", "Δp"], key
        assert [row[1] for row in cells[1:]] == [r.name for r in rows], key
        assert [float(row[2]) for row in cells[1:]] == pytest.approx(
            [r.prob for r in rows], abs=1e-3), key
        assert [float(row[3]) for row in cells[1:]] == pytest.approx(
            [r.delta for r in rows], abs=1e-3), key

    changed = view(at)
    assert set(changed.overrides) == {"conv3", "conv4.local0"}
    # Conv4's confidence map covers Conv3's crop
    assert changed.stages["conv4.local0"].frame == changed.stages["conv3"].image_box

    at.button(key="reset").click()
    run_app(at)
    assert at.slider(key="k:conv3").value == pytest.approx(1.0)
    assert at.slider(key="dsr:conv4.local0").value == pytest.approx(0.5)
    reset = view(at)
    assert _boxes(reset) == _boxes(trained)
    np.testing.assert_allclose(reset.probs, trained.probs, atol=1e-6)

    at.slider(key="explore.opacity").set_value(0.2)
    at.checkbox(key="image.show_truth").check()
    at.number_input(key="image.sample").set_value(5)
    run_app(at)
    assert "val #5" in " ".join(texts(at.caption))
    assert image_title(at).startswith("val #5, ")
    assert view(at).image is not trained.image
    assert state(at).explore.opacity == pytest.approx(0.2)

    at.selectbox(key="explore.sweep_stage").set_value("conv3")
    at.toggle(key="explore.sweep").set_value(True)
    run_app(at)
    sweep = shown(at).sweep
    # 0.1 to 2.0 in steps of 0.05 (the k slider's range and step)
    assert sweep.stage == "conv3" and sweep.probs.shape == (39, 24)
    assert sweep.ks[0] == pytest.approx(0.1) and sweep.ks[-1] == pytest.approx(2.0)
    assert np.all(np.diff(sweep.crop_w) >= -1e-4)


def test_settings_survive_a_page_switch(app_env: Path) -> None:
    at = _start()
    at.slider(key="k:conv4.local0").set_value(1.2)
    at.number_input(key="image.sample").set_value(3)
    run_app(at)
    moved = _boxes(view(at))
    at.switch_page("pages/rp_vs_arp.py")
    run_app(at)
    at.switch_page("pages/explore.py")
    run_app(at)
    assert at.slider(key="k:conv4.local0").value == pytest.approx(1.2)
    assert at.slider(key="k:conv3").value == pytest.approx(1.0)  # never below range
    assert at.number_input(key="image.sample").value == 3
    assert _boxes(view(at)) == moved


def test_top1_flip_is_flagged(app_env: Path) -> None:
    """Each setting's flag says whether the top-1 left the trained setting's; the settings
    (cumulative, ever further from the trained ones) include one that flips it."""
    at = _start()
    assert any("the same as under the trained setting" in m for m in texts(at.success))
    settings = (("slider", "dsr:conv3", 0.25), ("slider", "dsr:conv4.local0", 0.25),
                ("slider", "k:conv4.local0", 0.1), ("slider", "k:conv3", 0.1),
                ("selectbox", "mode:conv4.local0", "arpfg_peak"),
                ("selectbox", "mode:conv3", "rp"),
                ("slider", "dsr:conv4.local0", 1.0), ("slider", "dsr:conv3", 1.0))
    flips = []
    for kind, key, value in settings:
        getattr(at, kind)(key=key).set_value(value)
        run_app(at)
        now = view(at)
        warnings = " ".join(texts(at.warning))
        assert now.predictions.flipped == ("Top-1 flipped" in warnings), key
        flips.append(now.predictions.flipped)
    assert any(flips), "none of the settings flipped the top-1: the flag was never tested"


# ----------------------------------------------------------------------------- rp vs arp


def test_rp_vs_arp_page(app_env: Path) -> None:
    at = _start()
    at.switch_page("pages/rp_vs_arp.py")
    run_app(at)
    comparison = shown(at).comparison
    for name, stage in comparison.second.stages.items():
        assert stage.mode == "rp" and stage.rates == pytest.approx((0.5, 0.5)), name
        assert comparison.first.stages[name].mode == "arp"
    assert comparison.second.predictions.ref_top1 == int(np.argmax(comparison.first.probs))

    at.slider(key="k:conv3:left").set_value(0.2)  # the k of the left side's mode, ARP
    run_app(at)
    moved = shown(at).comparison
    assert _boxes(moved.first) != _boxes(comparison.first)
    assert moved.second.stages["conv3"].image_box == comparison.second.stages["conv3"].image_box

    at.slider(key="dsr:conv4.local0").set_value(0.75)
    run_app(at)
    wider = shown(at).comparison
    assert wider.second.stages["conv4.local0"].rates == pytest.approx((0.75, 0.75))
    assert not np.array_equal(wider.second.probs, moved.second.probs)

    at.slider(key="k:conv4.local0:left").set_value(1.9)
    at.slider(key="dsr:conv3").set_value(0.3)
    run_app(at)
    last = shown(at).comparison
    assert _boxes(last.first) != _boxes(wider.first)
    assert last.second.stages["conv3"].rates == pytest.approx((0.3, 0.3))
    assert last.first.stages["conv4.local0"].k == pytest.approx(1.9)
    # the k of ARP set here is Explore's k of ARP
    switch(at, "explore")
    assert at.slider(key="k:conv4.local0").value == pytest.approx(1.9)
    assert at.slider(key="k:conv3").value == pytest.approx(0.2)
    assert view(at).stages["conv4.local0"].k == pytest.approx(1.9)


# ----------------------------------------------------------------------------- bad input


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _encoded(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _huge_header_png() -> bytes:
    data = _png(Image.new("RGB", (4, 4)))
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", 20000, 20000)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)) & 0xFFFFFFFF)
    return data[:16] + bytes(ihdr) + crc + data[33:]


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 30), c) for c in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    return _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encoded(Image.new("RGB", (60, 30), (10, 120, 200)), "JPEG", exif=exif)


def _gradient(mode: str, size: tuple[int, int] = (48, 32)) -> Image.Image:
    rgb = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    rgb[..., 0] = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :]
    rgb[..., 1] = 128
    return Image.fromarray(rgb).convert(mode)


BAD_IMAGES = [  # (file name, bytes, "error" or "info", text the message holds)
    ("empty.png", b"", "error", "empty"),
    ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, "error", "Cannot use this image"),
    ("random.jpg", bytes(range(256)) * 4, "error", "Cannot use this image"),
    ("huge.png", _huge_header_png(), "error", "too large"),
]
ODD_IMAGES = [
    ("animated.gif", _animated_gif(), "info", "first of 3 frames"),
    ("sixteen.png", _png(Image.fromarray(
        np.linspace(0, 65535, 40 * 30, dtype=np.uint16).reshape(30, 40))), "info", "16-bit"),
    ("grey.png", _png(_gradient("L")), "info", "greyscale"),
    ("rgba.png", _png(_gradient("RGBA")), "info", "transparent"),
    ("cmyk.jpg", _encoded(_gradient("CMYK"), "JPEG"), "info", "CMYK"),
    ("rotated.jpg", _exif_rotated(), "info", "EXIF orientation"),
]


def test_bad_and_odd_images_give_messages(app_env: Path) -> None:
    at = _start()
    at.radio(key="image.source").set_value("upload")
    run_app(at)
    assert "Upload an image to explore it." in texts(at.info)
    for name, data, kind, text in BAD_IMAGES + ODD_IMAGES:
        at.file_uploader(key="image.upload").set_value((name, data, "application/octet-stream"))
        run_app(at)
        messages = texts(at.error if kind == "error" else at.info)
        assert any(text in m for m in messages), (name, messages)
        if kind == "error":  # nothing replaced: still no photo
            assert state(at).image.upload is None, name
            assert "Upload an image to explore it." in texts(at.info), name
        if kind == "info":  # converted, explained, and flagged as not SynthBirds
            assert view(at).image.shape == (128, 128, 3)
            assert image_title(at).startswith(f"{name}, "), (name, image_title(at))
            # the note that a SynthBirds model says nothing about a real photo
            assert any("Trained on SynthBirds" in m and "photo" in m
                       for m in texts(at.info)), name
    # a bad file after a good one changes nothing: the last photo stays on screen
    at.file_uploader(key="image.upload").set_value(("late.png", b"nope", "image/png"))
    run_app(at)
    assert any("Cannot use this image" in m for m in texts(at.error))
    assert image_title(at).startswith("rotated.jpg, ")
    # clearing the uploader keeps the photo (it stays for every page until replaced)
    at.file_uploader(key="image.upload").set_value(None)
    run_app(at)
    assert "Upload an image to explore it." not in texts(at.info)
    assert image_title(at).startswith("rotated.jpg, ")
    assert any("rotated.jpg" in c for c in image_captions(at))


def _foreign_safetensors() -> bytes:
    return st_save({"weight": torch.zeros(3)}, metadata={"framework": "other"})


def _header_only(header: dict) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text


def test_bad_checkpoints_give_messages(app_env: Path, tiny_checkpoint: Path) -> None:
    at = _start()
    good = tiny_checkpoint.read_bytes()
    cases = [
        ("empty.safetensors", b"", "empty"),
        ("foreign.safetensors", _foreign_safetensors(), "not an arpviz checkpoint"),
        ("truncated.safetensors", good[: len(good) // 2], "truncated"),
        ("pickle.safetensors", pickle.dumps({"state_dict": [1, 2, 3]}), "pickle"),
        ("zip.safetensors", b"PK\x03\x04" + b"\x00" * 64, "pickle"),
        ("odd-meta.safetensors", _header_only({"__metadata__": {"arpviz": "[1, 2]"}}), ""),
        ("odd-offsets.safetensors", _header_only(
            {"w": {"dtype": "F32", "shape": [1], "data_offsets": ["a", "b"]}}), ""),
    ]
    for name, data, text in cases:
        at.file_uploader(key="arpviz_ckpt_upload").set_value((name, data, "application/x"))
        run_app(at)
        messages = texts(at.error)
        assert any("Cannot load this checkpoint" in m and text in m for m in messages), (
            name, messages)
    at.file_uploader(key="arpviz_ckpt_upload").set_value(
        ("mine.safetensors", good, "application/x"))
    run_app(at)
    assert not at.error, texts(at.error)
    assert "mine.safetensors" in " ".join(texts(at.sidebar.markdown))
    assert view(at).probs.shape == (24,)


def _files(at: AppTest) -> list[str]:
    """The checkpoint box's files (its other entries are the ImageNet ResNets)."""
    return [o for o in at.selectbox(key="arpviz_checkpoint").options
            if not o.startswith("ImageNet ")]


def test_no_checkpoint_and_broken_folder(app_env: Path, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(empty))
    at = _start()
    # no file: the box holds only the ImageNet ResNets (none on this machine) and every page
    # says why nothing loads, with the Download button in the sidebar
    assert _files(at) == []
    waiting = "is not on this machine yet: press Download in the sidebar"
    assert any(waiting in m for m in texts(at.info)), texts(at.info)
    assert any(str(b.key).startswith("arpviz_download:") for b in at.sidebar.button)
    assert not at.error and shown(at).explore is None
    at.switch_page("pages/rp_vs_arp.py")
    run_app(at)
    assert any(waiting in m for m in texts(at.info))
    assert shown(at).comparison is None

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.safetensors").write_bytes(_foreign_safetensors())
    (broken / "bad.state.safetensors").write_bytes(b"ignored")  # training state: not listed
    at.text_input(key="arpviz_ckpt_dir").set_value(str(broken))
    run_app(at)
    assert _files(at) == ["bad.safetensors"]
    # the box kept the ImageNet entry it fell back on; choosing the file says what is wrong
    at.selectbox(key="arpviz_checkpoint").set_value(str(broken / "bad.safetensors"))
    run_app(at)
    assert any("not an arpviz checkpoint" in m for m in texts(at.error)), texts(at.error)


def test_run_log_times_every_script_run(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = app_env / "runs.jsonl"
    monkeypatch.setenv("ARPVIZ_RUN_LOG", str(log))
    at = _start()
    at.slider(key="k:conv3").set_value(0.5)
    run_app(at)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 2 and all(0 < r["seconds"] < TIMEOUT for r in rows)
    assert {"page", "seconds", "cpu_seconds"} <= set(rows[0])
    assert all(0 <= r["cpu_seconds"] for r in rows)


def test_folder_outside_the_roots_is_refused(app_env: Path, tiny_checkpoint: Path,
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.safetensors").write_bytes(tiny_checkpoint.read_bytes())
    link = app_env / "link"
    link.symlink_to(outside, target_is_directory=True)
    bundled = app_env / "bundled" / "mine.safetensors"
    bundled.write_bytes(tiny_checkpoint.read_bytes())
    at = _start()
    for typed in (str(outside), str(link), f"{app_env}/../{outside.name}",
                  str(app_env / ".." / ".." / outside.parent.name / outside.name)):
        at.text_input(key="arpviz_ckpt_dir").set_value(typed)
        run_app(at)
        warnings = texts(at.sidebar.warning)
        assert any("outside the folders" in w for w in warnings), (typed, warnings)
        files = _files(at)
        assert len(files) == 1 and files[0].endswith("· mine.safetensors"), (typed, files)
    assert view(at).probs.shape == (24,)  # the app still works


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback without CUDA")
def test_cuda_choice_without_cuda_falls_back(app_env: Path) -> None:
    at = _start()
    at.radio(key="arpviz_device").set_value("cuda")
    run_app(at)
    assert any("CUDA is not available" in m for m in texts(at.sidebar.warning))
    assert view(at).probs.shape == (24,)


@pytest.mark.parametrize("page", ["pages/appendix_a.py", "pages/training.py"])
def test_other_pages_run_under_the_app(app_env: Path, page: str) -> None:
    at = _start()
    at.switch_page(page)
    run_app(at)
    assert "tiny" in " ".join(texts(at.sidebar.markdown))  # the sidebar is drawn there too


# ----------------------------------------------------------------------------- export, faithfulness


def test_downloads_and_faithfulness_on_explore_and_compare(app_env: Path) -> None:
    at = _start()
    at.slider(key="k:conv4.local0").set_value(0.4)
    run_app(at)
    seen = view(at)
    record = shown(at).records["explore"]
    assert record.size == (146, 146)  # a sample is rendered at the resize, 128 * 8 / 7
    geometry = InputGeometry.of(146, 146, 128)
    assert record.stages["conv3"].box == geometry.to_image(seen.stages["conv3"].image_box)
    assert record.stages["conv4.local0"].k == pytest.approx(0.4)
    assert record.stages["conv4.local0"].input_box == seen.stages["conv4.local0"].image_box
    assert record.top5[0].index == seen.predictions.top1.index
    buttons = at.get("download_button")
    assert [b.proto.label for b in buttons] == ["Record (JSON)", "Overlay (PNG)"]

    at.toggle(key="explore.faith").set_value(True)
    run_app(at)
    check = shown(at).faith
    assert check.stage == "conv4.local0" and 0 <= check.keep <= 1 and len(check.insertion) == 11
    assert check.target == seen.predictions.top1.index

    at.switch_page("pages/rp_vs_arp.py")
    run_app(at)
    arp, rp = shown(at).records["compare_left"], shown(at).records["compare_right"]
    assert arp.stages["conv3"].mode == "arp" and rp.stages["conv3"].mode == "rp"
    assert len(at.get("download_button")) == 4


def test_explore_first_view_explains_the_model_and_switches_modes(app_env: Path) -> None:
    at = _start()
    said = " ".join(texts(at.info) + texts(at.markdown))
    assert "Trained on SynthBirds" in said and "ImageNet ResNet" in said  # before any upload
    assert "looks at an image twice" in said  # the What am I looking at panel
    assert any("Conv4 local 0" in g.proto.spec for g in at.get("graphviz_chart"))
    assert at.selectbox(key="mode:conv4.local0").value == "arp"

    at.selectbox(key="mode:conv4.local0").set_value("arpfg")
    run_app(at)
    seen = view(at)
    assert seen.stages["conv4.local0"].mode == "arpfg"
    assert seen.stages["conv4.local0"].label == "Conv4 local 0 (ARP-FG)"
    assert at.slider(key="k:conv4.local0").value == pytest.approx(1.5)  # its default
    assert "ARP-FG default 1.5" in at.slider(key="k:conv4.local0").label
    at.slider(key="k:conv4.local0").set_value(0.9)
    run_app(at)
    assert view(at).stages["conv4.local0"].k == pytest.approx(0.9)

    at.selectbox(key="mode:conv4.local0").set_value("rp")
    run_app(at)
    assert view(at).stages["conv4.local0"].mode == "rp"
    at.button(key="reset").click()
    run_app(at)
    assert at.selectbox(key="mode:conv4.local0").value == "arp"
    assert view(at).stages["conv4.local0"].k == pytest.approx(0.7)


def test_compare_page_compares_any_two_modes(app_env: Path) -> None:
    at = _start()
    at.switch_page("pages/rp_vs_arp.py")
    run_app(at)
    at.selectbox(key="compare.left").set_value("arpfg")
    at.selectbox(key="compare.right").set_value("arp")
    run_app(at)
    comparison = shown(at).comparison
    assert comparison.modes == ("arpfg", "arp")
    assert comparison.first.stages["conv4.local0"].mode == "arpfg"
    assert comparison.second.stages["conv4.local0"].k == pytest.approx(0.7)
    assert "ARP-FG" in " ".join(texts(at.markdown))


# ----------------------------------------------------------------------------- one photo, one k


def test_one_photo_and_one_k_across_the_pages(app_env: Path) -> None:
    """A photo uploaded on Explore and the k set there are the photo and the k of RP against
    ARP (its ARP side), and are still there after a visit to the Gallery; every image page
    names the image it shows."""
    at = _start()
    upload(at, "red.png", png((200, 40, 40), (300, 200)))
    title = "red.png, 300 x 200 px (your photo)"
    assert image_title(at) == title
    assert image_captions(at) == [f"Image: **{title}**"]
    at.slider(key="k:conv4.local0").set_value(0.85)
    run_app(at)
    assert view(at).stages["conv4.local0"].k == pytest.approx(0.85)
    photo_view = view(at)

    switch(at, "compare")
    assert image_title(at) == title
    assert image_captions(at) == [f"Image: **{title}**"]
    assert at.radio(key="image.source").value == "upload"
    comparison = shown(at).comparison
    assert comparison.modes == ("arp", "rp")
    assert comparison.first.stages["conv4.local0"].k == pytest.approx(0.85)
    assert at.slider(key="k:conv4.local0:left").value == pytest.approx(0.85)
    assert comparison.first.image.shape == photo_view.image.shape
    np.testing.assert_array_equal(comparison.first.image, photo_view.image)
    assert "**Conv4 local 0 (ARP)**: k 0.85," in " ".join(texts(at.caption))

    switch(at, "gallery")
    assert not image_captions(at)  # the Gallery shows a split, not the photo
    assert "conv4.local0" in state(at).steering.stages

    switch(at, "explore")
    assert image_title(at) == title
    assert image_captions(at) == [f"Image: **{title}**"]
    assert at.radio(key="image.source").value == "upload"
    assert at.slider(key="k:conv4.local0").value == pytest.approx(0.85)
    back = view(at)
    assert back.stages["conv4.local0"].k == pytest.approx(0.85)
    np.testing.assert_array_equal(back.image, photo_view.image)
    assert _boxes(back) == _boxes(photo_view)
