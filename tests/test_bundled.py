"""The bundled checkpoints load, and arpviz.evaluate reproduces the metrics they recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from arpviz import checkpoint as ckpt
from arpviz.evaluate import evaluate
from arpviz.reid import is_reid
from arpviz.retrieval import evaluate_retrieval

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted((ROOT / "checkpoints").glob("*.safetensors"))
BUNDLED = [p for p in BUNDLED if not p.name.endswith(".state.safetensors")]
MAX_BYTES = 15 * 1024**2


def test_the_default_and_its_comparisons_are_bundled():
    names = {p.stem for p in BUNDLED}
    # the wide-scale ablation's MSGN rows (the app's default first; seed 0 of the paired runs:
    # ARP, stride, RP, ARP-FG peak and the learnt zoom), the first bundle's two MSGNs (the re-ID
    # runs' warm starts) and the two re-ID networks
    assert {"synthbirds_wide_msgn_arp", "synthbirds_wide_msgn_stride", "synthbirds_wide_msgn_rp",
            "synthbirds_wide_msgn_arpfg_peak", "synthbirds_wide_msgn_zoom",
            "synthbirds_wide_msgn_stn", "synthbirds_msgn_arp", "synthbirds_msgn_stride",
            "synthreid_msgn_arp", "synthreid_msgn_stride"} <= names


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_bundled_checkpoint_reproduces_its_record(path):
    assert path.stat().st_size < MAX_BYTES
    loaded = ckpt.load(path)
    meta = loaded.meta
    assert meta.dataset["name"] in ("synthbirds", "synthreid") and meta.config.backbone == "tiny"
    epochs = meta.recipe["epochs"]
    assert [h["epoch"] for h in meta.history] == list(range(1, epochs + 1))
    assert [s.epoch for s in loaded.snapshots] == list(range(1, epochs + 1))
    assert loaded.probe_labels is not None and len(loaded.probe_labels) == 16
    if is_reid(meta.dataset):  # re-ID: mAP and CMC on the test query/gallery
        scores = evaluate_retrieval(path, progress=False)
        for key in ("mAP", "rank1", "rank5", "rank10"):
            assert getattr(scores, key) == pytest.approx(meta.history[-1][key], abs=1e-3)
        return
    result = evaluate(path, "val", crops=False)
    last = meta.history[-1]
    one_image = 100 / result.count
    assert result.top1 == pytest.approx(last["val_top1"], abs=one_image + 1e-6)
    assert result.top5 == pytest.approx(last["val_top5"], abs=one_image + 1e-6)
