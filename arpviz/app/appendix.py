"""Appendix A's parts: the cached simulations, the 1-D controls, the summary over many
distributions, and the 2-D section (one object on perfect features, a fragment of its own).

The controls are bound to :attr:`AppState.appendix <arpviz.app.state.AppState.appendix>`.
"""

from __future__ import annotations

import streamlit as st

from arpviz.analysis import measure_confidence_floor
from arpviz.app.state import AppendixSettings, LoadedCheckpoint, app_state, bind
from arpviz.appendix import Analysis, SimulationSettings, analyse, k_sweep, summary_stats
from arpviz.explorer.catalog import trained_on_synthbirds
from arpviz.explorer.controls import TAUS, stage_controls
from arpviz.explorer.figures import appendix as figures
from arpviz.foreground import DEFAULT_MIN_RATE
from arpviz.models.stages import stage_label
from arpviz.simulate import (
    ObjectSimulation,
    RateCurve,
    rate_against_size,
    simulate_object_2d,
)
from arpviz.text import plain

__all__ = ["FLOOR_CHOICES", "controls", "distributions", "object_section", "summary"]

LENGTHS = (14, 28, 56, 112)
SPIKINESS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
SUMMARY_COUNTS = (100, 300, 1000, 3000)
SWEEP_KS = tuple(round(0.1 * i, 2) for i in range(1, 21))  # 0.1 .. 2.0, as the k slider
SWEEP_COUNT = 300
FLOOR_CHOICES = ("set by hand", "as measured in the loaded checkpoint")
FG_REGIONS = {"all": "every cell above the map's mean (ARP-FG)",
              "peak": "only the region holding the peak (ARP-FG peak)"}


@st.cache_resource(max_entries=64, show_spinner=False)
def cached_analysis(settings: SimulationSettings) -> Analysis:
    """:func:`arpviz.appendix.analyse`, cached per settings (shared, read-only)."""
    return analyse(settings)


@st.cache_resource(max_entries=32, show_spinner=False)
def cached_sweep(settings: SimulationSettings) -> dict:
    """:func:`arpviz.appendix.k_sweep` over :data:`SWEEP_KS`, cached per settings (read-only)."""
    return k_sweep(settings, SWEEP_KS)


@st.cache_resource(max_entries=64, show_spinner=False)
def cached_object(**settings: object) -> tuple[ObjectSimulation, RateCurve]:
    """:func:`arpviz.simulate.simulate_object_2d` and :func:`arpviz.simulate.rate_against_size`
    of the same object and settings, cached per settings (read-only)."""
    return simulate_object_2d(**settings), rate_against_size(**settings)


@st.cache_resource(max_entries=8, show_spinner="Measuring the checkpoint's confidence floor...")
def cached_floor(key: tuple, _loaded: LoadedCheckpoint) -> dict:
    """The confidence floor of a loaded checkpoint's pooled stages (16 images of its evaluation
    split), cached per checkpoint version and device."""
    split = str(_loaded.meta.dataset.get("eval_split", "val"))
    return measure_confidence_floor(_loaded.checkpoint, count=16,
                                    split=split if split in ("val", "test") else "val")


def _floor(settings: AppendixSettings) -> float:
    """The simulator's ``background``: by hand (relative to the peak), or the loaded
    checkpoint's floor on the same scale."""
    loaded = app_state().loaded
    bind(st.radio, "background floor", settings, "floor_source", options=FLOOR_CHOICES,
         help="The simulator's floor, relative to the envelope's peak.")
    if settings.floor_source == FLOOR_CHOICES[1]:
        if loaded is None or not trained_on_synthbirds(loaded.meta):
            st.info("Measuring needs a SynthBirds checkpoint loaded in the sidebar; set the "
                    "floor by hand.")
        elif all(c.mode == "stride" for c in stage_controls(loaded.model)):
            st.info(f"{plain(loaded.label)} pools nothing (every stage is strided): there is no "
                    "confidence map to measure; set the floor by hand.")
        else:
            floors = cached_floor(loaded.key, loaded)
            if settings.floor_stage not in floors:  # Conv4 first, the paper's main ARP stage
                settings.floor_stage = list(floors)[-1]
            stage = bind(st.selectbox, "stage", settings, "floor_stage", options=list(floors),
                         format_func=stage_label)
            floor = floors[stage]
            st.caption(f"In {plain(loaded.label)}, {stage_label(stage)}, the confidence averages "
                       f"{floor.level:.3f} off the bird and peaks at {floor.peak:.3f} (mean over "
                       f"{floor.count} images): a floor of {floor.relative:.3f} relative to the "
                       "peak, the unit of the slider below (the background's level over what "
                       "the peak rises above it).")
            return float(floor.relative)
    return float(bind(st.slider, "floor, relative to the peak (background level / peak rise)",
                      settings, "background", min_value=0.0, max_value=max(2.0,
                      settings.background), step=0.01,
                      help="0.02: the earlier default; a trained network's sigmoid leaves its "
                           "background at a floor above 1 on this scale (measure it)."))


def controls() -> SimulationSettings:
    """The 1-D simulation's controls; returns its settings."""
    s = app_state().appendix
    with st.container(border=True):
        left, middle, right = st.columns(3)
        with left:
            bind(st.number_input, "seed", s, "seed", min_value=0, max_value=1_000_000, step=1)
            bind(st.slider, "distributions shown", s, "count", min_value=1, max_value=24)
            bind(st.select_slider, "length L (cells)", s, "length", options=LENGTHS)
        with middle:
            bind(st.select_slider, "sparsity (exponent on the random significance)", s,
                 "spikiness", options=SPIKINESS,
                 help="1: uniform significance; larger: fewer, sharper peaks")
            background = _floor(s)
            bind(st.slider, "placement of the interval (fraction of L)", s, "placement",
                 min_value=0.0, max_value=1.0, step=0.05)
            bind(st.slider, "interval spread, std (fraction of L)", s, "spread",
                 min_value=0.01, max_value=0.5, step=0.01)
        with right:
            bind(st.slider, "k (trade-off coefficient)", s, "k", min_value=0.1, max_value=2.0,
                 step=0.05)
            bind(st.slider, "DSR (lower bound of the rate)", s, "dsr", min_value=0.05,
                 max_value=1.0, step=0.05)
            bind(st.slider, "columns", s, "columns", min_value=1, max_value=6)
            bind(st.toggle, "show the true interval", s, "show_true")
    return SimulationSettings(
        count=int(s.count), length=int(s.length), seed=int(s.seed), spread=tuple(s.spread),
        placement=tuple(s.placement), spikiness=float(s.spikiness),
        background=float(background), dsr=float(s.dsr), k=float(s.k))


def distributions(settings: SimulationSettings) -> None:
    """Figure 7: the crops on the random distributions shown."""
    s = app_state().appendix
    st.subheader("Crops on random distributions (Figure 7)")
    shown = cached_analysis(settings)
    st.plotly_chart(figures.distributions_figure(shown, cols=s.columns, show_true=s.show_true),
                    width="stretch", key="appx_grid")


def summary(settings: SimulationSettings) -> None:
    """Coverage, background share and crop against true length over many distributions, and
    the trade-off of k."""
    s = app_state().appendix
    st.subheader("Over many random distributions")
    count = bind(st.select_slider, "distributions in the summary", s, "summary_count",
                 options=SUMMARY_COUNTS)
    many = cached_analysis(settings.with_count(int(count), seed_offset=1_000_003))
    stats = summary_stats(many)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("mean mass inside the crop", f"{stats['mean_mass_inside']:.1%}",
              help=f"{stats['share_mass_over_90']:.0%} of the crops hold at least 90% of the "
                   "mass")
    m2.metric("mean background share", f"{stats['mean_background_share']:.1%}",
              help="share of the crop outside the true interval")
    m3.metric("median crop / true length", f"{stats['median_length_ratio']:.2f}")
    m4.metric("correlation crop and true length", f"{stats['length_correlation']:.2f}")
    st.plotly_chart(figures.coverage_histograms(many), width="stretch", key="appx_hist")
    scatter, sweep = st.columns(2)
    with scatter:
        st.markdown("**Estimated against true interval length** (hover a point for its "
                    "numbers)")
        st.plotly_chart(figures.length_scatter(many), width="stretch", key="appx_scatter")
    with sweep:
        st.markdown(f"**The trade-off of k** (DSR {settings.dsr:.2f}, {SWEEP_COUNT} "
                    "distributions)")
        curve = cached_sweep(settings.with_count(SWEEP_COUNT, seed_offset=2_000_003))
        st.plotly_chart(figures.k_sweep_figure(curve, current_k=settings.k), width="stretch",
                        key="appx_sweep")


def _rate_text(rates: tuple[float, float]) -> str:
    """``(rate_h, rate_w)`` as ``"across x down"``."""
    return f"{rates[1]:.2f} × {rates[0]:.2f}"


def _object_controls(s: AppendixSettings) -> None:
    with st.container(border=True):
        left, middle, right = st.columns(3)
        with left:
            bind(st.slider, "object width (fraction of the map)", s, "width", min_value=0.05,
                 max_value=1.0, step=0.01, key="appx2d.width")
            bind(st.slider, "object height (fraction of the map)", s, "height",
                 min_value=0.05, max_value=1.0, step=0.01, key="appx2d.height")
        with middle:
            bind(st.slider, "object centre, x (fraction of the map)", s, "cx", min_value=0.0,
                 max_value=1.0, step=0.01, key="appx2d.x")
            bind(st.slider, "object centre, y (fraction of the map)", s, "cy", min_value=0.0,
                 max_value=1.0, step=0.01, key="appx2d.y")
            bind(st.slider, "clutter (distractor strength, object = 1)", s, "clutter",
                 min_value=0.0, max_value=1.5, step=0.05, key="appx2d.clutter",
                 help="Five Gaussian blobs placed by the seed below; 0: none.")
            bind(st.number_input, "clutter seed", s, "clutter_seed", min_value=0,
                 max_value=1_000_000, step=1, key="appx2d.seed")
        with right:
            bind(st.slider, "k (trade-off coefficient)", s, "k2d", min_value=0.1,
                 max_value=2.0, step=0.05, key="appx2d.k")
            bind(st.slider, "DSR (ARP's lower bound of the rate)", s, "dsr2d", min_value=0.05,
                 max_value=1.0, step=0.05, key="appx2d.dsr")
            bind(st.select_slider, "tau, confidence temperature: beyond the paper (1 = the "
                 "paper)", s, "tau2d", options=TAUS, key="appx2d.tau")
            bind(st.radio, "ARP-FG (beyond the paper) keeps", s, "region",
                 options=list(FG_REGIONS), format_func=FG_REGIONS.get, key="appx2d.region")


@st.fragment
def object_section() -> None:
    """Appendix A in two dimensions: the controls and everything they change (one fragment)."""
    s = app_state().appendix
    arp, arpfg = figures.ARP_NAME, figures.ARPFG_NAME
    st.subheader("Appendix A in two dimensions: one object on perfect features")
    st.markdown(
        f"One rectangular object on a 28 x 28 map. Every channel of the input holds the "
        f"object's mask (1 on it, 0 off it), plus distractor blobs if you add clutter: the best "
        f"features a network could give. **{arp}** crops it with Eq. 1 to 9; **{arpfg}** takes "
        f"`relu` instead of the sigmoid, keeping only what lies above the map's mean, and bounds "
        f"its rate below by its own {DEFAULT_MIN_RATE:g} instead of the DSR (a smaller crop is "
        "enlarged to the DSR's output: a zoom).")
    _object_controls(s)
    sim, curve = cached_object(width=float(s.width), height=float(s.height), cx=float(s.cx),
                               cy=float(s.cy), clutter=float(s.clutter), k=float(s.k2d),
                               dsr=float(s.dsr2d), tau=float(s.tau2d), seed=int(s.clutter_seed),
                               region=str(s.region))
    first, second, third, fourth = st.columns(4)
    first.metric(f"{arp} rate", _rate_text(sim.arp_rates),
                 help="across × down: the crop's side over the map's side")
    second.metric(f"{arpfg} rate", _rate_text(sim.arpfg_rates),
                  help="across × down: the crop's side over the map's side")
    third.metric("the object's extent (ideal)", _rate_text(sim.ideal_rates),
                 help="a crop that spans the object exactly: Eq. 9 on the object's mask, k 1")
    fourth.metric("the paper's Eq. 9 on an ideal map", _rate_text(sim.ideal_arp_rates),
                  help=f"k × the extent, clamped to [DSR, 1]: what ARP would pick if its "
                       f"confidence were the object's mask (k {s.k2d:.2f}, DSR {s.dsr2d:.2f})")
    st.plotly_chart(figures.object_maps_figure(sim), width="stretch", key="appx2d_maps")
    st.plotly_chart(figures.rate_curve_figure(curve, sim), width="stretch", key="appx2d_curve")
    st.caption(figures.OBJECT_CAPTION)
