"""Explore: one image through the checkpoint, every pooling stage steerable live.

Widgets, then one library call (:meth:`~arpviz.explorer.session.LiveSession.explain`), then
rendering (:mod:`arpviz.explorer.figures.explore`). Everything a stage control changes lives in
one fragment, so moving a slider reruns only that part (not the sidebar, the image input or
the panel that explains the model). Outputs kept in session_state for tests and other pages:
``arpviz_result`` (the :class:`~arpviz.explorer.session.ExploreView` on screen) and
``arpviz_sweep`` (the last k sweep).
"""

from __future__ import annotations

import streamlit as st

from arpviz.datasources import is_reid
from arpviz.explorer import catalog, diagram, faithful, photo
from arpviz.explorer import session as ex
from arpviz.explorer.figures import explore as figures
from pages import common, outputs, shell, sliders, widgets

PREFIX = "explore"

st.title("Explore")
st.caption(
    "Steer the pooling mode, k and the DSR of every pooling stage and watch the crops, the "
    "keypoint confidence and the prediction follow. Only the stages at or after the one you "
    "change are recomputed."
)
loaded = common.require_checkpoint()

image_col, about_col = st.columns([1, 1.5], gap="large")
with about_col:
    if catalog.trained_on_synthbirds(loaded.meta):
        st.info(outputs.synthbirds_note(loaded), icon=":material/info:")
    with st.expander("What am I looking at?"):
        controls = ex.stage_controls(loaded.model)
        st.graphviz_chart(diagram.msgn_dot(controls, loaded.meta.input_size))
        st.markdown("\n\n".join(diagram.about_lines(
            controls, loaded.meta.input_size, is_reid(loaded.meta.dataset))))
with image_col:
    chosen = widgets.image_input(loaded, PREFIX)
if chosen is None:
    st.stop()


def _aspect_note(shown: photo.Photo | None) -> None:
    if shown is not None and abs(shown.squeezed - 1.0) > 0.02:
        st.caption(f"This checkpoint's evaluation resizes images to a square, as it was "
                   f"trained: this {shown.width} x {shown.height} image is squeezed "
                   f"{max(shown.squeezed, 1 / shown.squeezed):.2f}x along its longer side "
                   "before the network sees it (dashed frame: what it sees).")


@st.fragment
def steer(loaded: common.LoadedCheckpoint, chosen: widgets.ChosenImage) -> None:
    """The stage controls and everything they change (one fragment; its own reruns are timed
    as ``explore:steer`` in ``ARPVIZ_RUN_LOG``)."""
    if common.fragment_rerun():
        with shell.timed_run("explore:steer"):
            _steer(loaded, chosen)
    else:  # part of the page's run, which run_app times
        _steer(loaded, chosen)


def _steer(loaded: common.LoadedCheckpoint, chosen: widgets.ChosenImage) -> None:
    left, right = st.columns([1, 1.5], gap="large")
    with left:
        st.markdown("#### Stages")
        knobs = sliders.stage_sliders(loaded, PREFIX)
    session = common.live_session(loaded, chosen.image)
    view = session.explain(knobs)
    st.session_state["arpviz_result"] = view
    shown = photo.photo_of(chosen.image, loaded.meta)
    with right:
        st.markdown("#### Crop box of every stage")
        st.plotly_chart(figures.boxes_figure(view, chosen.truth, photo=shown),
                        key="explore_boxes")
        _aspect_note(shown)
        outputs.show_stage_numbers(view)
        outputs.show_prediction_flag(view.predictions, loaded, chosen)
        outputs.download_buttons(view, loaded, chosen, key="explore")

    st.markdown("### Top-5 against the trained setting")
    # a table with bars, not a chart: a slider step redraws one chart fewer
    outputs.show_prediction_table(view.predictions, key="explore_predictions", chart=False)
    if not view.stages:
        st.info("This model has no pooled stage (all strided): nothing to crop.")
        return
    _faithfulness(session, view)

    st.markdown("### What each stage sees")
    st.caption("Keypoint confidence over the network's input (its pixels), each stage's crop "
               "box, and below, the region it crops resampled to its output size, as the next "
               "layer sees it. ARP's map is sigmoid of the significance, so its background sits "
               "near 0.5; ARP-FG's (beyond the paper) keeps only the significance above the "
               "map's mean.")
    opacity = st.slider("Map opacity", 0.0, 1.0, common.kept("explore_opacity", 0.6), 0.05,
                        key="explore_opacity")
    st.plotly_chart(figures.stage_views_figure(view, opacity), key="explore_stages")
    _sweep(session, knobs, (loaded.key, chosen.image.key))


def _faithfulness(session: ex.LiveSession, view: ex.ExploreView) -> None:
    with st.expander("Does the prediction rest on the crop? (faithfulness)"):
        st.caption(
            "The network is run again with only the box kept (the rest blurred) and with the "
            "box blurred, and the probability of its top-1 class read; a centred box and 8 "
            "random boxes of the same size say what any box that large would score. Details "
            "and how these relate to torch-cam's and pytorch-grad-cam's metrics: "
            "`docs/explain.md`, section *Faithfulness of the crop*.")
        names = list(view.stages)
        stage = common.kept("explore_faith_stage", faithful.default_crop_stage(view))
        stage = st.selectbox("Stage", names, index=names.index(stage) if stage in names else 0,
                             format_func=lambda n: view.stages[n].label,
                             key="explore_faith_stage")
        if not st.toggle("Test this crop", key="explore_faith",
                         value=bool(common.kept("explore_faith", False)),
                         help="About 60 extra forward passes (one per box and scale)."):
            return
        check = faithful.crop_check(session, view, stage)
        st.session_state["arpviz_faith"] = check
        st.plotly_chart(figures.faithfulness_figure(check), key="explore_faith_chart")
        st.markdown(
            f"- **whole image** {check.full:.3f}: p({check.target_name}) unaltered.\n"
            f"- **keep only the box** {check.keep:.3f} (centre {check.centre_keep:.3f}, random "
            f"{check.random_keep:.3f}): near the whole image, the box alone suffices.\n"
            f"- **remove the box** {check.remove:.3f} (centre {check.centre_remove:.3f}, "
            f"random {check.random_remove:.3f}): well below, the evidence was in the box.\n"
            f"- **area** {check.area:.1%}: the box's share of the image; a crop beats its size "
            "when it keeps more and leaves less than the random boxes.\n"
            f"- **insertion / deletion AUC** {check.insertion_auc:.3f} / "
            f"{check.deletion_auc:.3f}: mean probability as the box grows from its centre to "
            "the crop, kept alone / blurred (high / low: faithful).")


def _sweep(session: ex.LiveSession, knobs: dict[str, ex.Knob], context: tuple) -> None:
    st.markdown("### k sweep")
    steerable = [c for c in session.controls if c.steerable]
    if not steerable:
        st.info("No RP, ARP or ARP-FG stage to sweep.")
        return
    names = [c.name for c in steerable]
    stage = common.kept("explore_sweep_stage", names[0])
    stage = st.selectbox("Stage", names, index=names.index(stage) if stage in names else 0,
                         format_func=lambda n: ex.stage_label(n), key="explore_sweep_stage")
    run = st.toggle(f"Sweep k over {ex.K_RANGE[0]:g} to {ex.K_RANGE[1]:g}", key="explore_sweep",
                    value=bool(common.kept("explore_sweep", False)),
                    help="Runs the model once per k (20 values) in the stage's mode; an RP "
                         "stage is switched to ARP.")
    if not run:
        return
    sweep_key = (*context, stage, tuple(sorted(knobs.items())))
    cached = st.session_state.get("arpviz_sweep")
    if cached is None or cached[0] != sweep_key:
        with st.spinner("Sweeping k..."):
            cached = (sweep_key, session.sweep(stage, knobs))
        st.session_state["arpviz_sweep"] = cached
    st.plotly_chart(figures.sweep_figure(cached[1]), key="explore_sweep_chart")


steer(loaded, chosen)
