"""The Gallery's parts: the images to explain, the explained items (this visitor's, kept until
the checkpoint, source, count or Explore's settings change), the filters and the grid.

"Open in Explore" makes the item the image of every image page
(:func:`arpviz.app.images.open_sample` / :func:`~arpviz.app.images.open_file`) and switches
page.
"""

from __future__ import annotations

import streamlit as st

from arpviz.app import controls
from arpviz.app.images import open_file, open_sample
from arpviz.app.resources import with_progress
from arpviz.app.state import GallerySettings, LoadedCheckpoint, app_state, bind
from arpviz.explorer import catalog, gallery, inputs
from arpviz.explorer.controls import overrides_from, stage_controls
from arpviz.models.stages import stage_label
from arpviz.text import plain

__all__ = ["PAGE_SIZE", "explained", "filtered", "grid", "source_of"]

PAGE_SIZE = 12
#: Streamlit's named colours closest to each stage's colour (arpviz.palette), for the key.
_NAMED = {"conv3": "blue", "conv4.main": "orange", "conv4.local0": "orange",
          "conv4.local1": "green", "conv4.local2": "red", "conv4.local3": "violet"}
SCAN_PAGE = 24
COLUMNS = 4


def source_of(loaded: LoadedCheckpoint) -> gallery.GallerySource | None:
    """The images to explain: a folder under the allowed roots or the data set's split (a note
    in the page and ``None`` when there is nothing to show)."""
    settings = app_state().gallery
    synth = loaded.meta.dataset.get("name") == "synthbirds" and inputs.sample_count(loaded.meta)
    kinds = ["Image folder"] + (["SynthBirds split"] if synth else [])
    kind = settings.kind if settings.kind in kinds else kinds[-1]
    shown = GallerySettings(kind=kind)
    picked = bind(st.radio, "Images", shown, "kind", options=kinds, key="gallery.kind",
                  horizontal=True)
    if picked != kind or settings.kind in kinds:
        settings.kind = picked
    try:
        if picked == "Image folder":
            folder = bind(st.text_input, "Folder (searched recursively)", settings, "folder",
                          help="A folder inside the ones this server allows "
                               "(ARPVIZ_CHECKPOINT_ROOTS).")
            if not folder:
                st.info("Type a folder of images.")
                return None
            source = gallery.folder_source(folder)
        else:
            source = gallery.synth_source(loaded.meta)
    except (catalog.FolderNotAllowed, ValueError) as exc:
        st.warning(str(exc))
        return None
    if not len(source):
        st.info("No image files there.")
        return None
    return source


def explained(loaded: LoadedCheckpoint, source: gallery.GallerySource
              ) -> tuple[list[gallery.GalleryItem], dict]:
    """The first N images explained under Explore's settings, and those settings' overrides."""
    state = app_state()
    settings = state.gallery
    settings.limit = min(max(int(settings.limit), 1), len(source))
    limit = int(bind(st.number_input, f"Images to explain (of {len(source)})", settings,
                     "limit", min_value=1, max_value=len(source)))
    steering, _ = controls.steering(loaded)
    overrides = overrides_from(stage_controls(loaded.model), steering.knobs())
    changed = ", ".join(f"{stage_label(n)} " + ", ".join(
        f"{f} {getattr(o, f)}" for f in ("mode", "k", "dsr") if getattr(o, f) is not None)
        for n, o in overrides.items())
    st.caption(f"Explore's settings: {changed}." if changed else
               "Explore's settings are the trained ones: nothing can flip.")
    key = (loaded.key, source.key, limit, repr(sorted(overrides.items())))
    if state.shown.gallery_key != key or state.shown.gallery_items is None:
        state.shown.gallery_items = with_progress("Explaining...", lambda bar: (
            gallery.explain_gallery(loaded.checkpoint, source, limit, SCAN_PAGE, overrides,
                                    progress=bar)))
        state.shown.gallery_key = key
    return state.shown.gallery_items, overrides


def filtered(items: list[gallery.GalleryItem], flips_possible: bool) -> list[gallery.GalleryItem]:
    """The filters and the order; returns the items that pass, in order."""
    settings = app_state().gallery
    stages = list(next((i.record.stages for i in items if i.record.ok), {}))
    with st.expander("Filters and order", expanded=True):
        a, b, c = st.columns(3)
        names = sorted({i.record.top5[0].name for i in items if i.record.ok})
        with a:
            classes = bind(st.multiselect, "Predicted class", settings, "classes",
                           options=names)
            labelled = any(i.label is not None for i in items)
            correct = bind(st.radio, "Prediction", settings, "correct",
                           options=["all", "correct", "incorrect"], horizontal=True,
                           disabled=not labelled,
                           help=None if labelled else "Only SynthBirds images have labels.")
        with b:
            if settings.stage not in stages and stages:
                settings.stage = stages[-1]
            stage = bind(st.selectbox, "Rate of stage", settings, "stage", options=stages,
                         format_func=stage_label,
                         help="Mean of the stage's (rate_h, rate_w): the crop's side as a share "
                              "of its map.") if stages else None
            rates = bind(st.slider, "Rate range", settings, "rates", min_value=0.0,
                         max_value=1.0, step=0.01)
        with c:
            flips = bind(st.checkbox, "Only top-1 flips under Explore's k", settings, "flips",
                         disabled=not flips_possible, help="Against the trained setting.")
            order = bind(st.selectbox, "Sort by", settings, "sort", options=gallery.SORTS)
    query = gallery.GalleryQuery(tuple(classes), correct if labelled else "all", stage,
                                 tuple(rates), flips and flips_possible, order)
    shown = gallery.select(items, query)
    app_state().shown.gallery_shown = shown
    return shown


def _caption(item: gallery.GalleryItem, stage: str | None) -> str:
    if not item.record.ok:
        return f"**{plain(item.record.file)}**: {plain(item.record.error or '')}"
    top = item.record.top5[0]
    text = f"{plain(top.name)} **{top.p:.0%}**"
    if item.correct is not None:
        text += " ✓" if item.correct else f" ✗ (true: {plain(item.label_name or '')})"
    if item.flipped:
        text += " · flipped"
    if stage is not None and item.rate(stage) is not None:
        text += f" · rate {item.rate(stage):.2f}"
    return text


def _open(loaded: LoadedCheckpoint, source: gallery.GallerySource,
          item: gallery.GalleryItem) -> None:
    if source.kind == "folder":
        open_file(source.files[item.index])
    else:
        open_sample(loaded, item.index)
    st.switch_page("pages/explore.py")


def grid(loaded: LoadedCheckpoint, source: gallery.GallerySource,
         shown: list[gallery.GalleryItem], total: int) -> None:
    """The page of thumbnails, each with its caption and "Open in Explore"."""
    settings = app_state().gallery
    pages = gallery.page_count(len(shown), PAGE_SIZE)
    settings.page = min(max(int(settings.page), 1), pages)
    page = int(bind(st.number_input, f"Page (of {pages})", settings, "page", min_value=1,
                    max_value=pages)) - 1
    st.caption(f"{len(shown)} of {total} images pass the filters.")
    stages = list(next((i.record.stages for i in shown if i.record.ok), {}))
    if stages:
        key = " ".join(f":{_NAMED.get(n, 'gray')}[■ {stage_label(n)}]" for n in stages)
        st.markdown(f"Boxes: {key} (each next stage drawn slightly inside the one before, so "
                    "boxes that coincide stay visible)")
    for row in range(0, PAGE_SIZE, COLUMNS):
        cells = shown[page * PAGE_SIZE + row: page * PAGE_SIZE + row + COLUMNS]
        for column, item in zip(st.columns(COLUMNS), cells, strict=False):
            with column:
                if item.thumbnail is not None:
                    st.image(item.thumbnail, caption=item.record.file.rsplit("/", 1)[-1])
                st.markdown(_caption(item, settings.stage or None))
                if item.record.ok and st.button("Open in Explore",
                                                key=f"gallery_open:{item.index}"):
                    _open(loaded, source, item)
