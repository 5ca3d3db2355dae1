"""RP against ARP: the same image with every pooled stage on ARP and on RP, side by side.

ARP keeps the trained k (or the slider's); RP crops a fixed DSR-sized window. Output kept in
session_state: ``arpviz_compare`` (:class:`~arpviz.explorer.session.ModeComparison`).
"""

from __future__ import annotations

import streamlit as st

from arpviz.explorer.figures import explore as figures
from pages import common, outputs, sliders, widgets

PREFIX = "compare"

st.title("RP against ARP")
st.caption(
    "Region Pooling crops a window of fixed size (the DSR); Adaptive Region Pooling sizes it "
    "from the spread of the keypoint confidence (k). Same image, same weights, every RP/ARP "
    "stage switched to one or the other."
)
loaded = common.require_checkpoint()

with st.expander("Image and settings", expanded=True):
    left, right = st.columns([1, 1.5], gap="large")
    with left:
        chosen = widgets.image_input(loaded, PREFIX)
    if chosen is None:
        st.stop()
    with right:
        st.caption("k applies to the ARP side, the DSR to both.")
        knobs = sliders.stage_sliders(loaded, PREFIX)

session = common.live_session(loaded, chosen.image)
if not any(c.steerable for c in session.controls):
    st.info("This model has no RP/ARP stage; there is nothing to switch.")
    st.stop()
comparison = session.compare_modes(knobs)
st.session_state["arpviz_compare"] = comparison
views = {"ARP": comparison.arp, "RP": comparison.rp}

arp_col, rp_col = st.columns(2, gap="large")
with arp_col:
    st.markdown("### ARP")
    st.plotly_chart(figures.boxes_figure(comparison.arp, chosen.truth, height=400),
                    key="compare_boxes_arp")
    outputs.show_stage_numbers(comparison.arp)
    outputs.download_buttons(comparison.arp, loaded, chosen, key="compare_arp")
    st.markdown("#### Top-5 against the trained setting")
    outputs.show_predictions(comparison.arp.predictions, loaded, chosen,
                            key="compare_predictions_arp")
with rp_col:
    st.markdown("### RP")
    st.plotly_chart(figures.boxes_figure(comparison.rp, chosen.truth, height=400),
                    key="compare_boxes_rp")
    outputs.show_stage_numbers(comparison.rp)
    outputs.download_buttons(comparison.rp, loaded, chosen, key="compare_rp")
    st.markdown("#### Top-5 against ARP")
    outputs.show_predictions(comparison.rp.predictions, loaded, chosen, reference="ARP",
                            key="compare_predictions_rp")

st.markdown("### Rates per stage")
st.plotly_chart(figures.rates_figure(views), key="compare_rates")

st.markdown("### Resampled crops")
st.plotly_chart(figures.crops_figure(views), key="compare_crops")
