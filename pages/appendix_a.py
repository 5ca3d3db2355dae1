"""Appendix A: ARP's adaptive rate on random 1-D keypoint distributions, and in two dimensions on
one object with perfect features (widgets and rendering: :mod:`arpviz.app.appendix`)."""

from __future__ import annotations

import streamlit as st

from arpviz.app import appendix

st.header("Appendix A: the adaptive rate on simulated distributions")
st.markdown(
    "Random 1-D keypoint distributions by the paper's rules (most keypoints in one interval of "
    "any length and position, random inside it), and the interval ARP crops on each with "
    "Eq. 9's rate. As in Figure 7, the line is the distribution, the area under it is **red "
    "inside the crop** and **blue outside**; dotted lines mark the true interval (envelope mean "
    "± 2 std)."
)
st.markdown(
    "**Why a floor.** The keypoint confidence is `sigmoid(s)` of the channel mean `s` of "
    "per-channel standardised features. That mean sits near 0 on the background, so the "
    "sigmoid gives about 0.5 there, not 0: every trained map carries a floor under the object. "
    "Eq. 9 takes the spread of the whole distribution, and a floor spreads it over the whole "
    "interval; a bigger object then adds mass at a smaller spread than the floor's and can "
    "*narrow* the crop. Raise the floor (or take the loaded checkpoint's) and watch the "
    "correlation of crop and true length below (docs/adaptivity.md)."
)

settings = appendix.controls()
appendix.distributions(settings)
appendix.summary(settings)
appendix.object_section()
