"""RP against ARP, or any two pooling modes: the same image with every steerable stage in one
mode and in the other, side by side.

Output kept in session_state: ``arpviz_compare``
(:class:`~arpviz.explorer.session.ModeComparison`).
"""

from __future__ import annotations

import streamlit as st

from arpviz.explorer import session as ex
from arpviz.explorer.figures import explore as figures
from pages import common, outputs, sliders, widgets

PREFIX = "compare"

st.title("RP against ARP")
st.caption(
    "Region Pooling (RP) crops a window of fixed size (the DSR); Adaptive Region Pooling (ARP) "
    "sizes it from the spread of the keypoint confidence (k); ARP-FG (beyond the paper) from "
    "the spread of the confidence above the map's mean. Same image, same weights, every "
    "steerable stage switched to the mode of each side."
)
loaded = common.require_checkpoint()

with st.expander("Image and settings", expanded=True):
    left, right = st.columns([1, 1.5], gap="large")
    with left:
        chosen = widgets.image_input(loaded, PREFIX)
    if chosen is None:
        st.stop()
    with right:
        first_col, second_col = st.columns(2)
        first_mode = first_col.selectbox("Left side", ex.STEERABLE_MODES, index=1,
                                         format_func=ex.mode_label, key="compare_left",
                                         persist_state="session")
        second_mode = second_col.selectbox("Right side", ex.STEERABLE_MODES, index=0,
                                           format_func=ex.mode_label, key="compare_right",
                                           persist_state="session")
        st.caption("The DSR applies to both sides; a stage's k to the side that runs its "
                   "trained mode (another adaptive mode uses its own default k: ARP the "
                   "trained one, ARP-FG 1.5).")
        knobs = sliders.stage_sliders(loaded, PREFIX, modes=False)

session = common.live_session(loaded, chosen.image)
if not any(c.steerable for c in session.controls):
    st.info("This model has no RP, ARP or ARP-FG stage; there is nothing to switch.")
    st.stop()
comparison = session.compare_modes(knobs, (first_mode, second_mode))
st.session_state["arpviz_compare"] = comparison
names = [ex.mode_label(m) for m in comparison.modes]

sides = (("left", comparison.first, names[0], "trained setting"),
         ("right", comparison.second, names[1], names[0]))
for column, (side, view, name, reference) in zip(st.columns(2, gap="large"), sides, strict=True):
    with column:
        st.markdown(f"### {name}")
        st.plotly_chart(figures.boxes_figure(view, chosen.truth, height=400),
                        key=f"compare_boxes_{side}")
        outputs.show_stage_numbers(view)
        outputs.download_buttons(view, loaded, chosen, key=f"compare_{side}")
        st.markdown(f"#### Top-5 against the {reference}" if side == "left"
                    else f"#### Top-5 against {reference}")
        outputs.show_predictions(view.predictions, loaded, chosen, reference=reference,
                                 key=f"compare_predictions_{side}")

st.markdown("### Rates per stage")
st.plotly_chart(figures.rates_figure(comparison.views), key="compare_rates")

st.markdown("### Resampled crops")
st.plotly_chart(figures.crops_figure(comparison.views), key="compare_crops")
