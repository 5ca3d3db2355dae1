"""MSGN: config, shapes, explanation, overrides and caching, weights, FLOPs, dtypes."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

from arpviz.models import (
    BACKBONES,
    CONV3_MODES,
    CONV4_MODES,
    LOCAL_BRANCHES,
    MSGN,
    MSGNConfig,
    SpatialTransformer,
    StageOverride,
    count_flops,
    from_torchvision,
    load_backbone_state_dict,
)
from arpviz.models.pretrained import cached_weights_path
from arpviz.pooling import output_size


def _model(seed: int = 0, **kwargs: object) -> MSGN:
    torch.manual_seed(seed)
    options = {"backbone": "tiny", "num_classes": 7, **kwargs}
    return MSGN(MSGNConfig(**options)).eval()


def _images(batch: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def two_local() -> MSGN:
    """Tiny MSGN with two local ARP branches (k = 0.5, as the paper uses with 2 branches)."""
    return _model(local_branches=2, conv4_k=0.5)


# ----------------------------------------------------------------------------- config


def test_config_defaults() -> None:
    cfg = MSGNConfig()
    assert (cfg.backbone, cfg.local_branches, cfg.conv3, cfg.conv4) == ("resnet50", 1, "arp", "arp")
    assert (cfg.conv3_k, cfg.conv4_k, cfg.dsr, cfg.embedding_dim) == (1.0, 0.7, (0.5, 0.5), 512)
    assert MSGNConfig(backbone="tiny").embedding_dim == 128
    assert MSGNConfig(dsr=0.25).dsr == (0.25, 0.25)


@settings(max_examples=30, deadline=None)
@given(
    backbone=st.sampled_from(BACKBONES),
    local=st.sampled_from(LOCAL_BRANCHES),
    conv3=st.sampled_from(CONV3_MODES),
    conv4=st.sampled_from(CONV4_MODES),
    k=st.floats(0.05, 3.0),
    dsr=st.tuples(st.floats(0.05, 1.0), st.floats(0.05, 1.0)),
    kernel=st.sampled_from(["gaussian", "box"]),
)
def test_config_json_round_trip(backbone, local, conv3, conv4, k, dsr, kernel) -> None:
    cfg = MSGNConfig(backbone=backbone, local_branches=local, conv3=conv3, conv4=conv4,
                     conv4_k=k, dsr=dsr, kernel=kernel, num_classes=5)
    text = json.dumps(cfg.to_dict())
    assert MSGNConfig.from_dict(json.loads(text)) == cfg
    assert MSGNConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("backbone", "resnet152", ValueError),
        ("num_classes", 0, ValueError),
        ("num_classes", "10", TypeError),
        ("local_branches", 3, ValueError),
        ("local_branches", 1.0, TypeError),
        ("conv3", "stn", ValueError),
        ("conv4", "avgpool", ValueError),
        ("conv3_k", 0.0, ValueError),
        ("conv4_k", -1.0, ValueError),
        ("conv4_k", "0.7", TypeError),
        ("dsr", (0.5, 1.5), ValueError),
        ("dsr", "half", TypeError),
        ("embedding_dim", -1, ValueError),
        ("embedding_dim", 0.0, TypeError),
        ("kernel", "triangle", ValueError),
        ("sigma", 0.0, ValueError),
    ],
)
def test_config_rejects_invalid(field: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=field):
        MSGNConfig(**{field: value})
    with pytest.raises(error, match=field):
        MSGNConfig.from_dict({field: value})


def test_config_from_dict_rejects_unknown_and_non_mapping() -> None:
    with pytest.raises(ValueError, match="colour"):
        MSGNConfig.from_dict({"colour": "red"})
    with pytest.raises(TypeError):
        MSGNConfig.from_dict([("backbone", "tiny")])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("backbone", BACKBONES)
def test_backbone_shapes(backbone: str) -> None:
    """Tiny and ResNet-50 run on CPU at 64 px; the 101-layer ones run on the meta device."""
    device = torch.device("cpu" if backbone in ("tiny", "resnet18", "resnet50") else "meta")
    with device:
        model = MSGN(MSGNConfig(backbone=backbone, num_classes=11, local_branches=1)).eval()
        x = torch.randn(2, 3, 64, 64)
    width = {"tiny": 256, "resnet18": 512, "resnet34": 512}.get(backbone, 2048)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model.forward_head(features)
    assert features.shape == (2, 2 * width)
    assert logits.shape == (2, 11)
    if device.type == "cpu":
        assert torch.isfinite(logits).all()
        with torch.no_grad():
            explanation = model.explain(x)
        assert explanation.map_sizes == {"conv3": (16, 16), "conv4.global": (8, 8),
                                         "conv4.local0": (8, 8)}
        assert explanation.stages["conv4.local0"].features.shape[-2:] == (4, 4)


@pytest.mark.parametrize(
    ("conv3", "conv4", "local"),
    list(itertools.product(CONV3_MODES, CONV4_MODES, [0, 1])) + [("arp", "arp", 4)],
)
def test_every_variant_runs(conv3: str, conv4: str, local: int) -> None:
    model = _model(conv3=conv3, conv4=conv4, local_branches=local)
    x = _images(2, 64)
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 10:40, 20:50] = 1.0  # only the oracle reads it
    with torch.no_grad():
        explanation = model.explain(x, mask=mask)
        logits = model(x, mask)
    assert logits.shape == (2, 7)
    torch.testing.assert_close(explanation.logits, logits)
    branches = ["main"] if local == 0 else ["global"] + [f"local{i}" for i in range(local)]
    assert list(explanation.branch_features) == branches
    pooled = {"conv3"} if conv3 != "stride" else set()
    if conv4 != "stride":
        pooled |= {f"conv4.{b}" for b in branches if b != "global"}
    assert set(explanation.stages) == pooled == set(explanation.image_boxes)
    # the strided layers halve, pooled ones resample to round(H * dsr): same sizes either way
    assert explanation.map_sizes["conv3"] == (16, 16)
    assert explanation.map_sizes[f"conv4.{branches[-1]}"] == (8, 8)


def test_rejects_bad_images(two_local: MSGN) -> None:
    with pytest.raises(ValueError, match="32"):
        two_local(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="shape"):
        two_local(torch.randn(1, 1, 64, 64))
    with pytest.raises(TypeError):
        two_local(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


# ----------------------------------------------------------------------------- explanation


def test_explain_matches_forward_and_boxes_nest(two_local: MSGN) -> None:
    x = _images(3, 96, seed=1)
    with torch.no_grad():
        explanation = two_local.explain(x)
        logits = two_local(x)
        features = two_local.forward_features(x)
    torch.testing.assert_close(explanation.logits, logits)
    torch.testing.assert_close(explanation.features, features)
    assert explanation.embedding.shape == (3, 128)
    assert set(explanation.stages) == {"conv3", "conv4.local0", "conv4.local1"}
    assert explanation.settings["conv4.global"].mode == "stride"
    tol = 1e-4
    for name, boxes in explanation.image_boxes.items():
        assert boxes.shape == (3, 4) and boxes.dtype == torch.float32
        assert (boxes[:, 0] >= -tol).all() and (boxes[:, 1] >= -tol).all(), name
        assert (boxes[:, 2] <= 96 + tol).all() and (boxes[:, 3] <= 96 + tol).all(), name
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all(), name
    conv3 = explanation.image_boxes["conv3"]
    # Conv3's map is the image at stride 4 (96 px -> 24 cells)
    torch.testing.assert_close(conv3, explanation.stages["conv3"].boxes * 4)
    for name in ("conv4.local0", "conv4.local1"):
        inner = explanation.image_boxes[name]
        assert (inner[:, :2] >= conv3[:, :2] - tol).all(), name
        assert (inner[:, 2:] <= conv3[:, 2:] + tol).all(), name


def test_local_branches_pick_different_boxes(two_local: MSGN) -> None:
    with torch.no_grad():
        explanation = two_local.explain(_images(4, 128, seed=2))
    first = explanation.stages["conv4.local0"]
    second = explanation.stages["conv4.local1"]
    assert (first.rates < 1).any(dim=1).all()  # k = 0.5: windows smaller than the map
    assert (first.boxes != second.boxes).any(dim=1).all()


def test_stn_starts_at_identity() -> None:
    torch.manual_seed(0)
    stn = SpatialTransformer(8, (0.5, 0.5))
    x = torch.randn(2, 8, 12, 10)
    result = stn.forward_result(x)
    expected = F.interpolate(x, size=output_size(12, 10, (0.5, 0.5)), mode="bilinear",
                             align_corners=False)
    torch.testing.assert_close(result.features, expected)
    torch.testing.assert_close(result.boxes, torch.tensor([[0.0, 0.0, 10.0, 12.0]] * 2))
    torch.testing.assert_close(result.rates, torch.ones(2, 2))
    # in MSGN the identity STN's box is the whole Conv4 map, i.e. the Conv3 box in the image
    model = _model(conv4="stn")
    with torch.no_grad():
        explanation = model.explain(_images(2, 64))
    torch.testing.assert_close(explanation.image_boxes["conv4.local0"],
                               explanation.image_boxes["conv3"])


def test_bounded_stn_keeps_its_box_inside_the_map() -> None:
    torch.manual_seed(0)
    stn = SpatialTransformer(8, (0.5, 0.25), bounded=True)
    x = torch.randn(3, 8, 12, 16)
    start = stn.forward_result(x)
    # starts centred at sigmoid 0.9: 0.95 of the height (dsr 0.5), 0.925 of the width (0.25)
    torch.testing.assert_close(start.rates, torch.tensor([[0.95, 0.925]] * 3))
    torch.testing.assert_close(start.boxes[:, 0] + start.boxes[:, 2], torch.full((3,), 16.0))
    with torch.no_grad():  # whatever the regressor says, the box stays in [dsr, 1] and inside
        stn.regressor.bias.copy_(torch.tensor([-50.0, 50.0, 40.0, -40.0]))
        stn.regressor.weight.normal_(0, 10)
    result = stn.forward_result(x)
    assert (result.boxes[:, [0, 1]] >= 0).all() and (result.boxes[:, 2] <= 16).all()
    assert (result.boxes[:, 3] <= 12).all()
    assert (result.rates[:, 0] >= 0.5 - 1e-6).all() and (result.rates[:, 1] >= 0.25 - 1e-6).all()
    assert "bounded=True" in repr(stn) and not stn.state_dict().keys() - {
        "localisation.0.weight", "localisation.0.bias", "regressor.weight", "regressor.bias"}
    with pytest.raises(TypeError, match="bounded"):
        SpatialTransformer(8, 0.5, bounded="yes")
    with pytest.raises(TypeError, match="stn_bounded"):
        MSGNConfig(conv4="stn", stn_bounded=1)
    model = _model(conv4="stn", stn_bounded=True)
    assert model.branches["local0"].stn.bounded
    assert MSGNConfig.from_dict({"conv4": "stn"}).stn_bounded is False  # older checkpoints
    assert "stn_bounded" not in MSGNConfig(conv4="stn").to_dict()  # older arpviz reads it
    assert MSGNConfig.from_dict(model.config.to_dict()) == model.config
    with pytest.raises(ValueError, match="stn_bounded needs conv4"):
        MSGNConfig(conv4="arp", stn_bounded=True)


def test_gradients_reach_every_branch() -> None:
    model = _model(conv4="stn", local_branches=2).train()
    loss = F.cross_entropy(model(_images(4, 64)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
    assert model.branches["local1"].stn.regressor.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- overrides, cache


class _Counter:
    def __init__(self, model: MSGN) -> None:
        self.calls: dict[str, int] = {}
        modules = {"stem": model.stem, "layer1": model.layer1, "layer2": model.layer2}
        modules |= {name: branch.layer3 for name, branch in model.branches.items()}
        for name, module in modules.items():
            self.calls[name] = 0
            module.register_forward_hook(self._hook(name))

    def _hook(self, name: str):
        def hook(*_: object) -> None:
            self.calls[name] += 1
        return hook


def test_overrides_recompute_only_later_stages() -> None:
    model = _model(local_branches=2, conv4_k=0.5)
    counter = _Counter(model)
    with torch.no_grad():
        cache = model.prepare(_images(2, 96))
        base = model.explain_from(cache)
        assert counter.calls == {"stem": 1, "layer1": 1, "layer2": 1, "global": 1,
                                 "local0": 1, "local1": 1}
        later = model.explain_from(cache, {"conv4.local1": StageOverride(k=0.9)})
        assert counter.calls == {"stem": 1, "layer1": 1, "layer2": 1, "global": 1,
                                 "local0": 1, "local1": 2}
        # local1 searches with local0's box suppressed, so a change of local0 re-runs it too
        earlier = model.explain_from(cache, {"conv4.local0": StageOverride(k=0.9)})
        assert counter.calls == {"stem": 1, "layer1": 1, "layer2": 1, "global": 1,
                                 "local0": 2, "local1": 3}
        again = model.explain_from(cache, {"conv4.local0": StageOverride(k=0.9)})
        assert counter.calls["local0"] == 2 and counter.calls["local1"] == 3
        conv3 = model.explain_from(cache, {"conv3": StageOverride(k=0.6)})
        assert counter.calls == {"stem": 1, "layer1": 1, "layer2": 2, "global": 2,
                                 "local0": 3, "local1": 4}
        fresh = model.explain(_images(2, 96), {"conv4.local0": StageOverride(k=0.9)})

    assert later.settings["conv4.local1"].k == 0.9 and base.settings["conv4.local1"].k == 0.5
    torch.testing.assert_close(later.image_boxes["conv3"], base.image_boxes["conv3"])
    torch.testing.assert_close(later.image_boxes["conv4.local0"], base.image_boxes["conv4.local0"])
    assert not torch.equal(later.image_boxes["conv4.local1"], base.image_boxes["conv4.local1"])
    assert not torch.equal(earlier.image_boxes["conv4.local0"], base.image_boxes["conv4.local0"])
    assert not torch.equal(conv3.image_boxes["conv3"], base.image_boxes["conv3"])
    torch.testing.assert_close(again.logits, earlier.logits)
    torch.testing.assert_close(fresh.logits, earlier.logits)
    for name in earlier.image_boxes:
        torch.testing.assert_close(fresh.image_boxes[name], earlier.image_boxes[name])


def test_override_dsr_and_mode() -> None:
    model = _model(local_branches=1)
    x = _images(2, 64)
    with torch.no_grad():
        cache = model.prepare(x)
        wide = model.explain_from(cache, {"conv3": StageOverride(dsr=0.75),
                                          "conv4.local0": StageOverride(dsr=(0.25, 0.5))})
        rp = model.explain_from(cache, {"conv4.local0": StageOverride(mode="rp")})
        back = model.explain_from(cache, {"conv4.local0": StageOverride(mode="arp", k=0.3)})
    assert wide.map_sizes["conv4.local0"] == (12, 12)
    assert wide.stages["conv4.local0"].features.shape[-2:] == (3, 6)
    assert wide.logits.shape == (2, 7) and torch.isfinite(wide.logits).all()
    assert rp.settings["conv4.local0"].mode == "rp" and rp.settings["conv4.local0"].k is None
    torch.testing.assert_close(rp.stages["conv4.local0"].rates, torch.full((2, 2), 0.5))
    assert back.settings["conv4.local0"].k == 0.3


def test_override_errors(two_local: MSGN) -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        two_local.explain(_images(1), {"conv5": StageOverride(k=0.5)})
    with pytest.raises(ValueError, match="conv4.global"):
        two_local.explain(_images(1), {"conv4.global": StageOverride(k=0.5)})
    with pytest.raises(ValueError, match="rp"):
        two_local.stage_settings({"conv3": StageOverride(mode="rp", k=0.5)})
    with pytest.raises(TypeError):
        two_local.stage_settings({"conv3": {"k": 0.5}})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="mode"):
        StageOverride(mode="stride")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k"):
        StageOverride(k=0.0)
    with pytest.raises(ValueError, match="dsr"):
        StageOverride(dsr=2.0)
    other = _model(local_branches=2, conv4_k=0.5)
    with pytest.raises(ValueError, match="another model"):
        other.explain_from(two_local.prepare(_images(1)))


# ----------------------------------------------------------------------------- weights


def test_state_dict_round_trip(tmp_path) -> None:
    model = _model(seed=3, local_branches=2, conv4="stn")
    path = tmp_path / "msgn.pt"
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict()}, path)
    saved = torch.load(path, weights_only=True)
    fresh = MSGN(MSGNConfig.from_dict(saved["config"])).eval()
    fresh.load_state_dict(saved["state_dict"])
    x = _images(2, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


def test_branch_copies_start_equal() -> None:
    model = _model(local_branches=2)
    reference = model.branches["global"].layer3.state_dict()
    for name in ("local0", "local1"):
        for key, value in model.branches[name].layer3.state_dict().items():
            assert torch.equal(value, reference[key]), (name, key)
    assert model.branches["local0"].layer3[0].conv1.stride == (1, 1)  # ARP replaced the stride
    assert model.branches["global"].layer3[0].conv1.stride == (2, 2)
    assert model.branches["local0"].layer4[0].conv1.stride == (1, 1)
    assert model.layer2[0].downsample[0].stride == (1, 1)


@pytest.fixture(scope="module")
def resnet50_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(5)
    return torchvision.models.resnet50(weights=None).state_dict()


def _check_copied(model: MSGN, source: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    for key, value in source.items():
        head = key.split(".")[0]
        if head == "fc":
            continue
        if head in ("conv1", "bn1"):
            targets = [f"stem.{key}"]
        elif head in ("layer3", "layer4"):
            targets = [f"branches.{b}.{key}" for b in model.branches]
        else:
            targets = [key]
        for target in targets:
            assert torch.equal(own[target], value), target


def test_from_torchvision_file(tmp_path, resnet50_state) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(resnet50_state, path)
    model = from_torchvision(MSGNConfig(backbone="resnet50", local_branches=2), str(path))
    assert list(model.branches) == ["global", "local0", "local1"]
    _check_copied(model, resnet50_state)


def test_from_torchvision_enum_uses_cache_only(tmp_path, monkeypatch, resnet50_state) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    config = MSGNConfig(backbone="resnet50", local_branches=0)
    with pytest.raises(FileNotFoundError, match="cache"):
        from_torchvision(config, weights)
    path = cached_weights_path(weights)
    assert path.parent == tmp_path / "checkpoints"
    path.parent.mkdir()
    torch.save(resnet50_state, path)
    _check_copied(from_torchvision(config, "IMAGENET1K_V1"), resnet50_state)
    with pytest.raises(ValueError, match="resnet50"):
        from_torchvision(config, torchvision.models.ResNet101_Weights.IMAGENET1K_V1)
    with pytest.raises(ValueError, match="NOPE"):
        from_torchvision(config, "NOPE")


def test_from_torchvision_rejects_tiny_and_wrong_shapes(tmp_path) -> None:
    with pytest.raises(ValueError, match="tiny"):
        from_torchvision(MSGNConfig(backbone="tiny"), "DEFAULT")
    with pytest.raises(FileNotFoundError):
        from_torchvision(MSGNConfig(backbone="resnet50"), tmp_path / "missing.pth")
    resnet18 = torchvision.models.resnet18(weights=None).state_dict()
    with torch.device("meta"):
        model = MSGN(MSGNConfig(backbone="resnet50"))
    with pytest.raises(ValueError, match="layer|shape"):
        load_backbone_state_dict(model, resnet18)


# ----------------------------------------------------------------------------- FLOPs, dtypes


@pytest.mark.parametrize(("backbone", "paper"), [("resnet50", 17.8), ("resnet101", 32.7)])
def test_flops_match_table_1(backbone: str, paper: float) -> None:
    config = MSGNConfig(backbone=backbone, local_branches=1, conv3="arp", conv3_k=1.0,
                        conv4="arp", conv4_k=0.7)
    with torch.device("meta"):
        model = MSGN(config)
    gflops = count_flops(model, 224) / 1e9
    assert abs(gflops - paper) / paper < 0.10, gflops


def test_count_flops_on_cpu_matches_meta() -> None:
    cpu = _model(local_branches=1)
    with torch.device("meta"):
        meta = MSGN(cpu.config)
    assert count_flops(cpu, 64) == count_flops(meta, (64, 64)) > 0
    cpu.train()
    count_flops(cpu, 64)
    assert cpu.training  # mode restored


@pytest.mark.parametrize("conv4", ["arp", "stn"])
def test_autocast_bfloat16(conv4: str) -> None:
    model = _model(conv4=conv4, local_branches=2)
    x = _images(2, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
        explanation = model.explain(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits.float()).all()
    assert torch.isfinite(explanation.image_boxes["conv4.local1"]).all()


def test_autocast_does_not_change_the_window_search() -> None:
    """Under autocast RP/ARP still search in float32: same input map, same Conv3 boxes."""
    model = _model(local_branches=1)
    with torch.no_grad():
        trace = model.prepare(_images(3, 96, seed=4))
        expected = model.explain_from(trace)
        trace.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            explanation = model.explain_from(trace)
    torch.testing.assert_close(explanation.stages["conv3"].boxes, expected.stages["conv3"].boxes)
    torch.testing.assert_close(explanation.stages["conv3"].rates, expected.stages["conv3"].rates)


def test_channels_last() -> None:
    model = _model(local_branches=1)
    x = _images(2, 64)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        logits = model(x.contiguous(memory_format=torch.channels_last))
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    torch.testing.assert_close(logits, expected, rtol=1e-3, atol=1e-3)
