"""Appendix A simulator: the analytic uniform case and the coverage measures; in two
dimensions, the paper's ARP and ARP-FG on perfect features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arpviz.analysis.statistics import correlation
from arpviz.foreground import foreground_region_pool
from arpviz.pooling import adaptive_region_pool
from arpviz.simulate import (
    CURVE_SIZES,
    coverage,
    crop_intervals,
    rate_against_size,
    simulate,
    simulate_object_2d,
    uniform_distribution,
)


@pytest.mark.parametrize("length", [7, 14, 28, 56])
def test_uniform_interval_is_recovered_within_one_cell(length):
    pairs = [(a, b) for a in range(length) for b in range(a + 1, length + 1)]
    dist = np.stack([uniform_distribution(length, a, b) for a, b in pairs])
    rates, intervals = crop_intervals(dist, dsr=1.0 / length, k=1.0)
    lengths = intervals[:, 1] - intervals[:, 0]
    true = np.array([b - a for a, b in pairs], dtype=np.float64)
    assert np.all(np.abs(lengths - true) <= 1.0 + 1e-6), (lengths - true).min()
    # the crop sits on the interval: its centre within half a cell of the interval's centre
    centres = intervals.mean(axis=1)
    true_centres = np.array([(a + b) / 2 for a, b in pairs])
    assert np.all(np.abs(centres - true_centres) <= 0.5 + 1e-6)
    np.testing.assert_allclose(rates, lengths / length, atol=1e-6)


def test_simulation_is_seeded_and_normalised():
    first = simulate(20, 40, seed=3)
    again = simulate(20, 40, seed=3)
    other = simulate(20, 40, seed=4)
    np.testing.assert_array_equal(first.dist, again.dist)
    assert not np.array_equal(first.dist, other.dist)
    np.testing.assert_allclose(first.dist.sum(axis=1), 1.0)
    assert (first.dist >= 0).all()
    assert (first.true_intervals[:, 0] >= 0).all() and (first.true_intervals[:, 1] <= 40).all()


def test_coverage_of_k1_crops_is_high_and_grows_with_k():
    sims = simulate(300, 56, seed=0, background=0.01)
    masses = []
    for k in (0.5, 1.0, 1.5):
        _, intervals = crop_intervals(sims.dist, dsr=0.05, k=k)
        cov = coverage(sims.dist, intervals, sims.true_intervals)
        masses.append(cov.mass_inside.mean())
        assert (cov.background_share >= 0).all() and (cov.background_share <= 1).all()
    assert masses[0] < masses[1] < masses[2]
    assert masses[1] > 0.75  # "covers most of the keypoints" at k = 1


def test_coverage_measures_by_hand():
    dist = np.array([[0.0, 0.5, 0.5, 0.0]])
    cov = coverage(dist, np.array([[1.0, 2.5]]))
    assert cov.mass_inside[0] == pytest.approx(0.75)
    assert cov.background_share[0] == pytest.approx(0.0)
    cov = coverage(dist, np.array([[0.0, 2.0]]))
    assert cov.background_share[0] == pytest.approx(0.5)
    assert cov.crop_length[0] == 2.0 and cov.true_length[0] == 2.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"count": 0}, "count"),
        ({"length": 1}, "length"),
        ({"spread": (0.5, 0.1)}, "spread"),
        ({"placement": (0.0, 1.5)}, "placement"),
        ({"spikiness": 0.0}, "spikiness"),
    ],
)
def test_simulate_rejects_bad_arguments(kwargs, name):
    args = {"count": 3, "length": 10} | kwargs
    with pytest.raises(ValueError, match=name):
        simulate(**args)


def test_crop_intervals_rejects_bad_arguments():
    dist = simulate(2, 10).dist
    with pytest.raises(ValueError, match="k"):
        crop_intervals(dist, k=0)
    with pytest.raises(ValueError, match="dsr"):
        crop_intervals(dist, dsr=0)
    with pytest.raises(ValueError, match="dist"):
        crop_intervals(-dist)


# ------------------------------------------------------------------ Appendix A in two dimensions

#: The paper's rate with every channel a centred square object's mask, 28 x 28 map, k = 1.
PAPER_RATES = {0.1: 0.99, 0.2: 0.97, 0.4: 0.93, 0.5: 0.90, 0.6: 0.88, 0.7: 0.88}


def test_paper_rate_on_perfect_features_reproduces_the_measured_table():
    curve = rate_against_size(sizes=tuple(PAPER_RATES), k=1.0, clutter=0.0)
    for size, arp in zip(curve.sizes, curve.arp, strict=True):
        assert arp[0] == pytest.approx(PAPER_RATES[round(size, 1)], abs=0.01)
        assert arp[1] == pytest.approx(PAPER_RATES[round(size, 1)], abs=0.01)


def test_paper_rate_falls_as_the_object_grows_and_arpfg_rises():
    sizes = tuple(round(0.1 * i, 1) for i in range(1, 8))  # 0.1 .. 0.7
    curve = rate_against_size(sizes=sizes, k=1.0, clutter=0.0)
    assert (np.diff(curve.arp[:, 0]) < 0).all() and (np.diff(curve.arp[:, 1]) < 0).all()
    assert (np.diff(curve.arpfg[:, 0]) > 0).all() and (np.diff(curve.arpfg[:, 1]) > 0).all()
    # the paper's rate stays near k (the floor) where ARP-FG's follows the object
    assert curve.arp.min() > 0.85


def test_arpfg_rate_follows_the_object_size():
    curve = rate_against_size(sizes=CURVE_SIZES, k=1.0, clutter=0.0)
    assert curve.sizes[0] == pytest.approx(0.1) and curve.sizes[-1] == pytest.approx(0.9)
    fg = correlation(curve.sizes, curve.arpfg[:, 1], n_boot=0)["spearman"]
    paper = correlation(curve.sizes, curve.arp[:, 1], n_boot=0)["spearman"]
    assert fg >= 0.9
    assert paper < 0.0  # over 0.1 .. 0.9 the paper's rate mostly falls
    # above ARP-FG's lower bound its rate is k x the extent (within a cell of the grid)
    free = curve.arpfg[:, 1] > curve.min_rate
    np.testing.assert_allclose(curve.arpfg[free, 1], curve.ideal[free, 1], atol=1 / 28)


def test_ideal_is_the_object_size_and_eq9_on_the_mask():
    curve = rate_against_size(0.6, 0.3, sizes=CURVE_SIZES, k=1.0, dsr=1 / 28)
    # the longer side is the size, the shorter keeps the aspect (to within half a cell)
    np.testing.assert_allclose(curve.ideal[:, 1], curve.sizes, atol=0.5 / 28 + 1e-9)
    np.testing.assert_allclose(curve.ideal[:, 0], curve.sizes / 2, atol=0.5 / 28 + 1e-9)
    # the paper's Eq. 9 on the mask itself: the side, within a cell (sqrt(n^2 - 1) of n cells)
    np.testing.assert_allclose(curve.ideal_arp, np.maximum(curve.ideal, 1 / 28), atol=1 / 28)


def test_dsr_bound_makes_an_ideal_arp_equal_rp():
    curve = rate_against_size(sizes=CURVE_SIZES, k=0.7, dsr=0.5)
    small = 0.7 * curve.ideal[:, 0] < 0.5
    assert small.any() and (curve.sizes[small] <= 0.71).all()
    np.testing.assert_allclose(curve.ideal_arp[small], 0.5)  # clamped: RP's crop
    np.testing.assert_allclose(curve.ideal_arp[~small], 0.7 * curve.ideal[~small], atol=1 / 28)


def test_object_simulation_crops_by_the_operator():
    sim = simulate_object_2d(0.4, 0.2, 0.3, 0.6, clutter=0.5, k=1.0, dsr=0.5, tau=2.0, seed=3)
    assert sim.object_box == (3.0, 14.0, 14.0, 20.0)
    assert sim.mask.sum() == 11 * 6 and sim.map_size == 28
    assert sim.ideal_rates == pytest.approx((6 / 28, 11 / 28))
    x = torch.from_numpy(sim.features)[None, None]
    arp = adaptive_region_pool(x, 0.5, 1.0, tau=2.0)
    fg = foreground_region_pool(x, 0.5, 1.0, tau=2.0)
    np.testing.assert_array_equal(sim.arp_confidence, arp.confidence[0].numpy())
    np.testing.assert_array_equal(sim.arpfg_confidence, fg.confidence[0].numpy())
    assert sim.arp_box == pytest.approx(tuple(arp.boxes[0].tolist()))
    assert sim.arpfg_box == pytest.approx(tuple(fg.boxes[0].tolist()))
    assert sim.arp_rates == pytest.approx(tuple(arp.rates[0].tolist()))
    assert sim.arpfg_rates == pytest.approx(tuple(fg.rates[0].tolist()))
    # the features: the mask plus the clutter (positive off the object)
    off = sim.mask == 0
    assert (sim.features[off] >= 0).all() and sim.features[off].max() > 0.1
    assert (sim.arp_confidence > 0.25).all()  # the sigmoid's floor
    assert (sim.arpfg_confidence >= 0).all() and (sim.arpfg_confidence == 0).any()


def test_arpfg_crop_spans_the_object_and_the_papers_spans_the_map():
    sim = simulate_object_2d(0.3, 0.3, 0.7, 0.3, k=1.0)
    x1, y1, x2, y2 = sim.object_box
    bx1, by1, bx2, by2 = sim.arpfg_box
    assert abs(bx1 - x1) <= 1 and abs(by1 - y1) <= 1 and abs(bx2 - x2) <= 1
    assert abs(by2 - y2) <= 1
    ax1, ay1, ax2, ay2 = sim.arp_box
    assert ax2 - ax1 > 0.9 * 28 and ay2 - ay1 > 0.9 * 28


def test_clutter_is_seeded_and_tau_sharpens_the_papers_map():
    a = simulate_object_2d(0.3, 0.3, clutter=0.8, seed=5)
    b = simulate_object_2d(0.3, 0.3, clutter=0.8, seed=5)
    c = simulate_object_2d(0.3, 0.3, clutter=0.8, seed=6)
    np.testing.assert_array_equal(a.features, b.features)
    assert not np.array_equal(a.features, c.features)
    assert not np.array_equal(a.features, simulate_object_2d(0.3, 0.3).features)
    # clutter off the object widens ARP-FG's crop; the peak region keeps it on the object
    clean = simulate_object_2d(0.3, 0.3, 0.3, 0.3, clutter=0.0)
    cluttered = simulate_object_2d(0.3, 0.3, 0.3, 0.3, clutter=0.8, blobs=8, seed=1)
    peak = simulate_object_2d(0.3, 0.3, 0.3, 0.3, clutter=0.8, blobs=8, seed=1, region="peak")
    assert max(cluttered.arpfg_rates) > max(clean.arpfg_rates)
    assert max(peak.arpfg_rates) < max(cluttered.arpfg_rates)
    # beyond the paper: a sharper sigmoid lowers the paper's floor and its rate
    sharp = simulate_object_2d(0.3, 0.3, tau=8.0)
    paper = simulate_object_2d(0.3, 0.3)
    assert max(sharp.arp_rates) < max(paper.arp_rates) - 0.1
    # ARP-FG's rates do not depend on tau (relu scales, the spread does not)
    assert sharp.arpfg_rates == pytest.approx(paper.arpfg_rates)


def test_object_cut_at_the_border_keeps_a_cell():
    sim = simulate_object_2d(0.01, 0.5, 1.0, 0.0)
    x1, y1, x2, y2 = sim.object_box
    assert (x1, x2) == (27.0, 28.0) and (y1, y2) == (0.0, 7.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"width": 0.0}, ValueError, "width"),
        ({"height": 1.5}, ValueError, "height"),
        ({"cx": -0.1}, ValueError, "cx"),
        ({"cy": "0.5"}, TypeError, "cy"),
        ({"clutter": -1.0}, ValueError, "clutter"),
        ({"clutter": None}, TypeError, "clutter"),
        ({"k": 0.0}, ValueError, "k"),
        ({"dsr": 0.0}, ValueError, "dsr"),
        ({"dsr": (0.5, 0.5)}, TypeError, "dsr"),
        ({"tau": -1.0}, ValueError, "tau"),
        ({"map_size": 2}, ValueError, "map_size"),
        ({"blobs": -1}, ValueError, "blobs"),
        ({"seed": 1.5}, ValueError, "seed"),
        ({"min_rate": 0.0}, ValueError, "min_rate"),
        ({"region": "edge"}, ValueError, "region"),
    ],
)
def test_object_simulation_rejects_bad_arguments(kwargs, error, name):
    args = {"width": 0.3, "height": 0.3} | kwargs
    with pytest.raises(error, match=name):
        simulate_object_2d(**args)
    with pytest.raises(error, match=name):
        rate_against_size(**args)


def test_rate_against_size_rejects_bad_sizes():
    with pytest.raises(ValueError, match="sizes"):
        rate_against_size(sizes=())
    with pytest.raises(TypeError, match="sizes"):
        rate_against_size(sizes=0.5)
    with pytest.raises(TypeError, match="sizes"):
        rate_against_size(sizes=("0.5",))
    array = rate_against_size(sizes=np.array([0.2, 0.4], dtype=np.float32))
    assert array.arp.shape == (2, 2) and array.sizes == pytest.approx([0.2, 0.4])
    with pytest.raises(ValueError, match="sizes"):
        rate_against_size(sizes=(0.5, 1.2))


def test_main_prints_the_table(capsys):
    from arpviz.simulate import main

    main(["--k", "1"])
    out = capsys.readouterr().out
    assert "0.40" in out and "0.926" in out  # the paper's rate at object side 0.4
