"""arpviz.explorer.adaptivity and its figures: plot values, the verdict, caching, fallbacks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import rewrite_checkpoint, write_checkpoint

from arpviz.analysis import AdaptivityReport, checkpoint_digest
from arpviz.checkpoint import read_meta
from arpviz.explorer import adaptivity as ad
from arpviz.explorer.figures import adaptivity as figures


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("adapt")
    return write_checkpoint(folder / "tiny_arp.safetensors", input_size=64, split_size=12)


@pytest.fixture(scope="module")
def report(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> AdaptivityReport:
    cache = tmp_path_factory.mktemp("cache")
    return ad.run_report(ckpt, "val", 10, 1.0, cache_dir=cache)


def _with_corr(report: AdaptivityReport, stage: str, height: tuple, width: tuple):
    """A copy of ``report`` whose stage's Spearman (value, lo, hi) are the given ones."""
    def corr(value, lo, hi):
        return {"n": 10, "pearson": value, "spearman": value,
                "ci95": {"pearson": [lo, hi], "spearman": [lo, hi]}}

    st = report.stages[stage]
    rvo = dict(st.rate_vs_object, height=corr(*height), width=corr(*width))
    # a rate that moves the crop by several cells (else the verdict says it is constant)
    rate = {"mean": 0.7, "sd": 0.1, "min": 0.5, "max": 0.9}
    stages = dict(report.stages)
    stages[stage] = dataclasses.replace(st, rate_vs_object=rvo, rate={"h": rate, "w": rate})
    return dataclasses.replace(report, stages=stages)


def test_rate_points_are_the_report_columns(report: AdaptivityReport) -> None:
    for axis, (rate_col, size_col, spread_col, _) in ad.AXES.items():
        points = ad.rate_points(report, "conv4.local0", axis)
        columns = report.per_image["stages"]["conv4.local0"]
        assert points.index.tolist() == list(range(10))
        np.testing.assert_allclose(points.rate, columns[rate_col])
        np.testing.assert_allclose(points.size, columns[size_col])
        np.testing.assert_allclose(points.spread, columns[spread_col])
        assert points.correct.tolist() == report.per_image["correct"]
    with pytest.raises(ValueError, match="stage"):
        ad.rate_points(report, "conv5")
    with pytest.raises(ValueError, match="axis"):
        ad.rate_points(report, "conv3", "depth")


def test_scatter_carries_the_image_index_and_picking_reads_it(report) -> None:
    points = ad.rate_points(report, "conv3", "width")
    fig = figures.rate_scatter(points, ["a"] * 6)
    markers = [t for t in fig.data if t.mode == "markers"]
    assert sum(len(t.x) for t in markers) == 10
    indices = sorted(int(c[0]) for t in markers for c in t.customdata)
    assert indices == list(range(10))
    assert ad.picked_index([{"customdata": [7, 0.1], "point_index": 0}]) == 7
    assert ad.picked_index([{"customdata": 3}]) == 3
    # as Streamlit 1.67 sends a 2-D customdata row (seen in the browser)
    assert ad.picked_index([{"curve_number": 1, "customdata": {"0": 19, "1": 0.04}}]) == 19
    assert ad.picked_index([]) is None and ad.picked_index([{"x": 1}]) is None


def test_verdict_follows_the_numbers(report: AdaptivityReport) -> None:
    stage = "conv4.local0"
    up_report = _with_corr(report, stage, (0.5, 0.3, 0.7), (0.4, 0.1, 0.6))
    up = ad.verdict(up_report, stage)
    assert "**follows the object**" in up and "+0.50 [+0.30, +0.70]" in up
    down = ad.verdict(_with_corr(report, stage, (-0.3, -0.5, -0.1), (-0.2, -0.3, -0.1)), stage)
    assert "it moves **against** it: bigger objects get smaller crops" in down
    one = ad.verdict(_with_corr(report, stage, (-0.1, -0.3, 0.1), (-0.3, -0.5, -0.1)), stage)
    assert "along its width it moves **against** it" in one
    flat = ad.verdict(_with_corr(report, stage, (0.1, -0.2, 0.4), (-0.1, -0.3, 0.2)), stage)
    assert "not** follow the object detectably" in flat
    mixed = ad.verdict(_with_corr(report, stage, (0.5, 0.3, 0.7), (-0.4, -0.6, -0.2)), stage)
    assert "one axis and moves against it" in mixed
    assert "0.700 ± 0.100" in up
    no_truth = dataclasses.replace(up_report, stages={stage: dataclasses.replace(
        up_report.stages[stage], rate_vs_object=None)})
    assert "cannot be said" in ad.verdict(no_truth, stage)


def test_verdict_says_when_a_rate_is_constant(report: AdaptivityReport) -> None:
    stage = "conv4.local0"
    varied = _with_corr(report, stage, (-0.3, -0.5, -0.1), (-0.2, -0.3, -0.1))
    base = varied.stages[stage]

    def with_rate(lo: float, hi: float, map_size) -> str:
        rate = {"mean": (lo + hi) / 2, "sd": (hi - lo) / 4, "min": lo, "max": hi}
        changed = dataclasses.replace(base, rate={"h": rate, "w": rate}, map_size=map_size)
        return ad.verdict(dataclasses.replace(varied, stages={stage: changed}), stage)

    # 0.685 to 0.718 of a 16-cell map: 10.96 to 11.49 cells, the crop never moves a cell
    flat = with_rate(0.685, 0.718, (16, 16))
    assert "**constant in effect**" in flat and "10.96" not in flat and "11.0 to 11.5" in flat
    assert "against" not in flat
    moving = with_rate(0.5, 0.9, (16, 16))
    assert "**constant in effect**" not in moving and "against" in moving
    old = with_rate(0.999, 0.9995, None)  # an older report without the map size: the SD
    assert "**constant in effect**" in old
    rp = dataclasses.replace(base, mode="rp")
    assert "fixed size by design" in ad.verdict(dataclasses.replace(varied, stages={stage: rp}),
                                                stage)


def test_tables_curves_and_figures(report: AdaptivityReport) -> None:
    rows = ad.correlation_rows(report, "conv3")
    assert [r["measure"] for r in rows][:2] == ["rate_h ~ object height", "rate_w ~ object width"]
    expected = report.stages["conv3"].rate_vs_object["height"]["spearman"]
    assert rows[0]["spearman"] == f"{expected:+.2f}"  # one precision for the column
    curves = ad.k_curves({"a": report, "b": report})
    assert len(curves) == 4  # two ARP stages, two reports
    assert curves[0].k == tuple(report.stages["conv3"].k_curve["k"])
    fig = figures.k_curves_figure(curves)
    assert len([t for t in fig.data if t.mode == "lines+markers"]) == 4
    bars = figures.placement_figure(report)
    assert len(bars.data) == 2
    assert list(bars.data[0].y) == [report.stages["conv3"].placement[p] for p in ad.PLACEMENTS]
    contrast = {n: report.per_image["stages"][n]["contrast"] for n in report.stages}
    assert len(figures.contrast_histogram(contrast).data) == 2


def test_run_report_caches_on_disk(ckpt: Path, tmp_path: Path) -> None:
    calls: list[float] = []
    first = ad.run_report(ckpt, "val", 4, 2.0, cache_dir=tmp_path,
                          progress=lambda f, m: calls.append(f))
    assert calls and calls[-1] == 1.0 and first.tau == 2.0
    assert len(list(tmp_path.glob("*.json"))) == 1
    calls.clear()
    again = ad.run_report(ckpt, "val", 4, 2.0, cache_dir=tmp_path,
                          progress=lambda f, m: calls.append(f))
    assert not calls and again.to_dict() == first.to_dict()  # read from the cache


def test_precomputed_reports_match_by_digest(ckpt: Path, report, tmp_path: Path) -> None:
    data = report.to_dict()
    data["sha256"] = checkpoint_digest(ckpt)
    (tmp_path / "mine.analysis.json").write_text(json.dumps(data))
    (tmp_path / "other.analysis.json").write_text(json.dumps(dict(data, sha256="0" * 64)))
    (tmp_path / "broken.analysis.json").write_text("{not json")
    found = ad.precomputed_reports(ckpt, tmp_path)
    assert [p.name for p, _ in found] == ["mine.analysis.json"]
    assert found[0][1].count == report.count


def test_availability(ckpt: Path, tmp_path: Path) -> None:
    assert ad.unavailable_reason(read_meta(ckpt)) is None
    reid = rewrite_checkpoint(ckpt, tmp_path / "reid.safetensors",
                              meta=lambda raw: raw["dataset"].update(name="synthreid"))
    stride = write_checkpoint(tmp_path / "stride.safetensors", "stride", input_size=64,
                              split_size=12)
    found = ad.k_curve_candidates([ckpt, reid, stride, tmp_path / "missing.safetensors"])
    assert found[str(ckpt)] is None
    assert "mAP" in found[str(reid)]
    assert found[str(stride)] is None  # Conv3 is still ARP
    assert found[str(tmp_path / "missing.safetensors")].startswith("unreadable")


def test_wide_comparison_and_its_figure(report: AdaptivityReport, tmp_path: Path) -> None:
    import json

    ideal = {rule: {"k": k, "rate": {"h": {"mean": 0.3, "sd": 0.1}},
                    "rate_vs_object": {"height": {"spearman": 0.98,
                                                  "ci95": {"spearman": [0.97, 0.99]}}}}
             for rule, k in (("arp", 0.7), ("arpfg", 1.5))}
    stage = "conv4.local0"
    columns = dict(report.per_image["stages"][stage])
    n = len(columns["rate_h"])
    columns["ideal_arp_h"] = [0.68] * n
    columns["ideal_arpfg_h"] = list(columns["object_h"])
    per_image = {**report.per_image, "stages": {**report.per_image["stages"], stage: columns}}
    with_ideal = dataclasses.replace(report, per_image=per_image, stages={
        **report.stages, stage: dataclasses.replace(report.stages[stage], ideal=ideal)})
    (tmp_path / "arp_seed0.analysis.json").write_text(report.to_json())
    (tmp_path / "zoom_seed0.analysis.json").write_text(with_ideal.to_json())
    (tmp_path / "rp_seed0.analysis.json").write_text("{not json")
    found = ad.wide_comparison(folder=tmp_path)
    assert list(found) == ["ARP (the paper)", "learnt zoom (beyond the paper)"]  # broken: skipped
    rows = ad.comparison_rows(found)
    assert [r.label for r in rows][:2] == list(found)
    assert rows[2].label.startswith("ideal map: the paper's ARP") and rows[2].rate[0] == 0.68
    assert rows[3].label == "ideal map: ARP-FG on the mask (k 1.5)"
    np.testing.assert_allclose(rows[3].rate, rows[3].size)
    fig = figures.comparison_figure(rows)
    names = [t.name for t in fig.data]
    assert "rate = object size" in names and "DSR 0.5 (ARP's lower bound)" in names
    assert json.loads(fig.to_json())
