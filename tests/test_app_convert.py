"""The sidebar's ImageNet offers under AppTest, with a faked torch cache.

Random torchvision ResNet-18 weights stand for the real file, in a torch cache in a temporary
folder (``TORCH_HOME``) under the file name of a test-only weights entry registered as
resnet18's default (a file in the torch cache is checked against the SHA-256 prefix of its
name). The download button's tests fetch a
random ResNet-18 state dict from a loopback HTTP server through ``ARPVIZ_WEIGHTS_MIRROR``, as a
test-only weights entry registered as resnet18's default; nothing reaches the internet.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from app_helpers import image_title, texts, view
from helpers import run_app
from loopback import serve, weights_entry, weights_payload
from PIL import Image
from streamlit.testing.v1 import AppTest

from arpviz import checkpoint as ckpt
from arpviz import weights as wt
from arpviz.data.transforms import eval_transform
from arpviz.explorer import catalog, inputs

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 180
pytestmark = pytest.mark.slow


def _isolate_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_checkpoint: Path) -> Path:
    """Point the app's torch cache, own cache and checkpoint folders into ``tmp_path`` (no
    bundled checkpoint, the tiny one the only file); returns the torch cache's checkpoints
    folder (not created)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ARPVIZ_CACHE", str(tmp_path / "arpviz"))
    empty = tmp_path / "bundled"
    empty.mkdir()
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(empty))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(tiny_checkpoint.parent))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_ROOTS", str(tmp_path))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def cached_payload() -> bytes:
    """Random ResNet-18 weights as torchvision saves them (the torch cache's file)."""
    return weights_payload("resnet18", seed=13)


@pytest.fixture()
def torch_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_checkpoint: Path,
                streamlit_v2_pages: None, cached_payload: bytes,
                request: pytest.FixtureRequest) -> Iterator[Path]:
    """A torch cache holding random ResNet-18 weights under the file name of a test-only
    weights entry (resnet18's default for the test: a hand-placed file is checked against the
    SHA-256 prefix its name gives); the app's other folders are the test's."""
    entry = _register(request, weights_entry(cached_payload))
    weights = _isolate_app(monkeypatch, tmp_path, tiny_checkpoint) / entry.file_name
    weights.parent.mkdir(parents=True)
    weights.write_bytes(cached_payload)
    threads = torch.get_num_threads()
    yield weights
    torch.set_num_threads(threads)


def test_sidebar_offers_converts_once_and_explore_runs(torch_cache: Path, tmp_path: Path) -> None:
    at = run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))
    box = at.sidebar.selectbox(key="arpviz_checkpoint")
    assert "ImageNet ResNet-18 with ARP (torch cache, not fine-tuned)" in box.options  # ready
    assert box.value.endswith("tiny_msgn_arp.safetensors")  # the offer is not the default
    box.set_value("imagenet:resnet18")
    run_app(at)
    converted = catalog.converted_cache_dir()
    assert converted == tmp_path / "arpviz" / "converted"
    files = sorted(p.name for p in converted.iterdir())
    assert files == [f"{torch_cache.stem}_c3-arp1_c4-arp0.7_dsr0.5.safetensors"]
    stamp = (converted / files[0]).stat().st_mtime_ns
    captions = _texts(at.sidebar.caption)
    assert "ImageNet-1k, torchvision weights, not fine-tuned" in captions
    assert "ResNet18_Weights.TEST_RANDOM" in captions  # the weights entry it came from
    assert "ARP inserted in conv3, conv4 (conv3 k 1, conv4 k 0.7), DSR 0.5 x 0.5" in captions
    assert "the shorter side resized to 256 (the aspect kept)" in captions

    # Explore on a photo-like image: ImageNet names, boxes for Conv3 and Conv4
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (180, 240, 3), dtype=np.uint8)).save(buffer, "PNG")
    at.file_uploader(key="image.upload").set_value(("photo.png", buffer.getvalue(),
                                                      "image/png"))
    run_app(at)
    seen = view(at)
    assert image_title(at) == "photo.png, 240 x 180 px (your photo)"
    assert set(seen.stages) == {"conv3", "conv4.main"}
    categories = torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"]
    assert all(row.name == categories[row.index] for row in seen.predictions.rows)
    assert seen.probs.shape == (1000,)
    at.slider(key="k:conv4.main").set_value(0.3)
    run_app(at)
    assert view(at).stages["conv4.main"].k == pytest.approx(0.3)
    # a second run reuses the file: not converted again
    assert (converted / files[0]).stat().st_mtime_ns == stamp


def test_a_broken_cached_file_gives_a_message(torch_cache: Path) -> None:
    torch_cache.write_bytes(b"not a state dict")
    at = run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.sidebar.selectbox(key="arpviz_checkpoint").set_value("imagenet:resnet18")
    run_app(at)
    assert any("Cannot load this checkpoint" in e for e in texts(at.sidebar.error))
    # the app stays up: the tiny checkpoint still loads
    at.sidebar.selectbox(key="arpviz_checkpoint").set_value(
        at.sidebar.selectbox(key="arpviz_checkpoint").options[0])
    run_app(at)
    assert view(at) is not None


# ----------------------------------------------------------------------------- downloads


@pytest.fixture()
def empty_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_checkpoint: Path,
                streamlit_v2_pages: None) -> Iterator[Path]:
    """An empty torch cache (``TORCH_HOME`` in the test's folder), the tiny checkpoint as the
    app's only file; yields the torch cache's checkpoints folder."""
    cache = _isolate_app(monkeypatch, tmp_path, tiny_checkpoint)
    monkeypatch.delenv(wt.OFFLINE_ENV, raising=False)
    threads = torch.get_num_threads()
    yield cache
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def payload() -> bytes:
    return weights_payload("resnet18", seed=5)


def _register(request: pytest.FixtureRequest, entry: wt.WeightsEntry) -> wt.WeightsEntry:
    """``entry`` as resnet18's default for this test."""
    wt.register_weights(entry, default=True)
    request.addfinalizer(lambda: wt.unregister_weights(entry))
    return entry


def _texts(elements) -> str:
    return " ".join(texts(elements))


def test_download_button_fetches_verifies_converts_and_opens(
        empty_cache: Path, payload: bytes, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    entry = _register(request, weights_entry(payload))
    with serve({entry.file_name: payload}) as server:
        monkeypatch.setenv(wt.MIRROR_ENV, server.base)
        at = run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))
        # every ImageNet ResNet is in the checkpoint box, to download; nothing fetched, the
        # file stays the default
        box = at.sidebar.selectbox(key="arpviz_checkpoint")
        for name in ("ResNet-18", "ResNet-34", "ResNet-50", "ResNet-101", "ResNeXt-101 32x8d"):
            assert any(o.startswith(f"ImageNet {name} with ARP (download ") and
                       o.endswith(", needs the internet)") for o in box.options), name
        assert "ImageNet ResNet-50 with ARP (download 98 MB, needs the internet)" in box.options
        assert box.value.endswith("tiny_msgn_arp.safetensors")
        assert not [b for b in at.sidebar.button if str(b.key).startswith("arpviz_download")]
        # picking one shows its Download button and says why nothing loads, fetching nothing
        box.set_value("imagenet:resnet18")
        run_app(at)
        assert {b.key for b in at.sidebar.button} >= {"arpviz_download:resnet18"}
        assert any("not on this machine yet: press Download" in i for i in texts(at.info))
        assert server.requests == [] and not empty_cache.exists()

        at.sidebar.button(key="arpviz_download:resnet18").click()
        run_app(at)
        assert server.requests == [entry.file_name]
    assert sorted(p.name for p in empty_cache.iterdir()) == [entry.file_name]
    assert (empty_cache / entry.file_name).read_bytes() == payload
    converted = sorted(p.name for p in catalog.converted_cache_dir().iterdir())
    assert converted == [f"{entry.file_name[:-4]}_c3-arp1_c4-arp0.7_dsr0.5.safetensors"]
    # opened: the checkpoint box holds it, marked ready, with ImageNet's model card
    box = at.sidebar.selectbox(key="arpviz_checkpoint")
    assert box.value == "imagenet:resnet18"
    assert "ImageNet ResNet-18 with ARP (torch cache, not fine-tuned)" in box.options
    assert "arpviz_download:resnet18" not in {b.key for b in at.sidebar.button}
    captions = _texts(at.sidebar.caption)
    assert f"weights: {entry.name}" in captions
    assert "the shorter side resized to 256 (the aspect kept)" in captions

    buffer = io.BytesIO()
    rng = np.random.default_rng(1)
    photo = Image.fromarray(rng.integers(0, 255, (150, 300, 3), dtype=np.uint8))
    photo.save(buffer, "PNG")
    at.file_uploader(key="image.upload").set_value(("wide.png", buffer.getvalue(),
                                                      "image/png"))
    run_app(at)
    seen = view(at)
    categories = torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"]
    assert seen.probs.shape == (1000,)
    assert all(row.name == categories[row.index] for row in seen.predictions.rows)
    # Explore saw the photo as torchvision's evaluation does (300 x 150 -> 512 x 256, the aspect
    # kept, centre crop 224), not squeezed into a square
    loaded = ckpt.load(catalog.converted_cache_dir() / converted[0])
    prepared = inputs.preprocess(photo, loaded.meta)
    assert prepared.geometry.resized == (512, 256) and prepared.geometry.keep_aspect
    with torch.no_grad():
        expected = loaded.model(prepared.tensor).softmax(-1)[0].numpy()
        squeezed = loaded.model(eval_transform(224, 256, mean=loaded.meta.mean,
                                               std=loaded.meta.std)(photo)[None])
    same = np.abs(seen.probs - expected).max()
    other = np.abs(seen.probs - squeezed.softmax(-1)[0].numpy()).max()
    assert same < 1e-6 < other and other > 100 * same, (same, other)


@pytest.mark.parametrize("fault", ["checksum", "offline"])
def test_download_failure_or_offline_says_how_by_hand(
        fault: str, empty_cache: Path, payload: bytes, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    entry = _register(request, weights_entry(payload, wrong_checksum=True))
    if fault == "offline":
        monkeypatch.setenv(wt.OFFLINE_ENV, "1")
    with serve({entry.file_name: payload}) as server:
        monkeypatch.setenv(wt.MIRROR_ENV, server.base)
        at = run_app(AppTest.from_file(APP, default_timeout=TIMEOUT))
        box = at.sidebar.selectbox(key="arpviz_checkpoint")
        if fault == "offline":
            assert ("ImageNet ResNet-18 with ARP (not on this machine; downloads are off on this "
                    "server)") in box.options
        box.set_value("imagenet:resnet18")
        run_app(at)
        buttons = [b.key for b in at.sidebar.button if str(b.key).startswith("arpviz_download")]
        if fault == "offline":
            assert buttons == []  # the deployment hides them
            captions = _texts(at.sidebar.caption)
            assert "Downloads are off on this server" in captions
            assert entry.url in captions and str(empty_cache / entry.file_name) in captions
            assert any("this server downloads nothing" in i for i in texts(at.info))
            assert server.requests == []
            return
        at.sidebar.button(key="arpviz_download:resnet18").click()
        run_app(at)
        assert server.requests == [entry.file_name]
    errors = texts(at.sidebar.error)
    assert len(errors) == 1 and "checksum" in errors[0] and "\n" not in errors[0]
    captions = _texts(at.sidebar.caption)
    assert entry.url in captions and str(empty_cache / entry.file_name) in captions
    assert not empty_cache.exists() or list(empty_cache.iterdir()) == []
    # nothing loads from it, the page says why, and the app stays up: the file loads again
    assert at.sidebar.selectbox(key="arpviz_checkpoint").value == "imagenet:resnet18"
    assert any("not on this machine yet" in i for i in texts(at.info))
    tiny = Path(os.environ["ARPVIZ_CHECKPOINT_DIR"]) / "tiny_msgn_arp.safetensors"
    at.sidebar.selectbox(key="arpviz_checkpoint").set_value(str(tiny))
    run_app(at)
    assert view(at) is not None and view(at).probs.shape == (24,)
