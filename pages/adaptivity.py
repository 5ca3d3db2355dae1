"""Adaptivity: does the crop follow the object? ``arpviz.analysis`` on the loaded checkpoint.

Widgets, one library call (:func:`arpviz.explorer.adaptivity.run_report`, cached as JSON per
checkpoint digest, split, limit and tau), rendering (:mod:`arpviz.app.adaptivity`). Picking a
point of the rate scatter opens that image in Explore. A re-ID checkpoint gets only the k curve,
of mAP.
"""

from __future__ import annotations

import streamlit as st

from arpviz.app import adaptivity as parts
from arpviz.app.sidebar import require_checkpoint
from arpviz.explorer import adaptivity as ad
from arpviz.explorer.retrieval import is_reid_checkpoint

st.title("Adaptivity")
st.caption("ARP's one idea (Eq. 5-9): the crop's size follows the spread of the keypoint "
           "confidence, so a big object should get a big crop. Measured here over a split with "
           "python -m arpviz.analysis's library (docs/adaptivity.md).")
loaded = require_checkpoint()

reason = ad.unavailable_reason(loaded.meta)
if reason:
    st.info(f"No adaptivity analysis for this checkpoint: {reason}")
    if is_reid_checkpoint(loaded.meta):
        parts.reid_curve(loaded)
    st.stop()

report = parts.choose_report(loaded)
if report is None:
    st.stop()
parts.verdicts(report)
parts.paired_section()
parts.rate_section(loaded, report)
parts.k_curves(loaded, report)
parts.wide_runs()
parts.placement(report)
