"""Re-identification: SynthReID, the real-layout loaders, the P x K sampler, the triplet loss,
mAP/CMC against hand-computed cases, and a one-epoch train that evaluate reads."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from arpviz import checkpoint as ckpt
from arpviz.data.reid_folders import ReIDFolder, parse_name
from arpviz.data.synthbirds import PART_NAMES, SynthBirds, SynthBirdsConfig, image_rng, render_bird
from arpviz.data.synthreid import SynthReID, SynthReIDConfig, camera_look
from arpviz.datasources import build
from arpviz.evaluate import main as evaluate_main
from arpviz.models import MSGN
from arpviz.reid import PKBatchSampler, batch_hard_triplet_loss, reid_labels, warm_start
from arpviz.retrieval import (
    average_precision,
    embed,
    evaluate_ranking,
    load_retrieval_sets,
    rank_query,
)
from arpviz.train import main as train_main

TINY = SynthReIDConfig(train_ids=8, test_ids=6, num_cameras=3, cameras_per_id=2,
                       images_per_camera=2, image_size=64)


# ----------------------------------------------------------------------------- SynthReID


def test_parts_rng_none_keeps_synthbirds_identical():
    config = SynthBirdsConfig(image_size=64)
    a = render_bird(config, 5, image_rng(0, "train", 5), parts_rng=None)
    b = SynthBirds(config, "train").render(5)
    assert a.label == b.label == 5
    np.testing.assert_array_equal(a.image, b.image)
    # the same parts generator draws the same bird in another scene
    c = render_bird(config, 3, image_rng(0, "train", 1), parts_rng=np.random.default_rng(7))
    d = render_bird(config, 3, image_rng(0, "train", 2), parts_rng=np.random.default_rng(7))
    assert not np.array_equal(c.image, d.image)


def test_synthreid_splits_cameras_and_ground_truth():
    train, query, gallery = (SynthReID(TINY, s) for s in ("train", "query", "gallery"))
    assert len(train) == 8 * 2 * 2 and len(query) == 6 * 2 and len(gallery) == 6 * 2
    assert set(train.pids) == set(range(8))
    assert set(query.pids) == set(gallery.pids) == set(range(8, 14))
    assert len(train.class_names) == 8
    # every query's identity is in the gallery under its own camera and under another one
    for pid, cam in zip(query.pids, query.camids, strict=True):
        cams = {c for p, c in zip(gallery.pids, gallery.camids, strict=True) if p == pid}
        assert cam in cams and cams - {cam}
    sample = query.render(0)
    assert sample.image.shape == (64, 64, 3) and sample.image.dtype == np.uint8
    assert set(sample.keypoints) == set(PART_NAMES)
    x1, y1, x2, y2 = sample.box
    assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
    np.testing.assert_array_equal(SynthReID(TINY, "query").render(0).image, sample.image)
    image, label = query[0]
    assert image.shape == (3, 64, 64) and label == sample.pid
    assert camera_look(TINY, 0) != camera_look(TINY, 1)


def test_synthreid_validates():
    with pytest.raises(ValueError, match="cameras_per_id"):
        SynthReIDConfig(num_cameras=3, cameras_per_id=4)
    with pytest.raises(ValueError, match="split"):
        SynthReID(TINY, "val")
    with pytest.raises(ValueError, match="unknown"):
        SynthReIDConfig.from_dict({"colour": 1})


# ----------------------------------------------------------------------------- loaders


def _touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True)
    for name in names:
        if name.endswith(".jpg"):
            Image.new("RGB", (12, 20), (100, 50, 20)).save(folder / name)
        else:
            (folder / name).write_text("not an image")


def test_veri776_layout(tmp_path):
    _touch(tmp_path / "image_train", ["0002_c002_00030600_0.jpg", "0002_c003_00030610_1.jpg",
                                      "0005_c001_00010000_0.jpg", "notes.txt"])
    _touch(tmp_path / "image_query", ["0006_c001_00000100_0.jpg"])
    _touch(tmp_path / "image_test", ["0006_c001_00000200_0.jpg", "0006_c004_00000300_0.jpg"])
    train = ReIDFolder(tmp_path, "veri776", "train")
    assert train.pids == [2, 2, 5] and train.camids == [1, 2, 0]
    assert train.targets == [0, 0, 1] and train.class_names == ("id 0002", "id 0005")
    image, label = train[2]
    assert image.size == (12, 20) and label == 1
    gallery = ReIDFolder(tmp_path, "veri776", "gallery")
    assert gallery.pids == [6, 6] and gallery.camids == [0, 3] and gallery.targets == [6, 6]
    sources = build({"name": "veri776", "root": str(tmp_path)}, 32)
    assert sources.query is not None and sources.gallery is not None
    assert sources.train[0][0].shape == (3, 32, 32)  # resized, no crop
    assert reid_labels(sources.gallery) == ([6, 6], [0, 3])


def test_market1501_layout_drops_junk_keeps_distractors_in_gallery(tmp_path):
    _touch(tmp_path / "bounding_box_train", ["0002_c1s1_000451_03.jpg", "0007_c2s3_070952_01.jpg",
                                             "-1_c1s1_000401_03.jpg", "Thumbs.db"])
    _touch(tmp_path / "query", ["0001_c1s1_001051_00.jpg"])
    _touch(tmp_path / "bounding_box_test", ["0001_c2s1_000301_01.jpg", "0000_c1s1_000151_01.jpg",
                                            "-1_c1s1_000401_03.jpg", "0001_c1s1_001101_00.jpg"])
    train = ReIDFolder(tmp_path, "market1501", "train")
    assert train.pids == [2, 7] and train.camids == [0, 1] and train.targets == [0, 1]
    gallery = ReIDFolder(tmp_path, "market1501", "gallery")
    assert sorted(gallery.pids) == [0, 1, 1]  # junk -1 gone, distractor 0000 kept
    assert parse_name("market1501", "0002_c6s1_000451_03.jpg") == (2, 5)
    assert parse_name("veri776", "readme.md") is None
    with pytest.raises(ValueError, match="root"):
        ReIDFolder(tmp_path / "missing", "market1501", "train")


# ----------------------------------------------------------------------------- sampler, loss


def test_pk_sampler_yields_p_by_k_batches_deterministically():
    labels = [i // 5 for i in range(30)] + [6, 6]  # 6 identities of 5 images, one of 2
    sampler = PKBatchSampler(labels, p=3, k=4, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) >= 2
    for batch in batches:
        ids = [labels[i] for i in batch]
        assert len(batch) == 12
        assert sorted(set(ids)) and all(ids.count(x) == 4 for x in set(ids))
        assert len(set(ids)) == 3
    assert list(PKBatchSampler(labels, p=3, k=4, seed=1)) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches
    halves = [list(PKBatchSampler(labels, 3, 4, seed=1, rank=r, world=2)) for r in (0, 1)]
    assert len(halves[0]) == len(halves[1]) == len(batches) // 2
    assert halves[0] + halves[1] != [] and halves[0][0] == batches[0]
    assert halves[1][0] == batches[1]
    with pytest.raises(ValueError, match="p must be"):
        PKBatchSampler(labels, p=8, k=2)


def test_batch_hard_triplet_loss_hand_case():
    # 1-d embeddings: a=0, a'=1 (id 0), b=3, b'=7 (id 1); margin 0.5
    emb = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    labels = torch.tensor([0, 0, 1, 1])
    # anchor 0: hp 1, hn 3 -> relu(0.5 + 1 - 3) = 0
    # anchor 1: hp 1, hn 2 -> 0
    # anchor 3: hp 4, hn 2 -> 2.5 ; anchor 7: hp 4, hn 6 -> 0
    loss = batch_hard_triplet_loss(emb, labels, margin=0.5)
    assert loss.item() == pytest.approx(2.5 / 4, abs=1e-5)
    emb.requires_grad_(True)
    batch_hard_triplet_loss(emb, labels, margin=0.5).backward()
    assert torch.isfinite(emb.grad).all()
    # an anchor without a positive is left out
    assert batch_hard_triplet_loss(torch.tensor([[0.0], [5.0]]), torch.tensor([0, 1])) == 0


# ----------------------------------------------------------------------------- metrics


def test_average_precision_and_cmc_hand_case_with_same_camera_exclusion():
    # two queries, gallery of 5: (pid, cam)
    g_pids = [1, 1, 2, 1, 2]
    g_cams = [0, 1, 1, 2, 0]
    # query 0: pid 1, cam 0 -> gallery 0 (pid 1, cam 0) is excluded
    # distances order: g0 (excluded), g2 (wrong), g1 (right), g4 (wrong), g3 (right)
    # ranking after exclusion: F T F T -> AP = (1/2 + 2/4) / 2 = 0.5, first match rank 2
    # query 1: pid 2, cam 1 -> gallery 2 (pid 2, cam 1) excluded; order g4 first -> AP 1
    # query 2: pid 3 -> no match, skipped
    dist = np.array([
        [0.0, 2.0, 1.0, 4.0, 3.0],
        [0.5, 0.6, 0.1, 0.7, 0.2],
        [1.0, 1.0, 1.0, 1.0, 1.0],
    ])
    result = evaluate_ranking(dist, [1, 2, 3], g_pids, [0, 1, 0], g_cams)
    assert result.mAP == pytest.approx(100 * (0.5 + 1.0) / 2)
    assert result.rank1 == pytest.approx(50.0)
    assert result.rank5 == result.rank10 == pytest.approx(100.0)
    assert (result.queries, result.skipped, result.gallery) == (2, 1, 5)
    assert average_precision(np.array([False, True, False, True])) == pytest.approx(0.5)
    ranking = rank_query(torch.tensor([0.0]), torch.tensor([[0.0], [2.0], [1.0], [4.0], [3.0]]),
                         1, 0, g_pids, g_cams, top=3)
    assert ranking.indices.tolist() == [2, 1, 4]
    assert ranking.matches.tolist() == [False, True, False]
    assert ranking.distances.tolist() == [1.0, 2.0, 3.0]
    assert ranking.ap == pytest.approx(50.0) and ranking.first_match == 2
    assert ranking.num_matches == 2 and ranking.excluded == 1
    upload = rank_query(torch.tensor([0.0]), torch.tensor([[0.0], [2.0], [1.0]]), -1, -1,
                        g_pids[:3], g_cams[:3])
    assert upload.indices.tolist() == [0, 2, 1] and upload.excluded == 0
    assert upload.ap is None and upload.first_match is None and not upload.matches.any()
    with pytest.raises(ValueError, match="no query"):
        evaluate_ranking(dist[2:], [3], g_pids, [0], g_cams)


# ----------------------------------------------------------------------------- train, evaluate


def test_one_epoch_reid_training_writes_a_checkpoint_evaluate_reads(tmp_path, capsys):
    config = {
        "out": str(tmp_path / "reid.safetensors"),
        "model": {"backbone": "tiny", "conv3": "stride", "conv4": "arp", "num_classes": 2},
        "dataset": {"name": "synthreid", "config": {**TINY.to_dict(), "image_size": 128}},
        "image_size": 64, "epochs": 1, "batch_size": 8, "probes": 2, "threads": 1,
        "progress": False, "instances_per_id": 2,
    }
    path = tmp_path / "reid.json"
    path.write_text(json.dumps(config))
    assert train_main(["--config", str(path)]) == 0
    capsys.readouterr()
    loaded = ckpt.load(tmp_path / "reid.safetensors")
    (record,) = loaded.meta.history
    assert {"mAP", "rank1", "rank5", "rank10", "train_loss"} <= set(record)
    assert math.isfinite(record["train_loss"])
    assert len(loaded.meta.class_names) == 8 and len(loaded.snapshots) == 1
    assert loaded.meta.config.conv3 == "stride" and loaded.meta.config.conv4 == "arp"
    assert evaluate_main([str(tmp_path / "reid.safetensors"), "--split", "test"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mAP"] == pytest.approx(record["mAP"], abs=1e-4)
    assert out["rank1"] == pytest.approx(record["rank1"])
    assert set(out) >= {"mAP", "rank1", "rank5", "rank10"}
    # the page's path: the retrieval sets and one query's ranking
    sets = load_retrieval_sets(loaded)
    gallery = embed(loaded.model, sets.gallery, progress=False)
    query = embed(loaded.model, torch.utils.data.Subset(sets.query, [0]), progress=False)
    ranking = rank_query(query[0], gallery, int(sets.query_pids[0]), int(sets.query_camids[0]),
                         sets.gallery_pids, sets.gallery_camids)
    assert len(ranking.indices) == 10 and ranking.excluded == 1 and ranking.num_matches == 1
    with pytest.raises(SystemExit):
        evaluate_main([str(tmp_path / "reid.safetensors"), "--split", "val"])
    # warm start: every fitting weight but the classifier is copied (another pooling, classes)
    other = MSGN(loaded.meta.config.__class__.from_dict(
        {**loaded.meta.config.to_dict(), "conv4": "stride", "num_classes": 3}))
    copied = warm_start(other, tmp_path / "reid.safetensors")
    assert copied and not any(name.startswith("classifier.") for name in copied)
    for name in copied:
        torch.testing.assert_close(other.state_dict()[name], loaded.model.state_dict()[name])


def test_results_table_reads_evaluate_json(tmp_path):
    from benchmarks.reid_results import collect, table

    for seed, value in ((0, 10.0), (1, 20.0)):
        row = {"mAP": value, "rank1": value, "rank5": 50.0, "rank10": 60.0, "queries": 4}
        (tmp_path / f"synthreid_msgn_arp_seed{seed}.eval.json").write_text(json.dumps(row))
    (tmp_path / "other.eval.json").write_text("{}")
    results = collect(tmp_path)
    assert list(results) == ["arp"] and sorted(results["arp"]) == [0, 1]
    assert "| arp | mean (sd) of 2 | 15.0 (7.1) | 15.0 (7.1) | 50.0 (0.0) | 60.0 (0.0) |" in (
        table(results))
