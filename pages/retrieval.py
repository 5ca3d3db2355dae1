"""Retrieval: a re-ID checkpoint's query ranked against its gallery, k and DSR steerable live.

Widgets, then the library (:class:`~arpviz.explorer.retrieval.GalleryIndex`: the split's
embeddings once per setting, then :meth:`~arpviz.explorer.retrieval.GalleryIndex.search`), then
rendering (:mod:`arpviz.app.retrieval`). Opened on a classifier, the page offers the re-ID
checkpoints the sidebar lists; the user's photo stays chosen either way.
"""

from __future__ import annotations

import streamlit as st

from arpviz.app import retrieval
from arpviz.app.sidebar import require_checkpoint
from arpviz.explorer.retrieval import is_reid_checkpoint

st.title("Retrieval")
st.caption(
    "Re-identification as the paper's VeRi experiments: the query's MSGN embedding ranks the "
    "gallery by Euclidean distance (gallery images of the query's identity under the query's "
    "camera are left out, the standard protocol). Move k or the DSR and the ranking follows."
)
loaded = require_checkpoint()
if not is_reid_checkpoint(loaded.meta):
    retrieval.offer_reid_checkpoints(loaded)
    st.stop()

index = retrieval.gallery_index(loaded)
left, right = st.columns([1, 1.6], gap="large")
with left:
    query = retrieval.query(loaded, index)
    if query is None:
        st.stop()
    query_slot = st.container()
    view, trained, current, changed = retrieval.ranking(loaded, index, query)
with query_slot:
    retrieval.query_figure(view)
with right:
    retrieval.results(view, trained, current, changed)
