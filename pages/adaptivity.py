"""Adaptivity: does the crop follow the object? ``arpviz.analysis`` on the loaded checkpoint.

Widgets, one library call (:func:`arpviz.explorer.adaptivity.run_report`, cached as JSON per
checkpoint digest, split, limit and tau), rendering (:mod:`arpviz.explorer.figures.adaptivity`).
Picking a point of the rate scatter opens that image in Explore. Kept in session_state for
tests: ``adapt_report`` (the :class:`~arpviz.analysis.AdaptivityReport` shown). A re-ID
checkpoint gets only the k curve, of mAP (:func:`~arpviz.explorer.adaptivity.reid_k_curves`).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from arpviz.explorer import adaptivity as ad
from arpviz.explorer.figures import adaptivity as figures
from arpviz.explorer.retrieval import is_reid_checkpoint
from arpviz.explorer.session import TAUS, stage_label
from pages import common, widgets

TAU_LABEL = "Confidence temperature tau (beyond the paper; 1 = the paper)"

st.title("Adaptivity")
st.caption("ARP's one idea (Eq. 5-9): the crop's size follows the spread of the keypoint "
           "confidence, so a big object should get a big crop. Measured here over a split with "
           "python -m arpviz.analysis's library (docs/adaptivity.md).")
loaded = common.require_checkpoint()
path = loaded.key[1] if loaded.key[0] == "file" else None
others_paths = [str(p) for p in common.checkpoint_paths() if str(p) != str(path)]


def _held(store: str, key, label: str, compute):
    """``compute(progress)`` once per ``key`` in this session (``session_state[store]``) under a
    progress bar; the library's disk caches share results between sessions."""
    held = st.session_state.setdefault(store, {})
    if key not in held:
        held[key] = common.with_progress(
            f"Analysing {label}...", lambda bar: compute(lambda f, m: bar(f, f"{label}: {m}")))
    return held[key]


def _reid_curves(p: str) -> list:
    return _held("adapt_reid_curves", p, f"{Path(p).name} (mAP)",
                 lambda bar: ad.reid_k_curves(p, device=loaded.device, progress=bar))


def _k_figure(top1: list, own_reid: str | None = None) -> None:
    """The k curves: ``top1`` ones, and mAP ones of ``own_reid`` and the re-ID files picked."""
    usable, skipped = ad.offered(ad.k_curve_candidates(others_paths, "mAP"))
    picked = st.multiselect("Add re-ID checkpoints (mAP over their test query/gallery)", usable,
                            format_func=lambda p: Path(p).name, key="adapt_reid_others")
    for why, names in skipped.items():
        if why.startswith("no ARP"):
            st.caption(f"Not offered: {', '.join(names)}: {why}")
    reid = {Path(p).stem: _reid_curves(p) for p in [own_reid] * bool(own_reid) + picked}
    if top1 or any(reid.values()):
        st.plotly_chart(figures.k_curves_figure(top1, reid), key="adapt_kcurves")
    else:
        st.info("No ARP stage in these checkpoints: no k curve.")


reason = ad.unavailable_reason(loaded.meta)
if reason:
    st.info(f"No adaptivity analysis for this checkpoint: {reason}")
    if is_reid_checkpoint(loaded.meta):
        st.markdown("### k curve (re-ID: mAP against k)")
        _k_figure([], path)
    st.stop()
eval_split = str(loaded.meta.dataset.get("eval_split", "val"))


@st.cache_resource(max_entries=16, show_spinner="Looking for precomputed results...")
def _precomputed(path: str, stamp: int) -> list:
    return ad.precomputed_reports(path)


@st.cache_resource(show_spinner=False)
def _wide_comparison() -> dict:
    return ad.wide_comparison()


def _report(source, split: str, limit: int | None, tau: float, label: str):
    key = (loaded.key if source is loaded.checkpoint else str(source), split, limit, tau)
    return _held("adapt_reports", key, label, lambda bar: ad.run_report(
        source, split, limit, tau, device=loaded.device, progress=bar))


c1, c2, c3 = st.columns(3)
split = c1.radio("Split (SynthBirds)", ["val", "test"], horizontal=True, key="adapt_split",
                 persist_state="session",
                 index=int(common.kept("adapt_split", eval_split) == "test"))
limit = c2.select_slider("Images (the first N of the split)", ad.LIMITS,
                         value=common.kept("adapt_limit", ad.DEFAULT_LIMIT),
                         key="adapt_limit", persist_state="session",
                         help="32 images take about 15-30 s on one CPU thread")
tau = c3.select_slider(TAU_LABEL, TAUS, value=common.kept("adapt_tau", 1.0), key="adapt_tau",
                       persist_state="session",
                       help="C = sigmoid(tau * s). An extension beyond the paper: a larger tau "
                            "sharpens the confidence map. tau = 1 is the paper's operator.")
found = _precomputed(path, loaded.key[2]) if path else []
sources = ["computed here"] + [f"precomputed: {p.relative_to(common.APP_ROOT)}"
                               if p.is_relative_to(common.APP_ROOT) else str(p) for p, _ in found]
source = st.radio("Results", sources, horizontal=True, key="adapt_source",
                  help="A committed analysis of this very checkpoint (same SHA-256), made with "
                       "python -m arpviz.analysis; its split, image count and tau are its own.")
if source == sources[0]:
    try:
        report = _report(path or loaded.checkpoint, split, limit, tau, loaded.label)
    except (ValueError, TypeError) as exc:
        st.error(f"Cannot analyse this checkpoint: {exc}")
        st.stop()
else:
    report = found[sources.index(source) - 1][1]
    st.warning(f"Showing the precomputed file {source.split(': ', 1)[1]} (not computed in this "
               f"session): {report.split} split, {report.count} images, tau {report.tau:g}.")

st.session_state["adapt_report"] = report
st.markdown(f"**{report.count} {report.split} images, tau {report.tau:g}"
            f"{' (the paper)' if report.tau == 1 else ' (beyond the paper)'}: top-1 "
            f"{report.top1:.1f}%.**")
for name in report.stages:
    st.markdown("- " + ad.verdict(report, name))
with st.expander("Why the paper's ARP cannot follow the object"):
    st.markdown(ad.WHY_NOT)

st.markdown("### Rate against object size")
left, right = st.columns([3, 1])
stage = right.selectbox("Stage", list(report.stages), index=len(report.stages) - 1,
                        format_func=lambda n: stage_label(n, report.stages[n].mode),
                        key="adapt_stage")
axis = right.radio("Axis", list(ad.AXES), horizontal=True, key="adapt_axis")
points = ad.rate_points(report, stage, axis)
with left:
    event = st.plotly_chart(figures.rate_scatter(points, loaded.meta.class_names),
                            on_select="rerun", selection_mode="points", key="adapt_scatter")
openable = report.split == eval_split
picked = ad.picked_index(event.selection.points) if event else None
right.caption("Pick a point to open that image in Explore." if openable else
              f"Explore shows the {eval_split} split: analyse it to open points there.")
index = right.number_input("...or image index", 0, max(int(points.index.max()), 0),
                           int(points.index[0]), key="adapt_index", disabled=not openable)
if openable and (picked is not None or right.button("Open in Explore", key="adapt_open")):
    widgets.open_sample(loaded, int(index if picked is None else picked))
    st.switch_page("pages/explore.py")

rows = ad.correlation_rows(report, stage)
if rows:
    st.markdown(f"**Correlations of {stage_label(stage)}'s rate** (bootstrap 95% intervals, "
                f"{report.settings.get('n_boot', '?')} resamples)")
    st.dataframe(rows, hide_index=True)
else:
    st.info("No ground truth: no correlations with the object.")

st.markdown("### k curves")
usable, skipped = ad.offered(ad.k_curve_candidates(others_paths))
others = st.multiselect("Add checkpoints (computed with the split, images and tau above)", usable,
                        format_func=lambda p: Path(p).name, key="adapt_others")
for why, names in skipped.items():
    st.caption(f"Not offered: {', '.join(names)}: {why}")
reports = {Path(loaded.label).stem: report}
reports |= {Path(p).stem: _report(p, split, limit, tau, Path(p).name) for p in others}
_k_figure(ad.k_curves(reports))

st.markdown("### ARP, RP and ARP-FG side by side (the wide-scale runs)")
st.caption(
    "The same question for the committed wide-scale runs (seed 0, 600 test images; "
    "docs/adaptivity.md): the paper's ARP, RP, ARP-FG (beyond the paper: the spread of the "
    "confidence above the map's mean, lower bound 0.125 instead of the DSR), ARP-FG peak (only "
    "the region around the map's maximum) and the oracle (ARP-FG fed the bird's true mask, in "
    "training and test: what no real network has). Open diamonds: what the paper's ARP and "
    "ARP-FG pick when every channel is the bird's mask (the ideal map).")
compared = ad.comparison_rows(_wide_comparison())
if compared:
    st.plotly_chart(figures.comparison_figure(compared), key="adapt_compare")
    st.dataframe([{"checkpoint": r.label, "test top-1 %": None if r.top1 != r.top1 else r.top1,
                   "rate": f"{r.rate_mean:.3f} ± {r.rate_sd:.3f}",
                   "Spearman with height": r.spearman,
                   "95% CI": "-" if r.ci95 is None else f"[{r.ci95[0]:+.2f}, {r.ci95[1]:+.2f}]"}
                  for r in compared], hide_index=True, key="adapt_compare_table")
else:
    st.info("No committed wide-scale analyses here (logs/wide/ of a source checkout).")

st.markdown("### Placement and contrast")
bars, hist = st.columns(2)
bars.plotly_chart(figures.placement_figure(report), key="adapt_placement")
contrast = ad.contrast_values(report)
if any(contrast.values()):
    hist.plotly_chart(figures.contrast_histogram(contrast), key="adapt_contrast")
else:
    hist.info("No ground truth: no object/background contrast.")
