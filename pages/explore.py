"""Explore: one image through the checkpoint, every pooling stage steerable live.

Widgets, then one library call (:meth:`~arpviz.explorer.live.LiveSession.explain`), then
rendering (:mod:`arpviz.explorer.figures.explore`). Everything a stage control changes lives in
one fragment (:func:`arpviz.app.explore.steer`), so moving a slider reruns only that part.
"""

from __future__ import annotations

import streamlit as st

from arpviz.app import explore, images
from arpviz.app.sidebar import require_checkpoint

st.title("Explore")
st.caption(
    "Steer the pooling mode, k and the DSR of every pooling stage and watch the crops, the "
    "keypoint confidence and the prediction follow. Only the stages at or after the one you "
    "change are recomputed."
)
loaded = require_checkpoint()

image_col, about_col = st.columns([1, 1.5], gap="large")
with about_col:
    explore.about_panel(loaded)
with image_col:
    shown = images.image_input(loaded)
if shown is None:
    st.stop()
explore.steer(loaded, shown)
