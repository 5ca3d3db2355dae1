"""Appendix A simulator: the analytic uniform case and the coverage measures."""

from __future__ import annotations

import numpy as np
import pytest

from arpviz.simulate import coverage, crop_intervals, simulate, uniform_distribution


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
