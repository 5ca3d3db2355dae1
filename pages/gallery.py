"""Gallery: a folder of images or a SynthBirds split, explained, filtered, sorted and paged.

Widgets, one library call per page of images (:func:`arpviz.explorer.gallery.explain_gallery_page`,
under Explore's k and DSR), then :func:`~arpviz.explorer.gallery.select` and a grid of
thumbnails. The explained items are kept in ``st.session_state["gallery_items"]`` (this
visitor's) until the checkpoint, source, count or Explore's settings change. "Open in Explore"
sets Explore's image input and switches page.
"""

from __future__ import annotations

import streamlit as st

from arpviz.explorer import catalog, gallery, inputs, session
from pages import common, sliders, widgets

PAGE_SIZE = 12
SCAN_PAGE = 24
COLUMNS = 4

st.title("Gallery")
st.caption("Many images through the checkpoint at once, with every stage's box; filter, sort "
           "and open one in Explore. The boxes and predictions follow Explore's k and DSR.")
loaded = common.require_checkpoint()
meta = loaded.meta

kinds = ["Image folder"] + (["SynthBirds split"] if inputs.sample_count(meta) else [])
kind = st.radio("Images", kinds, horizontal=True, key="gallery_kind",
                index=common.choice_index("gallery_kind", kinds, kinds[-1]),
                on_change=common.remember_choice, args=("gallery_kind",), persist_state="session")
try:
    if kind == "Image folder":
        folder = st.text_input("Folder (searched recursively)", key="gallery_folder",
                               persist_state="session",
                               help="A folder inside the ones this server allows "
                                    "(ARPVIZ_CHECKPOINT_ROOTS).")
        if not folder:
            st.info("Type a folder of images.")
            st.stop()
        source = gallery.folder_source(folder)
    else:
        source = gallery.synth_source(meta)
except (catalog.FolderNotAllowed, ValueError) as exc:
    st.warning(str(exc))
    st.stop()
if not len(source):
    st.info("No image files there.")
    st.stop()

limit = int(st.number_input(f"Images to explain (of {len(source)})", 1, len(source),
                            min(len(source), 48), key="gallery_limit"))
controls = session.stage_controls(loaded.model)
overrides = session.overrides_from(controls, sliders.saved_knobs(loaded, "explore"))
changed = ", ".join(f"{session.stage_label(n)} " + ", ".join(
    f"{f} {getattr(o, f)}" for f in ("k", "dsr") if getattr(o, f) is not None)
    for n, o in overrides.items())
st.caption(f"Explore's settings: {changed}." if changed else
           "Explore's settings are the trained ones: nothing can flip.")

scan_key = (loaded.key, source.key, limit, repr(sorted(overrides.items())))
cached = st.session_state.get("gallery_items")
if cached is None or cached[0] != scan_key:
    items = common.with_progress("Explaining...", lambda bar: gallery.explain_gallery(
        loaded.checkpoint, source, limit, SCAN_PAGE, overrides, progress=bar))
    cached = (scan_key, items)
    st.session_state["gallery_items"] = cached
items = cached[1]

stages = list(next((i.record.stages for i in items if i.record.ok), {}))
with st.expander("Filters and order", expanded=True):
    a, b, c = st.columns(3)
    names = sorted({i.record.top5[0].name for i in items if i.record.ok})
    classes = a.multiselect("Predicted class", names, key="gallery_classes")
    has_labels = any(i.label is not None for i in items)
    correct = a.radio("Prediction", ["all", "correct", "incorrect"], horizontal=True,
                      key="gallery_correct", persist_state="session", disabled=not has_labels,
                      help=None if has_labels else "Only SynthBirds images have labels.")
    stage = b.selectbox("Rate of stage", stages, index=len(stages) - 1 if stages else None,
                        format_func=session.stage_label, key="gallery_stage",
                        help="Mean of the stage's (rate_h, rate_w): the crop's side as a share "
                             "of its map.")
    rate_range = b.slider("Rate range", 0.0, 1.0, (0.0, 1.0), 0.01, key="gallery_rates",
                          persist_state="session")
    flips = c.checkbox("Only top-1 flips under Explore's k", key="gallery_flips",
                       persist_state="session",
                       disabled=not overrides, help="Against the trained setting.")
    order = c.selectbox("Sort by", gallery.SORTS, key="gallery_sort", persist_state="session")
query = gallery.GalleryQuery(tuple(classes), correct if has_labels else "all", stage,
                             tuple(rate_range), flips and bool(overrides), order)
shown = gallery.select(items, query)
st.session_state["gallery_shown"] = shown
pages = gallery.page_count(len(shown), PAGE_SIZE)
page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key="gallery_page")) - 1
st.caption(f"{len(shown)} of {len(items)} images pass the filters.")


def _caption(item: gallery.GalleryItem) -> str:
    if not item.record.ok:
        return f"**{item.record.file}**: {item.record.error}"
    top = item.record.top5[0]
    text = f"{top.name} **{top.p:.0%}**"
    if item.correct is not None:
        text += " ✓" if item.correct else f" ✗ (true: {item.label_name})"
    if item.flipped:
        text += " · flipped"
    if stage is not None and item.rate(stage) is not None:
        text += f" · rate {item.rate(stage):.2f}"
    return text


def _open(item: gallery.GalleryItem) -> None:
    if source.kind == "folder":
        st.session_state[widgets.OPEN_FILE_KEY] = str(source.files[item.index])
        common.set_choice("explore_source", widgets.FILE_CHOICE)
    else:
        widgets.open_sample(loaded, item.index)
    st.switch_page("pages/explore.py")


for row in range(0, PAGE_SIZE, COLUMNS):
    cells = shown[page * PAGE_SIZE + row : page * PAGE_SIZE + row + COLUMNS]
    for column, item in zip(st.columns(COLUMNS), cells, strict=False):
        with column:
            if item.thumbnail is not None:
                st.image(item.thumbnail, caption=item.record.file.rsplit("/", 1)[-1])
            st.markdown(_caption(item))
            if item.record.ok and st.button("Open in Explore", key=f"gallery_open:{item.index}"):
                _open(item)
