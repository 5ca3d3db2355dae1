"""arpviz.convert: torchvision ImageNet ResNets with ARP in Conv3/Conv4.

Random torchvision weights saved to a temporary ``.pth`` stand for the real file (the downloads
are tests/test_weights.py's).
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from loopback import weights_entry

from arpviz import checkpoint as ckpt
from arpviz import convert as cv
from arpviz import weights as wt
from arpviz.images import IMAGENET_MEAN, IMAGENET_STD
from arpviz.models import MSGN, MSGNConfig, StageOverride

CATEGORIES = torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"]


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(13)
    net = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path_factory.mktemp("weights") / "my_resnet18.pth"
    torch.save(net.state_dict(), path)
    return net, path


@pytest.fixture(scope="module")
def converted(resnet18, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "r18_arp.safetensors"
    code = cv.main(["--arch", "resnet18", "--weights", str(resnet18[1]), "--out", str(out),
                    "--no-progress"])
    assert code == 0
    return out


def _images(seed: int = 0, size: int = 64) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_converted_checkpoint_is_imagenet_with_arp_boxes(converted, resnet18) -> None:
    loaded = ckpt.load(converted)
    meta, cfg = loaded.meta, loaded.config
    assert cfg.backbone == "resnet18" and cfg.num_classes == 1000
    assert (cfg.local_branches, cfg.embedding_dim, cfg.conv3, cfg.conv4) == (0, 0, "arp", "arp")
    assert (cfg.conv3_k, cfg.conv4_k, cfg.dsr) == (1.0, 0.7, (0.5, 0.5))
    assert meta.class_names == tuple(CATEGORIES) and meta.class_names[0] == "tench"
    assert (meta.input_size, meta.mean, meta.std) == (224, IMAGENET_MEAN, IMAGENET_STD)
    assert meta.history == () and loaded.snapshots == ()
    assert meta.dataset["name"] == "imagenet" and meta.dataset["fine_tuned"] is False
    assert meta.dataset["arp_inserted"] == ["conv3", "conv4"]
    assert (meta.dataset["conv3_k"], meta.dataset["conv4_k"]) == (1.0, 0.7)
    assert meta.dataset["resize"] == 256 and meta.dataset["weights_file"] == "my_resnet18.pth"
    assert meta.dataset["keep_aspect"] is True and meta.recipe["tool"] == "arpviz-convert"
    assert torch.equal(loaded.model.classifier.weight, resnet18[0].fc.weight)

    with torch.no_grad():
        explanation = loaded.model.explain(_images())
        logits = loaded.model(_images())
    assert explanation.logits.shape == (2, 1000)
    torch.testing.assert_close(explanation.logits, logits)
    assert set(explanation.image_boxes) == {"conv3", "conv4.main"}
    conv3, conv4 = explanation.image_boxes["conv3"], explanation.image_boxes["conv4.main"]
    assert (conv4[:, :2] >= conv3[:, :2] - 1e-4).all()
    assert (conv4[:, 2:] <= conv3[:, 2:] + 1e-4).all()
    assert torch.equal(explanation.embedding, explanation.features)  # no embedding layer

    # the k slider of Explore: a smaller k never widens the Conv4 crop
    with torch.no_grad():
        small = loaded.model.explain(_images(), {"conv4.main": StageOverride(k=0.0 + 1e-3)})
    width = lambda b: b[:, 2] - b[:, 0]  # noqa: E731
    assert (width(small.image_boxes["conv4.main"]) <= width(conv4) + 1e-4).all()


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_all_stride_equals_torchvision(arch, tmp_path) -> None:
    torch.manual_seed(3)
    net = getattr(torchvision.models, arch)(weights=None).eval()
    with torch.no_grad():  # BN statistics that are not the identity, so misplaced ones show
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    weights = tmp_path / f"{arch}.pth"
    torch.save(net.state_dict(), weights)
    result = cv.convert(arch, tmp_path / "plain.safetensors", weights,
                        conv3="stride", conv4="stride")
    model = ckpt.load(result.path).model
    x = _images(1)
    with torch.no_grad():
        expected = net(x)
        torch.testing.assert_close(model(x), expected, atol=1e-4, rtol=1e-4)
        if arch == "resnet18":  # ARP does change the network
            arp = ckpt.load(cv.convert(arch, tmp_path / "arp.safetensors", weights).path)
            assert not arp.model(x).allclose(expected, atol=1e-4)
    assert result.meta.dataset["arp_inserted"] == [] and result.meta.dataset["dsr"] is None


class _Payload:
    """Unpickling this would create ``marker`` (so a loader that runs code is caught)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _bad_file(kind: str, folder: Path, good: Path) -> Path:
    path = folder / f"{kind}.pth"
    marker = folder / "MARKER"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "torch_save_code":
        torch.save({"fc.weight": _Payload(marker)}, path)
    elif kind == "pickle_code":
        path.write_bytes(pickle.dumps({"fc.weight": _Payload(marker)}, protocol=2))
    elif kind == "wrong_arch":
        torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    elif kind == "fine_tuned":
        torch.save(torchvision.models.resnet18(weights=None, num_classes=10).state_dict(), path)
    elif kind == "text":
        path.write_text("not weights\n")
    elif kind == "tensor_list":
        torch.save([torch.zeros(2)], path)
    return path


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("empty", "empty"),
        ("truncated", "truncated"),
        ("torch_save_code", "refused"),
        ("pickle_code", "refused"),
        ("wrong_arch", "not resnet18 weights; it looks like resnet34 (--arch resnet34)"),
        ("fine_tuned", "fc is (10, 512)"),
        ("text", "text.pth is not a PyTorch state dict"),
        ("tensor_list", "state dict of tensors"),
    ],
)
def test_bad_weights_one_line_nonzero_no_code(kind, words, resnet18, tmp_path, capsys) -> None:
    path = _bad_file(kind, tmp_path, resnet18[1])
    out = tmp_path / "out.safetensors"
    code = cv.main(["--arch", "resnet18", "--weights", str(path), "--out", str(out),
                    "--no-progress"])
    captured = capsys.readouterr()
    assert code != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arpviz-convert: error:"), captured.err
    assert words in lines[0] and "Traceback" not in captured.err
    assert not out.exists() and not (tmp_path / "MARKER").exists()


def test_code_payload_is_real(tmp_path) -> None:
    """The payload of the test above does run when unpickled unsafely."""
    marker = tmp_path / "MARKER"
    pickle.loads(pickle.dumps(_Payload(marker))).close()
    assert marker.exists()


def test_bad_options_and_missing_file(resnet18, tmp_path, capsys) -> None:
    for argv in (["--dsr", "1.5"], ["--conv4-k", "-1"], ["--weights", str(tmp_path / "no.pth")]):
        full = ["--arch", "resnet18", "--out", str(tmp_path / "o.safetensors"), "--no-progress"]
        if "--weights" not in argv:
            full += ["--weights", str(resnet18[1])]
        assert cv.main(full + argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("arpviz-convert: error:")
    with pytest.raises(ValueError, match="arch"):
        cv.imagenet_config("vgg16")
    with pytest.raises(ValueError, match="conv4"):
        cv.imagenet_config("resnet50", conv4="stn")


def test_torch_cache_lookup_and_cached_conversion(resnet18, tmp_path, monkeypatch,
                                                  capsys) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("ARPVIZ_CACHE", str(tmp_path / "arpviz"))
    assert cv.converted_cache_dir() == tmp_path / "arpviz" / "converted"
    assert cv.available_in_torch_cache() == []
    assert cv.main(["--arch", "resnet18", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in err
    assert cv.main(["--list"]) == 0 and "no ImageNet ResNet weights" in capsys.readouterr().out

    # a file put under torchvision's name by hand that is another file: refused, not converted
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(resnet18[1].read_bytes())
    with pytest.raises(wt.ChecksumError, match="its file name says f37072fd"):
        cv.convert_cached("resnet18")
    assert not cv.converted_cache_dir().exists() or not any(cv.converted_cache_dir().iterdir())
    cached.unlink()
    entry = wt.register_weights(weights_entry(resnet18[1].read_bytes()), default=True)
    try:
        _cached_conversion(resnet18, tmp_path, entry, err, capsys)
    finally:
        wt.unregister_weights(entry)


def _cached_conversion(resnet18, tmp_path, entry, err, capsys) -> None:
    """The torch cache holds ``entry``'s file (named by its SHA-256): converted once, reused."""
    cached = tmp_path / "hub" / "checkpoints" / entry.file_name
    cached.write_bytes(resnet18[1].read_bytes())
    assert cv.available_in_torch_cache() == [("resnet18", cached)]
    steps: list[tuple[float, str]] = []
    first = cv.convert_cached("resnet18", progress=lambda f, m: steps.append((f, m)))
    assert first.parent == cv.converted_cache_dir()
    assert first.name == f"{cached.stem}_c3-arp1_c4-arp0.7_dsr0.5.safetensors"
    assert steps[0][0] == 0.0 and steps[-1][0] == 1.0 and len(steps) == 5
    dataset = ckpt.read_meta(first).dataset
    assert dataset["source"] == entry.name
    assert dataset["weights_sha256"] == hashlib.sha256(cached.read_bytes()).hexdigest()
    assert "--download" in err and "https://download.pytorch.org/models/resnet18-f37072fd.pth" \
        in err
    stamp = first.stat().st_mtime_ns
    steps.clear()
    assert cv.convert_cached("resnet18", progress=lambda f, m: steps.append((f, m))) == first
    assert first.stat().st_mtime_ns == stamp and [f for f, _ in steps] == [1.0]
    assert "reusing" in steps[0][1]
    other = cv.convert_cached("resnet18", conv4_k=0.5)
    assert other.name.endswith("_c4-arp0.5_dsr0.5.safetensors") and other != first
    first.write_bytes(b"")  # a damaged cached file is converted again
    assert cv.convert_cached("resnet18") == first and ckpt.load(first).config.conv4_k == 0.7
    result = cv.convert("resnet18", first, reuse=True)
    assert result.reused and result.weights_path == cached
    assert cv.main(["--arch", "resnet18", "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == str(first)
    assert sorted(p.name for p in first.parent.iterdir()) == sorted([first.name, other.name])
    with pytest.raises(TypeError, match="colour"):
        cv.convert_cached("resnet18", colour="red")


def test_embedding_dim_zero_config_round_trip() -> None:
    config = MSGNConfig(backbone="tiny", num_classes=5, local_branches=1, embedding_dim=0)
    assert MSGNConfig.from_json(config.to_json()) == config
    model = MSGN(config).eval()
    assert isinstance(model.embedding, torch.nn.Identity)
    assert model.classifier.in_features == model.feature_dim == 2 * 256
    with torch.no_grad():
        assert model(_images()).shape == (2, 5)


@pytest.mark.parametrize("mode", ["rp", "arpfg", "arpfg_peak", "zoom"])
def test_conv4_takes_every_steerable_mode(mode, resnet18, tmp_path, capsys) -> None:
    from arpviz.explorer.catalog import model_card
    from arpviz.models.stages import STEERABLE_MODES

    assert set(cv.STAGE_MODES) == {*STEERABLE_MODES, "stride"}
    out = tmp_path / f"{mode}.safetensors"
    code = cv.main(["--arch", "resnet18", "--weights", str(resnet18[1]), "--out", str(out),
                    "--conv4", mode, "--conv4-k", "0.5", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    loaded = ckpt.load(out)
    assert loaded.config.conv4 == mode and loaded.meta.dataset["conv4"] == mode
    adaptive = mode not in ("rp", "zoom")
    assert loaded.meta.dataset["conv4_k"] == (0.5 if adaptive else None)
    assert loaded.meta.dataset["arp_inserted"] == ["conv3"]
    with torch.no_grad():
        explanation = loaded.model.explain(_images(size=96))
    assert explanation.image_boxes["conv4.main"].shape == (2, 4)
    about = model_card(loaded.meta)["about"]
    label = {"rp": "RP", "arpfg": "ARP-FG", "arpfg_peak": "ARP-FG peak",
             "zoom": "learnt zoom"}[mode]
    assert f"{label} inserted in conv4" + (" (conv4 k 0.5)" if adaptive else "") in about
    assert any("shorter side resized to 256 (the aspect kept)" in line for line in about)
    name = cv.converted_name(loaded.config, resnet18[1])
    assert name == f"my_resnet18_c3-arp1_c4-{mode + '0.5' if adaptive else mode}_dsr0.5.safetensors"


def test_usage_names_the_command_and_helps_every_argument(capsys) -> None:
    with pytest.raises(SystemExit):
        cv.main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: arpviz-convert ")
    flags = [line.split()[0] for line in out.splitlines() if line.strip().startswith("-")]
    bare = [line for line in out.splitlines()
            if line.strip().startswith("-") and len(line.split()) == 1 and not line.endswith(",")]
    assert "--download" in flags and not bare
    with pytest.raises(SystemExit) as info:
        cv.main(["--conv4", "stn"])
    assert info.value.code == 2 and "usage: arpviz-convert" in capsys.readouterr().err
