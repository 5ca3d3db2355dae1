"""Paired statistics of runs (arpviz.analysis.paired): Student's t and McNemar's exact test
against tabulated values, the loader of committed evaluations, and the tables' wording."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from arpviz.analysis import paired


@pytest.mark.parametrize(("df", "expected"), [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776),
                                              (9, 2.262), (30, 2.042)])
def test_t_quantiles_match_the_tables(df: int, expected: float) -> None:
    assert paired.student_t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)


def test_t_cdf_is_symmetric_and_matches_a_known_value() -> None:
    assert paired.student_t_cdf(2.0, 5) == pytest.approx(0.949030, abs=1e-6)
    assert paired.student_t_cdf(-2.0, 5) == pytest.approx(1 - 0.949030, abs=1e-6)
    assert paired.student_t_cdf(0.0, 7) == pytest.approx(0.5)


def test_paired_t() -> None:
    result = paired.paired_t([1.0, 2.0, 3.0, 4.0])
    assert result["mean"] == 2.5 and result["n"] == 4
    assert result["low"] == pytest.approx(2.5 - 3.1824 * 1.290994 / 2, abs=1e-3)
    assert result["p"] == pytest.approx(0.0305, abs=1e-4)
    one = paired.paired_t([3.0])
    assert one["low"] is None and one["p"] is None
    flat = paired.paired_t([2.0, 2.0, 2.0])  # no spread: no interval, not "infinitely sure"
    assert flat["mean"] == 2.0 and flat["low"] is None and flat["high"] is None
    assert flat["p"] is None


def test_mcnemar_exact() -> None:
    first = [1, 1, 1, 0, 0, 1]
    second = [0, 0, 0, 0, 1, 1]
    assert paired.mcnemar(first, second) == (3, 1, 0.625)
    assert paired.mcnemar([1, 0], [1, 0]) == (0, 0, 1.0)
    # 20 discordant images all one way: p = 2 / 2**20
    b, c, p = paired.mcnemar([1] * 20, [0] * 20)
    assert (b, c) == (20, 0) and p == pytest.approx(2 / 2**20)
    with pytest.raises(ValueError, match="same images"):
        paired.mcnemar([1, 0], [1])


def _write(folder: Path, row: str, seed: int, correct: list[int]) -> None:
    labels = list(range(len(correct)))
    predicted = [label if hit else label + 1 for label, hit in zip(labels, correct, strict=True)]
    top1 = 100 * sum(correct) / len(correct)
    (folder / f"{row}_seed{seed}.eval.json").write_text(json.dumps(
        {"split": "test", "count": len(correct), "top1": top1, "top5": 100.0,
         "predicted": predicted, "labels": labels}))


def test_tables_from_committed_evaluations(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for seed in range(3):
        base = rng.random(200) < 0.6
        better = base | (rng.random(200) < 0.3)
        _write(tmp_path, "rp", seed, base.astype(int).tolist())
        _write(tmp_path, "oracle", seed, better.astype(int).tolist())
        _write(tmp_path, "arp", seed, base.astype(int).tolist())
    (tmp_path / "stride_seed0.eval.json").write_text(json.dumps({"top1": 50.0}))  # no images
    rows = paired.load_rows(tmp_path)
    assert set(rows) == {"rp", "oracle", "arp"}
    lead = paired.compare(rows["oracle"], rows["rp"])
    assert lead.seeds == (0, 1, 2) and lead.word == "ahead"
    assert all(c == 0 and b > 0 and p < 1e-3 for b, c, p in lead.per_seed.values())
    assert paired.compare(rows["rp"], rows["oracle"]).word == "behind"
    same = paired.compare(rows["arp"], rows["rp"])
    assert same.word == "indistinguishable at 3 seeds"
    assert all(v == (0, 0, 1.0) for v in same.per_seed.values())
    text = paired.report(tmp_path)
    assert "oracle (ARP-FG on the bird's mask) − RP (crop 0.5)" in text and "ahead" in text
    assert "Conv4 stride" not in text  # a row without per-image predictions is left out
    (tmp_path / "nothing").mkdir()
    assert paired.report(tmp_path / "nothing").startswith("No <row>_seed<S>.eval.json")


def test_the_adaptivity_page_ablation_and_its_figure(tmp_path: Path) -> None:
    from arpviz.explorer import ablation
    from arpviz.explorer.figures.adaptivity import ablation_figure

    rng = np.random.default_rng(1)
    for seed in range(4):
        truth = rng.random(300)
        for row, cut in (("rp", 0.5), ("mask50", 0.45), ("mask_mean", 0.3), ("oracle", 0.2)):
            _write(tmp_path, row, seed, (truth > cut + 0.01 * seed).astype(int).tolist())
    found = ablation.paired_ablation(tmp_path)
    assert found is not None and set(found.rows) == {"rp", "mask50", "mask_mean", "oracle"}
    steps = [label for label, _ in found.decomposition]
    assert steps[0] == "placement" and steps[-1] == "total"
    total = found.decomposition[-1][1]
    parts = sum(c.summary["mean"] for _, c in found.decomposition[:-1])
    assert parts == pytest.approx(total.summary["mean"])  # the three steps add up
    records = ablation.comparison_records(found.decomposition)
    assert records[-1]["step"] == "total" and records[-1]["reading"] == "ahead"
    assert [r["row"] for r in ablation.row_records(found)][0] == "RP (crop 0.5)"
    fig = ablation_figure(found.decomposition)
    assert len(fig.data) == 4 and "95% CI" in fig.data[0].hovertemplate
    # the axis names the step, the hover the two rows it compares
    assert [t.y[0] for t in fig.data] == steps
    assert "placement: " in fig.data[0].hovertemplate and " − " in fig.data[0].hovertemplate
    assert ablation.paired_ablation(tmp_path / "missing") is None


def _analysis(folder: Path, row: str, seed: int, rate: float, sd: float, rho: float | None,
              chosen: float) -> None:
    stage = {"rate": {"h": {"mean": rate, "sd": sd}, "w": {"mean": rate, "sd": sd}},
             "placement": {"arp": chosen, "centred": chosen - 10, "random": chosen - 20}}
    if rho is not None:
        stage["rate_vs_object"] = {"height": {"spearman": rho}}
    (folder / f"{row}_seed{seed}.analysis.json").write_text(json.dumps(
        {"stages": {"conv4.local0": stage}}))


def test_crop_table_reads_every_analysis(tmp_path: Path) -> None:
    _analysis(tmp_path, "arp", 0, 0.70, 0.01, -0.2, 80.0)
    _analysis(tmp_path, "arp", 1, 0.69, 0.02, -0.3, 84.0)
    _analysis(tmp_path, "rp", 0, 0.5, 0.0, float("nan"), 88.0)
    (tmp_path / "stride_seed0.analysis.json").write_text(json.dumps({"stages": {}}))
    lines = paired.crop_table(tmp_path).splitlines()
    assert len(lines) == 2 + 2  # the header, then RP and ARP (stride has no Conv4 crop)
    rp, arp = lines[2], lines[3]
    assert rp.startswith("| RP (crop 0.5) | 0 | 0.500 ± 0.000 | - |")
    assert "| 0, 1 | 0.695 ± 0.015 | -0.20, -0.30 | 82.0 / 72.0 / 62.0 |" in arp


def test_no_spread_between_seeds_gives_no_interval() -> None:
    # float noise: 87.833 - 87.5 and 88.167 - 87.833 are the same 2 images of 600
    noisy = paired.paired_t([87.83333333333333 - 87.5, 88.16666666666667 - 87.83333333333333])
    assert noisy["low"] is None and noisy["p"] is None and noisy["sd"] == 0.0
    assert paired.paired_t([0.0, 0.0, 0.0])["p"] == 1.0  # all 0: indistinguishable
    comparison = paired.Comparison("zoom", "arp", (0, 1), (0.3, 0.3), noisy,
                                   {0: (31, 29, 0.9), 1: (33, 31, 0.9)})
    assert comparison.word == "the same difference on all 2 seeds: no interval"
