"""Your own photos, end to end: class folders trained from ImageNet weights downloaded on request,
then the checkpoint opened in the app.

A random ResNet-18 state dict stands for torchvision's file: a loopback HTTP server serves it
through ``ARPVIZ_WEIGHTS_MIRROR`` as a test-only weights entry registered as resnet18's default
(its file named by its SHA-256 prefix), ``TORCH_HOME`` is the test's folder. Training is tiny (8
images, one epoch, 64 px, CPU); the app runs under AppTest.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_app
from loopback import serve, weights_entry, weights_payload
from PIL import Image
from streamlit.testing.v1 import AppTest

from arpviz import checkpoint as ckpt
from arpviz import train
from arpviz import weights as wt
from arpviz.models.pretrained import read_state_dict

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 180
CLASSES = ("cardinal", "jay", "robin")
COLOURS = {"cardinal": (200, 30, 40), "jay": (40, 80, 200), "robin": (150, 90, 40)}
pytestmark = pytest.mark.slow


def make_class_folders(root: Path, per_class: int, seed: int) -> Path:
    """``root/<class>/<n>.jpg``: a coloured bird-ish ellipse on noise, photos of mixed aspect."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            width, height = (96, 64) if i % 2 else (64, 80)
            noise = rng.integers(60, 200, (height, width, 3), dtype=np.uint8)
            image = Image.fromarray(noise)
            x, y = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
            ImageDraw.Draw(image).ellipse((x, y, x + width // 2, y + height // 3),
                                          fill=COLOURS[name])
            image.save(root / name / f"{i:02d}.jpg", quality=90)
    return root


def test_class_folders_from_downloaded_imagenet_weights_open_in_the_app(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streamlit_v2_pages: None,
        request: pytest.FixtureRequest) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ARPVIZ_CACHE", str(tmp_path / "arpviz"))
    payload = weights_payload("resnet18", seed=11)
    entry = wt.register_weights(weights_entry(payload), default=True)
    request.addfinalizer(lambda: wt.unregister_weights(entry))
    train_root = make_class_folders(tmp_path / "photos" / "train", per_class=4, seed=0)
    val_root = make_class_folders(tmp_path / "photos" / "val", per_class=2, seed=1)
    runs = tmp_path / "runs"
    out = runs / "my_birds.safetensors"
    dataset = {"name": "folder", "root": str(train_root), "val_root": str(val_root)}
    threads = torch.get_num_threads()
    try:
        with serve({entry.file_name: payload}) as server:
            monkeypatch.setenv(wt.MIRROR_ENV, server.base)
            code = train.main([
                "--dataset", json.dumps(dataset), "--model", '{"backbone": "resnet18"}',
                "--pretrained", "DEFAULT", "--download", "--out", str(out),
                "--image-size", "64", "--epochs", "1", "--batch-size", "4",
                "--limit-train", "8", "--limit-val", "6", "--probes", "2", "--workers", "0",
                "--device", "cpu", "--threads", "2", "--no-progress",
            ])
            assert server.requests == [entry.file_name]  # downloaded once, on request
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    cached = tmp_path / "torch" / "hub" / "checkpoints" / entry.file_name
    assert cached.read_bytes() == payload

    loaded = ckpt.load(out)
    assert loaded.meta.class_names == CLASSES and loaded.config.num_classes == 3
    assert loaded.meta.recipe["pretrained"] == "DEFAULT"
    assert loaded.meta.dataset["name"] == "folder"
    assert len(loaded.meta.history) == 1 and len(loaded.snapshots) == 1
    # the served ImageNet weights reached the trunk and both branches (two SGD steps move
    # them only a little: still nearly parallel to the served ones, unlike a fresh init's)
    state = read_state_dict(cached)

    def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))

    fresh = torch.nn.init.kaiming_normal_(torch.empty_like(state["conv1.weight"]))
    with torch.no_grad():
        assert cosine(loaded.model.stem.conv1.weight, state["conv1.weight"]) > 0.95
        assert abs(cosine(loaded.model.stem.conv1.weight, fresh)) < 0.3
        for branch in ("global", "local0"):
            copied = loaded.model.branches[branch].layer4[1].conv2.weight
            assert cosine(copied, state["layer4.1.conv2.weight"]) > 0.95

    # the checkpoint in the app: the sidebar lists it, Explore names its classes
    empty = tmp_path / "bundled"
    empty.mkdir()
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(empty))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(runs))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_ROOTS", str(tmp_path))
    try:
        at = run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))
        assert at.sidebar.selectbox(key="arpviz_checkpoint").value == str(out)
        photo = val_root / "jay" / "01.jpg"
        at.radio(key="image.source").set_value("upload")
        run_app(at)
        at.file_uploader(key="image.upload").set_value(
            ("01.jpg", photo.read_bytes(), "image/jpeg"))
        run_app(at)
    finally:
        torch.set_num_threads(threads)
    view = at.session_state["arpviz_state"].shown.explore
    assert view.probs.shape == (3,)
    assert {row.name for row in view.predictions.rows} == set(CLASSES)
    shown = " ".join(str(m.value) for m in at.success) + " ".join(
        str(m.value) for m in at.warning)
    assert view.predictions.top1.name in shown  # the flag names the top-1
    model_card = " ".join(str(m.value) for m in at.sidebar.markdown)
    assert "folder" in model_card

