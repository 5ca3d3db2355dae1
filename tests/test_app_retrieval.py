"""The Retrieval page, and the Training page on a re-ID run, under Streamlit's AppTest.

The app runs with the bundled folder pointed at a folder of tiny untrained checkpoints (a
re-ID one from :func:`helpers.write_reid_checkpoint` and a SynthBirds
classifier), and the gallery capped at 14 images (``ARPVIZ_RETRIEVAL_GALLERY``).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from app_helpers import image_title, rendered, shown, switch, texts, upload
from helpers import open_page, run_app
from PIL import Image

pytestmark = pytest.mark.slow  # the app under AppTest: seconds per test


def test_retrieval_page_ranks_and_reranks_live(reid_app):
    at = open_page("pages/retrieval.py", "tiny_reid")
    view = shown(at).retrieval
    trained, current = shown(at).retrieval_metrics
    assert trained is current and trained.gallery == 12 and trained.queries == 6
    assert len(view.ranking.indices) == 10 and view.query.pid >= 0
    np.testing.assert_array_equal(view.top_pids == view.query.pid, view.ranking.matches)
    assert len(at.get("plotly_chart")) == 2
    assert any("capped" in c or "first 3 of 6 identities" in c for c in texts(at.caption))
    assert [m.label for m in at.metric] == ["AP of this query", "first true match",
                                            "split mAP", "split rank-1"]
    # another query, then another k: the query re-embedded, the split once for the new k
    at.number_input(key="retrieval.query").set_value(3).run()
    assert not at.exception
    assert shown(at).retrieval.query.name == "query #3"
    at.slider(key="k:conv4.local0").set_value(1.5).run()
    assert not at.exception
    moved = shown(at).retrieval
    trained2, current2 = shown(at).retrieval_metrics
    assert moved.setting and moved.setting != view.setting
    assert trained2.mAP == pytest.approx(trained.mAP) and current2 is not trained2
    boxes = moved.top_boxes["conv4.local0"]
    assert (boxes >= 0).all() and (boxes <= 64).all()
    assert at.metric[2].delta is not None  # mAP against the trained setting
    at.button(key="reset").click().run()
    assert not at.exception and not shown(at).retrieval.setting


def test_retrieval_page_with_an_upload(reid_app):
    at = open_page("pages/retrieval.py", "tiny_reid")
    at.radio(key="retrieval.source").set_value("upload").run()
    assert not at.exception
    assert any("Upload an image" in i for i in texts(at.info))
    at.file_uploader(key="image.upload").set_value(("grey.png", _png(), "image/png")).run()
    assert not at.exception
    view = shown(at).retrieval
    assert view.query.pid == -1 and view.ranking.ap is None and not view.ranking.matches.any()
    assert at.metric[0].value == "-"
    assert any("Query: **grey.png** (your photo)" in c for c in texts(at.caption))
    at.file_uploader(key="image.upload").set_value(("bad.png", b"nope", "image/png")).run()
    assert not at.exception and any("bad.png" in e for e in texts(at.error))
    # a file that cannot be used replaces nothing: the photo stays the query
    assert shown(at).retrieval.query.name == view.query.name
    assert any("Query: **grey.png** (your photo)" in c for c in texts(at.caption))


def test_retrieval_page_offers_the_reid_checkpoints_in_one_click(reid_app):
    at = open_page("pages/retrieval.py", "tiny_classifier")
    text = " ".join(texts(at.info))
    assert "needs a re-ID checkpoint" in text and "tiny_classifier" in text
    assert shown(at).retrieval is None
    button = at.button(key="retrieval_open_0")  # the one re-ID checkpoint of the folder
    assert rendered(button.label) == "Open tiny_reid.safetensors (Conv3 stride, Conv4 ARP)"
    assert not button.disabled
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    # the sidebar switched to the re-ID checkpoint and the page now ranks the gallery
    assert at.selectbox(key="arpviz_checkpoint").value == str(reid_app / "tiny_reid.safetensors")
    assert shown(at).retrieval.query.pid >= 0
    assert not any("needs a re-ID checkpoint" in i for i in texts(at.info))


def test_retrieval_page_under_an_uploaded_classifier(reid_app):
    """An upload wins over the sidebar's list: the switch says so instead of doing nothing."""
    at = open_page("pages/retrieval.py", "tiny_classifier")
    data = (reid_app / "tiny_classifier.safetensors").read_bytes()
    at.sidebar.file_uploader(key="arpviz_ckpt_upload").set_value(
        ("mine.safetensors", data, "application/octet-stream")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("remove the upload" in w for w in texts(at.warning))
    assert at.button(key="retrieval_open_0").disabled


def test_retrieval_page_without_any_reid_checkpoint(reid_app, monkeypatch, tmp_path):
    import shutil

    shutil.copy(reid_app / "tiny_classifier.safetensors", tmp_path / "only.safetensors")
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(tmp_path))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_ROOTS", str(tmp_path))
    at = open_page("pages/retrieval.py", "only")
    text = " ".join(texts(at.info))
    assert "No re-ID checkpoint is listed" in text and "synthreid_msgn_arp.safetensors" in text
    assert not [b for b in at.button if b.key and b.key.startswith("retrieval_open")]


def test_training_page_on_a_reid_run(reid_app):
    at = open_page("pages/training.py", "tiny_reid")
    assert at.multiselect(key="train.runs").value == ["tiny_reid"]
    assert at.select_slider(key="train.epoch").value == 3
    assert not at.exception
    assert any("Re-ID runs (tiny_reid)" in c for c in texts(at.caption))
    curves = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [t.get("name") for t in curves["data"]]
    assert "tiny_reid: test mAP %" in names and "tiny_reid: test rank-1 %" in names
    probes = json.loads(at.get("plotly_chart")[1].proto.spec)
    titles = [a["text"] for a in probes["layout"]["annotations"]]
    assert titles and all(t.startswith("#") and " id " in t for t in titles)
    assert [t["name"] for t in probes["data"][1:]] == ["Conv4 local 0 (ARP)"]
    assert not any("Add **" in i for i in texts(at.info))  # no ARP/STN offer for re-ID runs
    at.select_slider(key="train.epoch").set_value(1).run()
    assert not at.exception
    assert "Probe images at epoch 1" in [h.value for h in at.subheader]


def test_a_photo_from_explore_is_the_query_on_a_reid_checkpoint(reid_app):
    """The photo uploaded on Explore stays chosen: a classifier's Retrieval page says so, and
    once a re-ID checkpoint is open it is offered as the query ("Your photo") with no second
    upload."""
    at = open_page("pages/explore.py", "tiny_classifier")
    upload(at, "grey.png", _png())
    assert image_title(at) == "grey.png, 70 x 50 px (your photo)"
    switch(at, "retrieval")
    text = " ".join(texts(at.info))
    assert "needs a re-ID checkpoint" in text
    assert "Your photo grey.png stays chosen for the other pages" in text
    at.button(key="retrieval_open_0").click()
    run_app(at)
    assert at.selectbox(key="arpviz_checkpoint").value == str(reid_app / "tiny_reid.safetensors")
    source = at.radio(key="retrieval.source")
    assert "Your photo" in source.options and source.value == "split"
    assert shown(at).retrieval.query.pid >= 0  # a query of the split first
    source.set_value("upload")
    run_app(at)
    uploader = at.main.get("file_uploader")  # the photo is there: "upload another"
    assert [u.proto.label for u in uploader] == ["Upload another image"]
    assert any("Query: **grey.png** (your photo)" in c for c in texts(at.caption))
    view = shown(at).retrieval
    assert view.query.pid == -1 and view.ranking.ap is None and len(view.ranking.indices) == 10
    # and it is still Explore's image on the classifier
    box = at.selectbox(key="arpviz_checkpoint")
    box.select(next(o for o in box.options if "tiny_classifier" in o))
    run_app(at)
    switch(at, "explore")
    assert image_title(at) == "grey.png, 70 x 50 px (your photo)"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((50, 70, 3), 90, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
