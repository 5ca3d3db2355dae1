"""Training CLI smoke runs: snapshots, resume, DDP on two CPU processes, evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from arpviz import checkpoint as ckpt
from arpviz.evaluate import box_iou, evaluate
from arpviz.evaluate import main as evaluate_main
from arpviz.models import MSGN, MSGNConfig
from arpviz.train import TrainConfig, learning_rate, param_groups, state_path
from arpviz.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "--epochs", "2", "--batch-size", "8", "--image-size", "64", "--limit-train", "24",
    "--limit-val", "12", "--probes", "3", "--threads", "1", "--no-progress",
    "--model", '{"backbone": "tiny", "num_classes": 6}',
    "--dataset", '{"name": "synthbirds", "config": {"num_classes": 6, "train_size": 24, '
    '"val_size": 12, "test_size": 12}}',
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "smoke.safetensors"
    assert train_main([*SMALL, "--out", str(out)]) == 0
    return out


def test_cli_smoke_run_writes_a_loadable_checkpoint_with_snapshots(smoke):
    loaded = ckpt.load(smoke)
    assert [h["epoch"] for h in loaded.meta.history] == [1, 2]
    assert all(set(h) >= {"train_loss", "val_top1", "val_top5", "lr", "seconds"}
               for h in loaded.meta.history)
    assert [s.epoch for s in loaded.snapshots] == [1, 2]
    snap = loaded.snapshots[-1]
    assert set(snap.stages) == {"conv3", "conv4.local0"}
    assert snap.stages["conv3"]["confidence"].shape[0] == 3
    assert snap.top5[0].shape == (3, 5)
    assert loaded.meta.dataset["probe_indices"] == [0, 1, 2]
    assert loaded.meta.class_names and len(loaded.meta.class_names) == 6
    assert loaded.meta.recipe["epochs"] == 2
    assert state_path(smoke).exists()


def test_resume_continues_the_schedule(tmp_path, capsys):
    full = tmp_path / "full.safetensors"
    part = tmp_path / "part.safetensors"
    args = [a if a != "2" else "3" for a in SMALL]  # 3 epochs
    assert train_main([*args, "--out", str(full)]) == 0
    assert train_main([*args, "--out", str(part), "--stop-after", "2"]) == 0
    assert [h["epoch"] for h in ckpt.load(part).meta.history] == [1, 2]
    # a silent change is refused: one line, exit status 1, the checkpoint untouched
    before = part.read_bytes()
    assert train_main([*args, "--out", str(part), "--resume", str(part),
                       "--localisation-lr-scale", "0.1"]) == 1
    assert "localisation_lr_scale" in capsys.readouterr().err
    assert part.read_bytes() == before
    assert train_main([*args, "--out", str(part), "--resume", str(part)]) == 0
    a, b = ckpt.load(full), ckpt.load(part)
    assert [h["epoch"] for h in b.meta.history] == [1, 2, 3]
    assert [h["lr"] for h in b.meta.history] == [h["lr"] for h in a.meta.history]
    assert [s.epoch for s in b.snapshots] == [1, 2, 3]
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[key], value, msg=key)


def test_learning_rate_schedule():
    config = TrainConfig(epochs=100)
    assert learning_rate(config, 0) == pytest.approx(0.001)
    assert learning_rate(config, 5) == pytest.approx(0.0055)
    assert learning_rate(config, 10) == pytest.approx(0.01)
    assert learning_rate(config, 39.9) == pytest.approx(0.01)
    assert learning_rate(config, 40) == pytest.approx(0.001)
    assert learning_rate(config, 70) == pytest.approx(0.0001)


def test_config_round_trip_and_validation(tmp_path):
    config = TrainConfig(epochs=3, model={"backbone": "tiny", "num_classes": 4})
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="backbone"):
        TrainConfig(model={"backbone": "vgg"})
    with pytest.raises(SystemExit):
        train_main(["--epochs", "-1", "--out", str(tmp_path / "x.safetensors")])


def test_image_size_is_bounded_as_a_checkpoint_reader_bounds_it(tmp_path, capsys):
    """A run cannot write a checkpoint that arpviz.checkpoint refuses to read."""
    assert TrainConfig(image_size=ckpt.MAX_INPUT_SIZE).image_size == ckpt.MAX_INPUT_SIZE
    for bad in (ckpt.MAX_INPUT_SIZE + 1, 2000, ckpt.MIN_INPUT_SIZE - 1):
        with pytest.raises(ValueError, match=f"image_size .*{ckpt.MAX_INPUT_SIZE}.*got {bad}"):
            TrainConfig(image_size=bad)
    out = tmp_path / "big.safetensors"
    with pytest.raises(SystemExit) as info:
        train_main(["--image-size", "2000", "--out", str(out)])
    assert info.value.code == 2 and "image_size" in capsys.readouterr().err
    assert not out.exists()


def test_localisation_lr_scale_applies_to_the_stn_only():
    stn = MSGN(MSGNConfig(backbone="tiny", conv4="stn", num_classes=4))
    groups = param_groups(stn, 0.1)
    assert [g["lr_scale"] for g in groups] == [1.0, 0.1]
    local = {id(p) for n, p in stn.named_parameters() if ".localisation." in n
             or ".regressor." in n}
    assert local and {id(p) for p in groups[1]["params"]} == local
    assert sum(len(g["params"]) for g in groups) == len(list(stn.parameters()))
    arp = MSGN(MSGNConfig(backbone="tiny", conv4="arp", num_classes=4))
    assert [g["lr_scale"] for g in param_groups(arp, 0.1)] == [1.0]
    with pytest.raises(ValueError, match="localisation_lr_scale"):
        TrainConfig(localisation_lr_scale=0)


def test_evaluate_reports_accuracy_and_crop_quality(smoke, capsys):
    result = evaluate(smoke)
    history = ckpt.load(smoke).meta.history[-1]
    assert result.count == 12
    assert result.top1 == pytest.approx(history["val_top1"])
    assert result.top5 == pytest.approx(history["val_top5"])
    assert 0 <= result.keypoints_in_conv4 <= 100 and 0 <= result.conv3_iou <= 100
    assert evaluate_main([str(smoke), "--no-crops"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["top1"] == pytest.approx(result.top1) and printed["conv3_iou"] is None


def test_evaluate_names_the_checkpoint_it_evaluated(tiny_checkpoint, capsys, caplog):
    import hashlib
    import logging

    caplog.set_level(logging.INFO, logger="arpviz.evaluate")
    assert evaluate_main([str(tiny_checkpoint), "--limit", "4", "--no-crops"]) == 0
    digest = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    printed = json.loads(capsys.readouterr().out)
    assert printed["checkpoint"] == {"path": str(tiny_checkpoint), "sha256": digest}
    assert printed["count"] == 4
    assert f"evaluating {tiny_checkpoint} (SHA-256 {digest})" in caplog.text


def test_crop_quality_progress_has_a_total(tiny_checkpoint, monkeypatch):
    from arpviz import evaluate as evaluate_module

    totals = []

    def bar(iterable, total=None, **kwargs):
        totals.append(total)
        return iterable

    monkeypatch.setattr(evaluate_module, "tqdm", bar)
    evaluate_module.crop_quality(ckpt.load(tiny_checkpoint), limit=5, batch_size=2)
    assert totals == [3]


def test_box_iou():
    import numpy as np

    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1]], dtype=float)
    b = np.array([[1, 1, 3, 3], [0, 0, 1, 1]], dtype=float)
    np.testing.assert_allclose(box_iou(a, b), [1 / 7, 1.0])


def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "arpviz.train", *SMALL, "--epochs", "1",
        "--device", "cpu", "--out", str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = ckpt.load(out)
    assert [h["epoch"] for h in loaded.meta.history] == [1]
    assert loaded.meta.history[0]["train_top1"] >= 0
    assert len(loaded.snapshots) == 1


def test_process_group_backend_follows_the_training_device():
    from arpviz.train import process_group_backend

    assert process_group_backend("cpu") == "gloo"  # also on a machine with CUDA
    assert process_group_backend(torch.device("cpu")) == "gloo"
    assert process_group_backend("cuda") == "nccl"
    assert process_group_backend(torch.device("cuda", 1)) == "nccl"


def test_cli_flags_come_from_every_config_field():
    import dataclasses

    from arpviz.train import FIELD_HELP, TrainConfig, _parser, config_from_args

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert fields <= set(FIELD_HELP), "every TrainConfig field needs help text"
    text = _parser().format_help()
    for name in fields:
        assert "--" + name.replace("_", "-") in text
    args = _parser().parse_args(
        ["--momentum", "0.8", "--weight-decay", "1e-4", "--milestones", "0.5", "0.75",
         "--no-amp", "--model", '{"backbone": "tiny", "num_classes": 5}']
    )
    config = config_from_args(args)
    assert config.momentum == 0.8 and config.weight_decay == 1e-4
    assert config.milestones == (0.5, 0.75) and config.amp is False
    assert config.model["num_classes"] == 5
    assert config_from_args(_parser().parse_args([])) == TrainConfig()


def test_evaluate_deterministic_records_its_numerics(tiny_checkpoint):
    # a process of its own: deterministic algorithms are a process-wide switch
    code = (
        "import sys; from arpviz.evaluate import main; "
        f"sys.exit(main([{str(tiny_checkpoint)!r}, '--limit', '4', '--deterministic']))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr
    numerics = json.loads(run.stdout)["numerics"]
    assert numerics["deterministic_algorithms"] is True
    assert numerics["tf32_convolutions"] is False and numerics["device"] == "cpu"
