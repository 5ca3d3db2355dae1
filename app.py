"""arpviz Streamlit app (entry point): ``streamlit run app.py``."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="arpviz", layout="wide")
st.title("arpviz")
st.write(
    "See and steer Adaptive Region Pooling (ARP) and the MSGN network. "
    "The interactive pages arrive with the model and checkpoint work."
)
