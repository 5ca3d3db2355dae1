"""The Training page's cached readers and its two figure sections (probe images, ARP against
STN), drawn for one epoch inside the page's fragment."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from arpviz.checkpoint import CheckpointMeta
from arpviz.explorer import catalog, inputs
from arpviz.explorer.figures import history as figures
from arpviz.explorer.session import stage_label

Images = Callable[[catalog.TrainingRecord], Any]


@st.cache_resource(max_entries=32, show_spinner="Reading the training record...")
def cached_record(path: str, stamp: tuple[int, int]) -> catalog.TrainingRecord:
    """The training record of one file version (``stamp``: mtime, size); shared by sessions."""
    return catalog.load_record(path)


def read_record(path: Path) -> catalog.TrainingRecord:
    """:func:`cached_record` of the file as it is now."""
    stat = path.stat()
    return cached_record(str(path), (stat.st_mtime_ns, stat.st_size))


@st.cache_resource(max_entries=16, show_spinner="Rendering the probe images...")
def _probe_images(key: str, count: int, _meta: CheckpointMeta) -> tuple:
    images, note = inputs.probe_images_or_blank(_meta, count)
    return images, note or ""


def probe_images(record: catalog.TrainingRecord):
    """The run's probe images (cached per data set record); a note when they are blank."""
    meta = record.meta
    key = json.dumps([dict(meta.dataset), meta.input_size, list(meta.mean), list(meta.std)],
                     sort_keys=True, default=str)
    images, note = _probe_images(key, record.probe_count, meta)
    if note:
        st.caption(f"{record.name}: {note}")
    return images


def _stage_choice(runs: list[catalog.TrainingRecord], epoch: int) -> list[str]:
    """Every pooled stage of the runs at ``epoch``, Conv3 first."""
    return sorted({s for r in runs for s in catalog.stage_names(r.at(epoch))},
                  key=lambda n: (not n.startswith("conv3"), n))


def probe_section(runs: list[catalog.TrainingRecord], epoch: int, images_of: Images) -> bool:
    """Probe images with their boxes, confidence maps and rates of every run with snapshots;
    returns whether the figures animate in the browser."""
    with_snaps = [r for r in runs if r.snapshots]
    if not with_snaps:
        st.info("These checkpoints hold no epoch snapshots of probe images.")
        return False
    names = [r.name for r in runs]
    st.subheader(f"Probe images at epoch {epoch}")
    all_stages = _stage_choice(with_snaps, epoch)
    if (st.session_state.get("_train_stage_options") != all_stages  # other runs: all stages
            or "train_stages" not in st.session_state):  # (back from another page)
        st.session_state["_train_stage_options"] = all_stages
        st.session_state["train_stages"] = all_stages
    c1, c2, c3, c4 = st.columns([3, 2, 1, 2])
    with c1:
        stages = st.multiselect("stages", all_stages, key="train_stages",
                                format_func=lambda s: figures.shared_stage_title(with_snaps, s),
                                disabled=not all_stages,
                                help=None if all_stages else "No pooled stage: every stage of "
                                "these runs downsamples by stride, so there is no crop to draw.")
    max_probes = max(r.probe_count for r in with_snaps)
    with c2:
        shown = (st.slider("probe images shown", 1, max_probes, min(8, max_probes),
                           key="train_probes") if max_probes > 1 else 1)
    with c3:
        cols = st.number_input("columns", 1, 8, 4 if len(with_snaps) == 1 else 2,
                               key="train_cols", persist_state="session")
    with c4:
        animate = st.checkbox("animate in the browser", key="train_animate",
                              help="Adds plotly's own epoch slider and play button to the "
                                   "figure (all epochs sent at once).")
    for column, run in zip(st.columns(len(with_snaps)), with_snaps, strict=True):
        with column:
            images = images_of(run)
            probes = list(range(min(shown, run.probe_count)))
            st.markdown(f"**{figures.run_label(run)}**")
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

    pooled = [r for r in with_snaps if catalog.stage_names(r.at(epoch))]
    if not pooled:
        return bool(animate)
    st.subheader("Confidence maps and crops")
    max_pooled = max(r.probe_count for r in pooled)
    probe = st.number_input("probe image", 0, max_pooled - 1, 0, key="train_probe")
    for column, run in zip(st.columns(len(pooled)), pooled, strict=True):
        with column:
            if probe < run.probe_count:
                st.markdown(f"**{run.name}**, probe #{probe}, epoch {run.at(epoch).epoch}")
                st.plotly_chart(figures.confidence_figure(run, epoch, int(probe)),
                                width="content", key=f"train_conf_{names.index(run.name)}")
    rows = [row for run in pooled if probe < run.probe_count
            for row in figures.stage_rows(run, epoch, int(probe))]
    widths = dict(zip(figures.STAGE_COLUMNS, (190, 170, 120, 120, 130, 100, 110), strict=True))
    st.dataframe(rows, hide_index=True, width="stretch", key="train_rows",
                 column_order=figures.STAGE_COLUMNS,
                 column_config={c: st.column_config.TextColumn(c, width=w)
                                for c, w in widths.items()})
    st.caption("Each map is the stage's confidence over its input feature map, on one colour "
               "scale; the red box is the crop the stage resampled. Sizes and rates are height x "
               "width; the crop is given in the network's input pixels, the output in "
               "feature-map cells."
               + (" A spatial transformer (STN) does not use the map: it is ARP's confidence, "
                  "shown for reference." if any(r.conv4 == "stn" for r in pooled) else ""))
    st.markdown("**Crop area over the epochs** (mean over the probe images; hover: min and max)")
    st.plotly_chart(figures.rates_figure(pooled, epoch), width="stretch", key="train_rates")
    return bool(animate)


def comparison_section(runs: list[catalog.TrainingRecord], epoch: int, animate: bool,
                       images_of: Images) -> None:
    """ARP against STN on the same probe images, when the chosen runs hold such a pair."""
    pairs = catalog.comparison_pairs(runs)
    if not pairs:
        return
    st.subheader("MSGN with ARP against MSGN with the spatial transformer")
    labels = [f"{a.name} vs {s.name}" for a, s in pairs]
    pick = st.selectbox("pair", range(len(pairs)), format_func=lambda i: labels[i],
                        key="train_pair") if len(pairs) > 1 else 0
    arp, stn = pairs[pick]
    count = min(arp.probe_count, stn.probe_count)
    branches = min(arp.meta.config.local_branches, stn.meta.config.local_branches)
    p0, p1, p2, p3 = st.columns(4)
    with p0:
        branch = st.selectbox("local branch", range(branches), key="train_pair_branch",
                              format_func=lambda b: stage_label(f"conv4.local{b}"),
                              disabled=branches < 2)
    with p1:
        n_pair = st.slider("probe images", 1, count, min(4, count),
                           key="train_pair_probes") if count > 1 else 1
    with p2:
        pair_cols = st.number_input("pairs per row", 1, 6, 2, key="train_pair_cols",
                                    persist_state="session")
    with p3:
        show_conv3 = st.checkbox("show the Conv3 box too", value=True, key="train_pair_conv3",
                                 persist_state="session")
    st.plotly_chart(
        figures.comparison_figure(images_of(arp), arp, stn, epoch,
                                  probes=list(range(min(n_pair, count))), cols=int(pair_cols),
                                  show_conv3=show_conv3, animate=animate,
                                  stage=f"conv4.local{branch}"),
        width="stretch", key="train_pair_fig")
    st.caption(f"Each probe twice: {arp.name} (left) and {stn.name} (right) at epoch {epoch}; "
               "captions: the top-1's probability, ✓ / ✗ against the label (hover: the "
               "classes). Both runs' learning curves are in the first figure.")
