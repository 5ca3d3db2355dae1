"""The Adaptivity page's parts: the report of the loaded checkpoint (computed here, or a
committed analysis of the same file), the rate scatter that opens images in Explore, the k
curves, the wide-scale runs side by side, placement and contrast.

Reports are kept for this visitor (per checkpoint, split, images and tau); the library's disk
cache (:func:`arpviz.explorer.adaptivity.run_report`) shares them between sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from arpviz.app.images import open_sample
from arpviz.app.resources import with_progress
from arpviz.app.sidebar import APP_ROOT, checkpoint_paths
from arpviz.app.state import AdaptivitySettings, LoadedCheckpoint, app_state, bind
from arpviz.explorer import ablation
from arpviz.explorer import adaptivity as ad
from arpviz.explorer.controls import TAUS
from arpviz.explorer.figures import adaptivity as figures
from arpviz.models.stages import stage_label
from arpviz.text import plain

__all__ = ["TAU_LABEL", "choose_report", "k_curves", "paired_section", "placement",
           "rate_section", "reid_curve", "verdicts", "wide_runs"]

TAU_LABEL = "Confidence temperature tau (beyond the paper; 1 = the paper)"


@st.cache_resource(max_entries=64, scope="session", show_spinner=False)
def _held(store: str) -> dict:
    """This visitor's results of one kind, by key (a plain dict kept for the session)."""
    return {}


def _once(store: str, key: Any, label: str, compute: Callable[[Callable], Any]) -> Any:
    held = _held(store)
    if key not in held:
        held[key] = with_progress(
            f"Analysing {label}...", lambda bar: compute(lambda f, m: bar(f, f"{label}: {m}")))
    return held[key]


def _others(loaded: LoadedCheckpoint) -> list[str]:
    return [str(p) for p in checkpoint_paths() if str(p) != str(loaded.path)]


def reid_curve(loaded: LoadedCheckpoint) -> None:
    """A re-ID checkpoint's only analysis: mAP against k, its own and other re-ID files'."""
    st.markdown("### k curve (re-ID: mAP against k)")
    _k_figure(loaded, [], loaded.path)


def _reid_curves(loaded: LoadedCheckpoint, path: str) -> list:
    curves = _once("reid", path, f"{Path(path).name} (mAP)",
                   lambda bar: ad.reid_k_curves(path, device=loaded.device, progress=bar))
    app_state().shown.reid_curves[path] = curves
    return curves


def _k_figure(loaded: LoadedCheckpoint, top1: list, own_reid: str | None = None) -> None:
    settings = app_state().adaptivity
    usable, skipped = ad.offered(ad.k_curve_candidates(_others(loaded), "mAP"))
    picked = bind(st.multiselect, "Add re-ID checkpoints (mAP over their test query/gallery)",
                  settings, "reid_others", options=usable, format_func=lambda p: Path(p).name)
    for why, names in skipped.items():
        if why.startswith("no ARP"):
            st.caption(f"Not offered: {plain(', '.join(names))}: {plain(why)}")
    reid = {Path(p).stem: _reid_curves(loaded, p) for p in [own_reid] * bool(own_reid) + picked}
    if top1 or any(reid.values()):
        st.plotly_chart(figures.k_curves_figure(top1, reid), key="adapt_kcurves")
    else:
        st.info("No ARP stage in these checkpoints: no k curve.")


@st.cache_resource(max_entries=16, show_spinner="Looking for precomputed results...")
def _precomputed(path: str, stamp: int) -> list:
    return ad.precomputed_reports(path)


def _report(loaded: LoadedCheckpoint, source: Any, settings: AdaptivitySettings, label: str):
    key = (loaded.key if source is loaded.checkpoint else str(source), settings.split,
           settings.limit, settings.tau)
    return _once("reports", key, label, lambda bar: ad.run_report(
        source, settings.split, settings.limit, settings.tau, device=loaded.device,
        progress=bar))


def choose_report(loaded: LoadedCheckpoint):
    """The split, images, tau and source controls, and the report they give (kept in
    ``app_state().shown.report``); ``None`` with a message when it cannot be computed."""
    settings = app_state().adaptivity
    eval_split = str(loaded.meta.dataset.get("eval_split", "val"))
    if settings.split not in ("val", "test"):
        settings.split = eval_split if eval_split in ("val", "test") else "val"
    c1, c2, c3 = st.columns(3)
    with c1:
        bind(st.radio, "Split (SynthBirds)", settings, "split", options=["val", "test"],
             horizontal=True)
    with c2:
        bind(st.select_slider, "Images (the first N of the split)", settings, "limit",
             options=ad.LIMITS, help="32 images take about 15-30 s on one CPU thread")
    with c3:
        bind(st.select_slider, TAU_LABEL, settings, "tau", options=TAUS,
             help="C = sigmoid(tau * s). An extension beyond the paper: a larger tau sharpens "
                  "the confidence map. tau = 1 is the paper's operator.")
    found = _precomputed(loaded.path, loaded.key[2]) if loaded.path else []
    committed = [f"precomputed: {p.relative_to(APP_ROOT)}" if p.is_relative_to(APP_ROOT)
                 else str(p) for p, _ in found]
    # a committed analysis of this very file opens first (no wait); computing is a click away
    sources = committed + ["computed here"]
    source = bind(st.radio, "Results", settings, "source", options=sources, horizontal=True,
                  help="A committed analysis of this very checkpoint (same SHA-256), made with "
                       "python -m arpviz.analysis; its split, image count and tau are its own. "
                       "'computed here' analyses the split, images and tau above now.")
    if source == "computed here":
        try:
            report = _report(loaded, loaded.path or loaded.checkpoint, settings, loaded.label)
        except (ValueError, TypeError) as exc:
            st.error(f"Cannot analyse this checkpoint: {plain(exc)}")
            return None
    else:
        report = found[committed.index(source)][1]
        st.warning(f"Showing the precomputed file {plain(source.split(': ', 1)[1])} (not "
                   f"computed in this session): {report.split} split, {report.count} images, tau "
                   f"{report.tau:g}.")
    app_state().shown.report = report
    return report


def verdicts(report) -> None:
    """The headline and one verdict per stage, and why the paper's ARP cannot follow."""
    st.markdown(f"**{report.count} {report.split} images, tau {report.tau:g}"
                f"{' (the paper)' if report.tau == 1 else ' (beyond the paper)'}: top-1 "
                f"{report.top1:.1f}%.**")
    for name in report.stages:
        st.markdown("- " + ad.verdict(report, name))
    with st.expander("Why the paper's ARP cannot follow the object"):
        st.markdown(ad.WHY_NOT)


def rate_section(loaded: LoadedCheckpoint, report) -> None:
    """Rate against object size (a picked point opens that image in Explore) and the
    correlations of the chosen stage."""
    settings = app_state().adaptivity
    st.markdown("### Rate against object size")
    left, right = st.columns([3, 1])
    names = list(report.stages)
    if settings.stage not in names:
        settings.stage = names[-1]
    with right:
        stage = bind(st.selectbox, "Stage", settings, "stage", options=names,
                     format_func=lambda n: stage_label(n, report.stages[n].mode))
        axis = bind(st.radio, "Axis", settings, "axis", options=list(ad.AXES), horizontal=True)
    points = ad.rate_points(report, stage, axis)
    with left:
        event = st.plotly_chart(figures.rate_scatter(points, loaded.meta.class_names),
                                on_select="rerun", selection_mode="points", key="adapt_scatter")
    eval_split = str(loaded.meta.dataset.get("eval_split", "val"))
    openable = report.split == eval_split
    picked = ad.picked_index(event.selection.points) if event else None
    with right:
        st.caption("Pick a point to open that image in Explore." if openable else
                   f"Explore shows the {eval_split} split: analyse it to open points there.")
        settings.index = min(max(int(settings.index), 0), max(int(points.index.max()), 0))
        index = bind(st.number_input, "...or image index", settings, "index", min_value=0,
                     max_value=max(int(points.index.max()), 0), disabled=not openable)
        if openable and (picked is not None or st.button("Open in Explore", key="adapt_open")):
            open_sample(loaded, int(index if picked is None else picked))
            st.switch_page("pages/explore.py")
    rows = ad.correlation_rows(report, stage)
    if not rows:
        st.info("No ground truth: no correlations with the object.")
        return
    title = (f"Correlations of {stage_label(stage)}'s rate (bootstrap 95% intervals, "
             f"{report.settings.get('n_boot', '?')} resamples)")
    constant = ad.constant_rate(report.stages[stage])
    if constant is not None:  # the verdict said it: the numbers below move no crop
        with st.expander(f"{title}: the rate is constant in effect, read them as noise"):
            st.caption(f"The rate is constant in effect ({constant}): a correlation here, "
                       "however far its interval is from 0, describes changes too small to move "
                       "the crop by a cell, so it says nothing about adaptation.")
            st.dataframe(rows, hide_index=True)
        return
    st.markdown(f"**{title}**")
    st.caption("How to read them: a Spearman correlation whose interval lies above 0 says "
               "bigger objects (or parts spread wider) get bigger crops, the adaptation ARP is "
               "for; below 0, smaller crops; an interval holding 0, no relation detectable at "
               "this image count.")
    st.dataframe(rows, hide_index=True)


def k_curves(loaded: LoadedCheckpoint, report) -> None:
    """The k curves of this checkpoint and of others the user adds."""
    settings = app_state().adaptivity
    st.markdown("### k curves")
    usable, skipped = ad.offered(ad.k_curve_candidates(_others(loaded)))
    others = bind(st.multiselect, "Add checkpoints (computed with the split, images and tau "
                  "above)", settings, "others", options=usable,
                  format_func=lambda p: Path(p).name)
    for why, names in skipped.items():
        st.caption(f"Not offered: {plain(', '.join(names))}: {plain(why)}")
    reports = {Path(loaded.label).stem: report}
    reports |= {Path(p).stem: _report(loaded, p, settings, Path(p).name) for p in others}
    _k_figure(loaded, ad.k_curves(reports))


@st.cache_resource(show_spinner=False)
def _ablation(stamp: float):
    return ablation.paired_ablation()


def paired_section() -> None:
    """The paired ablation of the committed runs: each row's test top-1 over its seeds, every
    comparison with its 95% interval, and where the oracle's lead over RP comes from."""
    st.markdown("### The ablation, paired over seeds (committed runs)")
    found = _ablation(ablation.stamp())
    if found is None:
        st.info("No committed paired runs here (logs/paired/ of a source checkout).")
        return
    st.caption(
        "Every row trained with the same recipe and seeds on wide-scale SynthBirds and scored "
        "on the same 600 test images. A comparison is 'ahead' or 'behind' only when its 95% "
        "interval over seeds excludes 0; McNemar's exact test says, per seed, whether the two "
        "runs' disagreements lean one way. Beyond the paper: ARP-FG peak, the learnt zoom, the "
        "mask-placed crops and the oracle (which sees the bird's true mask, what no real "
        "network has). Command: python -m arpviz.analysis.paired logs/paired.")
    st.dataframe(ablation.row_records(found), hide_index=True, key="adapt_ablation_rows")
    st.markdown("**Paired comparisons**")
    st.plotly_chart(figures.ablation_figure(found.comparisons), key="adapt_ablation_pairs")
    st.markdown("**Where the oracle's lead over RP comes from**")
    if found.decomposition:
        st.caption("From RP to the oracle in three steps, each a pair of rows: placement (RP's "
                   "0.5 window placed by the bird's mask, against RP), zoom (a mask-placed "
                   "crop of the oracle's mean size, against the 0.5 one) and adaptivity (the "
                   "oracle, whose size follows the bird, against that fixed size). Hover a "
                   "step for its rows and seeds.")
        st.plotly_chart(figures.ablation_figure(found.decomposition),
                        key="adapt_ablation_steps")
    else:
        st.info("The mask-placed controls have not run yet.")
    st.dataframe(ablation.comparison_records(found.comparisons + found.decomposition),
                 hide_index=True, key="adapt_ablation_table")
    st.caption("Last column: of the seeds, how many runs' McNemar test has p below 0.05 with "
               "the first row ahead / behind.")


@st.cache_resource(show_spinner=False)
def _wide_comparison() -> dict:
    return ad.wide_comparison()


def wide_runs() -> None:
    """The committed wide-scale runs side by side."""
    st.markdown("### The rows side by side: does each crop follow the bird?")
    st.caption(
        "The same question for the committed paired runs (seed 0, 600 test images; "
        "docs/adaptivity.md): the paper's ARP, RP, and beyond the paper ARP-FG peak (the spread "
        "of the confidence above the map's mean around its maximum), the learnt zoom (the "
        "padded box of the map's peak region), the mask-placed fixed crops and the oracle "
        "(ARP-FG fed the bird's true mask, in training and test: what no real network has). "
        "Dashed, open diamonds: what the paper's ARP and ARP-FG pick when every channel is the "
        "bird's mask (the ideal map).")
    compared = ad.comparison_rows(_wide_comparison())
    if not compared:
        st.info("No committed paired analyses here (logs/paired/ of a source checkout).")
        return
    st.plotly_chart(figures.comparison_figure(compared), key="adapt_compare")
    st.dataframe([{"checkpoint": r.label,
                   "test top-1 %": "n/a (no network)" if r.top1 != r.top1 else f"{r.top1:.1f}",
                   "rate": f"{r.rate_mean:.3f} ± {r.rate_sd:.3f}",
                   "Spearman with height": "n/a" if r.spearman is None else f"{r.spearman:+.2f}",
                   "95% CI": "n/a" if r.ci95 is None else f"[{r.ci95[0]:+.2f}, {r.ci95[1]:+.2f}]"}
                  for r in compared], hide_index=True, key="adapt_compare_table")


def placement(report) -> None:
    """Placement bars and the contrast histogram."""
    st.markdown("### Placement and contrast")
    bars, hist = st.columns(2)
    bars.plotly_chart(figures.placement_figure(report), key="adapt_placement")
    contrast = ad.contrast_values(report)
    if any(contrast.values()):
        hist.plotly_chart(figures.contrast_histogram(contrast), key="adapt_contrast")
    else:
        hist.info("No ground truth: no object/background contrast.")
