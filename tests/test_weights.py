"""arpviz.weights and the CLIs' --download: torchvision's files, fetched only on request.

Files come from a loopback HTTP server (tests/loopback.py) through ``ARPVIZ_WEIGHTS_MIRROR``;
``TORCH_HOME`` is a temporary folder, and a test-only weights entry (a random ResNet-18 state
dict, its file named by its SHA-256 prefix) is registered as resnet18's default.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from loopback import closed_port, serve, weights_entry, weights_payload

from arpviz import checkpoint as ckpt
from arpviz import convert as cv
from arpviz import train
from arpviz import weights as wt
from arpviz.models import MSGNConfig, from_torchvision

CATEGORIES = torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"]


@pytest.fixture(scope="module")
def payload() -> bytes:
    return weights_payload("resnet18", seed=3)


@pytest.fixture()
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """TORCH_HOME and ARPVIZ_CACHE in the test's folder; no mirror, downloads allowed."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ARPVIZ_CACHE", str(tmp_path / "arpviz"))
    monkeypatch.delenv(wt.MIRROR_ENV, raising=False)
    monkeypatch.delenv(wt.OFFLINE_ENV, raising=False)
    assert Path(torch.hub.get_dir()) == tmp_path / "torch" / "hub"
    return tmp_path / "torch" / "hub" / "checkpoints"


def _register(entry: wt.WeightsEntry) -> Iterator[wt.WeightsEntry]:
    wt.register_weights(entry, default=True)
    try:
        yield entry
    finally:
        wt.unregister_weights(entry)


@pytest.fixture()
def good(payload: bytes) -> Iterator[wt.WeightsEntry]:
    """resnet18's default is the served random file (its checksum matches)."""
    yield from _register(weights_entry(payload))


@pytest.fixture()
def bad(payload: bytes) -> Iterator[wt.WeightsEntry]:
    """resnet18's default names another checksum than the served file has."""
    yield from _register(weights_entry(payload, wrong_checksum=True))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# ----------------------------------------------------------------------------- metadata


def test_entries_are_torchvisions_files_in_torch_hubs_cache(home: Path) -> None:
    entry = wt.resolve_weights("resnet50")
    weights = torchvision.models.ResNet50_Weights.DEFAULT
    assert entry.name == "ResNet50_Weights.IMAGENET1K_V2" and entry.url == weights.url
    assert entry.file_name == "resnet50-11ad3fa6.pth" and entry.sha256_prefix == "11ad3fa6"
    assert entry.cache_path == home / "resnet50-11ad3fa6.pth"
    assert (entry.resize, entry.crop) == (232, 224) and entry.size_text == "98 MB"
    assert wt.resolve_weights("resnet50", "IMAGENET1K_V1").resize == 256
    assert wt.resolve_weights("resnet50", "ResNet50_Weights.IMAGENET1K_V1").file_name == \
        "resnet50-0676ba61.pth"
    assert wt.resolve_weights("resnet50", torchvision.models.ResNet50_Weights.IMAGENET1K_V1) \
        == wt.resolve_weights("resnet50", "IMAGENET1K_V1")
    assert [e.short_name for e in wt.weights_entries("resnet101")] == [
        "IMAGENET1K_V2", "IMAGENET1K_V1"]
    with pytest.raises(ValueError, match="not resnet50 weights"):
        wt.resolve_weights("resnet50", torchvision.models.ResNet18_Weights.DEFAULT)
    with pytest.raises(ValueError, match="not resnet50 weights"):
        wt.resolve_weights("resnet50", "ResNet18_Weights.IMAGENET1K_V1")
    with pytest.raises(ValueError, match=r"'NOPE'.*IMAGENET1K_V2"):
        wt.resolve_weights("resnet50", "NOPE")
    with pytest.raises(ValueError, match="tiny"):
        wt.resolve_weights("tiny")
    with pytest.raises(ValueError, match="SHA-256 prefix"):
        wt.WeightsEntry("resnet18", "X.Y", "https://example.invalid/resnet18.pth")


def test_mirror_and_manual_way(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = wt.resolve_weights("resnet18")
    assert entry.download_url() == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    monkeypatch.setenv(wt.MIRROR_ENV, "http://mirror.example/torch/")
    assert entry.download_url() == "http://mirror.example/torch/resnet18-f37072fd.pth"
    assert entry.url in entry.manual() and str(home / entry.file_name) in entry.manual()
    monkeypatch.setenv(wt.OFFLINE_ENV, "1")
    assert wt.offline()
    monkeypatch.setenv(wt.OFFLINE_ENV, "0")
    assert not wt.offline()


def test_registry_hook_adds_and_removes_a_default(payload: bytes, home: Path) -> None:
    entry = weights_entry(payload)
    before = wt.weights_entries("resnet18")
    wt.register_weights(entry, default=True)
    try:
        assert wt.resolve_weights("resnet18") == entry
        assert wt.resolve_weights("resnet18", "TEST_RANDOM") == entry
        assert cv.torch_cache_candidates("resnet18")[0] == home / entry.file_name
    finally:
        wt.unregister_weights(entry)
    assert wt.weights_entries("resnet18") == before
    with pytest.raises(TypeError):
        wt.register_weights("resnet18")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- download


def test_download_verifies_and_is_the_file_torchvision_uses(
        payload: bytes, good: wt.WeightsEntry, home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[tuple[float, str]] = []
    with serve({good.file_name: payload}) as server:
        monkeypatch.setenv(wt.MIRROR_ENV, server.base)
        path = wt.download_weights(good, progress=lambda f, m: steps.append((f, m)))
        assert server.requests == [good.file_name]
        assert wt.download_weights(good) == path  # in the cache: no second request
        assert server.requests == [good.file_name]
    assert path == home / good.file_name and path.read_bytes() == payload
    assert _leftovers(home) == [good.file_name]  # no temporary file left
    assert steps[-1][0] == 1.0 and "checksum verified" in steps[-1][1]
    assert all(0.0 <= f <= 1.0 for f, _ in steps)
    # torch.hub finds the same file where it looks (no network: the URL is unreachable)
    state = torch.hub.load_state_dict_from_url(good.url, check_hash=True, progress=False)
    assert set(state) == set(torchvision.models.resnet18().state_dict())
    # and the model initialisation reads it by name
    model = from_torchvision(MSGNConfig(backbone="resnet18", local_branches=0), "DEFAULT")
    assert torch.equal(model.stem.conv1.weight, state["conv1.weight"])


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("checksum", "failed the checksum"),
        ("truncated", "cut short"),
        ("down", "connection refused"),
        ("missing", "HTTP 404"),
    ],
)
def test_failed_downloads_leave_nothing(fault: str, words: str, payload: bytes, home: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    entry = weights_entry(payload, wrong_checksum=fault == "checksum")
    files = {} if fault == "missing" else {entry.file_name: payload}
    with serve(files, truncated={entry.file_name} if fault == "truncated" else None) as server:
        base = f"http://127.0.0.1:{closed_port()}" if fault == "down" else server.base
        monkeypatch.setenv(wt.MIRROR_ENV, base)
        with pytest.raises(wt.WeightsError, match=words) as info:
            wt.download_weights(entry, timeout=10)
    assert isinstance(info.value, wt.ChecksumError) == (fault == "checksum")
    assert info.value.manual == entry.manual() and entry.url in str(info.value)
    assert "\n" not in str(info.value)
    assert _leftovers(home) == []


# ----------------------------------------------------------------------------- the CLIs


def test_convert_download_then_reuse(payload: bytes, good: wt.WeightsEntry, home: Path,
                                     monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    assert cv.main(["--arch", "resnet18", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("arpviz-convert: error:")
    assert "--download" in err[0] and good.url in err[0] and str(home) in err[0]
    with serve({good.file_name: payload}) as server:
        monkeypatch.setenv(wt.MIRROR_ENV, server.base)
        assert cv.main(["--arch", "resnet18", "--download", "--no-progress"]) == 0
        out = Path(capsys.readouterr().out.strip())
        assert cv.main(["--arch", "resnet18", "--download", "--no-progress"]) == 0
        assert Path(capsys.readouterr().out.strip()) == out
        assert server.requests == [good.file_name]  # fetched once, then the cache
    meta = ckpt.read_meta(out)
    assert meta.dataset["source"] == good.name and meta.class_names == tuple(CATEGORIES)
    assert (meta.dataset["resize"], meta.dataset["keep_aspect"]) == (256, True)
    assert meta.recipe["tool"] == "arpviz-convert"
    assert out.parent == home.parents[2] / "arpviz" / "converted"


@pytest.mark.parametrize("fault", ["checksum", "truncated", "down"])
def test_convert_download_failure_is_one_line(fault: str, payload: bytes, home: Path,
                                              monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    entry = weights_entry(payload, wrong_checksum=fault == "checksum")
    wt.register_weights(entry, default=True)
    try:
        with serve({entry.file_name: payload},
                   truncated={entry.file_name} if fault == "truncated" else None) as server:
            base = f"http://127.0.0.1:{closed_port()}/" if fault == "down" else server.base
            monkeypatch.setenv(wt.MIRROR_ENV, base)
            code = cv.main(["--arch", "resnet18", "--download", "--no-progress"])
    finally:
        wt.unregister_weights(entry)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("arpviz-convert: error:")
    if fault == "checksum":
        assert "checksum" in lines[0]
    assert entry.url in lines[0] and str(home / entry.file_name) in lines[0]  # the manual way
    assert _leftovers(home) == []
    assert _leftovers(home.parents[2] / "arpviz" / "converted") == []


def test_convert_download_with_weights_is_a_usage_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cv.main(["--arch", "resnet18", "--download", "--weights", str(tmp_path / "w.pth")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: arpviz-convert") and "--download" in err.splitlines()[-1]


def test_train_pretrained_download_errors(payload: bytes, bad: wt.WeightsEntry, home: Path,
                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          capsys) -> None:
    base = ["--model", '{"backbone": "resnet18", "local_branches": 0}', "--out",
            str(tmp_path / "run.safetensors"), "--epochs", "1", "--limit-train", "2",
            "--limit-val", "2", "--image-size", "32", "--device", "cpu", "--no-progress"]
    # not in the cache and no --download: a usage error that says how
    with pytest.raises(SystemExit) as info:
        train.main([*base, "--pretrained", "DEFAULT"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: arpviz-train") and "add --download" in err
    # --download without a weights name
    with pytest.raises(SystemExit):
        train.main([*base, "--download"])
    assert "--download needs --pretrained NAME" in capsys.readouterr().err
    # a download whose checksum fails: one line, status 1, nothing kept, nothing trained
    with serve({bad.file_name: payload}) as server:
        monkeypatch.setenv(wt.MIRROR_ENV, server.base)
        code = train.main([*base, "--pretrained", "DEFAULT", "--download"])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if "error" in line]
    assert code == 1 and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("arpviz-train: error:")
    assert "checksum" in lines[0]
    assert _leftovers(home) == [] and not (tmp_path / "run.safetensors").exists()


def test_png_or_empty_weights_are_not_a_state_dict(tmp_path: Path, capsys) -> None:
    from PIL import Image

    png = tmp_path / "y.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(png)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    for path, what in ((png, "PNG image"), (empty, "empty")):
        out = tmp_path / "o.safetensors"
        code = cv.main(["--arch", "resnet18", "--weights", str(path), "--out", str(out),
                        "--no-progress"])
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and "Traceback" not in err
        assert f"{path.name} is not a PyTorch state dict" in lines[0] and what in lines[0]
        assert not out.exists()


def test_sidebar_offers_every_resnet_ready_or_to_download(
        payload: bytes, good: wt.WeightsEntry, home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from arpviz.explorer import catalog

    assert catalog.imagenet_offers() == []  # the cached ones only: none
    offers = catalog.imagenet_offers(downloadable=True)
    assert [o.arch for o in offers] == list(cv.ARCHITECTURES)
    assert not any(o.ready for o in offers)
    statuses = {o.arch: o.status for o in offers}
    assert statuses["resnet50"] == "download 98 MB"
    assert statuses["resnext101_32x8d"] == "download 340 MB"
    first = offers[0]
    assert first.entry == good and first.weights == home / good.file_name
    assert good.url in first.manual and str(first.weights) in first.manual
    monkeypatch.setenv(wt.OFFLINE_ENV, "1")
    assert not catalog.downloads_offered()
    monkeypatch.delenv(wt.OFFLINE_ENV)
    assert catalog.downloads_offered()
    home.mkdir(parents=True)
    (home / good.file_name).write_bytes(payload)
    [ready] = catalog.imagenet_offers()
    assert (ready.arch, ready.ready, ready.status) == ("resnet18", True, "ready")
