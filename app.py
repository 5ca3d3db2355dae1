"""arpviz Streamlit app (entry point): ``streamlit run app.py``.

Routes with ``st.navigation`` to the pages in ``pages/`` and draws the shared sidebar
(checkpoint, device, model card; :mod:`arpviz.app.sidebar`) before the page runs; pages read the
loaded checkpoint with ``arpviz.app.sidebar.require_checkpoint()`` and everything else the user
set from ``arpviz.app.state.app_state()``. See docs/architecture.md.
"""

from __future__ import annotations

import logging

import streamlit as st

logging.getLogger("arpviz").setLevel(logging.INFO)

st.set_page_config(page_title="arpviz", layout="wide")

pages = [
    st.Page("pages/explore.py", title="Explore", icon=":material/center_focus_strong:",
            default=True),
    st.Page("pages/rp_vs_arp.py", title="RP against ARP", icon=":material/compare:"),
    st.Page("pages/gallery.py", title="Gallery", icon=":material/grid_view:"),
    st.Page("pages/adaptivity.py", title="Adaptivity", icon=":material/straighten:"),
    st.Page("pages/appendix_a.py", title="Appendix A", icon=":material/functions:"),
    st.Page("pages/training.py", title="Training", icon=":material/timeline:"),
    st.Page("pages/retrieval.py", title="Retrieval", icon=":material/image_search:"),
]

# st.navigation first: until it runs, Streamlit shows the legacy list of pages/ files.
navigation = st.navigation(pages)

from arpviz.app.sidebar import run_app  # noqa: E402 - imports torch; after the navigation

run_app(navigation)
