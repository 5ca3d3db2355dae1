"""arpviz.explorer.records: the app's export equals what the batch command computes."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from arpviz import checkpoint as ckpt
from arpviz.explain import explain_images, record_to_json
from arpviz.explorer import inputs, records
from arpviz.explorer.controls import Knob
from arpviz.explorer.live import LiveSession


@pytest.fixture(scope="module")
def bundle(tiny_checkpoint):
    return ckpt.load(tiny_checkpoint)


def test_view_record_matches_explain_images(bundle) -> None:
    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 255, (90, 170, 3), dtype=np.uint8))
    prepared = inputs.preprocess(photo, bundle.meta, name="photo.png")
    assert prepared.original is not None and prepared.original.size == (170, 90)
    live = LiveSession(bundle.model, prepared, bundle.meta.class_names)
    view = live.explain({"conv4.local0": Knob(0.4, None)})
    record = records.view_record(view, prepared, bundle.meta.input_size)
    [batch] = explain_images(bundle, [photo], view.overrides, names=["photo.png"])
    assert record.file == "photo.png" and record.size == batch.size == (170, 90)
    assert set(record.stages) == set(batch.stages) == {"conv3", "conv4.local0"}
    assert record.stages["conv4.local0"].k == pytest.approx(0.4)
    for name, stage in record.stages.items():
        other = batch.stages[name]
        assert stage.mode == other.mode and stage.k == other.k and stage.dsr == other.dsr
        # the app resizes the tensor, the batch command the PIL image: pixels differ slightly
        np.testing.assert_allclose(stage.box, other.box, atol=2.0)
        np.testing.assert_allclose(stage.input_box, other.input_box, atol=1.5)
        x1, y1, x2, y2 = stage.box
        assert 0 <= x1 < x2 <= 170 and 0 <= y1 < y2 <= 90
    assert [c.index for c in record.top5][:1] == [c.index for c in batch.top5][:1]
    np.testing.assert_allclose([c.p for c in record.top5], [c.p for c in batch.top5],
                               atol=0.02)
    text = records.record_json(record)
    assert json.loads(text) == json.loads(json.dumps(record_to_json(record)))
    assert set(json.loads(text)) == set(record_to_json(batch))
    png = Image.open(io.BytesIO(records.record_overlay(record, prepared)))
    assert png.size == (170, 90)


def test_bad_arguments(bundle) -> None:
    prepared = inputs.preprocess(np.zeros((64, 64, 3), np.uint8), bundle.meta)
    with pytest.raises(TypeError, match="view"):
        records.view_record("view", prepared, 128)
    live = LiveSession(bundle.model, prepared, bundle.meta.class_names)
    with pytest.raises(TypeError, match="image"):
        records.view_record(live.trained, prepared.image, 128)
