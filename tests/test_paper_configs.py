"""The paper's CUB setting (configs/cub_msgn_resnet50.json) runs, shrunk to seconds on the CPU.

The config is used as shipped (ResNet-50 MSGN, ARP k 1.0 / 0.7, ImageNet init ``DEFAULT``);
only the image size, the split sizes, the batch and the device are overridden by flags, the data
is a miniature CUB layout made here, and random ResNet-50 weights stand for torchvision's file in
the torch cache (no download).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torchvision
from helpers import make_cub

from arpviz import checkpoint as ckpt
from arpviz import train
from arpviz.data.transforms import default_resize
from arpviz.models.pretrained import cached_weights_path

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cub_msgn_resnet50.json"


def test_cub_config_is_the_paper_recipe() -> None:
    config = train.TrainConfig.from_dict(json.loads(CONFIG.read_text()))
    assert (config.image_size, default_resize(config.image_size), config.epochs) == (448, 512, 100)
    assert (config.lr, config.warmup_lr, config.warmup_fraction) == (0.01, 0.001, 0.1)
    assert (config.milestones, config.momentum, config.weight_decay) == ((0.4, 0.7), 0.9, 5e-4)
    assert config.model["backbone"] == "resnet50" and config.pretrained == "DEFAULT"
    assert config.dataset["name"] == "cub"


def test_cub_config_trains_one_step_on_a_miniature_cub(tmp_path, monkeypatch) -> None:
    root = make_cub(tmp_path / "CUB_200_2011")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    weights = cached_weights_path(torchvision.models.ResNet50_Weights.DEFAULT)
    weights.parent.mkdir(parents=True)
    torch.manual_seed(0)
    resnet = torchvision.models.resnet50(weights=None)
    torch.save(resnet.state_dict(), weights)
    out = tmp_path / "cub.safetensors"
    code = train.main([
        "--config", str(CONFIG), "--dataset", json.dumps({"name": "cub", "root": str(root)}),
        "--out", str(out), "--image-size", "64", "--epochs", "1", "--batch-size", "2",
        "--limit-train", "2", "--limit-val", "2", "--probes", "1", "--workers", "0",
        "--device", "cpu", "--threads", "1", "--no-progress",
    ])
    assert code == 0
    loaded = ckpt.load(out)
    assert loaded.config.backbone == "resnet50" and loaded.config.num_classes == 3
    assert (loaded.config.conv3, loaded.config.conv4, loaded.config.conv4_k) == ("arp", "arp", 0.7)
    assert loaded.meta.class_names[0] == "Black footed Albatross"
    assert len(loaded.meta.history) == 1 and len(loaded.snapshots) == 1
    assert loaded.meta.recipe["pretrained"] == "DEFAULT"
    # the "ImageNet" init reached both branch copies (one SGD step moves layer4 by ~1e-4)
    for branch in ("global", "local0"):
        copied = loaded.model.branches[branch].layer4[2].conv3.weight
        assert (copied - resnet.layer4[2].conv3.weight).abs().max() < 1e-2
