"""The Retrieval page's library (arpviz.explorer.retrieval), its figures and the Training page's
re-ID additions (catalog and history figures), on a tiny untrained re-ID checkpoint."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_reid_checkpoint
from PIL import Image

from arpviz import checkpoint as ckpt
from arpviz.explorer import catalog
from arpviz.explorer import retrieval as rx
from arpviz.explorer.controls import Knob
from arpviz.explorer.figures import history as hfig
from arpviz.explorer.figures import retrieval as rfig
from arpviz.retrieval import embed, evaluate_ranking, pairwise_distances


@pytest.fixture(scope="module")
def reid_path(tmp_path_factory) -> Path:
    return write_reid_checkpoint(tmp_path_factory.mktemp("reid") / "tiny_reid.safetensors")


@pytest.fixture(scope="module")
def index(reid_path) -> rx.GalleryIndex:
    torch.set_num_threads(1)
    return rx.GalleryIndex(ckpt.load(reid_path), max_gallery=14)


def test_index_keeps_whole_identities_and_their_queries(index):
    # 6 test identities, 2 cameras x 3 images: 2 queries and 4 gallery images per identity
    assert index.total_gallery == 24 and index.total_ids == 6 and index.capped
    assert len(index.gallery_indices) == 12 and index.num_queries == 6  # 3 identities fit in 14
    assert index.num_gallery_ids == 3
    assert set(index.query_pids.tolist()) == set(index.gallery_pids.tolist())
    assert index.images.shape == (18, 64, 64, 3) and index.images.dtype == np.uint8
    with pytest.raises(ValueError, match="index"):
        index.query(6)


def test_embeddings_match_the_library_and_are_kept_per_setting(index, reid_path):
    loaded = ckpt.load(reid_path)
    from arpviz.retrieval import load_retrieval_sets

    sets = load_retrieval_sets(loaded)
    sub = torch.utils.data.Subset
    q = embed(loaded.model, sub(sets.query, index.query_indices.tolist()), progress=False)
    g = embed(loaded.model, sub(sets.gallery, index.gallery_indices.tolist()), progress=False)
    calls = []
    trained = index.embeddings({}, progress=lambda f, text: calls.append(f))
    assert calls and calls[-1] == 1.0
    torch.testing.assert_close(trained.query, q, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(trained.gallery, g, atol=1e-5, rtol=1e-5)
    expected = evaluate_ranking(pairwise_distances(q, g), index.query_pids, index.gallery_pids,
                                index.query_camids, index.gallery_camids)
    assert trained.metrics.mAP == pytest.approx(expected.mAP, abs=1e-6)
    assert index.embeddings({}) is trained and index.has({})
    # another k: new embeddings and boxes, computed once
    overrides = index.overrides({"conv4.local0": Knob(k=1.6, dsr=0.5)})
    assert set(overrides) == {"conv4.local0"} and overrides["conv4.local0"].k == 1.6
    assert index.overrides({"conv4.local0": Knob(k=0.7, dsr=0.5)}) == {}  # the trained k
    moved = index.embeddings(overrides)
    assert index.embeddings(overrides) is moved
    assert not torch.allclose(moved.gallery, trained.gallery)
    boxes = moved.gallery_boxes["conv4.local0"]
    assert boxes.shape == (12, 4) and (boxes >= 0).all() and (boxes <= 64).all()
    area = lambda b: ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).mean()  # noqa: E731
    assert area(boxes) > area(trained.gallery_boxes["conv4.local0"])  # larger k, larger crops


def test_search_ranks_one_query_with_its_matches(index):
    trained = index.embeddings({})
    view = index.search(index.query(0), {}, trained)
    ranking = view.ranking
    assert len(ranking.indices) == 10 and view.top_images.shape == (10, 64, 64, 3)
    np.testing.assert_array_equal(view.top_pids == view.query.pid, ranking.matches)
    assert ranking.num_matches == 2 and ranking.excluded == 2  # 3 images per camera, 1 query
    assert ranking.ap is not None and 1 <= ranking.first_match <= 10
    assert view.top_boxes["conv4.local0"].shape == (10, 4)
    x1, y1, x2, y2 = view.query_boxes["conv4.local0"]
    assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
    np.testing.assert_allclose(view.query_boxes["conv4.local0"],
                               trained.query_boxes["conv4.local0"][0], atol=1e-4)


def test_upload_query_is_an_unknown_identity(index):
    buffer = io.BytesIO()
    Image.fromarray(np.full((40, 90, 3), 120, np.uint8)).save(buffer, format="PNG")
    query = rx.upload_query(buffer.getvalue(), index.meta, "grey.png")
    assert query.image.shape == (64, 64, 3) and query.tensor.shape == (1, 3, 64, 64)
    view = index.search(query, {}, index.embeddings({}))
    assert view.ranking.ap is None and not view.ranking.matches.any()
    with pytest.raises(ValueError, match="bad.png"):
        rx.upload_query(b"not an image", index.meta, "bad.png")
    assert query.notes == ()
    tiny = io.BytesIO()
    Image.new("LA", (2, 2)).save(tiny, format="PNG")
    notes = rx.upload_query(tiny.getvalue(), index.meta, "tiny.png").notes
    assert any("transparent" in n for n in notes), notes
    assert any(n.startswith("tiny image") for n in notes), notes


def test_figures_draw_crops_inside_the_tiles_and_frame_matches(index):
    view = index.search(index.query(1), {}, index.embeddings({}))
    fig = rfig.results_figure(view, cols=5)
    names = [t.name for t in fig.data]
    assert view.stage_labels == {"conv4.local0": "Conv4 local 0 (ARP)"}
    assert names == ["probes", "Conv4 local 0 (ARP) crop", "true match (the query's identity)"]
    frames = fig.data[2]
    assert sum(x is None for x in frames.x) == int(view.ranking.matches.sum())
    width = fig.layout.xaxis.range[1]
    crop = fig.data[1]
    xs = [x for x in crop.x if x is not None]
    assert len(xs) == 50 and 0 <= min(xs) and max(xs) <= width
    texts = [a.text for a in fig.layout.annotations]
    assert texts[0].startswith("1. ") and sum("✓" in t for t in texts) == view.ranking.matches.sum()
    q = rfig.query_figure(view)
    assert [t.name for t in q.data] == ["probes", "Conv4 local 0 (ARP) crop"]
    assert q.layout.showlegend  # the crop is named even when it is the only one
    # switched to RP live: the crop is named by the mode it ran with
    overrides = index.overrides({"conv4.local0": Knob(dsr=0.5, mode="rp")})
    rp = index.search(index.query(1), overrides, index.embeddings(overrides))
    assert rp.stage_labels == {"conv4.local0": "Conv4 local 0 (RP)"}
    assert rfig.query_figure(rp).data[1].name == "Conv4 local 0 (RP) crop"


def test_reid_checkpoints_reads_headers_only(reid_path, tmp_path):
    from helpers import write_checkpoint

    classifier = write_checkpoint(tmp_path / "cls.safetensors", epochs=1, probes=(0,))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    found = rx.reid_checkpoints([classifier, broken, reid_path, tmp_path / "missing.safetensors"])
    assert [path for path, _ in found] == [reid_path]
    assert found[0][1].config.conv4 == "arp" and rx.is_reid_checkpoint(found[0][1])
    assert rx.reid_checkpoints([]) == []


def test_gallery_cap_env(monkeypatch):
    monkeypatch.setenv("ARPVIZ_RETRIEVAL_GALLERY", "40")
    assert rx.gallery_cap() == 40
    monkeypatch.setenv("ARPVIZ_RETRIEVAL_GALLERY", "zero")
    assert rx.gallery_cap() == rx.MAX_GALLERY


def test_not_a_reid_checkpoint_is_refused(tmp_path):
    from helpers import write_checkpoint

    path = write_checkpoint(tmp_path / "cls.safetensors", epochs=1, probes=(0,))
    loaded = ckpt.load(path)
    assert not rx.is_reid_checkpoint(loaded.meta)
    with pytest.raises(ValueError, match="re-ID"):
        rx.GalleryIndex(loaded)


def test_training_record_of_a_reid_run(reid_path):
    record = catalog.load_record(reid_path)
    assert record.is_reid
    cols = catalog.metric_columns(record.meta)
    assert cols["mAP"] == [10.0, 20.0] and cols["rank1"] == [12.0, 24.0]
    fig = hfig.learning_curves([record], epoch=2)
    names = [t.name for t in fig.data]
    assert "tiny_reid: test mAP %" in names and "tiny_reid: test rank-1 %" in names
    assert "mAP" in fig.layout.annotations[1].text
    images = np.zeros((3, 64, 64, 3), np.uint8)
    probe = hfig.probe_figure(images, record, 2)
    texts = [a.text for a in probe.layout.annotations]
    assert texts[0].startswith("#0 id ") and not any("✗" in t or "✓" in t for t in texts)


def test_a_strided_model_ranks_without_crops(tmp_path):
    path = write_reid_checkpoint(tmp_path / "stride.safetensors", "stride", epochs=1)
    index = rx.GalleryIndex(ckpt.load(path), max_gallery=8)
    assert index.overrides({}) == {}
    view = index.search(index.query(0), {}, index.embeddings({}))
    assert view.query_boxes == {} and view.top_boxes == {}
    assert len(view.ranking.indices) == 8 - view.ranking.excluded == 6
    assert [t.name for t in rfig.query_figure(view).data] == ["probes"]
    assert not any("crop" in t.name for t in rfig.results_figure(view).data)
