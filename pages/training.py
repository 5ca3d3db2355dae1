"""Training: learning curves and the probe images' crops epoch by epoch (widgets and rendering).

Runs come from :func:`arpviz.explorer.catalog.discover_runs` (the bundled folder, the sidebar's
folder and its uploaded checkpoint; only metadata and snapshots are read, no model is built).
The epoch slider and everything it drives are one fragment: moving it, or playing (the fragment
reruns every ``seconds per epoch`` with ``run_every``), redraws only that part.
"""

from __future__ import annotations

import time

import streamlit as st

from arpviz.explorer import catalog
from arpviz.explorer.figures import history as figures
from pages import common
from pages.training_parts import comparison_section, probe_images, probe_section, read_record

EPOCH_KEY = "train_epoch"
PLAY_KEY = "train_play"
_STOP_KEY = "_train_stop"
_STEP_AT = "_train_step_at"
SPEEDS = (0.3, 0.7, 1.5, 3.0)
MAX_RUNS = 4


def start_playing() -> None:
    """Play from the first epoch when the toggle goes on at the last one."""
    epochs = st.session_state.get("_train_epochs", [])
    st.session_state[_STEP_AT] = time.monotonic()
    if st.session_state.get(PLAY_KEY) and epochs and st.session_state.get(EPOCH_KEY) == epochs[-1]:
        st.session_state[EPOCH_KEY] = epochs[0]


def _step(epochs: list[int], delay: float) -> None:
    """While playing, one epoch on per ``delay`` seconds; at the last one, stop (full rerun)."""
    now = time.monotonic()
    if now - st.session_state.get(_STEP_AT, 0.0) < 0.9 * delay:
        return
    st.session_state[_STEP_AT] = now
    position = epochs.index(st.session_state[EPOCH_KEY])
    if position + 1 < len(epochs):
        st.session_state[EPOCH_KEY] = epochs[position + 1]
    else:
        st.session_state[_STOP_KEY] = True
        st.rerun()


def epoch_view(runs: list[catalog.TrainingRecord], epochs: list[int], playing: bool,
               delay: float) -> None:
    """The epoch slider and every figure it drives (run as a fragment)."""
    if playing:
        _step(epochs, delay)
    if len(epochs) > 1:
        epoch = st.select_slider("epoch", epochs, key=EPOCH_KEY)
    else:
        epoch = epochs[0]
        st.markdown(f"epoch **{epoch}** (the only one recorded)")
    st.subheader("Learning curves")
    st.plotly_chart(figures.learning_curves(runs, epoch=epoch), width="stretch",
                    key="train_curves")
    reid = [r.name for r in runs if r.is_reid]
    st.caption(
        "Colour: the run; line style: the metric (the legends under the panels); the grey "
        "dashed line: the epoch shown below."
        + (f" Re-ID runs ({', '.join(reid)}): the middle panel shows each epoch's test mAP "
           "(thick) and rank-1 (dash-dot) on the query/gallery split, as the paper's Figure 4; "
           "their probe images are the first query images, identities the classifier never "
           "saw, so their captions name the identity, not a prediction." if reid else ""))
    animate = probe_section(runs, epoch, probe_images)
    comparison_section(runs, epoch, animate, probe_images)


# ----------------------------------------------------------------------------- the page

st.header("Training")
st.markdown(
    "Learning curves, and what the pooled stages did to a fixed set of probe images after "
    "every epoch: each pooled stage's crop (RP, ARP, ARP-FG, or the spatial transformer's box), "
    "its rate and its confidence map, as the checkpoint recorded them."
)
loaded = common.current_checkpoint()
upload = (loaded.checkpoint, loaded.label) if loaded and loaded.checkpoint.path is None else None
records, skipped = catalog.discover_runs(common.checkpoint_paths(), read_record, upload)
if skipped:
    with st.expander(f"{len(skipped)} checkpoint(s) without a usable history"):
        st.markdown("\n".join(f"- {s}" for s in skipped))
if not records:
    st.info(
        "No checkpoint with a training history found. Train one (`python -m arpviz.train "
        "--config configs/synthbirds_wide_msgn_arp.json`), or pick a folder or upload a checkpoint "
        "in the sidebar."
    )
    st.stop()

if "train_runs" in st.session_state:  # drop runs that disappeared since
    st.session_state["train_runs"] = [n for n in st.session_state["train_runs"] if n in records]
else:
    current = None if loaded is None else (loaded.checkpoint.path or loaded.label)
    st.session_state["train_runs"] = catalog.default_runs(records, current)
chosen = st.multiselect("Runs (pick two or more to compare)", list(records),
                        max_selections=MAX_RUNS, key="train_runs",
                        format_func=lambda n: figures.run_label(records[n]))
if not chosen:
    st.info("Pick at least one run.")
    st.stop()
runs = [records[n] for n in chosen]
epochs = catalog.record_epochs(runs)
st.session_state["_train_epochs"] = epochs
if st.session_state.pop(_STOP_KEY, False):  # before the toggle is drawn
    st.session_state[PLAY_KEY] = False
if st.session_state.get(EPOCH_KEY) not in epochs:
    st.session_state[EPOCH_KEY] = epochs[-1]

play_col, speed_col = st.columns([1, 3])
with play_col:
    playing = st.toggle("play", key=PLAY_KEY, on_change=start_playing,
                        disabled=len(epochs) < 2, help="Step through the epochs")
with speed_col:
    delay = st.select_slider("seconds per epoch", SPEEDS, value=0.7, key="train_speed",
                             persist_state="session")
playing = bool(playing and len(epochs) > 1)
st.fragment(epoch_view, run_every=float(delay) if playing else None)(
    runs, epochs, playing, float(delay))

pairs = catalog.comparison_pairs(runs)
possible = [] if pairs else sorted(catalog.comparison_pairs(list(records.values())),
                                   key=lambda pair: -sum(r.name in chosen for r in pair))
if not pairs and all(r.is_reid for r in runs):
    st.stop()  # no offer of the SynthBirds ARP/STN pair under re-ID runs (other probe images)
if not pairs:
    st.subheader("MSGN with ARP against MSGN with the spatial transformer")
if not pairs and possible:
    missing = [r.name for r in possible[0] if r.name not in chosen]
    room = len(chosen) + len(missing) <= MAX_RUNS
    st.info(f"Add {' and '.join(f'**{m}**' for m in missing)} to the runs above to compare ARP "
            "with the spatial transformer on the same probe images, epoch by epoch.")
    st.button("Compare " + " with ".join(r.name for r in possible[0]), key="train_add_pair",
              on_click=lambda: st.session_state.update(
                  train_runs=(chosen + [m for m in missing if m not in chosen])[:MAX_RUNS]),
              disabled=not room,
              help=None if room else f"At most {MAX_RUNS} runs: remove one first.")
elif not pairs:
    st.info(
        "Appears when an MSGN checkpoint with ARP in Conv4 and one with the spatial transformer "
        "(STN) on the same probe images are both there, e.g. checkpoints/synthbirds_wide_msgn_arp "
        "and checkpoints/synthbirds_wide_msgn_stn."
    )
