"""Safe checkpoints: round trips, and every kind of bad file refused without unpickling."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from safetensors.torch import save_file

from arpviz import checkpoint as ckpt
from arpviz.models import MSGN, MSGNConfig

CONFIG = MSGNConfig(backbone="tiny", num_classes=5)


def _meta(config: MSGNConfig = CONFIG) -> ckpt.CheckpointMeta:
    return ckpt.CheckpointMeta(
        config=config,
        class_names=tuple(f"class {i}" for i in range(config.num_classes)),
        input_size=64,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        recipe={"epochs": 2},
        history=({"epoch": 1, "val_top1": 20.0}, {"epoch": 2, "val_top1": 40.0}),
        dataset={"name": "synthbirds", "config": {"num_classes": 5}},
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = MSGN(CONFIG).eval()
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        explanation = model.explain(images)
    stages = {
        name: {
            "boxes": r.boxes,
            "image_boxes": explanation.image_boxes[name],
            "rates": r.rates,
            "confidence": r.confidence,
        }
        for name, r in explanation.stages.items()
    }
    probs = explanation.logits.softmax(1).topk(5, dim=1)
    snaps = tuple(
        ckpt.EpochSnapshot(e, stages, (probs.indices, probs.values)) for e in (1, 2)
    )
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    ckpt.save(path, model, _meta(), snaps, torch.tensor([0, 1, 2]))
    return path, model, images, explanation


def test_round_trip(saved):
    path, model, images, explanation = saved
    loaded = ckpt.load(path)
    assert not loaded.model.training
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(images), model(images))
    assert loaded.meta.config == CONFIG
    assert loaded.meta.class_names == _meta().class_names
    assert loaded.meta.history == _meta().history
    assert loaded.meta.created  # stamped on save
    assert [s.epoch for s in loaded.snapshots] == [1, 2]
    stage = next(iter(explanation.stages))
    torch.testing.assert_close(loaded.snapshots[1].stages[stage]["boxes"],
                               explanation.stages[stage].boxes)
    torch.testing.assert_close(loaded.snapshots[0].stages[stage]["confidence"],
                               explanation.stages[stage].confidence, atol=1e-3, rtol=1e-3)
    assert loaded.probe_labels.tolist() == [0, 1, 2]
    # from bytes (an upload) too, and metadata alone
    assert ckpt.load(path.read_bytes()).meta.config == CONFIG
    assert ckpt.read_meta(path).input_size == 64


def _expect_error(data_or_path, match: str) -> None:
    with pytest.raises(ckpt.CheckpointError, match=match):
        ckpt.load(data_or_path)


def test_empty_and_truncated(saved, tmp_path):
    path = saved[0]
    data = path.read_bytes()
    _expect_error(b"", "empty")
    _expect_error(data[:5], "truncated")
    _expect_error(data[:200], "truncated")
    _expect_error(data[: len(data) // 2], "truncated")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:-10])
    _expect_error(cut, "truncated")


def test_random_bytes_are_not_a_checkpoint():
    _expect_error(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!" + b"\x00" * 64, "not a")
    _expect_error(b"GIF89a" + b"\x00" * 100, "not a safetensors")


def test_foreign_safetensors_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    _expect_error(path, "not an arpviz checkpoint")
    other = st_save({"w": torch.zeros(1)},
                    metadata={"arpviz": json.dumps({"format": "something-else"})})
    _expect_error(other, "not an arpviz checkpoint")


class _Exploit:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.target}",))


def test_pickles_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(_Exploit(str(marker)), protocol=2))
    _expect_error(evil, "pickle")
    assert not marker.exists()
    saved_with_torch = tmp_path / "model.pt"
    torch.save(MSGN(CONFIG).state_dict(), saved_with_torch)
    _expect_error(saved_with_torch, "pickle")
    with pytest.raises(ckpt.CheckpointError, match="pickle"):
        ckpt.read_meta(saved_with_torch)


def _rewrite(path, tensors_change=None, meta_change=None) -> bytes:
    data = path.read_bytes()
    tensors = dict(st_load(data))
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    meta = json.loads(header["__metadata__"]["arpviz"])
    if tensors_change:
        tensors_change(tensors)
    if meta_change:
        meta_change(meta)
    return st_save(tensors, metadata={"arpviz": json.dumps(meta)})


def test_missing_keys_and_shapes_and_versions(saved):
    path = saved[0]
    key = "model.classifier.weight"
    _expect_error(_rewrite(path, lambda t: t.pop(key)), "missing")
    _expect_error(_rewrite(path, lambda t: t.update({"model.extra": torch.zeros(1)})),
                  "unexpected")
    _expect_error(_rewrite(path, lambda t: t.update({key: torch.zeros(2, 2)})), "mismatched")
    _expect_error(_rewrite(path, lambda t: t.update({key: t[key] * float("nan")})),
                  "non-finite")
    _expect_error(_rewrite(path, meta_change=lambda m: m.update(version=99)), "version 99")

    def more_classes(meta):
        meta["config"]["num_classes"] = 7
        meta["class_names"] = [str(i) for i in range(7)]

    _expect_error(_rewrite(path, meta_change=more_classes), "mismatched")
    _expect_error(_rewrite(path, meta_change=lambda m: m["config"].update(backbone="vgg")),
                  "backbone")
    _expect_error(_rewrite(path, meta_change=lambda m: m.update(class_names=["a"])),
                  "class names")


def test_a_config_asking_for_huge_layers_allocates_nothing(saved, monkeypatch):
    """A few-kB file whose config asks for a 2-million-wide embedding is refused from the
    shapes alone: the only model built is on the meta device."""
    built_on = []

    def recording_msgn(config):
        built_on.append(torch.empty(0).device.type)
        return MSGN(config)

    monkeypatch.setattr(ckpt, "MSGN", recording_msgn)
    huge = _rewrite(saved[0], tensors_change=lambda t: t.clear(),
                    meta_change=lambda m: m["config"].update(embedding_dim=2_000_000))
    assert len(huge) < 20_000
    _expect_error(huge, "missing")
    assert built_on == ["meta"]
    ckpt.load(saved[0])  # a good file: the meta check, then the real model
    assert built_on == ["meta", "meta", "cpu"]


def test_images_and_text_pickles_are_named(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    _expect_error(png, "PNG image")
    _expect_error(b"\xff\xd8\xff\xe0" + b"\x00" * 64, "JPEG image")
    marker = tmp_path / "pwned"
    _expect_error(pickle.dumps(_Exploit(str(marker)), protocol=0), "pickle")
    assert not marker.exists()


def test_missing_file_and_wrong_types(tmp_path):
    with pytest.raises(FileNotFoundError):
        ckpt.load(tmp_path / "nope.safetensors")
    with pytest.raises(TypeError, match="path"):
        ckpt.load(123)
    with pytest.raises(TypeError, match="model"):
        ckpt.save(tmp_path / "x.safetensors", torch.nn.Linear(2, 2), _meta())
    with pytest.raises(ValueError, match="config"):
        ckpt.save(tmp_path / "x.safetensors", MSGN(CONFIG),
                  replace(_meta(), config=replace(CONFIG, num_classes=6),
                          class_names=tuple("abcdef")))


def test_training_state_round_trip(tmp_path):
    model = MSGN(CONFIG)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = model(torch.randn(2, 3, 64, 64)).sum()
    loss.backward()
    opt.step()
    path = ckpt.save_training_state(tmp_path / "s.safetensors", opt, model, {"epoch": 3})
    fresh_opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert ckpt.load_training_state(path, fresh_opt, model) == {"epoch": 3}
    for p in model.parameters():
        torch.testing.assert_close(fresh_opt.state[p]["momentum_buffer"],
                                   opt.state[p]["momentum_buffer"])
    pickled = tmp_path / "p.safetensors"
    pickled.write_bytes(pickle.dumps({"epoch": 1}))
    with pytest.raises(ckpt.CheckpointError, match="pickle"):
        ckpt.load_training_state(pickled, fresh_opt, model)


@pytest.mark.parametrize(
    "header",
    [
        {"__metadata__": ["a", "list"]},
        {"__metadata__": {"arpviz": "[1, 2]"}},
        {"__metadata__": {"arpviz": "{not json"}},
        {"w": {"dtype": "F32", "shape": [1], "data_offsets": ["a", "b"]}},
        {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}},
    ],
)
def test_malformed_headers_are_checkpoint_errors(header):
    raw = json.dumps(header).encode()
    _expect_error(len(raw).to_bytes(8, "little") + raw + b"\x00" * 8, "not a|malformed|JSON")


def test_crafted_metadata_is_a_checkpoint_error(saved):
    """Numbers too large for an int, NaN normalisation and JSON nested past Python's recursion
    limit are invalid metadata, never an OverflowError or RecursionError."""
    _expect_error(_rewrite(saved[0], meta_change=lambda m: m["input"].update(size=1e308 * 10)),
                  "invalid metadata")
    _expect_error(_rewrite(saved[0], meta_change=lambda m: m["input"].update(
        mean=[float("nan"), 0.5, 0.5])), "finite")
    data = saved[0].read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"]["arpviz"] = "[" * 100_000 + "]" * 100_000
    raw = json.dumps(header).encode()
    _expect_error(len(raw).to_bytes(8, "little") + raw + data[8 + length:], "not valid JSON")


def _history(*rows):
    return lambda m: m.update(history=list(rows))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        # the training history: epoch a positive int, increasing; metrics finite or null
        (_history({"epoch": "one"}), "epoch must be a finite positive int, got 'one'"),
        (_history({"epoch": float("nan")}), "epoch must be a finite positive int, got nan"),
        (_history({"epoch": float("inf")}), "epoch must be a finite positive int, got inf"),
        (_history({"epoch": {}}), "epoch must be a finite positive int, got {}"),
        (_history({"epoch": 0}), "epoch must be"),
        (_history({"epoch": 1.5}), "epoch must be"),
        (_history({"epoch": True}), "epoch must be"),
        (_history({"epoch": 2}, {"epoch": 1}), "epoch 1 comes after epoch 2"),
        (_history({"epoch": 1}, {"epoch": 1}), "epochs must increase"),
        (_history({"epoch": 1, "val_top1": "high"}), "val_top1 is not a number"),
        (_history({"epoch": 1, "val_top1": [1]}), "val_top1 is not a number"),
        (_history({"epoch": 1, "val_top1": True}), "val_top1 is not a number"),
        (_history({"epoch": 1, "val_top1": float("nan")}), "val_top1 is not a finite number"),
        (lambda m: m.update(history={"epoch": 1}), "history must be a list"),
        # k bounded, sizes ints in range, flags booleans, the version an int
        (lambda m: m["config"].update(conv4_k=1e308), "conv4_k: k must be at most 100"),
        (lambda m: m["input"].update(size="64"), "input size must be an int, got '64'"),
        (lambda m: m["input"].update(size=64.9), "input size must be an int, got 64.9"),
        (lambda m: m["input"].update(size=64.0), "input size must be an int, got 64.0"),
        (lambda m: m["input"].update(size=True), "input size must be an int, got True"),
        (lambda m: m["input"].update(size=4096), r"input size 4096 is outside \[16, 1024\]"),
        (lambda m: m["input"].update(size=8), r"input size 8 is outside \[16, 1024\]"),
        (lambda m: m["input"].update(mean=["0.5", 0.5, 0.5]), "input mean must be a number"),
        (lambda m: m["input"].update(std=[0.2, 0.2]), "input std must be 3 finite numbers"),
        (lambda m: m["input"].update(std=[0.2, 0.2, 0.0]), "input std must be > 0"),
        (lambda m: m.update(version=True), "version True is not supported"),
        (lambda m: m.update(version="1"), "version '1' is not supported"),
        (lambda m: m.update(created=5), "created must be a string"),
        (lambda m: m.update(class_names=[0, 1, 2, 3, 4]), "class_names must be a list of str"),
        (lambda m: m["dataset"].update(keep_aspect="yes"), "dataset.keep_aspect must be true"),
        (lambda m: m["dataset"].update(fine_tuned=0), "dataset.fine_tuned must be true"),
        (lambda m: m["dataset"].update(resize=100_000), r"dataset.resize must be an int in"),
        (lambda m: m["dataset"].update(resize=80.0), "dataset.resize must be an int"),
        (lambda m: m["dataset"].update(weights_bytes=1.5), "dataset.weights_bytes must be an"),
        (lambda m: m["dataset"].update(probe_indices=[0, -1]), r"probe_indices\[1\]"),
        (lambda m: m["dataset"].update(conv4_k=1e308), "dataset.conv4_k: k must be at most"),
        (lambda m: m["dataset"].update(weights_sha256="abc"), "64 lower-case hex digits"),
        (lambda m: m["dataset"].update(name=["imagenet"]), "dataset.name must be a string"),
        (lambda m: m["recipe"].update(epochs="2"), "recipe.epochs must be an int"),
        (lambda m: m["recipe"].update(amp="true"), "recipe.amp must be true or false"),
        (lambda m: m["recipe"].update(lr=float("inf")), "recipe.lr must be a finite number"),
        (lambda m: m.update(dataset=[]), "dataset must be an object"),
    ],
)
def test_every_metadata_value_is_checked_where_it_is_read(saved, tmp_path, change,
                                                          words: str) -> None:
    """Crafted metadata is a CheckpointError (a ValueError) from every reader, naming the
    value, never a later crash in the app (the model card's ``int(epoch)``, a resize of
    gigapixels)."""
    data = _rewrite(saved[0], meta_change=change)
    _expect_error(data, words)
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(data)
    for reader in (ckpt.read_meta, ckpt.read_snapshots):
        with pytest.raises(ckpt.CheckpointError, match=words) as info:
            reader(path)
        assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_well_formed_optional_values_still_load(saved) -> None:
    def change(meta):
        meta["history"] = [{"train_loss": 1.0, "val_top1": None}, {"epoch": 5, "lr": 0}]
        meta["dataset"].update(limit_val=None, conv4_k=None, dsr=None, resize=70,
                               keep_aspect=False, weights_sha256="0" * 64)
        meta["recipe"].update(pretrained=None, stop_after=None, threads=None, epochs=0, seed=-3)
        meta["config"].update(conv4_k=100)

    meta = ckpt.load(_rewrite(saved[0], meta_change=change)).meta
    assert [h.get("epoch") for h in meta.history] == [None, 5]
    assert meta.config.conv4_k == 100.0 and meta.dataset["resize"] == 70
