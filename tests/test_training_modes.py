"""The Training page and its figures on every kind of run: ARP-FG and ARP-FG peak (beyond the
paper), RP with a fixed crop, a run without any pooled stage, and a strided re-ID run.

Nothing here may assume that a stage pools by RP, ARP or STN only: names come from
:func:`arpviz.models.stages.stage_label` with the run's mode, and runs without crops still show
their curves and predictions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from helpers import rewrite_checkpoint, write_checkpoint, write_reid_checkpoint
from streamlit.testing.v1 import AppTest

from arpviz.explorer import catalog, inputs
from arpviz.explorer.figures import history as figures

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "training.py")
TIMEOUT = 180
CLASSIFIERS = ["run_arpfg", "run_arpfg_peak", "run_rp70", "run_stride"]


def _all_strided(raw: dict) -> None:
    raw["config"].update(conv3="stride", conv4="stride")


def _no_stage_tensors(tensors: dict) -> None:
    for key in [k for k in tensors if k.startswith("snap.") and ".conv" in k]:
        del tensors[key]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One checkpoint per kind of run (tiny, untrained, made-up history)."""
    path = tmp_path_factory.mktemp("mode_runs")
    scratch = tmp_path_factory.mktemp("mode_scratch")
    write_checkpoint(path / "run_arpfg.safetensors", "arpfg")
    write_checkpoint(path / "run_arpfg_peak.safetensors", "arpfg_peak", seed=1)
    rewrite_checkpoint(write_checkpoint(scratch / "rp.safetensors", "rp", seed=2),
                       path / "run_rp70.safetensors",
                       meta=lambda raw: raw["config"].update(conv4_crop=0.7))
    rewrite_checkpoint(write_checkpoint(scratch / "arp.safetensors", "arp", seed=3),
                       path / "run_stride.safetensors", meta=_all_strided,
                       tensors=_no_stage_tensors)
    write_reid_checkpoint(path / "reid_stride.safetensors", "stride", epochs=2)
    return path


@pytest.fixture(scope="module")
def records(folder) -> dict[str, catalog.TrainingRecord]:
    return {p.stem: catalog.load_record(p) for p in sorted(folder.glob("*.safetensors"))}


def test_every_kind_of_run_is_named_by_its_modes(records):
    labels = {name: figures.run_label(r) for name, r in records.items()}
    assert labels["run_arpfg"] == "run_arpfg (tiny, 1 local branch, Conv3 ARP, Conv4 ARP-FG)"
    assert labels["run_arpfg_peak"].endswith("Conv3 ARP, Conv4 ARP-FG peak)")
    assert labels["run_rp70"].endswith("Conv3 ARP, Conv4 RP crop 0.7)")
    assert labels["run_stride"].endswith("Conv3 stride, Conv4 stride)")
    assert labels["reid_stride"].endswith("Conv3 stride, Conv4 stride)")
    assert figures.stage_title(records["run_arpfg_peak"], "conv4.local0") == \
        "Conv4 local 0 (ARP-FG peak)"
    assert figures.stage_mode(records["run_rp70"], "conv4.global") == "stride"
    pooled = [records[n] for n in ("run_arpfg", "run_rp70")]
    assert figures.shared_stage_title(pooled, "conv3") == "Conv3 (ARP)"
    assert figures.shared_stage_title(pooled, "conv4.local0") == "Conv4 local 0"
    # a strided run has no Conv3 crop: it does not take the mode out of the name
    assert figures.shared_stage_title([records["run_stride"], *pooled], "conv3") == "Conv3 (ARP)"


@pytest.mark.parametrize(("name", "mode"), [("run_arpfg", "ARP-FG"),
                                            ("run_arpfg_peak", "ARP-FG peak"),
                                            ("run_rp70", "RP")])
def test_figures_of_a_pooled_run(records, name, mode):
    record = records[name]
    images = inputs.probe_images(record.meta)
    probe = figures.probe_figure(images, record, 2)
    assert [t.name for t in probe.data[1:]] == ["Conv3 (ARP)", f"Conv4 local 0 ({mode})"]
    conf = figures.confidence_figure(record, 2, 0)
    assert conf.layout.annotations[1].text.startswith(f"Conv4 local 0 ({mode})<br>map ")
    rows = figures.stage_rows(record, 2, 0)
    assert [r["stage"] for r in rows] == ["Conv3 (ARP)", f"Conv4 local 0 ({mode})"]
    rates = figures.rates_figure([record])
    assert [t.name for t in rates.data if t.legend == "legend2"] == [
        "Conv3 (ARP)", f"Conv4 local 0 ({mode})"]


def test_rp_with_a_fixed_crop_keeps_its_crop_rate(records):
    """RP's fixed-size control crops 0.7 of the map whatever the image (the snapshot's rates)."""
    record = records["run_rp70"]
    rows = figures.stage_rows(record, 3, 1)
    rates = record.at(3).stages["conv4.local0"]["rates"][1].tolist()
    assert rows[1]["crop rate (h x w)"] == f"{rates[0]:.2f} x {rates[1]:.2f}"


def test_figures_of_a_run_without_pooled_stages(records):
    record = records["run_stride"]
    assert catalog.stage_names(record.at(2)) == ()
    images = inputs.probe_images(record.meta)
    probe = figures.probe_figure(images, record, 2)
    assert len(probe.data) == 1 and isinstance(probe.data[0], go.Image)  # no boxes
    assert len(probe.layout.annotations) == 3  # the predictions still show
    assert figures.stage_rows(record, 2, 0) == []
    with pytest.raises(ValueError, match="no pooled stage"):
        figures.confidence_figure(record, 2, 0)
    rates = figures.rates_figure([record])
    assert not [t for t in rates.data if t.x and t.x[0] is not None]
    curves = figures.learning_curves([record, records["reid_stride"]])
    names = {t.name for t in curves.data}
    assert {"run_stride: val top-1 %", "reid_stride: test mAP %"} <= names
    assert curves.layout.annotations[1].text == "top-1 / mAP / rank-1 (%)"


def _charts(at: AppTest) -> dict[str, dict]:
    return {c.proto.id.split("-", 2)[-1]: json.loads(c.proto.spec)
            for c in at.get("plotly_chart")}


@pytest.mark.slow
def test_training_page_on_every_kind_of_run(folder, monkeypatch):
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(folder))
    monkeypatch.delenv("ARPVIZ_CHECKPOINT_DIR", raising=False)
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    options = at.multiselect(key="train.runs").options  # as the page labels them
    assert sorted(o.split(" (")[0] for o in options) == sorted(CLASSIFIERS + ["reid_stride"])
    assert "run_rp70 (tiny, 1 local branch, Conv3 ARP, Conv4 RP crop 0.7)" in options
    at.multiselect(key="train.runs").set_value(CLASSIFIERS).run()
    assert not at.exception, [e.value for e in at.exception]
    charts = _charts(at)
    assert [k for k in charts if k.startswith("train_probe_fig")] == [
        f"train_probe_fig_{i}" for i in range(4)]
    assert [t["name"] for t in charts["train_probe_fig_1"]["data"][1:]] == [
        "Conv3 (ARP)", "Conv4 local 0 (ARP-FG peak)"]
    assert len(charts["train_probe_fig_3"]["data"]) == 1  # the strided run: no boxes
    # confidence maps of the three pooled runs only, and no learning curves twice
    assert sorted(k for k in charts if k.startswith("train_conf")) == [
        "train_conf_0", "train_conf_1", "train_conf_2"]
    assert at.multiselect(key="train.stages").options == ["Conv3 (ARP)", "Conv4 local 0"]
    assert any("downsamples by stride" in c.value for c in at.caption)
    at.multiselect(key="train.runs").set_value(["reid_stride"]).run()
    assert not at.exception, [e.value for e in at.exception]
    charts = _charts(at)
    assert "train_curves" in charts and "train_probe_fig_0" in charts
    assert "train_conf_0" not in charts and "train_rates" not in charts
    assert at.multiselect(key="train.stages").disabled
    texts = [a["text"] for a in charts["train_probe_fig_0"]["layout"]["annotations"]]
    assert texts and all(" id " in t for t in texts)
    assert np.isfinite([v for v in charts["train_curves"]["data"][0]["y"]]).all()
