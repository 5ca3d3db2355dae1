"""Explore's parts: the panel that says what the model is, and the fragment of everything the
stage controls change (boxes, numbers, top-5, faithfulness, what each stage sees, the k sweep).

Each part is widgets bound to the :class:`~arpviz.app.state.AppState`, one library call and
rendering; results are kept in ``app_state().shown`` (the export and the tests read them).
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st
import streamlit.components.v1 as components

from arpviz.app import controls, outputs
from arpviz.app.images import ShownImage
from arpviz.app.resources import fragment_rerun, live_session, timed_run, with_progress
from arpviz.app.state import AppState, LoadedCheckpoint, app_state, bind
from arpviz.datasources import is_reid
from arpviz.explorer import catalog, diagram, faithful, photo
from arpviz.explorer.controls import Knob, stage_controls
from arpviz.explorer.figures import explore as figures
from arpviz.explorer.figures import panels, scrub
from arpviz.explorer.live import LiveSession
from arpviz.explorer.results import ExploreView
from arpviz.models.stages import stage_label

__all__ = ["about_panel", "steer"]


def about_panel(loaded: LoadedCheckpoint) -> None:
    """What the model was trained on (once, here)."""
    if catalog.trained_on_synthbirds(loaded.meta):
        st.info(outputs.synthbirds_note(loaded), icon=":material/info:")


def _what_am_i_looking_at(loaded: LoadedCheckpoint, view: ExploreView) -> None:
    """MSGN's layout with each stage's mode as set now (the diagram follows the mode choices;
    it leaves out k and the DSR, which the lines under the crop boxes give, so a slider step
    sends the browser the same diagram and it is not laid out again: about a quarter of a
    second per step otherwise), and what each part does, in words."""
    with st.expander("What am I looking at? (the network as set now)"):
        stages = [replace(c, trained=view.settings.get(c.name, c.trained))
                  for c in stage_controls(loaded.model)]
        st.graphviz_chart(diagram.msgn_dot(stages, loaded.meta.input_size, values=False),
                          width="stretch")
        st.markdown("\n\n".join(diagram.about_lines(
            stages, loaded.meta.input_size, is_reid(loaded.meta.dataset))))
        st.caption("Each stage's k and DSR as set now: the lines under the crop boxes.")


def _aspect_note(shown: photo.Photo | None) -> None:
    if shown is not None and abs(shown.squeezed - 1.0) > 0.02:
        st.caption(f"This checkpoint's evaluation resizes images to a square, as it was "
                   f"trained: this {shown.width} x {shown.height} image is squeezed "
                   f"{max(shown.squeezed, 1 / shown.squeezed):.2f}x along its longer side "
                   "before the network sees it (dashed frame: what it sees).")


@st.fragment
def steer(loaded: LoadedCheckpoint, shown: ShownImage) -> None:
    """The stage controls and everything they change (one fragment; its own reruns are timed
    as ``explore:steer`` in ``ARPVIZ_RUN_LOG``)."""
    if fragment_rerun():
        with timed_run("explore:steer"):
            _steer(loaded, shown)
    else:  # part of the page's run, which the app's frame times
        _steer(loaded, shown)


def _steer(loaded: LoadedCheckpoint, shown: ShownImage) -> None:
    state = app_state()
    left, right = st.columns([1, 1.5], gap="large")
    with left:
        st.markdown("#### Stages")
        knobs = controls.stage_sliders(loaded) or {}
    session = live_session(loaded, shown.image)
    view = session.explain(knobs)
    state.shown.explore = view
    drawn = photo.photo_of(shown.image, loaded.meta)
    with right:
        _what_am_i_looking_at(loaded, view)
        st.markdown("#### Crop box of every stage")
        st.plotly_chart(figures.boxes_figure(view, shown.truth, photo=drawn),
                        key="explore_boxes")
        _aspect_note(drawn)
        outputs.show_stage_numbers(view)
        outputs.show_prediction_flag(view.predictions, loaded, shown)
        outputs.download_buttons(view, loaded, shown, key="explore")
    st.markdown("### Top-5 against the trained setting")
    outputs.show_prediction_table(view.predictions, key="explore_predictions")
    if not view.stages:
        st.info("This model has no pooled stage (all strided): nothing to crop.")
        return
    _faithfulness(state, session, view)
    st.markdown("### What each stage sees")
    st.caption("Keypoint confidence over the network's input (its pixels), each stage's crop "
               "box, and below, the region it crops resampled to its output size, as the next "
               "layer sees it. ARP's map is sigmoid of the significance, so its background sits "
               "near 0.5; ARP-FG's and the learnt zoom's (beyond the paper) keep only the "
               "significance above the map's mean.")
    opacity = bind(st.slider, "Map opacity", state.explore, "opacity", min_value=0.0,
                   max_value=1.0, step=0.05)
    st.plotly_chart(figures.stage_views_figure(view, opacity, photo=drawn),
                    key="explore_stages")
    _sweep(state, session, knobs)


def _faithfulness(state: AppState, session: LiveSession, view: ExploreView) -> None:
    if session.model.needs_mask:
        st.caption("The faithfulness test is not offered for a checkpoint that crops by the "
                   "bird's true mask: its forward passes on altered images have no mask.")
        return
    with st.expander("Does the prediction rest on the crop? (faithfulness)"):
        st.caption(
            "The network is run again with only the box kept (the rest blurred) and with the "
            "box blurred, and the probability of its top-1 class read; a centred box and 8 "
            "random boxes of the same size say what any box that large would score. Details "
            "and how these relate to torch-cam's and pytorch-grad-cam's metrics: "
            "`docs/explain.md`, section *Faithfulness of the crop*.")
        names = list(view.stages)
        if state.explore.faith_stage not in names:
            state.explore.faith_stage = faithful.default_crop_stage(view) or names[0]
        stage = bind(st.selectbox, "Stage", state.explore, "faith_stage", options=names,
                     format_func=lambda n: view.stages[n].label)
        if not bind(st.toggle, "Test this crop", state.explore, "faith",
                    help="About 60 extra forward passes (one per box and scale)."):
            return
        check = faithful.crop_check(session, view, stage)
        state.shown.faith = check
        st.plotly_chart(panels.faithfulness_figure(check), key="explore_faith_chart")
        st.markdown("\n".join(f"- {line}" for line in faithful.conclusions(check)))


def _sweep(state: AppState, session: LiveSession, knobs: dict[str, Knob]) -> None:
    st.markdown("### k sweep")
    names = list(session.steerable)
    if not names:
        st.info("No RP, ARP, ARP-FG or learnt-zoom stage to sweep.")
        return
    stage = bind(st.selectbox, "Stage", state.explore, "sweep_stage", options=names,
                 format_func=stage_label)
    if not bind(st.toggle, "Sweep k over 0.1 to 2.0 (steps of 0.05)", state.explore, "sweep",
                help="Runs the model once per k (39 values) in the stage's mode; an RP or zoom "
                     "stage is swept in ARP. Then scrub k in the browser, no server round "
                     "trip."):
        return
    sweep = _cached_sweep(session, stage, knobs)
    state.shown.sweep = sweep
    labels = {name: s.label for name, s in state.shown.explore.stages.items()}
    st.caption("Scrub k with the slider under the pictures: every step was computed once, so "
               "the boxes, the crop and the top-5 follow in the browser without asking the "
               "server (hover a box or a bar for its numbers).")
    with st.container(key="explore_scrub"):
        components.html(scrub.scrub_html(sweep, session.image.image, labels),
                        height=scrub.SCRUB_HEIGHT)
    st.plotly_chart(panels.sweep_figure(sweep), key="explore_sweep_chart")


def _cached_sweep(session: LiveSession, stage: str, knobs: dict[str, Knob]):
    key = (id(session), stage, tuple(sorted(knobs.items())))
    kept = app_state().shown
    if kept.sweep_key != key or kept.sweep is None:
        kept.sweep = with_progress("Sweeping k...", lambda bar: session.sweep(
            stage, knobs, progress=bar))
        kept.sweep_key = key
    return kept.sweep
