"""Appendix A: ARP's adaptive rate on random 1-D keypoint distributions (widgets and rendering)."""

from __future__ import annotations

import streamlit as st

from arpviz.appendix import Analysis, SimulationSettings, analyse, k_sweep, summary_stats
from arpviz.explorer.figures.appendix import (
    coverage_histograms,
    distributions_figure,
    k_sweep_figure,
    length_scatter,
)

LENGTHS = (14, 28, 56, 112)
SPIKINESS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
SUMMARY_COUNTS = (100, 300, 1000, 3000)
SWEEP_KS = tuple(round(0.1 * i, 2) for i in range(1, 21))  # 0.1 .. 2.0, as the k slider
SWEEP_COUNT = 300


@st.cache_resource(max_entries=64, show_spinner=False)
def cached_analysis(settings: SimulationSettings) -> Analysis:
    """:func:`arpviz.appendix.analyse`, cached per settings (shared, read-only; no pickling)."""
    return analyse(settings)


@st.cache_resource(max_entries=32, show_spinner=False)
def cached_sweep(settings: SimulationSettings) -> dict:
    """:func:`arpviz.appendix.k_sweep` over :data:`SWEEP_KS`, cached per settings (read-only)."""
    return k_sweep(settings, SWEEP_KS)


st.header("Appendix A: the adaptive rate on simulated distributions")
st.markdown(
    "Random 1-D keypoint distributions by the paper's rules (most keypoints in one interval of "
    "any length and position, random inside it), and the interval ARP crops on each with "
    "Eq. 9's rate. As in Figure 7, the line is the distribution, the area under it is **red "
    "inside the crop** and **blue outside**; dotted lines mark the true interval (envelope mean "
    "± 2 std)."
)

with st.container(border=True):
    left, middle, right = st.columns(3)
    with left:
        seed = int(st.number_input("seed", min_value=0, max_value=1_000_000, value=0, step=1,
                                   key="appx_seed"))
        count = st.slider("distributions shown", 1, 24, 9, key="appx_count")
        length = st.select_slider("length L (cells)", LENGTHS, value=56, key="appx_length")
    with middle:
        spikiness = st.select_slider(
            "sparsity (exponent on the random significance)", SPIKINESS, value=1.0,
            key="appx_spikiness", help="1: uniform significance; larger: fewer, sharper peaks",
        )
        background = st.slider("background floor", 0.0, 0.2, 0.02, 0.01, key="appx_background")
        placement = st.slider("placement of the interval (fraction of L)", 0.0, 1.0, (0.1, 0.9),
                              0.05, key="appx_placement")
        spread = st.slider("interval spread, std (fraction of L)", 0.01, 0.5, (0.03, 0.3), 0.01,
                           key="appx_spread")
    with right:
        k = st.slider("k (trade-off coefficient)", 0.1, 2.0, 1.0, 0.05, key="appx_k")
        dsr = st.slider("DSR (lower bound of the rate)", 0.05, 1.0, 0.5, 0.05, key="appx_dsr")
        columns = st.slider("columns", 1, 6, 3, key="appx_cols")
        show_true = st.toggle("show the true interval", value=True, key="appx_true")

settings = SimulationSettings(
    count=count, length=int(length), seed=seed, spread=tuple(spread),
    placement=tuple(placement), spikiness=float(spikiness), background=float(background),
    dsr=float(dsr), k=float(k),
)
shown = cached_analysis(settings)

st.subheader("Crops on random distributions (Figure 7)")
st.plotly_chart(distributions_figure(shown, cols=columns, show_true=show_true),
                width="stretch", key="appx_grid")
crops = "; ".join(
    f"#{i} [{a:.2f}, {b:.2f}]" for i, (a, b) in enumerate(shown.intervals[: min(count, 4)])
)
st.caption(f"appendix crops (k {k:.2f}, DSR {dsr:.2f}, seed {seed}): {crops}")

st.subheader("Over many random distributions")
summary_count = st.select_slider("distributions in the summary", SUMMARY_COUNTS, value=1000,
                                 key="appx_summary_count")
many = cached_analysis(settings.with_count(int(summary_count), seed_offset=1_000_003))
stats = summary_stats(many)
m1, m2, m3, m4 = st.columns(4)
m1.metric("mean mass inside the crop", f"{stats['mean_mass_inside']:.1%}",
          help=f"{stats['share_mass_over_90']:.0%} of the crops hold at least 90% of the mass")
m2.metric("mean background share", f"{stats['mean_background_share']:.1%}",
          help="share of the crop outside the true interval")
m3.metric("median crop / true length", f"{stats['median_length_ratio']:.2f}")
m4.metric("correlation crop and true length", f"{stats['length_correlation']:.2f}")
st.plotly_chart(coverage_histograms(many), width="stretch", key="appx_hist")
scatter, sweep = st.columns(2)
with scatter:
    st.markdown("**Estimated against true interval length** (hover a point for its numbers)")
    st.plotly_chart(length_scatter(many), width="stretch", key="appx_scatter")
with sweep:
    st.markdown(f"**The trade-off of k** (DSR {dsr:.2f}, {SWEEP_COUNT} distributions)")
    curve = cached_sweep(settings.with_count(SWEEP_COUNT, seed_offset=2_000_003))
    st.plotly_chart(k_sweep_figure(curve, current_k=k), width="stretch",
                    key="appx_sweep")
