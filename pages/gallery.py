"""Gallery: a folder of images or a SynthBirds split, explained, filtered, sorted and paged.

Widgets, one library call per page of images (:func:`arpviz.explorer.gallery.explain_gallery`,
under Explore's settings), then :func:`~arpviz.explorer.gallery.select` and a grid of
thumbnails (:mod:`arpviz.app.gallery`). "Open in Explore" makes the image every page's image.
"""

from __future__ import annotations

import streamlit as st

from arpviz.app import gallery
from arpviz.app.sidebar import require_checkpoint

st.title("Gallery")
st.caption("Many images through the checkpoint at once, with every stage's box; filter, sort "
           "and open one in Explore. The boxes and predictions follow Explore's settings.")
loaded = require_checkpoint()

source = gallery.source_of(loaded)
if source is None:
    st.stop()
items, overrides = gallery.explained(loaded, source)
shown = gallery.filtered(items, flips_possible=bool(overrides))
gallery.grid(loaded, source, shown, len(items))
