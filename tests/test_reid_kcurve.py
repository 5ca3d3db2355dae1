"""The re-ID k curve (mAP and rank-1 against an ARP stage's k) of the Adaptivity page, on a tiny
untrained re-ID checkpoint: values, the trained-k point against retrieval_metrics, caching,
the candidates and the figure."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import open_page, write_reid_checkpoint

from arpviz import checkpoint as ckpt
from arpviz.analysis import ReIDKCurve, reid_k_curve
from arpviz.data.synthreid import SynthReIDConfig
from arpviz.explorer import adaptivity as ad
from arpviz.explorer.figures import adaptivity as figures
from arpviz.retrieval import load_retrieval_sets, retrieval_metrics

SMALL = SynthReIDConfig(train_ids=4, test_ids=4, num_cameras=2, cameras_per_id=2,
                        images_per_camera=2, image_size=48)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("reidk")
    write_reid_checkpoint(path / "arp.safetensors", epochs=1, config=SMALL)
    write_reid_checkpoint(path / "stride.safetensors", "stride", epochs=1, config=SMALL)
    return path


def test_reid_k_curve_values_and_trained_point(small: Path, tmp_path: Path) -> None:
    path = small / "arp.safetensors"
    loaded = ckpt.load(path)
    trained = loaded.meta.config.conv4_k
    seen = []
    curve = reid_k_curve(path, "conv4.local0", (0.3, trained), cache_dir=tmp_path,
                         progress=lambda f, m: seen.append(f))
    assert isinstance(curve, ReIDKCurve) and curve.k == (0.3, trained)
    assert curve.trained_k == trained and seen == [0.5, 1.0]
    assert all(0 <= v <= 100 for v in curve.mAP + curve.rank1)
    sets = load_retrieval_sets(loaded)
    plain = retrieval_metrics(loaded.model, sets.query, sets.gallery, progress=False)
    assert curve.mAP[1] == pytest.approx(plain.mAP, abs=1e-4)
    assert curve.rank1[1] == pytest.approx(plain.rank1)
    assert curve.queries == plain.queries and curve.gallery == plain.gallery
    # cached per digest, stage and k values: read back without computing
    (cached,) = tmp_path.glob("reidk_*.json")
    again = reid_k_curve(path, "conv4.local0", (0.3, trained), cache_dir=tmp_path,
                         progress=lambda f, m: pytest.fail("recomputed"))
    assert again == curve
    with pytest.raises(ValueError, match="stage"):
        reid_k_curve(loaded, "conv3", (0.5,))


def test_candidates_strided_and_figure(small: Path, tmp_path: Path) -> None:
    arp, stride = str(small / "arp.safetensors"), str(small / "stride.safetensors")
    found = ad.k_curve_candidates([arp, stride], "mAP")
    assert found[arp] is None and "no ARP stage" in found[stride]
    assert "mAP" in ad.k_curve_candidates([arp])[arp]  # not a top-1 curve
    assert ad.reid_k_curves(stride, cache_dir=tmp_path) == []
    (curve,) = ad.reid_k_curves(arp, (0.5, 1.0), cache_dir=tmp_path)
    assert curve.stage == "conv4.local0"
    alone = figures.k_curves_figure([], {"arp": [curve]})
    assert alone.layout.yaxis.title.text == "mAP %"
    assert [t.name for t in alone.data] == ["arp · Conv4 local 0: mAP",
                                             "arp · Conv4 local 0: rank-1"]
    top1 = ad.KCurve("cls", "conv4.local0", (0.5, 1.0), (10.0, 20.0), 1.0)
    both = figures.k_curves_figure([top1], {"arp": [curve]})
    assert both.layout.yaxis.title.text == "top-1 (%)"
    assert both.layout.yaxis2.title.text.startswith("mAP %")


@pytest.mark.slow  # the app under AppTest
def test_adaptivity_page_on_a_reid_checkpoint(reid_app, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ARPVIZ_CACHE", str(tmp_path))
    at = open_page("pages/adaptivity.py", "tiny_reid")
    assert not at.error, [e.value for e in at.error]
    assert any("classification checkpoint" in str(i.value) for i in at.info)
    shown = at.session_state["arpviz_state"].shown
    (curve,) = shown.reid_curves[str(reid_app / "tiny_reid.safetensors")]
    assert curve.stage == "conv4.local0" and all(0 <= v <= 100 for v in curve.mAP)
    assert len(at.get("plotly_chart")) == 1
    assert list((tmp_path / "analysis").glob("reidk_*.json"))  # cached on disk


@pytest.mark.slow  # the app under AppTest
def test_classification_page_adds_a_reid_mAP_subplot(reid_app, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ARPVIZ_CACHE", str(tmp_path))
    at = open_page("pages/adaptivity.py", "tiny_classifier")
    at.select_slider(key="adapt.limit").set_value(16).run()
    reid = str(reid_app / "tiny_reid.safetensors")
    at.multiselect(key="adapt.reid_others").set_value([reid]).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = at.session_state["arpviz_state"].shown
    assert shown.report.count == 12
    assert reid in shown.reid_curves
    figure = next(c for c in at.get("plotly_chart") if "mAP" in c.proto.spec)
    assert '"top-1 (%)"' in figure.proto.spec and "mAP %" in figure.proto.spec
