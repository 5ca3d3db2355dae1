"""arpviz.history: training records, probe images and the training page's figures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from helpers import rewrite_checkpoint, write_checkpoint
from torchvision.transforms import v2

from arpviz import checkpoint as ckpt
from arpviz.data.synthbirds import SynthBirds, SynthBirdsConfig
from arpviz.data.transforms import eval_transform
from arpviz.explorer import catalog, inputs
from arpviz.explorer.figures import history as figures
from arpviz.explorer.figures.history.mosaic import _caption_lines, _Mosaic
from arpviz.palette import stage_colour

CLASSES = 6
INPUT = 64




@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("runs")
    return {
        "arp": write_checkpoint(folder / "msgn_arp.safetensors", "arp"),
        "stn": write_checkpoint(folder / "msgn_stn.safetensors", "stn", seed=1),
        "other": write_checkpoint(folder / "other_probes.safetensors", "stn", probes=(3, 4, 5),
                           epochs=2),
    }


def test_load_record_reads_history_and_snapshots_without_the_model(runs):
    record = catalog.load_record(runs["arp"])
    full = ckpt.load(runs["arp"])
    assert record.name == "msgn_arp" and record.path == runs["arp"]
    assert record.epochs == (1, 2, 3) and record.has_history
    assert record.meta == full.meta
    assert record.probe_count == 3 and record.probe_indices == (0, 1, 2)
    np.testing.assert_array_equal(record.probe_labels, full.probe_labels.numpy())
    for ours, theirs in zip(record.snapshots, full.snapshots, strict=True):
        assert set(ours.stages) == set(theirs.stages) == {"conv3", "conv4.local0"}
        torch.testing.assert_close(ours.stages["conv4.local0"]["image_boxes"],
                                   theirs.stages["conv4.local0"]["image_boxes"])
    same = catalog.record_from_checkpoint(full)
    assert same.epochs == record.epochs and same.name == "msgn_arp"
    upload = catalog.load_record(runs["arp"].read_bytes())
    assert upload.name == "upload" and upload.path is None and upload.epochs == (1, 2, 3)
    assert "Conv4 ARP" in record.label and catalog.load_record(runs["stn"]).conv4 == "stn"


def test_load_record_refuses_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        catalog.load_record(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04not a checkpoint")
    with pytest.raises(ckpt.CheckpointError):
        catalog.load_record(bad)




@pytest.mark.parametrize(("change", "message"), [
    ({"meta": lambda m: m["history"][0].update(val_top1="high")}, "val_top1 is not a number"),
    ({"meta": lambda m: m["history"].__setitem__(1, [1, 2])}, "history"),
    ({"meta": lambda m: m["history"][0].update(epoch=None)}, "epoch must be a finite"),
    ({"meta": lambda m: m["history"][2].update(epoch=float("nan"))}, "epoch must be a finite"),
    ({"meta": lambda m: m["dataset"].update(probe_indices=["a"])}, "probe_indices"),
    ({"tensors": lambda t: t.update({"snap.1": torch.zeros(1)})}, "bad snapshot key"),
    ({"tensors": lambda t: t.update({"snap.0003.conv3.rates": torch.zeros(5, 2)})},
     "rates must be"),
    ({"tensors": lambda t: t.update({"probe.labels": torch.zeros(7, dtype=torch.long)})},
     "probe.labels"),
])
def test_load_record_refuses_malformed_records(runs, tmp_path, change, message):
    bad = rewrite_checkpoint(runs["arp"], tmp_path / "bad.safetensors", **change)
    with pytest.raises(ckpt.CheckpointError, match=message):
        catalog.load_record(bad)


def test_read_meta_reads_only_the_header(runs, tmp_path, monkeypatch):
    size = runs["arp"].stat().st_size
    read: list[int] = []
    real = open

    class Counting:
        def __init__(self, handle):
            self.handle = handle

        def read(self, n=-1):
            out = self.handle.read(n)
            read.append(len(out))
            return out

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr("builtins.open", lambda *a, **k: Counting(real(*a, **k)))
    meta = ckpt.read_meta(runs["arp"])
    monkeypatch.undo()
    assert meta == ckpt.load(runs["arp"]).meta
    assert 0 < sum(read) < size / 2
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(runs["arp"].read_bytes()[: size - 100])
    with pytest.raises(ckpt.CheckpointError, match="truncated"):
        ckpt.read_meta(cut)


def test_record_epochs_joins_snapshots_and_history(runs):
    arp, other = catalog.load_record(runs["arp"]), catalog.load_record(runs["other"])
    assert catalog.record_epochs([arp]) == [1, 2, 3]
    assert catalog.record_epochs([other]) == [1, 2]
    no_rows = replace(other, meta=replace(other.meta, history=({"train_loss": 1.0},) * 5))
    assert catalog.record_epochs([no_rows]) == [1, 2, 3, 4, 5]  # rows numbered as the curves do
    assert catalog.record_epochs([]) == [1]


def test_at_picks_the_last_snapshot_not_after_the_epoch(runs):
    record = catalog.load_record(runs["arp"])
    assert record.at(2).epoch == 2
    assert record.at(99).epoch == 3
    assert record.at(0).epoch == 1  # before the first: the first
    empty = catalog.TrainingRecord("x", record.meta, (), None)
    with pytest.raises(ValueError, match="no epoch snapshots"):
        empty.at(1)


def test_metric_columns(runs):
    cols = catalog.metric_columns(catalog.load_record(runs["arp"]).meta)
    assert cols["epoch"] == [1.0, 2.0, 3.0]
    assert cols["val_top1"] == [8.0, 16.0, 24.0]
    # a classification history: every metric it wrote, none of the re-ID ones
    assert set(cols) == {"epoch", "train_loss", "train_top1", "val_top1", "val_top5", "lr",
                         "seconds"}


@pytest.mark.parametrize(("height", "width", "size"), [(73, 73, 64), (74, 75, 64), (9, 12, 4)])
def test_crop_center_matches_torchvision(height, width, size):
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    ours = inputs.crop_center(image, size)
    theirs = v2.CenterCrop(size)(torch.from_numpy(image).permute(2, 0, 1))
    np.testing.assert_array_equal(ours, theirs.permute(1, 2, 0).numpy())
    with pytest.raises(ValueError, match="cannot crop"):
        inputs.crop_center(image, max(height, width) + 1)


def test_probe_images_are_what_the_network_saw(runs):
    record = catalog.load_record(runs["arp"])
    images = inputs.probe_images(record.meta)
    assert images.shape == (3, INPUT, INPUT, 3) and images.dtype == np.uint8
    synth = SynthBirdsConfig.from_dict(record.meta.dataset["config"])
    seen = SynthBirds(synth, "val", transform=eval_transform(INPUT, mean=None, std=None))
    for i, index in enumerate(record.probe_indices):
        expected = (seen[index][0].permute(1, 2, 0).numpy() * 255).round()
        np.testing.assert_allclose(images[i].astype(float), expected, atol=1)


def test_probe_images_or_blank_says_why(runs):
    meta = catalog.load_record(runs["arp"]).meta
    broken = replace(meta, dataset={"name": "cub", "root": "/nonexistent", "probe_indices": [0]})
    images, note = inputs.probe_images_or_blank(broken, 2)
    assert images.shape == (2, INPUT, INPUT, 3) and note and "unavailable" in note
    no_probes = replace(meta, dataset={"name": "synthbirds"})
    images, note = inputs.probe_images_or_blank(no_probes, 3)
    assert len(images) == 3 and "probe" in note


def _box_points(trace: go.Scatter) -> list[tuple[float, float, float, float]]:
    xs, ys = list(trace.x), list(trace.y)
    boxes = []
    for i in range(0, len(xs), 6):
        boxes.append((xs[i], ys[i], xs[i + 2], ys[i + 2]))
    return boxes


def test_probe_figure_draws_every_stage_box_on_its_tile(runs):
    record = catalog.load_record(runs["arp"])
    images = inputs.probe_images(record.meta)
    fig = figures.probe_figure(images, record, 2, cols=2)
    assert isinstance(fig.data[0], go.Image) and fig.data[0].source.startswith("data:image/")
    names = [t.name for t in fig.data[1:]]
    assert names == ["Conv3 (ARP)", "Conv4 local 0 (ARP)"]
    snap = record.at(2)
    mosaic = _Mosaic(images, 2, caption_lines=_caption_lines(record, 200))
    for trace, stage in zip(fig.data[1:], ["conv3", "conv4.local0"], strict=True):
        expected = snap.stages[stage]["image_boxes"].numpy()
        for t, box in enumerate(_box_points(trace)):
            x0, y0 = mosaic.origin(t)
            np.testing.assert_allclose(np.subtract(box, (x0, y0, x0, y0)), expected[t],
                                       atol=1e-4)
    captions = [a.text for a in fig.layout.annotations]
    assert len(captions) == 3 and captions[0].startswith("#0 ")
    # the whole top-1 class name, wrapped, never cut
    names = record.meta.class_names
    top = [names[int(i)] for i in snap.top5[0][:, 0]]
    for caption, name in zip(captions, top, strict=True):
        assert caption.replace("<br>", " ").endswith(name) and "…" not in caption
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # image axis points down
    only = figures.probe_figure(images, record, 2, stages=["conv3"], probes=[1])
    assert [t.name for t in only.data[1:]] == ["Conv3 (ARP)"]
    assert len(only.layout.annotations) == 1
    with pytest.raises(ValueError, match="probes"):
        figures.probe_figure(images, record, 2, probes=[7])


def test_probe_figure_animation_has_a_frame_per_epoch(runs):
    record = catalog.load_record(runs["arp"])
    images = inputs.probe_images(record.meta)
    fig = figures.probe_figure(images, record, 2, animate=True)
    assert [f.name for f in fig.frames] == ["1", "2", "3"]
    assert fig.layout.sliders[0].active == 1
    assert list(fig.frames[0].traces) == [1, 2]
    # the boxes differ between epochs (the weights moved)
    first, last = fig.frames[0].data[1], fig.frames[2].data[1]
    assert list(first.x) != list(last.x)


def test_comparison_pairs_need_the_same_probes(runs):
    records = [catalog.load_record(p) for p in runs.values()]
    pairs = catalog.comparison_pairs(records)
    assert [(a.name, s.name) for a, s in pairs] == [("msgn_arp", "msgn_stn")]
    assert catalog.comparison_pairs(records[:1]) == []


def test_comparison_figure_puts_the_runs_side_by_side(runs):
    arp, stn = catalog.load_record(runs["arp"]), catalog.load_record(runs["stn"])
    images = inputs.probe_images(arp.meta)
    fig = figures.comparison_figure(images, arp, stn, 3, probes=[0, 2], cols=1)
    names = [t.name for t in fig.data[1:]]
    assert names == ["ARP run: Conv4 local 0 (ARP)", "STN run: Conv4 local 0 (STN)",
                     "Conv3 (ARP), both runs", "Conv3 (ARP), both runs"]
    assert [t.showlegend for t in fig.data[1:]] == [True, True, True, False]  # Conv3 once
    colours = [t.line.color for t in fig.data[1:]]
    assert len(set(colours[:3])) == 3 and colours[3] == colours[2]  # one colour, one meaning
    captions = [a.text for a in fig.layout.annotations]
    assert len(captions) == 4 and captions[0].startswith("ARP") and captions[2].startswith("STN")
    mosaic = _Mosaic(np.repeat(images[[0, 2]], 2, axis=0), 2)
    stn_boxes = _box_points(fig.data[2])
    x0, y0 = mosaic.origin(1)  # probe 0's STN tile
    expected = stn.at(3).stages["conv4.local0"]["image_boxes"][0].numpy()
    np.testing.assert_allclose(np.subtract(stn_boxes[0], (x0, y0, x0, y0)), expected, atol=1e-4)
    animated = figures.comparison_figure(images, arp, stn, 1, animate=True, show_conv3=False)
    assert len(animated.frames) == 3 and len(animated.data) == 3


def test_confidence_figure_rows_and_text(runs):
    record = catalog.load_record(runs["arp"])
    fig = figures.confidence_figure(record, 3, 1)
    maps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(maps) == 2
    np.testing.assert_allclose(maps[0].z, record.at(3).stages["conv3"]["confidence"][1].numpy())
    assert {m.coloraxis for m in maps} == {"coloraxis"}  # one colour scale for every map
    titles = [a.text for a in fig.layout.annotations]
    rates = record.at(3).stages["conv4.local0"]["rates"][1].tolist()
    assert record.at(3).stages["conv4.local0"]["confidence"].shape[1:] == (8, 8)
    assert titles[1] == (f"Conv4 local 0 (ARP)<br>map 8 x 8<br>"
                         f"crop rate {rates[0]:.2f} x {rates[1]:.2f}")
    with pytest.raises(ValueError, match="probe"):
        figures.confidence_figure(record, 3, 9)
    rows = figures.stage_rows(record, 3, 1)
    assert [r["stage"] for r in rows] == ["Conv3 (ARP)", "Conv4 local 0 (ARP)"]
    box = record.at(3).stages["conv4.local0"]["image_boxes"][1].tolist()
    assert all(list(r) == list(figures.STAGE_COLUMNS) and r["run"] == "msgn_arp" for r in rows)
    assert rows[1]["crop (h x w px)"] == f"{box[3] - box[1]:.1f} x {box[2] - box[0]:.1f}"
    assert rows[1]["crop top, left (px)"] == f"{box[1]:.1f}, {box[0]:.1f}"
    assert rows[1]["crop rate (h x w)"] == f"{rates[0]:.2f} x {rates[1]:.2f}"
    # 64 px input: Conv3's map 16 x 16 -> 8 x 8 at DSR 0.5, Conv4's 8 x 8 -> 4 x 4
    assert [(r["map (h x w)"], r["output (h x w)"]) for r in rows] == [
        ("16 x 16", "8 x 8"), ("8 x 8", "4 x 4")]
    with pytest.raises(ValueError, match="probe"):
        figures.stage_rows(record, 3, 5)


def test_learning_curves_and_rates(runs):
    records = [catalog.load_record(runs["arp"]), catalog.load_record(runs["stn"])]
    fig = figures.learning_curves(records, epoch=2)
    curves = [t for t in fig.data if t.x[0] is not None]
    assert len(curves) == 2 * 5  # loss, train/val top-1, val top-5, lr per run
    assert fig.layout.yaxis3.type == "log"
    loss = [t for t in fig.data if t.name == "msgn_arp: train loss"][0]
    np.testing.assert_allclose(loss.y, [1.7, 1.4, 1.1])
    # a legend of runs (colours) and one of the middle panel's line styles (one neutral colour)
    keys = [t for t in fig.data if t.x[0] is None]
    runs_key = [t for t in keys if t.legend == "legend"]
    styles = [t for t in keys if t.legend == "legend2"]
    assert [t.name for t in runs_key] == ["msgn_arp", "msgn_stn"]
    assert [t.name for t in styles] == ["train top-1 %", "val top-1 %", "val top-5 %"]
    assert not any(t.showlegend for t in curves)
    colours = {t.line.color for t in runs_key} | {styles[0].line.color}
    assert len(colours) == 3  # no run colour reused for the style key
    for t in curves:  # each run's curves in the run's colour
        run = t.name.split(":")[0]
        assert t.line.color == next(k.line.color for k in runs_key if k.name == run)
    assert fig.layout.legend.y < 0 and fig.layout.legend2.y < fig.layout.legend.y  # below
    rates = figures.rates_figure(records, epoch=2)
    names = {t.name for t in rates.data if t.x and t.x[0] is not None}
    assert names == {"msgn_arp: Conv3 (ARP)", "msgn_arp: Conv4 local 0 (ARP)",
                     "msgn_stn: Conv3 (ARP)", "msgn_stn: Conv4 local 0 (STN)"}
    stage_keys = [t.name for t in rates.data if t.legend == "legend2"]
    assert stage_keys == ["Conv3 (ARP)", "Conv4 local 0"]  # the modes differ in Conv4
    assert rates.layout.yaxis.title.text == "crop area / map area"
    assert stage_colour("conv3") != stage_colour("conv4.local0")


def test_recipe_note_names_runs_trained_on_different_schedules(runs):
    arp, stn = catalog.load_record(runs["arp"]), catalog.load_record(runs["stn"])
    assert catalog.recipe_note([arp]) is None
    assert catalog.recipe_note([arp, stn]) is None  # the same schedule: like for like
    longer = replace(stn, meta=replace(stn.meta, recipe={
        **stn.meta.recipe, "epochs": 12, "milestones": [0.6, 0.85], "schedule": "step"}))
    note = catalog.recipe_note([arp, longer])
    assert note is not None and "different schedules" in note
    assert f"{longer.name}: 12 epochs, lr x0.1 at 60%, 85%" in note and arp.name in note
    cosine = replace(stn, meta=replace(stn.meta, recipe={**stn.meta.recipe, "schedule": "cosine",
                                                          "milestones": None}))
    assert "cosine decay" in catalog.recipe_note([arp, cosine])
