"""arpviz.appendix: the Appendix A analysis and its figures (Figure 7's colours, summaries)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arpviz import appendix as ap
from arpviz import palette
from arpviz.explorer.figures import appendix as figs
from arpviz.simulate import crop_intervals, simulate


def _area(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def test_fill_segments_split_the_line_at_the_crop_edges():
    dist = np.array([0.0, 0.1, 0.4, 0.3, 0.2, 0.0])
    inside, outside = figs.fill_segments(dist, (1.25, 4.5))
    assert len(inside) == 1 and len(outside) == 2
    x, y = inside[0]
    assert x[0] == 1.25 and x[-1] == 4.5
    assert np.all(np.diff(x) > 0)
    # the line goes through the cell centres; at the edges it is interpolated
    np.testing.assert_allclose(y[x == 2.5], [0.4])
    np.testing.assert_allclose(y[0], np.interp(1.25, [0.5, 1.5], [0.0, 0.1]))
    assert outside[0][0][0] == 0.0 and outside[0][0][-1] == 1.25
    assert outside[1][0][0] == 4.5 and outside[1][0][-1] == 6.0


def test_fill_segments_leave_out_empty_pieces():
    dist = np.ones(8) / 8
    inside, outside = figs.fill_segments(dist, (0.0, 8.0))
    assert len(inside) == 1 and outside == []
    inside, outside = figs.fill_segments(dist, (0.0, 3.0))
    assert len(outside) == 1 and outside[0][0][0] == 3.0


@pytest.mark.parametrize("interval", [(-1.0, 3.0), (2.0, 9.0), (5.0, 4.0)])
def test_fill_segments_reject_bad_intervals(interval):
    with pytest.raises(ValueError, match="interval"):
        figs.fill_segments(np.ones(8), interval)


def test_fill_segments_reject_bad_dist():
    with pytest.raises(ValueError, match="1-D"):
        figs.fill_segments(np.ones((2, 4)), (0, 1))


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=40),
    a=st.floats(0.0, 1.0), b=st.floats(0.0, 1.0),
)
def test_inside_and_outside_areas_add_up(values, a, b):
    dist = np.asarray(values)
    length = len(dist)
    start, end = sorted((a * length, b * length))
    inside, outside = figs.fill_segments(dist, (start, end))
    xs = np.concatenate([[0.0], np.arange(length) + 0.5, [float(length)]])
    ys = np.concatenate([[dist[0]], dist, [dist[-1]]])
    total = _area(xs, ys)
    parts = sum(_area(x, y) for x, y in inside + outside)
    assert parts == pytest.approx(total, abs=1e-9)
    covered = sum(x[-1] - x[0] for x, _ in inside + outside)
    assert covered == pytest.approx(length)


def test_analyse_uses_the_simulator_and_the_operator():
    settings_ = ap.SimulationSettings(count=7, length=28, seed=5, k=0.8, dsr=0.25)
    result = ap.analyse(settings_)
    sim = simulate(7, 28, seed=5)
    np.testing.assert_array_equal(result.sim.dist, sim.dist)
    rates, intervals = crop_intervals(sim.dist, 0.25, 0.8)
    np.testing.assert_array_equal(result.rates, rates)
    np.testing.assert_array_equal(result.intervals, intervals)
    assert result.coverage.mass_inside.shape == (7,)
    assert (result.rates >= 0.25 - 1e-6).all() and (result.rates <= 1 + 1e-6).all()
    assert (result.intervals >= 0).all() and (result.intervals <= 28).all()
    # the same settings give the same numbers; another seed others
    np.testing.assert_array_equal(ap.analyse(settings_).intervals, result.intervals)
    other = ap.analyse(settings_.with_count(7, seed_offset=1))
    assert not np.array_equal(other.sim.dist, result.sim.dist)


def test_summary_stats_are_plain_floats_in_range():
    stats = ap.summary_stats(ap.analyse(ap.SimulationSettings(count=200, seed=1)))
    assert stats["count"] == 200
    assert all(isinstance(v, float) for v in stats.values())
    for key in ("mean_mass_inside", "median_mass_inside", "share_mass_over_90",
                "mean_background_share", "median_background_share"):
        assert 0.0 <= stats[key] <= 1.0
    assert 0.5 <= stats["mean_rate"] <= 1.0
    assert -1.0 <= stats["length_correlation"] <= 1.0
    # ARP's claim in Appendix A: the crop covers most of the keypoints
    assert stats["mean_mass_inside"] > 0.8


def test_distributions_figure_colours_inside_red_and_outside_blue():
    result = ap.analyse(ap.SimulationSettings(count=1, length=40, seed=2))
    start, end = (float(v) for v in result.intervals[0])
    fig = figs.distributions_figure(result, cols=1)
    fills = {t.fillcolor: t for t in fig.data if t.fill == "tozeroy"}
    assert set(fills) <= {palette.INSIDE, palette.OUTSIDE} and palette.INSIDE in fills
    inside = fills[palette.INSIDE]
    assert inside.x[0] == pytest.approx(start) and inside.x[-1] == pytest.approx(end)
    for trace in fig.data:
        if trace.fillcolor == palette.OUTSIDE:
            assert trace.x[-1] <= start + 1e-9 or trace.x[0] >= end - 1e-9
    line = [t for t in fig.data if t.mode == "lines" and t.name == "distribution"]
    assert len(line) == 1 and line[0].line.color == palette.LINE
    np.testing.assert_allclose(line[0].y, result.sim.dist[0])
    assert list(fig.layout.xaxis.range) == [0, 40]


def test_distributions_figure_grid_titles_and_legend():
    result = ap.analyse(ap.SimulationSettings(count=5, seed=3))
    fig = figs.distributions_figure(result, cols=2)
    titles = [a.text for a in fig.layout.annotations]
    assert len(titles) == 5
    assert titles[0].startswith("#0: rate ") and f"{result.rates[0]:.2f}" in titles[0]
    lines = [t for t in fig.data if t.name == "distribution"]
    assert len(lines) == 5
    assert sum(bool(t.showlegend) for t in lines) == 1  # one legend entry per kind
    assert len(figs.distributions_figure(result, limit=2).layout.annotations) == 2
    no_true = figs.distributions_figure(result, show_true=False)
    assert not any(t.legendgroup == "true" for t in no_true.data)


def test_summary_figures_carry_the_numbers():
    result = ap.analyse(ap.SimulationSettings(count=50, seed=4))
    hist = figs.coverage_histograms(result)
    bars = [t for t in hist.data if isinstance(t, go.Histogram)]
    assert len(bars) == 2
    np.testing.assert_array_equal(bars[0].x, result.coverage.mass_inside)
    np.testing.assert_array_equal(bars[1].x, result.coverage.background_share)
    scatter = figs.length_scatter(result)
    points = [t for t in scatter.data if t.mode == "markers"][0]
    np.testing.assert_array_equal(points.x, result.coverage.true_length)
    np.testing.assert_array_equal(points.y, result.coverage.crop_length)
    assert np.asarray(points.customdata).shape == (50, 6)
    assert "mass inside" in points.hovertemplate


def test_k_sweep_rate_grows_with_k():
    sweep = ap.k_sweep(ap.SimulationSettings(count=60, seed=6), [0.3, 0.7, 1.2, 2.0])
    assert np.all(np.diff(sweep["rate"]) >= -1e-9)
    assert sweep["mass_inside"][-1] > sweep["mass_inside"][0]
    fig = figs.k_sweep_figure(sweep, current_k=0.7)
    assert len(fig.data) == 3
    with pytest.raises(ValueError, match="ks"):
        ap.k_sweep(ap.SimulationSettings(count=5), [])
    with pytest.raises(ValueError, match="ks"):
        ap.k_sweep(ap.SimulationSettings(count=5), [0.0, 1.0])


# ------------------------------------------------------------------ Appendix A in two dimensions


def _validated(fig: go.Figure) -> go.Figure:
    """``fig``, after rebuilding it with plotly's full validation (raises on any invalid
    property)."""
    go.Figure(fig.to_dict())
    return fig


def test_object_maps_figure_draws_the_maps_and_the_crops():
    from arpviz.simulate import simulate_object_2d

    sim = simulate_object_2d(0.4, 0.2, 0.3, 0.6, clutter=0.5, seed=1)
    fig = _validated(figs.object_maps_figure(sim))
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 3
    for trace, values in zip(heatmaps, (sim.features, sim.arp_confidence,
                                        sim.arpfg_confidence), strict=True):
        np.testing.assert_allclose(np.asarray(trace.z), values)
        assert "%{z:.3f}" in trace.hovertemplate
    assert (heatmaps[1].zmin, heatmaps[1].zmax) == (0.0, 1.0)  # the sigmoid's whole range
    by_name = {t.name: t for t in fig.data if t.type == "scatter"}
    for name, box, colour in (("ARP (the paper) crop", sim.arp_box, figs.ARP_COLOUR),
                              ("ARP-FG (beyond the paper) crop", sim.arpfg_box,
                               figs.ARPFG_COLOUR)):
        x1, y1, x2, y2 = box
        trace = by_name[name]
        assert list(trace.x) == pytest.approx([x1, x2, x2, x1, x1])
        assert list(trace.y) == pytest.approx([y1, y1, y2, y2, y1])
        assert trace.line.color == colour and "rate" in trace.hovertemplate
    objects = [t for t in fig.data if t.name == "the object"]
    assert len(objects) == 3 and all(t.line.color == palette.OBJECT for t in objects)
    assert figs.ARP_COLOUR in palette.SIDES and figs.ARPFG_COLOUR in palette.SERIES
    titles = [a.text for a in fig.layout.annotations]
    assert any("beyond the paper" in t and f"{sim.arpfg_rates[1]:.2f}" in t for t in titles)


def test_rate_curve_figure_plots_both_axes_and_the_bounds():
    from arpviz.simulate import rate_against_size, simulate_object_2d

    settings = {"width": 0.6, "height": 0.3, "k": 0.7, "dsr": 0.5}
    curve = rate_against_size(**settings)
    sim = simulate_object_2d(**settings)
    fig = _validated(figs.rate_curve_figure(curve, sim))
    for axis, xref in ((1, "x"), (0, "x2")):
        panel = {t.name: t for t in fig.data if t.xaxis == xref}
        np.testing.assert_allclose(panel["ARP (the paper)"].y, curve.arp[:, axis])
        np.testing.assert_allclose(panel["ARP-FG (beyond the paper)"].y, curve.arpfg[:, axis])
        np.testing.assert_allclose(panel["ARP (the paper)"].x, curve.ideal[:, axis])
        ideal = next(t for n, t in panel.items() if n.startswith("ideal"))
        np.testing.assert_allclose(ideal.y, curve.ideal[:, axis])
        on_mask = next(t for n, t in panel.items() if n.startswith("the paper's Eq. 9"))
        np.testing.assert_allclose(on_mask.y, curve.ideal_arp[:, axis])
        assert list(panel["DSR 0.50: ARP's lower bound"].y) == [0.5, 0.5]
        assert list(panel["the object above"].x) == [sim.ideal_rates[axis]] * 2
        assert all(t.hovertemplate for t in panel.values())
    assert sum(1 for t in fig.data if t.showlegend is not False) == 7  # one legend entry each
