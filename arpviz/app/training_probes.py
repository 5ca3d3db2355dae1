"""The Training page's figures of one epoch: the probe images with every stage's box, their
confidence maps and crops, and ARP against the spatial transformer on the same probes (drawn
inside the player's fragment, :mod:`arpviz.app.training`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from arpviz.app.state import app_state, bind
from arpviz.explorer import catalog
from arpviz.explorer.figures import history as figures
from arpviz.models.stages import stage_label
from arpviz.text import plain

__all__ = ["comparison_section", "probe_section"]

Images = Callable[[catalog.TrainingRecord], Any]


def _stage_choice(runs: list[catalog.TrainingRecord], epoch: int) -> list[str]:
    """Every pooled stage of the runs at ``epoch``, Conv3 first."""
    return sorted({s for r in runs for s in catalog.stage_names(r.at(epoch))},
                  key=lambda n: (not n.startswith("conv3"), n))


def probe_section(runs: list[catalog.TrainingRecord], epoch: int, images_of: Images) -> bool:
    """Probe images with their boxes, confidence maps and rates of every run with snapshots;
    returns whether the figures animate in the browser."""
    settings = app_state().training
    with_snaps = [r for r in runs if r.snapshots]
    if not with_snaps:
        st.info("These checkpoints hold no epoch snapshots of probe images.")
        return False
    names = [r.name for r in runs]
    st.subheader(f"Probe images at epoch {epoch}")
    all_stages = _stage_choice(with_snaps, epoch)
    if settings.stage_options != all_stages or settings.stages is None:  # other runs: all
        settings.stage_options = all_stages
        settings.stages = all_stages
    c1, c2, c3, c4 = st.columns([3, 2, 1, 2])
    with c1:
        stages = bind(st.multiselect, "stages", settings, "stages", options=all_stages,
                      format_func=lambda s: figures.shared_stage_title(with_snaps, s),
                      disabled=not all_stages,
                      help=None if all_stages else "No pooled stage: every stage of these "
                      "runs downsamples by stride, so there is no crop to draw.")
    max_probes = max(r.probe_count for r in with_snaps)
    with c2:
        settings.probes = min(max(int(settings.probes), 1), max_probes)
        shown = (bind(st.slider, "probe images shown", settings, "probes", min_value=1,
                      max_value=max_probes) if max_probes > 1 else 1)
    with c3:
        if not settings.cols:
            settings.cols = 4 if len(with_snaps) == 1 else 2
        cols = bind(st.number_input, "columns", settings, "cols", min_value=1, max_value=8)
    with c4:
        animate = bind(st.checkbox, "animate in the browser", settings, "animate",
                       help="Adds plotly's own epoch slider and play button to the figure (all "
                            "epochs sent at once).")
    for column, run in zip(st.columns(len(with_snaps)), with_snaps, strict=True):
        with column:
            images = images_of(run)
            probes = list(range(min(shown, run.probe_count)))
            st.markdown(f"**{plain(figures.run_label(run))}**")
            if run.at(epoch).epoch != epoch:
                st.caption(f"No snapshot at epoch {epoch}: showing epoch {run.at(epoch).epoch}.")
            own = [s for s in stages if s in catalog.stage_names(run.at(epoch))]
            if not catalog.stage_names(run.at(epoch)):
                st.caption("Every stage of this run downsamples by stride: no crops, only the "
                           "predictions.")
            st.plotly_chart(
                figures.probe_figure(images, run, epoch, stages=own, probes=probes,
                                     cols=int(cols), animate=animate),
                width="stretch", key=f"train_probe_fig_{names.index(run.name)}")
    what = ("identity" if all(r.is_reid for r in with_snaps) else
            "top-1 class and its probability, ✓ / ✗ against the label (hover: the label and the "
            "top-5)")
    st.caption(f"Each box is a stage's crop in the network's input, one colour per stage (hover: "
               f"its size, height x width, and rate). Captions: the {what}.")
    _maps(runs, [r for r in with_snaps if catalog.stage_names(r.at(epoch))], epoch)
    return bool(animate)


def _maps(runs: list[catalog.TrainingRecord], pooled: list[catalog.TrainingRecord],
          epoch: int) -> None:
    """One probe's confidence maps and crops per run, its stage table, and the crop area over
    the epochs."""
    if not pooled:
        return
    settings = app_state().training
    names = [r.name for r in runs]
    st.subheader(f"Confidence maps and crops at epoch {epoch}")
    max_pooled = max(r.probe_count for r in pooled)
    settings.probe = min(max(int(settings.probe), 0), max_pooled - 1)
    probe = int(bind(st.number_input, "probe image", settings, "probe", min_value=0,
                     max_value=max_pooled - 1))
    for column, run in zip(st.columns(len(pooled)), pooled, strict=True):
        with column:
            if probe < run.probe_count:
                st.markdown(f"**{plain(run.name)}**, probe #{probe}, epoch {run.at(epoch).epoch}")
                st.plotly_chart(figures.confidence_figure(run, epoch, probe),
                                width="content", key=f"train_conf_{names.index(run.name)}")
    rows = [row for run in pooled if probe < run.probe_count
            for row in figures.stage_rows(run, epoch, probe)]
    st.dataframe(rows, hide_index=True, width="stretch", key="train_rows",
                 column_order=figures.STAGE_COLUMNS,
                 column_config={c: st.column_config.TextColumn(c) for c in figures.STAGE_COLUMNS})
    st.caption("Each map is the stage's confidence over its input feature map, on one colour "
               "scale; the red box is the crop the stage resampled. Sizes and rates are height x "
               "width; the crop is given in the network's input pixels, the output in "
               "feature-map cells."
               + (" A spatial transformer (STN) does not use the map: it is ARP's confidence, "
                  "shown for reference." if any(r.conv4 == "stn" for r in pooled) else ""))
    st.markdown("**Crop area over the epochs** (mean over the probe images; hover: min and max)")
    st.plotly_chart(figures.rates_figure(pooled, epoch), width="stretch", key="train_rates")


def comparison_section(runs: list[catalog.TrainingRecord], epoch: int, animate: bool,
                       images_of: Images) -> None:
    """ARP against STN on the same probe images, when the chosen runs hold such a pair."""
    pairs = catalog.comparison_pairs(runs)
    if not pairs:
        return
    settings = app_state().training
    st.subheader(f"MSGN with ARP against MSGN with the spatial transformer, epoch {epoch}")
    labels = [f"{a.name} vs {s.name}" for a, s in pairs]
    settings.pair = min(max(int(settings.pair), 0), len(pairs) - 1)
    pick = bind(st.selectbox, "pair", settings, "pair", options=list(range(len(pairs))),
                format_func=lambda i: labels[i]) if len(pairs) > 1 else 0
    arp, stn = pairs[pick]
    count = min(arp.probe_count, stn.probe_count)
    branches = min(arp.meta.config.local_branches, stn.meta.config.local_branches)
    p0, p1, p2, p3 = st.columns(4)
    with p0:
        branch = bind(st.selectbox, "local branch", settings, "pair_branch",
                      options=list(range(branches)),
                      format_func=lambda b: stage_label(f"conv4.local{b}"),
                      disabled=branches < 2)
    with p1:
        settings.pair_probes = min(max(int(settings.pair_probes), 1), count)
        n_pair = bind(st.slider, "probe images", settings, "pair_probes", min_value=1,
                      max_value=count) if count > 1 else 1
    with p2:
        pair_cols = bind(st.number_input, "pairs per row", settings, "pair_cols", min_value=1,
                         max_value=6)
    with p3:
        show_conv3 = bind(st.checkbox, "show the Conv3 box too", settings, "pair_conv3")
    st.plotly_chart(
        figures.comparison_figure(images_of(arp), arp, stn, epoch,
                                  probes=list(range(min(n_pair, count))), cols=int(pair_cols),
                                  show_conv3=show_conv3, animate=animate,
                                  stage=f"conv4.local{branch}"),
        width="stretch", key="train_pair_fig")
    st.caption(f"Each probe twice: {plain(arp.name)} (left) and {plain(stn.name)} (right) at "
               f"epoch {epoch}; "
               "captions: the top-1's probability, ✓ / ✗ against the label (hover: the "
               "classes). Both runs' learning curves are in the first figure.")
