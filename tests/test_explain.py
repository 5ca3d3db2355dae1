"""The batch command and its library: records, input order, box geometry, bad files, usage."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import rewrite_checkpoint, write_checkpoint
from PIL import Image

from arpviz import checkpoint as ckpt
from arpviz.explain import (
    ImageRecord,
    InputGeometry,
    explain_files,
    explain_images,
    list_images,
    main,
    overlay_png,
    parse_overrides,
    record_to_json,
)
from arpviz.explain.records import synthetic_data_note
from arpviz.models import StageOverride

INPUT = 64
CLASSES = 6


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained ``tiny`` MSGN (ARP in Conv3 and Conv4), input 64: the shared factory's,
    with its initial weights (no perturbation)."""
    path = tmp_path_factory.mktemp("explain_ckpt") / "tiny.safetensors"
    return write_checkpoint(path, classes=CLASSES, input_size=INPUT, epochs=1, perturb=0.0)


@pytest.fixture(scope="module")
def bundle(tiny: Path) -> ckpt.Checkpoint:
    return ckpt.load(tiny)


def _noise(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """Good, odd and hostile files; sorted order: a, b, c, d, e, f, g, sub/h."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    _noise(120, 60, 0).save(root / "a_wide.png")
    (root / "b_text.jpg").write_text("not an image at all")
    (root / "c_empty.png").write_bytes(b"")
    _noise(40, 50, 1, "RGBA").save(root / "d_rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: shown 90 degrees clockwise, width and height swap
    _noise(80, 30, 2).save(root / "e_rotated.jpg", exif=exif, quality=90)
    _noise(30, 30, 3, "CMYK").save(root / "f_cmyk.jpg", quality=90)
    grey16 = np.random.default_rng(4).integers(0, 65535, (33, 47), dtype=np.uint16)
    Image.fromarray(grey16).save(root / "g_16bit.png")
    _noise(50, 90, 5).save(root / "sub" / "h_tall.PNG")
    (root / "notes.txt").write_text("skip me")
    _noise(20, 20, 6).save(root / ".hidden" / "x.png")
    _noise(20, 20, 7).save(root / ".dot.png")
    return root


# ----------------------------------------------------------------------------- inputs


def test_list_images_is_recursive_sorted_and_keeps_input_order(folder: Path) -> None:
    files = list_images([folder / "sub" / "h_tall.PNG", folder, folder / "missing.png"])
    names = [f.name for f in files]
    assert names == ["h_tall.PNG", "a_wide.png", "b_text.jpg", "c_empty.png", "d_rgba.png",
                     "e_rotated.jpg", "f_cmyk.jpg", "g_16bit.png", "h_tall.PNG", "missing.png"]
    with pytest.raises(TypeError, match="inputs"):
        list_images(str(folder))  # type: ignore[arg-type]


def test_a_folder_named_like_an_image_is_not_dropped_in_silence(
        tiny: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "x.jpg").mkdir()
    (tmp_path / "empty").mkdir()
    _noise(20, 20, 0).save(tmp_path / "y.png")
    with caplog.at_level("WARNING", logger="arpviz.explain.batch"):
        files = list_images([tmp_path / "x.jpg", tmp_path / "empty", tmp_path / "y.png"])
    assert files == [tmp_path / "y.png"]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2
    assert "x.jpg'" in warned[0] and "is a folder, not an image file," in warned[0]
    assert "empty'" in warned[1] and "holds no image files" in warned[1]
    caplog.clear()
    with caplog.at_level("WARNING", logger="arpviz.explain.batch"):
        assert main(["--checkpoint", str(tiny), "--out", str(tmp_path / "o"), "--quiet",
                     str(tmp_path / "x.jpg"), str(tmp_path / "y.png")]) == 0
    assert any("x.jpg" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------------------- the library


def test_box_maps_back_through_resize_and_centre_crop(bundle: ckpt.Checkpoint) -> None:
    wide = _noise(200, 90, 1)
    # dsr 1 makes Conv3's rate 1: its box is the whole input, i.e. the centre-cropped area
    [record] = explain_images(bundle, [wide], {"conv3": StageOverride(dsr=1.0)})
    geometry = InputGeometry.of(200, 90, INPUT)
    resize = round(INPUT * 8 / 7)
    offset = round((resize - INPUT) / 2)
    expected = (offset * 200 / resize, offset * 90 / resize,
                (offset + INPUT) * 200 / resize, (offset + INPUT) * 90 / resize)
    assert geometry.crop_area == pytest.approx(expected)
    conv3 = record.stages["conv3"]
    assert conv3.rates == pytest.approx((1.0, 1.0))
    assert conv3.input_box == pytest.approx((0, 0, INPUT, INPUT), abs=1e-4)
    assert conv3.box == pytest.approx(expected, abs=1e-3)
    assert record.size == (200, 90)
    for stage in record.stages.values():
        x1, y1, x2, y2 = stage.box
        assert 0 <= x1 < x2 <= 200 and 0 <= y1 < y2 <= 90
    # the Conv4 box lies inside the Conv3 box
    c4 = record.stages["conv4.local0"].box
    assert c4[0] >= conv3.box[0] - 1e-3 and c4[2] <= conv3.box[2] + 1e-3


def test_records_follow_input_order_and_overrides_change_k(bundle: ckpt.Checkpoint) -> None:
    images = [_noise(64 + 10 * i, 64, i) for i in range(3)]
    low = explain_images(bundle, images, {"conv4.local0": StageOverride(k=0.2)},
                         names=["x", "y", "z"], batch_size=2)
    # the same batches as `low`: BLAS results may differ in the last bits between batch sizes
    high = explain_images(bundle, images, {"conv4.local0": StageOverride(k=3.0)}, batch_size=2)
    assert [r.file for r in low] == ["x", "y", "z"]
    assert [r.size for r in low] == [(64, 64), (74, 64), (84, 64)]
    for a, b in zip(low, high, strict=True):
        assert a.stages["conv4.local0"].k == 0.2 and b.stages["conv4.local0"].k == 3.0
        assert a.stages["conv4.local0"].rates != b.stages["conv4.local0"].rates
        assert a.stages["conv3"] == b.stages["conv3"]  # Conv3 comes before the change
        assert len(a.top5) == 5 and sum(c.p for c in a.top5) <= 1 + 1e-6
        assert all(x.p >= y.p for x, y in zip(a.top5, a.top5[1:], strict=False))
    # batching does not change the numbers
    single = explain_images(bundle, images[1:2], {"conv4.local0": StageOverride(k=0.2)})
    assert single[0].stages["conv4.local0"].box == pytest.approx(low[1].stages["conv4.local0"].box,
                                                                 abs=1e-3)
    with pytest.raises(ValueError, match="unknown stage"):
        explain_images(bundle, images, {"conv9": StageOverride(k=1.0)})


def test_explain_files_yields_failures_in_place(bundle: ckpt.Checkpoint, folder: Path) -> None:
    files = list_images([folder])
    items = list(explain_files(bundle, files, batch_size=3))
    assert [Path(i.record.file).name for i in items] == [f.name for f in files]
    ok = {Path(i.record.file).name: i.record.ok for i in items}
    assert ok == {"a_wide.png": True, "b_text.jpg": False, "c_empty.png": False,
                  "d_rgba.png": True, "e_rotated.jpg": True, "f_cmyk.jpg": True,
                  "g_16bit.png": True, "h_tall.PNG": True}
    by_name = {Path(i.record.file).name: i for i in items}
    assert by_name["e_rotated.jpg"].record.size == (30, 80)  # EXIF rotation applied
    assert any("EXIF" in n for n in by_name["e_rotated.jpg"].record.notes)
    assert by_name["b_text.jpg"].image is None and by_name["b_text.jpg"].record.error


def test_record_json_and_overlay(bundle: ckpt.Checkpoint) -> None:
    image = _noise(150, 70, 3)
    [record] = explain_images(bundle, [image], names=["p.png"])
    row = json.loads(json.dumps(record_to_json(record)))
    assert set(row) >= {"file", "ok", "error", "size", "top5", "stages"}
    assert row["ok"] is True and row["error"] is None and row["size"] == [150, 70]
    assert set(row["top5"][0]) == {"class", "index", "p"}
    assert set(row["stages"]) == {"conv3", "conv4.local0"}
    assert set(row["stages"]["conv3"]) >= {"box", "rates", "k", "dsr"}
    png = overlay_png(image, record)
    decoded = Image.open(io.BytesIO(png))
    assert decoded.format == "PNG" and decoded.size == (150, 70)
    assert not np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(image))
    with pytest.raises(ValueError, match="record is for"):
        overlay_png(_noise(10, 10, 0), record)
    failed = record_to_json(ImageRecord.failed("x.jpg", "broken"))
    assert failed == {"file": "x.jpg", "ok": False, "error": "broken"}


def test_parse_overrides() -> None:
    out = parse_overrides(["conv4.local0.k=0.5", "conv3.dsr=0.6,0.7", "conv3.mode=rp"])
    assert out["conv4.local0"] == StageOverride(k=0.5)
    assert out["conv3"] == StageOverride(mode="rp", dsr=(0.6, 0.7))
    for bad in (["conv3"], ["conv3.k=abc"], ["conv3.k=0"], ["conv3.dsr=1.5"],
                ["conv3.k=1", "conv3.k=2"], ["conv3.mode=stn"], ["conv3.size=2"]):
        with pytest.raises(ValueError, match="--set"):
            parse_overrides(bad)


# ----------------------------------------------------------------------------- the command


def test_cli_writes_results_overlays_and_manifest(tiny: Path, folder: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(["--checkpoint", str(tiny), "--out", str(out), "--device", "cpu", "--quiet",
                 "--batch-size", "3", "--set", "conv4.local0.k=1.5", str(folder)])
    assert code == 1  # two files are bad
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [Path(r["file"]).name for r in rows] == [f.name for f in list_images([folder])]
    for row in rows:
        assert set(row) >= {"file", "ok", "error"}
        if not row["ok"]:
            assert isinstance(row["error"], str) and row["error"]
            continue
        assert row["stages"]["conv4.local0"]["k"] == 1.5
        width, height = row["size"]
        for stage in row["stages"].values():
            x1, y1, x2, y2 = stage["box"]
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        overlay = Image.open(out / row["overlay"])
        assert overlay.size == (width, height)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["checkpoint"]["sha256"] == hashlib.sha256(tiny.read_bytes()).hexdigest()
    assert manifest["settings"]["overrides"]["conv4.local0"]["k"] == 1.5
    assert manifest["results"] == {"ok": 6, "failed": 2}
    assert {"torch", "torchvision", "python"} <= set(manifest["versions"])
    assert manifest["device"]["type"] == "cpu"


def test_cli_all_good_exits_zero(tiny: Path, tmp_path: Path) -> None:
    _noise(70, 40, 9).save(tmp_path / "one.png")
    code = main(["--checkpoint", str(tiny), "--out", str(tmp_path / "o"), "--quiet",
                 "--device", "cpu", "--no-overlays", str(tmp_path / "one.png")])
    assert code == 0
    [row] = [json.loads(x) for x in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    assert row["ok"] and "overlay" not in row


def test_a_synthetic_checkpoints_records_say_photos_mean_nothing_to_it(
        tiny: Path, tmp_path: Path) -> None:
    _noise(70, 40, 9).save(tmp_path / "one.png")
    args = ["--quiet", "--device", "cpu", "--no-overlays", str(tmp_path / "one.png")]
    assert main(["--checkpoint", str(tiny), "--out", str(tmp_path / "o"), *args]) == 0
    [row] = [json.loads(x) for x in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    note = row["notes"][-1]
    assert note.startswith("Trained on SynthBirds") and "outside its world" in note
    assert "mean nothing" in note
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["checkpoint"]["note"] == note
    # the same network said to be trained on photos: no note
    photos = rewrite_checkpoint(tiny, tmp_path / "photos.safetensors",
                                meta=lambda raw: raw["dataset"].update(name="folder"))
    assert main(["--checkpoint", str(photos), "--out", str(tmp_path / "p"), *args]) == 0
    [row] = [json.loads(x) for x in (tmp_path / "p" / "results.jsonl").read_text().splitlines()]
    assert not any("outside its world" in n for n in row["notes"])
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["checkpoint"]["note"] is None


def test_synthetic_data_note_names_the_data_set() -> None:
    assert "SynthReID" in synthetic_data_note({"name": "synthreid"})
    for other in ({"name": "cub"}, {"name": "imagenet"}, {}):
        assert synthetic_data_note(other) is None


@pytest.mark.parametrize("extra", [
    ["--set", "conv4.local0.k"],        # bad syntax
    ["--set", "conv9.k=1"],             # unknown stage
    ["--set", "conv3.k=-1"],            # k <= 0
    ["--set", "conv4.global.k=1"],      # a strided stage
    ["--batch-size", "0"],
    ["--checkpoint", "missing.safetensors"],
])
def test_cli_usage_errors_exit_two(tiny: Path, tmp_path: Path, extra: list[str],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    _noise(40, 40, 0).save(tmp_path / "x.png")
    argv = ["--checkpoint", str(tiny), "--out", str(tmp_path / "o"), "--device", "cpu",
            "--quiet", *extra, str(tmp_path / "x.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "results.jsonl").exists()


def test_cli_no_images_found_is_a_usage_error(tiny: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["--checkpoint", str(tiny), "--out", str(tmp_path / "o"), "--quiet",
                 str(tmp_path / "empty")]) == 2


def test_hostile_files_become_messages(tmp_path: Path) -> None:
    import struct
    import zlib

    from arpviz.explain import load_images

    buffer = io.BytesIO()
    _noise(2, 2, 0).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", 100_000, 100_000)  # claims 10^10 pixels
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)) & 0xFFFFFFFF)
    (tmp_path / "huge.png").write_bytes(bytes(data))
    (tmp_path / "folder.png").mkdir()
    out = load_images([tmp_path / "huge.png", tmp_path / "folder.png", tmp_path / "nope.png"])
    assert all(isinstance(item, str) for item in out)
    assert "too large" in out[0] and "not a regular file" in out[1] and "no such file" in out[2]


def test_tiny_and_thin_images_get_overlays(bundle: ckpt.Checkpoint) -> None:
    for size in ((1, 1), (300, 2)):
        image = _noise(*size, 0)
        [record] = explain_images(bundle, [image])
        assert Image.open(io.BytesIO(overlay_png(image, record))).size == size


def test_explain_page_and_thumbnail(bundle: ckpt.Checkpoint, folder: Path) -> None:
    from arpviz.explain import explain_page

    files = list_images([folder])  # 8 files
    last = explain_page(bundle, files, 2, page_size=3)
    assert [Path(i.record.file).name for i in last] == ["g_16bit.png", "h_tall.PNG"]
    with pytest.raises(ValueError, match="page"):
        explain_page(bundle, files, 3, page_size=3)
    item = last[1]
    thumb = Image.open(io.BytesIO(overlay_png(item.image, item.record, max_side=40)))
    assert thumb.size == (22, 40)  # 50 x 90 shrunk to a longer side of 40


def test_records_note_tiny_and_extreme_images(tmp_path: Path, bundle) -> None:
    from arpviz.explain import explain_images

    tiny = Image.new("RGB", (1, 1), (200, 10, 10))
    strip = Image.new("RGB", (5000, 20), (10, 200, 10))
    records = explain_images(bundle, [tiny, strip])
    assert records[0].notes and records[0].notes[0].startswith("tiny image")
    assert any(n.startswith("extreme aspect") for n in records[1].notes)
