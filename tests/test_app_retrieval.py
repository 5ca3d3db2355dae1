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
from helpers import open_page
from PIL import Image

pytestmark = pytest.mark.slow  # the app under AppTest: seconds per test


def test_retrieval_page_ranks_and_reranks_live(reid_app):
    at = open_page("pages/retrieval.py", "tiny_reid")
    view = at.session_state["retrieval_view"]
    trained, current = at.session_state["retrieval_metrics"]
    assert trained is current and trained.gallery == 12 and trained.queries == 6
    assert len(view.ranking.indices) == 10 and view.query.pid >= 0
    np.testing.assert_array_equal(view.top_pids == view.query.pid, view.ranking.matches)
    assert len(at.get("plotly_chart")) == 2
    assert any("capped" in c.value or "first 3 of 6 identities" in c.value for c in at.caption)
    assert [m.label for m in at.metric] == ["AP of this query", "first true match",
                                            "split mAP", "split rank-1"]
    # another query, then another k: the query re-embedded, the split once for the new k
    at.number_input(key="retrieval_query").set_value(3).run()
    assert not at.exception
    assert at.session_state["retrieval_view"].query.name == "query #3"
    at.slider(key="retrieval_k:conv4.local0").set_value(1.5).run()
    assert not at.exception
    moved = at.session_state["retrieval_view"]
    trained2, current2 = at.session_state["retrieval_metrics"]
    assert moved.setting and moved.setting != view.setting
    assert trained2.mAP == pytest.approx(trained.mAP) and current2 is not trained2
    boxes = moved.top_boxes["conv4.local0"]
    assert (boxes >= 0).all() and (boxes <= 64).all()
    assert at.metric[2].delta is not None  # mAP against the trained setting
    at.button(key="retrieval_reset").click().run()
    assert not at.exception and not at.session_state["retrieval_view"].setting


def test_retrieval_page_with_an_upload(reid_app):
    at = open_page("pages/retrieval.py", "tiny_reid")
    at.radio(key="retrieval_source").set_value("Upload an image").run()
    assert not at.exception
    assert any("Upload an image" in i.value for i in at.info)
    at.file_uploader(key="retrieval_upload").set_value(("grey.png", _png(), "image/png")).run()
    assert not at.exception
    view = at.session_state["retrieval_view"]
    assert view.query.pid == -1 and view.ranking.ap is None and not view.ranking.matches.any()
    assert at.metric[0].value == "-"
    at.file_uploader(key="retrieval_upload").set_value(("bad.png", b"nope", "image/png")).run()
    assert not at.exception and any("bad.png" in e.value for e in at.error)


def test_retrieval_page_asks_for_a_reid_checkpoint(reid_app):
    at = open_page("pages/retrieval.py", "tiny_classifier")
    text = " ".join(i.value for i in at.info)
    assert "needs a re-ID checkpoint" in text and "synthreid_msgn_arp.safetensors" in text
    assert "retrieval_view" not in at.session_state


def test_training_page_on_a_reid_run(reid_app):
    at = open_page("pages/training.py", "tiny_reid")
    assert at.multiselect(key="train_runs").value == ["tiny_reid"]
    assert at.select_slider(key="train_epoch").value == 3
    assert not at.exception
    assert any(c.value.startswith("Re-ID runs (tiny_reid)") for c in at.caption)
    curves = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [t.get("name") for t in curves["data"]]
    assert "tiny_reid: test mAP %" in names and "tiny_reid: test rank-1 %" in names
    probes = json.loads(at.get("plotly_chart")[1].proto.spec)
    texts = [a["text"] for a in probes["layout"]["annotations"]]
    assert texts and all(t.startswith("#") and " id " in t for t in texts)
    assert not any("Add **" in i.value for i in at.info)  # no ARP/STN offer for re-ID runs
    at.select_slider(key="train_epoch").set_value(1).run()
    assert not at.exception
    assert any(c.value.startswith("training boxes of tiny_reid, epoch 1") for c in at.caption)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((50, 70, 3), 90, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
