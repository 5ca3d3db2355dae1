"""RP against ARP, or any two pooling modes: the same image with every steerable stage in one
mode and in the other, side by side (:mod:`arpviz.app.compare`; kept in
``app_state().shown.comparison``)."""

from __future__ import annotations

import streamlit as st

from arpviz.app import compare, images
from arpviz.app.sidebar import require_checkpoint

st.title("RP against ARP")
st.caption(
    "Region Pooling (RP) crops a window of fixed size (the DSR); Adaptive Region Pooling (ARP) "
    "sizes it from the spread of the keypoint confidence (k); beyond the paper, ARP-FG from the "
    "spread of the confidence above the map's mean and the learnt zoom from the map's peak "
    "region. Same image, same weights, every steerable stage switched to each side's mode."
)
loaded = require_checkpoint()

with st.expander("Image and settings", expanded=True):
    shown = images.image_input(loaded)
    if shown is None:
        st.stop()
    comparison = compare.compare(loaded, shown)
if comparison is None:
    st.stop()
compare.show_sides(loaded, shown, comparison)
