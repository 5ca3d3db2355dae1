"""Converted ImageNet checkpoints see an image as torchvision's evaluation does (the shorter side
resized, the aspect kept, the centre crop), in the app and in arpviz-explain alike; trained
checkpoints keep their square resize. One geometry: arpviz.geometry.eval_resize and
InputGeometry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from arpviz import checkpoint as ckpt
from arpviz import convert as cv
from arpviz.data.transforms import eval_transform
from arpviz.explain import explain_images
from arpviz.explorer import inputs, records
from arpviz.explorer.live import LiveSession
from arpviz.explorer.photo import photo_of
from arpviz.geometry import InputGeometry, eval_resize

SIZES = [(300, 150), (150, 300), (224, 224), (257, 1000), (999, 333), (256, 255), (40, 30)]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> ckpt.Checkpoint:
    torch.manual_seed(7)
    folder = tmp_path_factory.mktemp("imagenet")
    weights = folder / "resnet18-random.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    return ckpt.load(cv.convert("resnet18", folder / "r18.safetensors", weights).path)


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def test_eval_resize_decides_once(converted: ckpt.Checkpoint, tiny_checkpoint: Path) -> None:
    meta = converted.meta
    assert eval_resize(meta) == (256, True)
    assert eval_resize(replace(meta, dataset={**meta.dataset, "resize": 232})) == (232, True)
    # an older conversion (no keep_aspect) is still an ImageNet one
    legacy = {k: v for k, v in meta.dataset.items() if k != "keep_aspect"}
    assert eval_resize(replace(meta, dataset=legacy)) == (256, True)
    assert eval_resize(replace(meta, dataset={**legacy, "resize": 100})) == (256, True)
    synth = ckpt.read_meta(tiny_checkpoint)
    assert eval_resize(synth) == (146, False)  # SynthBirds: the square resize, as trained


@pytest.mark.parametrize("size", SIZES)
def test_preprocess_is_torchvisions_evaluation(converted: ckpt.Checkpoint, size) -> None:
    photo = _photo(*size)
    meta = converted.meta
    prepared = inputs.preprocess(photo, meta)
    expected = eval_transform(224, 256, keep_aspect=True, mean=meta.mean, std=meta.std)(photo)
    torch.testing.assert_close(prepared.tensor[0], expected, atol=1e-6, rtol=0)
    plain = torchvision.transforms.v2.Resize(256, antialias=True)(photo)
    geometry = prepared.geometry
    assert geometry.resized == plain.size and geometry.keep_aspect
    assert min(geometry.resized) == 256
    # the network's input frame on the photo keeps its aspect (a square of the photo)
    x1, y1, x2, y2 = geometry.crop_area
    assert (x2 - x1) == pytest.approx(y2 - y1, rel=0.01)
    short = min(size)
    assert (x2 - x1) == pytest.approx(224 / 256 * short, rel=0.01)


def test_synthbirds_keeps_the_square_resize(tiny_checkpoint: Path) -> None:
    meta = ckpt.read_meta(tiny_checkpoint)
    photo = _photo(300, 150)
    prepared = inputs.preprocess(photo, meta)
    expected = eval_transform(128, mean=meta.mean, std=meta.std)(photo)
    torch.testing.assert_close(prepared.tensor[0], expected, atol=1e-6, rtol=0)
    assert prepared.geometry.resized == (146, 146) and not prepared.geometry.keep_aspect
    assert prepared.geometry == InputGeometry.of(300, 150, 128)


def test_points_and_boxes_go_both_ways() -> None:
    geometry = InputGeometry.of(400, 200, 224, resize=256, keep_aspect=True)
    assert geometry.resized == (512, 256) and (geometry.left, geometry.top) == (144, 16)
    box = (10.0, 20.0, 100.0, 200.0)
    image_box = geometry.to_image(box)
    back = geometry.to_input(*image_box[:2]) + geometry.to_input(*image_box[2:])
    assert back == pytest.approx(box)
    assert geometry.crop_area == pytest.approx((112.5, 12.5, 287.5, 187.5))
    with pytest.raises(ValueError, match="resize"):
        InputGeometry.of(400, 200, 224, resize=200)


def test_app_and_explain_command_agree(converted: ckpt.Checkpoint) -> None:
    """The same wide photo: the batch command's record equals the app's export, both through
    torchvision's evaluation geometry."""
    photo = _photo(360, 200, seed=2)
    [record] = explain_images(converted, [photo], names=["wide.png"])
    prepared = inputs.preprocess(photo, converted.meta, name="wide.png")
    view = LiveSession(converted.model, prepared, converted.meta.class_names).explain()
    exported = records.view_record(view, prepared, converted.meta.input_size)
    assert [c.index for c in record.top5] == [c.index for c in exported.top5]
    assert [c.p for c in record.top5] == pytest.approx([c.p for c in exported.top5], abs=1e-5)
    geometry = InputGeometry.of_checkpoint(360, 200, converted.meta)
    assert geometry.resized == (460, 256)
    for name, stage in record.stages.items():
        assert stage.box == pytest.approx(geometry.to_image(stage.input_box))
        assert stage.box == pytest.approx(exported.stages[name].box, abs=1e-2)
    shown = photo_of(prepared, converted.meta)
    assert shown is not None and shown.geometry == geometry
    assert shown.squeezed == pytest.approx(1.0, abs=0.01)
