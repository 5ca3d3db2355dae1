"""The Training page's parts: the runs (read once per file version: metadata and snapshots, no
model), the player, and the figures of one epoch (learning curves, probe images, confidence
maps, ARP against the spatial transformer).

The player steps :attr:`TrainingSettings.epoch <arpviz.app.state.TrainingSettings.epoch>`
inside a fragment that reruns every ``speed`` seconds while playing; at the last epoch it stops
there (the toggle goes off, the epoch stays). Every heading and figure of one run is drawn from
the same epoch value, and the figures name it themselves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from arpviz.app import training_probes
from arpviz.app.sidebar import checkpoint_paths
from arpviz.app.state import TrainingSettings, app_state, bind
from arpviz.checkpoint import CheckpointMeta
from arpviz.explorer import catalog, inputs
from arpviz.explorer.figures import history as figures
from arpviz.text import plain

__all__ = ["MAX_RUNS", "SPEEDS", "comparison_offer", "player", "runs"]

SPEEDS = (0.3, 0.7, 1.5, 3.0)
MAX_RUNS = 4
Images = Callable[[catalog.TrainingRecord], Any]


@st.cache_resource(max_entries=32, show_spinner="Reading the training record...")
def _record(path: str, stamp: tuple[int, int]) -> catalog.TrainingRecord:
    return catalog.load_record(path)


def _read(path: Path) -> catalog.TrainingRecord:
    stat = path.stat()
    return _record(str(path), (stat.st_mtime_ns, stat.st_size))


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
        st.caption(f"{plain(record.name)}: {plain(note)}")
    return images


def runs() -> tuple[dict[str, catalog.TrainingRecord], list[catalog.TrainingRecord]] | None:
    """Every run found (bundled folder, the sidebar's folder and upload) and those the user
    chose; ``None`` with a note when there is none."""
    state = app_state()
    loaded = state.loaded
    upload = (loaded.checkpoint, loaded.label) if loaded and loaded.checkpoint.path is None \
        else None
    records, skipped = catalog.discover_runs(checkpoint_paths(), _read, upload)
    if skipped:
        with st.expander(f"{len(skipped)} checkpoint(s) without a usable history"):
            st.markdown("\n".join(f"- {plain(s)}" for s in skipped))
    if not records:
        st.info("No checkpoint with a training history found. Train one (`python -m "
                "arpviz.train --config configs/synthbirds_wide_msgn_arp.json`), or pick a folder "
                "or upload a checkpoint in the sidebar.")
        return None
    settings = state.training
    if settings.runs is None:
        current = None if loaded is None else (loaded.checkpoint.path or loaded.label)
        settings.runs = catalog.default_runs(records, current)
    chosen = bind(st.multiselect, "Runs (pick two or more to compare)", settings, "runs",
                  options=list(records), max_selections=MAX_RUNS,
                  format_func=lambda n: figures.run_label(records[n]))
    if not chosen:
        st.info("Pick at least one run.")
        return None
    return records, [records[n] for n in chosen]


def _start(settings: TrainingSettings, epochs: list[int]) -> None:
    """The toggle went on: play from the first epoch when standing on the last one."""
    settings.step_at = time.monotonic()
    if settings.playing and epochs and settings.epoch == epochs[-1]:
        settings.epoch = epochs[0]


def _step(settings: TrainingSettings, epochs: list[int]) -> None:
    """While playing, one epoch on per ``speed`` seconds; at the last one stop there (a full
    rerun turns the fragment's timer and the toggle off)."""
    now = time.monotonic()
    if now - settings.step_at < 0.9 * settings.speed:
        return
    settings.step_at = now
    position = epochs.index(settings.epoch)
    if position + 1 < len(epochs):
        settings.epoch = epochs[position + 1]
    if epochs.index(settings.epoch) + 1 == len(epochs):
        settings.playing = False
        st.rerun()


def player(chosen: list[catalog.TrainingRecord]) -> None:
    """The play toggle and speed, then the epoch view (a fragment rerun by the player)."""
    settings = app_state().training
    epochs = catalog.record_epochs(chosen)
    if settings.epoch not in epochs:
        settings.epoch = epochs[-1]
    if len(epochs) < 2:
        settings.playing = False
    play_col, speed_col = st.columns([1, 3])
    with play_col:
        bind(st.toggle, "play", settings, "playing", on_change=lambda: _start(settings, epochs),
             disabled=len(epochs) < 2, help="Step through the epochs; stops at the last one.")
    with speed_col:
        bind(st.select_slider, "seconds per epoch", settings, "speed", options=SPEEDS)
    st.fragment(_epoch_view, run_every=float(settings.speed) if settings.playing else None)(
        chosen, epochs)


def _epoch_view(chosen: list[catalog.TrainingRecord], epochs: list[int]) -> None:
    """The epoch slider and every figure it drives (run as a fragment)."""
    settings = app_state().training
    if settings.playing:
        _step(settings, epochs)
    if len(epochs) > 1:
        epoch = bind(st.select_slider, "epoch", settings, "epoch", options=epochs)
    else:
        epoch = epochs[0]
        st.markdown(f"epoch **{epoch}** (the only one recorded)")
    st.subheader(f"Learning curves (epoch {epoch} marked)")
    note = catalog.recipe_note(chosen)
    if note:
        st.warning(plain(note), icon=":material/warning:")
    st.plotly_chart(figures.learning_curves(chosen, epoch=epoch), width="stretch",
                    key="train_curves")
    reid = [r.name for r in chosen if r.is_reid]
    st.caption(
        "Colour: the run; line style: the metric (the legends under the panels); the grey "
        "dashed line: the epoch shown below."
        + (f" Re-ID runs ({', '.join(reid)}): the middle panel shows each epoch's test mAP "
           "(thick) and rank-1 (dash-dot) on the query/gallery split, as the paper's Figure 4; "
           "their probe images are the first query images, identities the classifier never "
           "saw, so their captions name the identity, not a prediction." if reid else ""))
    animate = training_probes.probe_section(chosen, epoch, probe_images)
    training_probes.comparison_section(chosen, epoch, animate, probe_images)


def comparison_offer(records: dict[str, catalog.TrainingRecord],
                     chosen: list[catalog.TrainingRecord]) -> None:
    """Offer the ARP / spatial-transformer pair when the chosen runs lack one."""
    settings = app_state().training
    pairs = catalog.comparison_pairs(chosen)
    if pairs or all(r.is_reid for r in chosen):
        return
    every = list(records.values())
    st.subheader("MSGN with ARP against MSGN with the spatial transformer")
    possible = sorted(catalog.comparison_pairs(every),
                      key=lambda pair: -sum(r.name in settings.runs for r in pair))
    if not possible:
        st.info("Appears when an MSGN checkpoint with ARP in Conv4 and one with the spatial "
                "transformer (STN) on the same probe images are both there, e.g. "
                "checkpoints/synthbirds_wide_msgn_arp and checkpoints/synthbirds_wide_msgn_stn.")
        return
    names = list(settings.runs or [])
    missing = [r.name for r in possible[0] if r.name not in names]
    room = len(names) + len(missing) <= MAX_RUNS

    def add() -> None:
        settings.runs = (names + [m for m in missing if m not in names])[:MAX_RUNS]

    st.info(f"Add {' and '.join(f'**{plain(m)}**' for m in missing)} to the runs above to "
            "compare ARP with the spatial transformer on the same probe images, epoch by epoch.")
    st.button("Compare " + " with ".join(r.name for r in possible[0]), key="train_add_pair",
              on_click=add, disabled=not room,
              help=None if room else f"At most {MAX_RUNS} runs: remove one first.")

