"""Training: learning curves and the probe images' crops epoch by epoch (widgets and rendering).

Checkpoints come from the bundled folder and the sidebar's folder (``pages.common``), plus the
sidebar's uploaded checkpoint; only their metadata and snapshots are read (no model is built).
The epoch slider and the play toggle drive every figure; playing steps one epoch per rerun.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import streamlit as st

from arpviz import explore as ex
from arpviz import history as hist
from arpviz.checkpoint import CheckpointError, CheckpointMeta
from pages import common

EPOCH_KEY = "train_epoch"
PLAY_KEY = "train_play"
_NEXT_KEY = "_train_next_epoch"
_STOP_KEY = "_train_stop"
SPEEDS = (0.3, 0.7, 1.5, 3.0)
MAX_RUNS = 4


@st.cache_resource(max_entries=32, show_spinner="Reading the training record...")
def cached_record(path: str, stamp: tuple[int, int]) -> hist.TrainingRecord:
    """The training record of one file version (``stamp``: mtime, size); shared by sessions."""
    return hist.load_record(path)


@st.cache_resource(max_entries=16, show_spinner="Rendering the probe images...")
def cached_probe_images(key: str, count: int, _meta: CheckpointMeta) -> tuple[np.ndarray, str]:
    """The probe images of a data set record (``key``: its JSON and input size)."""
    images, note = hist.probe_images_or_blank(_meta, count)
    return images, note or ""


def probe_images(record: hist.TrainingRecord) -> np.ndarray:
    """The run's probe images (cached); a note in the page if they had to be blank."""
    key = json.dumps([dict(record.meta.dataset), record.meta.input_size,
                      list(record.meta.mean), list(record.meta.std)], sort_keys=True, default=str)
    images, note = cached_probe_images(key, record.probe_count, record.meta)
    if note:
        st.caption(f"{record.name}: {note}")
    return images


def discover() -> tuple[dict[str, hist.TrainingRecord], list[str]]:
    """Every checkpoint with a training history, keyed by a unique name, and the skipped ones."""
    folder = st.session_state.get("arpviz_ckpt_dir") or os.environ.get("ARPVIZ_CHECKPOINT_DIR")
    records: dict[str, hist.TrainingRecord] = {}
    skipped: list[str] = []
    for path in ex.find_checkpoints([common.bundled_dir(), folder]):
        try:
            stat = path.stat()
            record = cached_record(str(path), (stat.st_mtime_ns, stat.st_size))
        except (CheckpointError, OSError) as exc:
            skipped.append(f"{path.name}: {exc}")
            continue
        if not record.has_history:
            skipped.append(f"{path.name}: no training history")
            continue
        name = unique_name(record.name, f"{record.name} ({path.parent})", records)
        records[name] = record if name == record.name else replace(record, name=name)
    loaded = common.current_checkpoint()
    if loaded is not None and loaded.checkpoint.path is None:  # an uploaded checkpoint
        try:
            record = hist.record_from_checkpoint(loaded.checkpoint, loaded.label)
        except CheckpointError as exc:
            skipped.append(f"{loaded.label}: {exc}")
        else:
            if record.has_history:
                name = unique_name(record.name, f"{record.name} (upload)", records)
                records[name] = record if name == record.name else replace(record, name=name)
    return records, skipped


def unique_name(name: str, fallback: str, taken: dict) -> str:
    """``name``, else ``fallback``, else ``fallback`` with a number: not a key of ``taken``."""
    if name not in taken:
        return name
    candidate, number = fallback, 2
    while candidate in taken:
        candidate, number = f"{fallback} #{number}", number + 1
    return candidate


def default_runs(records: dict[str, hist.TrainingRecord]) -> list[str]:
    """The sidebar's checkpoint when it has a history, else the bundled default, else the first;
    with its ARP or STN counterpart when there is one (the comparison then shows at once)."""
    first = _first_run(records)
    for arp, stn in hist.comparison_pairs(list(records.values())):
        if first in (arp.name, stn.name):
            return [arp.name, stn.name]
    return [first]


def _first_run(records: dict[str, hist.TrainingRecord]) -> str:
    loaded = common.current_checkpoint()
    if loaded is not None:
        for name, record in records.items():
            if (record.path is not None and loaded.checkpoint.path is not None
                    and Path(record.path).resolve() == Path(loaded.checkpoint.path).resolve()):
                return name
            if record.path is None and name == loaded.label:
                return name
    for name, record in records.items():
        if record.path is not None and Path(record.path).name == ex.BUNDLED_DEFAULT:
            return name
    return next(iter(records))


def add_runs(names: list[str]) -> None:
    """Add runs to the chosen ones (a button's callback, before the widget is drawn)."""
    chosen = list(st.session_state.get("train_runs", []))
    st.session_state["train_runs"] = (chosen + [n for n in names if n not in chosen])[:MAX_RUNS]


def start_playing() -> None:
    """Play from the first epoch when the toggle goes on at the last one."""
    epochs = st.session_state.get("_train_epochs", [])
    if st.session_state.get(PLAY_KEY) and epochs and st.session_state.get(EPOCH_KEY) == epochs[-1]:
        st.session_state[EPOCH_KEY] = epochs[0]


# ----------------------------------------------------------------------------- the page

st.header("Training")
st.markdown(
    "Learning curves, and what the pooled stages did to a fixed set of probe images after "
    "every epoch: the crop of Conv3 and of each local branch's Conv4, their rates and "
    "confidence maps, as the checkpoint recorded them."
)

records, skipped = discover()
if skipped:
    with st.expander(f"{len(skipped)} checkpoint(s) without a usable history"):
        st.markdown("\n".join(f"- {s}" for s in skipped))
if not records:
    st.info(
        "No checkpoint with a training history found. Train one (`python -m arpviz.train "
        "--config configs/synthbirds_msgn_arp.json`), or pick a folder or upload a checkpoint "
        "in the sidebar."
    )
    st.stop()

names = list(records)
if "train_runs" in st.session_state:  # drop runs that disappeared since
    st.session_state["train_runs"] = [n for n in st.session_state["train_runs"] if n in records]
else:
    st.session_state["train_runs"] = default_runs(records)
chosen = st.multiselect(
    "Runs (pick two or more to compare)", names,
    max_selections=MAX_RUNS, key="train_runs",
    format_func=lambda n: records[n].label,
)
if not chosen:
    st.info("Pick at least one run.")
    st.stop()
runs = [records[n] for n in chosen]
epochs = hist.record_epochs(runs)
st.session_state["_train_epochs"] = epochs

# state changes for playing, before the widgets that own these keys are drawn
if st.session_state.pop(_STOP_KEY, False):
    st.session_state[PLAY_KEY] = False
next_epoch = st.session_state.pop(_NEXT_KEY, None)
if next_epoch is not None:
    st.session_state[EPOCH_KEY] = next_epoch
if st.session_state.get(EPOCH_KEY) not in epochs:
    st.session_state[EPOCH_KEY] = epochs[-1]

slider_col, play_col, speed_col = st.columns([6, 1, 2])
with slider_col:
    if len(epochs) > 1:
        epoch = st.select_slider("epoch", epochs, key=EPOCH_KEY)
    else:
        epoch = epochs[0]
        st.markdown(f"epoch **{epoch}** (the only one recorded)")
with play_col:
    playing = st.toggle("play", key=PLAY_KEY, on_change=start_playing,
                        disabled=len(epochs) < 2, help="Step through the epochs")
with speed_col:
    delay = st.select_slider("seconds per epoch", SPEEDS, value=0.7, key="train_speed")

st.subheader("Learning curves")
st.plotly_chart(hist.learning_curves(runs, epoch=epoch), width="stretch", key="train_curves")

with_snaps = [r for r in runs if r.snapshots]
animate = False
if not with_snaps:
    st.info("These checkpoints hold no epoch snapshots of probe images.")
else:
    st.subheader(f"Probe images at epoch {epoch}")
    all_stages = sorted({s for r in with_snaps for s in hist.stage_names(r.at(epoch))},
                        key=lambda n: (not n.startswith("conv3"), n))
    c1, c2, c3, c4 = st.columns([3, 2, 1, 2])
    with c1:
        stages = st.multiselect("stages", all_stages, default=all_stages, key="train_stages",
                                format_func=ex.stage_label)
    max_probes = max(r.probe_count for r in with_snaps)
    with c2:
        shown = (st.slider("probe images shown", 1, max_probes, min(8, max_probes),
                           key="train_probes") if max_probes > 1 else 1)
    with c3:
        cols = st.number_input("columns", 1, 8, 4 if len(with_snaps) == 1 else 2,
                               key="train_cols")
    with c4:
        animate = st.checkbox("animate in the browser", key="train_animate",
                              help="Adds plotly's own epoch slider and play button to the "
                                   "figure (all epochs sent at once).")
    columns = st.columns(len(with_snaps))
    for column, run in zip(columns, with_snaps, strict=True):
        with column:
            images = probe_images(run)
            probes = list(range(min(shown, run.probe_count)))
            st.markdown(f"**{run.label}**")
            if run.at(epoch).epoch != epoch:
                st.caption(f"no snapshot at epoch {epoch}: showing epoch {run.at(epoch).epoch}")
            st.plotly_chart(
                hist.probe_figure(images, run, epoch, stages=stages, probes=probes,
                                  cols=int(cols), animate=animate),
                width="stretch", key=f"train_probe_fig_{chosen.index(run.name)}",
            )
            st.caption(f"training boxes of {run.name}, {hist.box_text(run, epoch)}")

    st.subheader("Confidence maps and rates")
    probe = st.number_input("probe image", 0, max_probes - 1, 0, key="train_probe")
    columns = st.columns(len(with_snaps))
    for column, run in zip(columns, with_snaps, strict=True):
        with column:
            if probe < run.probe_count:
                st.markdown(f"**{run.name}**, probe #{probe}, epoch {run.at(epoch).epoch}")
                st.plotly_chart(hist.confidence_figure(run, epoch, int(probe)), width="stretch",
                                key=f"train_conf_{chosen.index(run.name)}")
                st.dataframe(hist.stage_rows(run, epoch, [int(probe)]), hide_index=True,
                             key=f"train_rows_{chosen.index(run.name)}")
    st.markdown("**Crop area over the epochs** (mean over the probe images)")
    st.plotly_chart(hist.rates_figure(with_snaps, epoch), width="stretch", key="train_rates")

st.subheader("MSGN with ARP against MSGN with the spatial transformer")
pairs = hist.comparison_pairs(runs)
possible = [] if pairs else sorted(hist.comparison_pairs(list(records.values())),
                                   key=lambda pair: -sum(r.name in chosen for r in pair))
if not pairs and possible:
    missing = [r.name for r in possible[0] if r.name not in chosen]
    room = len(chosen) + len(missing) <= MAX_RUNS
    st.info(f"Add {' and '.join(f'**{m}**' for m in missing)} to the runs above to compare ARP "
            "with the spatial transformer on the same probe images, epoch by epoch.")
    st.button("Compare " + " with ".join(r.name for r in possible[0]), key="train_add_pair",
              on_click=add_runs, args=(missing,), disabled=not room,
              help=None if room else f"At most {MAX_RUNS} runs: remove one first.")
elif not pairs:
    st.info(
        "Appears when an MSGN checkpoint with ARP in Conv4 and one with the spatial transformer "
        "(STN) on the same probe images are both there, e.g. checkpoints/synthbirds_msgn_arp "
        "and checkpoints/synthbirds_msgn_stn."
    )
else:
    labels = [f"{a.name} vs {s.name}" for a, s in pairs]
    pick = st.selectbox("pair", range(len(pairs)), format_func=lambda i: labels[i],
                        key="train_pair") if len(pairs) > 1 else 0
    arp, stn = pairs[pick]
    count = min(arp.probe_count, stn.probe_count)
    branches = min(arp.meta.config.local_branches, stn.meta.config.local_branches)
    p0, p1, p2, p3 = st.columns(4)
    with p0:
        branch = st.selectbox("local branch", range(branches), key="train_pair_branch",
                              format_func=lambda b: f"Conv4, local branch {b}",
                              disabled=branches < 2)
    with p1:
        n_pair = st.slider("probe images", 1, count, min(4, count),
                           key="train_pair_probes") if count > 1 else 1
    with p2:
        pair_cols = st.number_input("pairs per row", 1, 6, 2, key="train_pair_cols")
    with p3:
        show_conv3 = st.checkbox("show the Conv3 box too", value=True, key="train_pair_conv3")
    images = probe_images(arp)
    st.plotly_chart(
        hist.comparison_figure(images, arp, stn, epoch, probes=list(range(min(n_pair, count))),
                               cols=int(pair_cols), show_conv3=show_conv3, animate=animate,
                               stage=f"conv4.local{branch}"),
        width="stretch", key="train_pair_fig",
    )
    st.caption(
        f"training comparison at epoch {epoch}: ARP {hist.box_text(arp, epoch)} | "
        f"STN {hist.box_text(stn, epoch)}"
    )
    st.plotly_chart(hist.learning_curves([arp, stn], epoch=epoch), width="stretch",
                    key="train_pair_curves")

if playing and len(epochs) > 1:
    time.sleep(float(delay))
    position = epochs.index(epoch)
    if position + 1 < len(epochs):
        st.session_state[_NEXT_KEY] = epochs[position + 1]
    else:
        st.session_state[_STOP_KEY] = True
    st.rerun()
