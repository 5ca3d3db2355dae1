"""Explore: one image through the checkpoint, every RP/ARP stage steerable live.

Widgets, then one library call (:meth:`~arpviz.explorer.session.LiveSession.explain`), then
rendering (:mod:`arpviz.explorer.figures.explore`). The opacity slider redraws only the
confidence maps (a fragment). Outputs kept in session_state for tests and other pages:
``arpviz_result`` (the :class:`~arpviz.explorer.session.ExploreView` on screen) and
``arpviz_sweep`` (the last k sweep).
"""

from __future__ import annotations

import streamlit as st

from arpviz.explorer import faithful
from arpviz.explorer import session as ex
from arpviz.explorer.figures import explore as figures
from pages import common, outputs, sliders, widgets

PREFIX = "explore"

st.title("Explore")
st.caption(
    "Steer k and the DSR of every pooling stage and watch the crops, the keypoint confidence "
    "and the prediction follow. Only the stages at or after the one you change are recomputed."
)
loaded = common.require_checkpoint()

left, right = st.columns([1, 1.5], gap="large")
with left:
    chosen = widgets.image_input(loaded, PREFIX)
    if chosen is None:
        st.stop()
    st.markdown("#### Stages")
    knobs = sliders.stage_sliders(loaded, PREFIX)

session = common.live_session(loaded, chosen.image)
view = session.explain(knobs)
st.session_state["arpviz_result"] = view

with right:
    st.markdown("#### Crop box of every stage")
    st.plotly_chart(figures.boxes_figure(view, chosen.truth), key="explore_boxes")
    outputs.show_stage_numbers(view)
    outputs.show_prediction_flag(view.predictions, loaded, chosen)
    outputs.download_buttons(view, loaded, chosen, key="explore")

st.markdown("### Top-5 against the trained setting")
outputs.show_prediction_table(view.predictions, key="explore_predictions")

if not view.stages:
    st.info("This model has no pooled stage (all strided): nothing to crop.")
    st.stop()



@st.fragment
def confidence_maps(view: ex.ExploreView) -> None:
    """The confidence maps and their opacity slider (moving it redraws only these)."""
    opacity = st.slider("Map opacity", 0.0, 1.0, 0.6, 0.05, key="explore_opacity")
    for column, name in zip(st.columns(len(view.stages)), view.stages, strict=True):
        with column:
            st.plotly_chart(figures.confidence_figure(view, name, opacity),
                            key=f"explore_confidence_{name}")


with st.expander("Does the prediction rest on the crop? (faithfulness)"):
    st.caption(
        "The network is run again with only the box kept (the rest blurred) and with the box "
        "blurred, and the probability of its top-1 class read; a centred box and 8 random "
        "boxes of the same size say what any box that large would score. Details and how "
        "these relate to torch-cam's and pytorch-grad-cam's metrics: `docs/explain.md`, "
        "section *Faithfulness of the crop*.")
    names = list(view.stages)
    default = names.index(faithful.default_crop_stage(view))
    stage = st.selectbox("Stage", names, index=default, format_func=ex.stage_label,
                         key="explore_faith_stage")
    if st.toggle("Test this crop", key="explore_faith",
                 help="About 60 extra forward passes (one per box and scale)."):
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

st.markdown("### Keypoint confidence")
confidence_maps(view)

st.markdown("### Resampled crops")
st.caption("The image region each stage crops, resampled to the stage's output aspect, as the "
           "next layer sees it (hover: input-image coordinates).")
st.plotly_chart(figures.crops_figure(view), key="explore_crops")

st.markdown("### Adaptive rates")
st.plotly_chart(figures.rates_figure(view), key="explore_rates")

st.markdown("### k sweep")
steerable = [c for c in session.controls if c.steerable]
if not steerable:
    st.info("No RP/ARP stage to sweep.")
    st.stop()
stage = st.selectbox("Stage", [c.name for c in steerable], format_func=ex.stage_label,
                     key="explore_sweep_stage")
run = st.toggle(f"Sweep k over {ex.K_RANGE[0]:g} to {ex.K_RANGE[1]:g}", key="explore_sweep",
                help="Runs the model once per k (20 values); RP stages are switched to ARP.")
if run:
    sweep_key = (loaded.key, chosen.image.key, stage, tuple(sorted(knobs.items())))
    cached = st.session_state.get("arpviz_sweep")
    if cached is None or cached[0] != sweep_key:
        with st.spinner("Sweeping k..."):
            cached = (sweep_key, session.sweep(stage, knobs))
        st.session_state["arpviz_sweep"] = cached
    st.plotly_chart(figures.sweep_figure(cached[1]), key="explore_sweep_chart")
