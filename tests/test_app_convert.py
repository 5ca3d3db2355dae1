"""The sidebar's ImageNet offers (issue 13) under AppTest, with a faked torch cache.

Random torchvision ResNet-18 weights saved under torchvision's cache file name stand for the
real file (``TORCH_HOME`` points at a temporary folder); nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from helpers import run_app
from streamlit.testing.v1 import AppTest

from arpviz.explorer import catalog

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 180
pytestmark = pytest.mark.slow


@pytest.fixture()
def torch_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_checkpoint: Path,
                streamlit_v2_pages: None) -> Iterator[Path]:
    """A torch cache holding random ResNet-18 weights; the app's other folders are the test's."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ARPVIZ_CACHE", str(tmp_path / "arpviz"))
    empty = tmp_path / "bundled"
    empty.mkdir()
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(empty))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(tiny_checkpoint.parent))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_ROOTS", str(tmp_path))
    weights = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    weights.parent.mkdir(parents=True)
    torch.manual_seed(13)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    threads = torch.get_num_threads()
    yield weights
    torch.set_num_threads(threads)


def test_sidebar_offers_converts_once_and_explore_runs(torch_cache: Path, tmp_path: Path) -> None:
    at = run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))
    box = at.sidebar.selectbox(key="arpviz_checkpoint")
    assert "ImageNet ResNet-18 with ARP" in box.options
    assert box.value.endswith("tiny_msgn_arp.safetensors")  # the offer is not the default
    box.set_value("imagenet:resnet18")
    run_app(at)
    converted = catalog.converted_cache_dir()
    assert converted == tmp_path / "arpviz" / "converted"
    files = sorted(p.name for p in converted.iterdir())
    assert files == ["resnet18-f37072fd_c3-arp1_c4-arp0.7_dsr0.5.safetensors"]
    stamp = (converted / files[0]).stat().st_mtime_ns
    captions = " ".join(str(c.value) for c in at.sidebar.caption)
    assert "ImageNet-1k, torchvision weights, not fine-tuned" in captions
    assert "ResNet18_Weights.IMAGENET1K_V1" in captions
    assert "ARP inserted in conv3, conv4 (conv3 k 1, conv4 k 0.7), DSR 0.5 x 0.5" in captions

    # Explore on a photo-like image: ImageNet names, boxes for Conv3 and Conv4
    rng = np.random.default_rng(0)
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (180, 240, 3), dtype=np.uint8)).save(buffer, "PNG")
    at.file_uploader(key="explore_upload").set_value(("photo.png", buffer.getvalue(),
                                                      "image/png"))
    run_app(at)
    view = at.session_state["arpviz_result"]
    assert set(view.stages) == {"conv3", "conv4.main"}
    categories = torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"]
    assert all(row.name == categories[row.index] for row in view.predictions.rows)
    assert view.probs.shape == (1000,)
    at.slider(key="explore_k:conv4.main").set_value(0.3)
    run_app(at)
    assert at.session_state["arpviz_result"].stages["conv4.main"].k == pytest.approx(0.3)
    # a second run reuses the file: not converted again
    assert (converted / files[0]).stat().st_mtime_ns == stamp


def test_a_broken_cached_file_gives_a_message(torch_cache: Path) -> None:
    torch_cache.write_bytes(b"not a state dict")
    at = run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.sidebar.selectbox(key="arpviz_checkpoint").set_value("imagenet:resnet18")
    run_app(at)
    assert any("Cannot load this checkpoint" in str(e.value) for e in at.sidebar.error)
    # the app stays up: the tiny checkpoint still loads
    at.sidebar.selectbox(key="arpviz_checkpoint").set_value(
        at.sidebar.selectbox(key="arpviz_checkpoint").options[0])
    run_app(at)
    assert at.session_state["arpviz_result"] is not None
