"""arpviz.analysis: statistics, forced boxes, tau plumbing, the report and its CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from arpviz import checkpoint as ckpt
from arpviz.analysis import (
    AdaptivityReport,
    analyse,
    analyse_cached,
    correlation,
    main,
    measure_confidence_floor,
    stats,
)
from arpviz.images import IMAGENET_MEAN, IMAGENET_STD
from arpviz.models import MSGN, MSGNConfig, StageOverride

INPUT = 64
CLASSES = 3


pytestmark = pytest.mark.usefixtures("one_thread")


def _save(path: Path, config: MSGNConfig, dataset: dict) -> Path:
    torch.manual_seed(0)
    meta = ckpt.CheckpointMeta(
        config=config, class_names=tuple(f"class {i}" for i in range(CLASSES)),
        input_size=INPUT, mean=IMAGENET_MEAN, std=IMAGENET_STD, dataset=dataset,
    )
    return ckpt.save(path, MSGN(config).eval(), meta)


SYNTH = {"name": "synthbirds", "config": {"num_classes": CLASSES, "train_size": 4,
                                          "val_size": 6, "test_size": 6, "clutter": 2,
                                          "scale_min": 0.15, "scale_max": 0.85}}


@pytest.fixture(scope="module")
def synth_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = MSGNConfig(backbone="tiny", num_classes=CLASSES)  # ARP in Conv3 and Conv4
    return _save(tmp_path_factory.mktemp("analysis") / "synth.safetensors", config, SYNTH)


@pytest.fixture(scope="module")
def folder_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(CLASSES):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(2):
                pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / f"c{c}" / f"{i}.png")
    dataset = {"name": "folder", "root": str(root / "train"), "val_root": str(root / "val")}
    config = MSGNConfig(backbone="tiny", num_classes=CLASSES, conv3="stride", conv4="rp")
    return _save(root / "folder.safetensors", config, dataset)


# ----------------------------------------------------------------------------- statistics


def test_stats_and_correlation_by_hand() -> None:
    s = stats(np.array([1.0, 2.0, 3.0, np.nan]))
    assert s == {"mean": 2.0, "sd": 1.0, "min": 1.0, "max": 3.0, "n": 3}
    x = np.arange(50, dtype=float)
    up = correlation(x, x ** 3, n_boot=200, seed=0)
    assert up["spearman"] == pytest.approx(1.0) and 0.85 < up["pearson"] < 1.0
    assert up["ci95"]["spearman"] == pytest.approx([1.0, 1.0])
    down = correlation(x, -x + np.sin(x), n_boot=200, seed=1)
    lo, hi = down["ci95"]["pearson"]
    assert lo <= down["pearson"] <= hi < 0
    # ties get their average rank: a step function against x
    step = correlation(x, (x >= 25).astype(float), n_boot=0)
    assert step["spearman"] == pytest.approx(np.corrcoef(np.r_[np.arange(1, 51)],
                                                         np.r_[[13.0] * 25, [38.0] * 25])[0, 1])
    flat = correlation(x, np.ones(50), n_boot=50)
    assert flat["pearson"] is None and flat["ci95"]["spearman"] is None
    assert correlation(x, x, n_boot=100, seed=3) == correlation(x, x, n_boot=100, seed=3)
    with pytest.raises(ValueError, match="same length"):
        correlation(x, x[:3])


# ----------------------------------------------------------------------------- tau and boxes


@pytest.fixture(scope="module")
def model() -> MSGN:
    torch.manual_seed(0)
    return MSGN(MSGNConfig(backbone="tiny", num_classes=CLASSES)).eval()


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, INPUT, INPUT, generator=torch.Generator().manual_seed(seed))


def test_config_tau_is_validated_and_stored() -> None:
    assert "tau" not in MSGNConfig(backbone="tiny").to_dict()  # the paper: absent, old readers
    cfg = MSGNConfig(backbone="tiny", tau=4.0)
    assert cfg.to_dict()["tau"] == 4.0 and MSGNConfig.from_dict(cfg.to_dict()) == cfg
    for bad, kind in ((0.0, ValueError), (float("inf"), ValueError), ("2", TypeError)):
        with pytest.raises(kind, match="tau"):
            MSGNConfig(backbone="tiny", tau=bad)
    with pytest.raises(ValueError, match="tau"):
        StageOverride(tau=-1.0)


@torch.no_grad()
def test_tau_reaches_the_operator(model: MSGN) -> None:
    x = _x()
    base = model.explain(x)
    same = model.explain(x, {"conv3": StageOverride(tau=1.0)})
    torch.testing.assert_close(same.logits, base.logits)
    sharp = model.explain(x, {"conv4.local0": StageOverride(tau=8.0)})
    assert sharp.settings["conv4.local0"].tau == 8.0
    torch.testing.assert_close(sharp.stages["conv3"].boxes, base.stages["conv3"].boxes)
    conf = sharp.stages["conv4.local0"].confidence
    assert float(conf.std()) > float(base.stages["conv4.local0"].confidence.std())
    # the config's tau is the default of every RP/ARP stage
    hot = MSGN(MSGNConfig(backbone="tiny", num_classes=CLASSES, tau=8.0)).eval()
    hot.load_state_dict(model.state_dict())
    torch.testing.assert_close(hot.explain(x).logits,
                               model.explain(x, {s: StageOverride(tau=8.0) for s in
                                                 ("conv3", "conv4.local0")}).logits)


@torch.no_grad()
def test_forced_boxes(model: MSGN) -> None:
    x = _x(1)
    cache = model.prepare(x)
    base = model.explain_from(cache)
    own = model.explain_from(cache, boxes={"conv4.local0": base.stages["conv4.local0"].boxes})
    torch.testing.assert_close(own.logits, base.logits)
    h, w = base.map_sizes["conv4.local0"]
    corner = torch.tensor([[0.0, 0.0, w / 2, h / 2]] * 2)
    moved = model.explain_from(cache, boxes={"conv4.local0": corner})
    torch.testing.assert_close(moved.stages["conv4.local0"].boxes, corner)
    torch.testing.assert_close(moved.stages["conv4.local0"].rates, torch.full((2, 2), 0.5))
    assert not torch.allclose(moved.logits, base.logits)
    # the cache still gives the unforced result afterwards
    torch.testing.assert_close(model.explain_from(cache).logits, base.logits)
    # forcing Conv3 moves every Conv4 image box into the forced frame
    h3, w3 = base.map_sizes["conv3"]
    left = torch.tensor([[0.0, 0.0, w3 / 2, float(h3)]] * 2)
    forced3 = model.explain(x, boxes={"conv3": left})
    assert float(forced3.image_boxes["conv4.local0"][:, 2].max()) <= INPUT / 2 + 1e-4
    with pytest.raises(ValueError, match="not a pooled stage"):
        model.explain(x, boxes={"conv4.global": corner})
    with pytest.raises(ValueError, match="shape"):
        model.explain(x, boxes={"conv4.local0": corner[:1]})
    with pytest.raises(ValueError, match="inside"):
        model.explain(x, boxes={"conv4.local0": corner + w})
    with pytest.raises(TypeError, match="Tensor"):
        model.explain(x, boxes={"conv4.local0": [0, 0, 1, 1]})


# ----------------------------------------------------------------------------- the report


def test_analyse_synthbirds(synth_ckpt: Path, tmp_path: Path) -> None:
    seen: list[float] = []
    report = analyse(synth_ckpt, "test", limit=5, batch_size=3, n_random=2, k_values=(0.5, 1.0),
                     n_boot=50, progress=lambda f, _: seen.append(f), show_progress=False)
    assert report.count == 5 and report.ground_truth and seen == [0.6, 1.0]
    assert list(report.stages) == ["conv3", "conv4.local0"]
    st = report.stages["conv4.local0"]
    assert st.mode == "arp" and st.k == 0.7
    assert 0.5 <= st.rate["h"]["min"] <= st.rate["h"]["mean"] <= st.rate["h"]["max"] <= 1.0
    assert st.rate_vs_object["height"]["n"] == 5
    assert set(st.rate_vs_object["keypoint_spread"]) == {"h", "w"}
    assert 0.0 <= st.crop_precision <= 1.0 and 0.0 <= st.keypoint_recall <= 1.0
    assert st.placement["arp"] == pytest.approx(report.top1)
    assert set(st.placement) == {"arp", "centred", "random", "least_confident", "n_random"}
    assert st.placement_keypoint_recall["arp"] == pytest.approx(st.keypoint_recall)
    assert st.k_curve["k"] == [0.5, 1.0] and len(st.k_curve["top1"]) == 2
    assert st.k_curve["rate_h"][0] <= st.k_curve["rate_h"][1]
    conf = st.confidence
    assert conf["min"] <= conf["background"]["mean"] <= conf["max"]
    assert conf["contrast"]["n"] == 5
    columns = report.per_image["stages"]["conv4.local0"]
    assert len(columns["rate_h"]) == len(columns["object_h"]) == 5
    assert report.per_image["index"] == [0, 1, 2, 3, 4]
    # JSON round trip, and NaN never reaches the file
    text = report.to_json()
    assert "NaN" not in text
    again = AdaptivityReport.from_dict(json.loads(text))
    assert again.to_dict() == report.to_dict()
    # the same seed gives the same report
    twice = analyse(synth_ckpt, "test", limit=5, batch_size=3, n_random=2, k_values=(0.5, 1.0),
                    n_boot=50, show_progress=False)
    assert twice.to_dict() == report.to_dict()


def test_analyse_without_ground_truth_leaves_it_out(folder_ckpt: Path) -> None:
    report = analyse(folder_ckpt, "val", limit=4, n_random=1, n_boot=10, show_progress=False)
    assert not report.ground_truth and report.object is None and report.count == 4
    st = report.stages["conv4.local0"]
    assert st.mode == "rp" and st.k_curve is None
    assert st.rate_vs_object is None and st.crop_precision is None
    assert st.placement_keypoint_recall is None and st.confidence["contrast"] is None
    assert st.rate["h"]["mean"] == pytest.approx(0.5)


def test_cache_and_floor(synth_ckpt: Path, tmp_path: Path) -> None:
    kwargs = {"limit": 3, "n_random": 1, "k_values": (), "n_boot": 0, "show_progress": False}
    first = analyse_cached(synth_ckpt, "test", cache_dir=tmp_path, **kwargs)
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and "_test_3_tau1_" in files[0].name
    assert analyse_cached(synth_ckpt, "test", cache_dir=tmp_path, **kwargs) == first
    analyse_cached(synth_ckpt, "test", cache_dir=tmp_path, tau=2.0, **kwargs)
    assert len(list(tmp_path.glob("*.json"))) == 2
    floors = measure_confidence_floor(ckpt.load(synth_ckpt), count=3)
    assert set(floors) == {"conv3", "conv4.local0"}
    f = floors["conv4.local0"]
    assert 0.0 < f.level < f.peak <= 1.0 and f.relative == pytest.approx(
        f.level / (f.peak - f.level))


def test_bad_input(synth_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="split"):
        analyse(synth_ckpt, "train")
    with pytest.raises(ValueError, match="limit"):
        analyse(synth_ckpt, limit=0)
    with pytest.raises(ValueError, match="tau"):
        analyse(synth_ckpt, tau=0.0)
    with pytest.raises(ValueError, match="n_random"):
        analyse(synth_ckpt, n_random=0)
    stride = _save(tmp_path / "stride.safetensors",
                   MSGNConfig(backbone="tiny", num_classes=CLASSES, local_branches=0,
                              conv3="stride", conv4="stride"), SYNTH)
    with pytest.raises(ValueError, match="pools nothing"):
        analyse(stride, limit=2)
    assert main([str(tmp_path / "missing.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("arpviz-analysis: error:") and "Traceback" not in err


def test_cli_writes_json_and_table(synth_ckpt: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "a.json"
    assert main([str(synth_ckpt), "--limit", "2", "--n-random", "1", "--k-values", "1",
                 "--n-boot", "20", "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "conv4.local0" in printed and "k curve" in printed
    data = json.loads(out.read_text())
    assert data["count"] == 2 and data["stages"]["conv4.local0"]["k_curve"]["k"] == [1.0]


def test_floor_free_diagnostic(synth_ckpt: Path) -> None:
    report = analyse(synth_ckpt, "test", limit=4, n_random=1, k_values=(), n_boot=20,
                     show_progress=False)
    free = report.stages["conv4.local0"].floor_free
    assert free["k"] == 0.7 and free["rate_vs_object"]["height"]["n"] == 4
    mine = np.array(report.per_image["stages"]["conv4.local0"]["free_h"])
    assert mine.shape == (4,) and (mine > 0).all() and (mine <= 1).all()
    assert free["rate"]["h"]["mean"] == pytest.approx(mine.mean(), abs=1e-4)
