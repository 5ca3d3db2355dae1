"""What the network input may cost: an image whose evaluation resize (aspect kept, as a converted
ImageNet checkpoint evaluates) would pass ``arpviz.images.MAX_RESIZED_PIXELS`` is refused before
any resize, by the app's ``preprocess`` and by the batch path; a forward pass and a batch of
decoded images stay within their pixel budgets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from helpers import rewrite_checkpoint, write_checkpoint
from PIL import Image

from arpviz import checkpoint as ckpt
from arpviz.explain import batch, explain_files, explain_images, main
from arpviz.explorer import inputs
from arpviz.images import MAX_RESIZED_PIXELS

pytestmark = pytest.mark.usefixtures("one_thread")

INPUT = 64
RESIZE = 73  # the shorter side's resize of the aspect-keeping checkpoint
#: 16000 x 1 -> 1168000 x 73 before the crop: 85 megapixels from a 16-kilopixel file
STRIP = (16000, 1)
WORDS = r"would become a 1168000 x 73 network input .* more than the limit of 8"


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny checkpoint evaluated square, and its copy that keeps the aspect (as torchvision
    evaluates a converted ImageNet network: the shorter side to 73, then the 64 crop)."""
    folder = tmp_path_factory.mktemp("bounds")
    square = write_checkpoint(folder / "square.safetensors", classes=4, input_size=INPUT,
                              epochs=1, perturb=0.0)
    keep = rewrite_checkpoint(square, folder / "keep.safetensors", meta=lambda m: m[
        "dataset"].update(keep_aspect=True, resize=RESIZE))
    return {"square": square, "keep": keep}


@pytest.fixture(scope="module")
def keep(paths: dict[str, Path]) -> ckpt.Checkpoint:
    return ckpt.load(paths["keep"])


@pytest.fixture(scope="module")
def square(paths: dict[str, Path]) -> ckpt.Checkpoint:
    return ckpt.load(paths["square"])


def _png(size: tuple[int, int], colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_bound_is_on_the_resized_input_not_the_file() -> None:
    assert len(_png(STRIP)) < 200 and STRIP[0] * STRIP[1] < 20_000  # every file limit passes
    assert STRIP[0] * RESIZE * RESIZE > MAX_RESIZED_PIXELS


def test_preprocess_refuses_before_any_resize(keep: ckpt.Checkpoint, square: ckpt.Checkpoint,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.transforms.v2 import functional as TF

    strip, tall = Image.new("RGB", STRIP), Image.new("RGB", STRIP[::-1])
    assert inputs.preprocess(strip, square.meta).image.shape == (INPUT, INPUT, 3)  # stretched

    def no_resize(*args: object, **kwargs: object) -> None:
        raise AssertionError("resized before the check")

    monkeypatch.setattr(TF, "resize", no_resize)
    with pytest.raises(ValueError, match=r"'strip.png' \(16000 x 1 px, aspect 16000:1\) " + WORDS):
        inputs.preprocess(strip, keep.meta, name="strip.png")
    with pytest.raises(ValueError, match=r"'image' \(1 x 16000 px.*73 x 1168000 network input"):
        inputs.preprocess(tall, keep.meta)
    with pytest.raises(ValueError, match="'upload.png' .*" + WORDS):
        inputs.load_upload(_png(STRIP), keep.meta, "upload.png")
    monkeypatch.undo()
    # an elongated but sane image keeps its aspect: 640 x 64 -> 730 x 73, the centre cropped
    prepared = inputs.preprocess(Image.new("RGB", (640, 64)), keep.meta)
    assert prepared.geometry.resized == (730, 73) and prepared.image.shape == (INPUT, INPUT, 3)


def test_the_batch_path_refuses_before_any_resize(keep: ckpt.Checkpoint,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    good, strip = Image.new("RGB", (90, 70)), Image.new("RGB", STRIP)

    def no_transform(*args: object, **kwargs: object) -> None:
        raise AssertionError("a transform was built before the check")

    with monkeypatch.context() as patch:
        patch.setattr(batch, "eval_transform", no_transform)
        with pytest.raises(ValueError, match="'image 1' .*" + WORDS):
            explain_images(keep, [good, strip])
        with pytest.raises(ValueError, match="'wide one' .*" + WORDS):
            explain_images(keep, [strip], names=["wide one"])
    files = []
    for name, size in (("a_good.png", (90, 70)), ("b_strip.png", STRIP),
                       ("c_tall.png", STRIP[::-1]), ("d_good.png", (70, 90))):
        (tmp_path / name).write_bytes(_png(size))
        files.append(tmp_path / name)
    records = [e.record for e in explain_files(keep, files)]
    assert [r.ok for r in records] == [True, False, False, True]
    assert str(files[1]) in records[1].error and "network input" in records[1].error
    assert records[3].size == (70, 90)


def test_the_command_writes_a_failed_record(paths: dict[str, Path], tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(_png((90, 70)))
    (photos / "b_strip.png").write_bytes(_png(STRIP))
    out = tmp_path / "out"
    assert main(["--checkpoint", str(paths["keep"]), "--out", str(out), "--quiet",
                 "--no-overlays", str(photos)]) == 1
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["ok"] for r in rows] == [True, False]
    assert "1168000 x 73 network input" in rows[1]["error"]


def test_a_forward_pass_stays_within_its_pixel_budget(square: ckpt.Checkpoint,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert batch.images_per_pass(224, 32) == 32 and batch.images_per_pass(448, 32) == 8
    assert batch.images_per_pass(1024, 32) == 1 and batch.images_per_pass(64, 5) == 5
    images = [Image.new("RGB", (70 + i, 80), (40 * i, 90, 10)) for i in range(5)]
    whole = explain_images(square, images, batch_size=32)
    passes: list[int] = []
    real = square.model.explain

    def counting(x: torch.Tensor, *args: object) -> object:
        passes.append(x.shape[0])
        return real(x, *args)

    monkeypatch.setattr(batch, "BATCH_INPUT_PIXELS", 2 * INPUT * INPUT + 1)
    monkeypatch.setattr(square.model, "explain", counting)
    split = explain_images(square, images, batch_size=32)
    assert passes == [2, 2, 1]
    for a, b in zip(whole, split, strict=True):
        assert a.top5[0].index == b.top5[0].index
        assert a.top5[0].p == pytest.approx(b.top5[0].p, abs=1e-5)


def test_a_batch_of_decoded_images_stays_within_its_budget(
        square: ckpt.Checkpoint, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = []
    for i in range(5):
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(_png((100, 60)))  # 6000 pixels each
    sizes: list[int] = []
    real = batch.explain_images

    def recording(bundle: object, images: list, *args: object, **kwargs: object) -> list:
        sizes.append(len(images))
        return real(bundle, images, *args, **kwargs)

    monkeypatch.setattr(batch, "explain_images", recording)
    monkeypatch.setattr(batch, "BATCH_DECODED_PIXELS", 20_000)
    assert all(e.record.ok for e in explain_files(square, files, batch_size=32))
    assert sizes == [3, 2]  # a fourth image would hold 24000 pixels
    sizes.clear()
    monkeypatch.setattr(batch, "BATCH_DECODED_PIXELS", 1000)  # each image alone, still done
    assert all(e.record.ok for e in explain_files(square, files, batch_size=32))
    assert sizes == [1, 1, 1, 1, 1]
