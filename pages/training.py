"""Training: learning curves and the probe images' crops epoch by epoch (widgets and rendering:
:mod:`arpviz.app.training`).

Runs come from :func:`arpviz.explorer.catalog.discover_runs` (the bundled folder, the sidebar's
folder and its uploaded checkpoint; only metadata and snapshots are read, no model is built).
The epoch slider and everything it drives are one fragment: moving it, or playing (the fragment
reruns every ``seconds per epoch``), redraws only that part; playing stops at the last epoch.
"""

from __future__ import annotations

import streamlit as st

from arpviz.app import training

st.header("Training")
st.markdown(
    "Learning curves, and what the pooled stages did to a fixed set of probe images after "
    "every epoch: each pooled stage's crop (RP, ARP, ARP-FG, the learnt zoom, or the spatial "
    "transformer's box), its rate and its confidence map, as the checkpoint recorded them."
)
found = training.runs()
if found is None:
    st.stop()
records, chosen = found
training.player(chosen)
training.comparison_offer(records, chosen)
