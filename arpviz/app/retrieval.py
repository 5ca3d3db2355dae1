"""The Retrieval page's parts: the re-ID checkpoints a classifier's visitor can switch to, the
query (from the split, or the user's photo: the same photo every page shows), the ranking under
the stage controls, and its figures and numbers.

The index (rendered images, stage caches, embeddings per setting) is shared by every visitor per
checkpoint version; the query photo is the visitor's own.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from arpviz.app import controls
from arpviz.app.images import upload_control
from arpviz.app.resources import with_progress
from arpviz.app.sidebar import checkpoint_paths
from arpviz.app.state import AppState, LoadedCheckpoint, app_state, bind
from arpviz.checkpoint import CheckpointMeta
from arpviz.explorer import retrieval as rx
from arpviz.explorer.figures import retrieval as figures
from arpviz.models.stages import mode_label
from arpviz.text import plain

__all__ = ["gallery_index", "offer_reid_checkpoints", "query", "query_figure", "ranking",
           "results"]

logger = logging.getLogger(__name__)
_SOURCES = {"split": "From the query split", "upload": "Your photo"}


@st.cache_resource(max_entries=2, show_spinner="Rendering the query and gallery images...")
def _index(key: tuple, cap: int, _loaded: LoadedCheckpoint) -> rx.GalleryIndex:
    return rx.GalleryIndex(_loaded.checkpoint, max_gallery=cap)


def gallery_index(loaded: LoadedCheckpoint) -> rx.GalleryIndex:
    """The checkpoint's query/gallery index (shared; one per checkpoint version and cap), with
    a caption of its size."""
    index = _index(loaded.key, rx.gallery_cap(), loaded)
    ids = index.num_gallery_ids
    note = (f" (the first {ids} of {index.total_ids} identities, {len(index.gallery_indices)} "
            f"of {index.total_gallery} images: a cap so that a new setting takes seconds on a "
            "CPU; env ARPVIZ_RETRIEVAL_GALLERY sets it)" if index.capped else "")
    st.caption(f"Gallery: {len(index.gallery_indices)} images of {ids} identities{note}; "
               f"{index.num_queries} query images.")
    return index


@st.cache_resource(max_entries=4, show_spinner=False)
def _reid_checkpoints(stamps: tuple[tuple[str, int, int], ...]
                      ) -> list[tuple[Path, CheckpointMeta]]:
    return rx.reid_checkpoints(path for path, _, _ in stamps)


def _stamps(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(out)


def _open_checkpoint(state: AppState, path: str) -> None:
    state.checkpoint, state.checkpoint_default = path, False


def offer_reid_checkpoints(loaded: LoadedCheckpoint) -> None:
    """Say why a classifier cannot rank a gallery (and that the user's image stays chosen) and
    offer the listed re-ID checkpoints, one button each."""
    state = app_state()
    dataset = loaded.meta.dataset.get("name", "an unknown data set")
    kept = state.image.upload.name if state.image.upload is not None else None
    st.info(f"This page ranks a gallery by re-identification, which needs a re-ID checkpoint "
            f"(trained on SynthReID, VeRi or another query/gallery data set); **{loaded.label}** "
            f"is a classifier trained on {dataset}."
            + (f" Your photo {kept} stays chosen for the other pages (and as a query here once "
               "a re-ID checkpoint is open)." if kept else ""))
    found = _reid_checkpoints(_stamps(checkpoint_paths()))
    if not found:
        st.info("No re-ID checkpoint is listed in the sidebar. The bundled ones are "
                "`synthreid_msgn_arp.safetensors` (ARP in Conv4) and "
                "`synthreid_msgn_stride.safetensors`; train one with `python -m arpviz.train "
                "--config configs/synthreid_msgn_arp.json` (docs/reid.md).")
        return
    uploaded = loaded.key[0] == "upload"
    if uploaded:
        st.warning("The sidebar uses your uploaded checkpoint: remove the upload there to open "
                   "one of these.")
    st.markdown("Open a re-ID checkpoint (the sidebar switches to it):")
    for i, (path, meta) in enumerate(found):
        cfg = meta.config
        st.button(f"Open {plain(path.name)} (Conv3 {mode_label(cfg.conv3)}, Conv4 "
                  f"{mode_label(cfg.conv4)})", key=f"retrieval_open_{i}",
                  type="primary" if i == 0 else "secondary", disabled=uploaded,
                  on_click=_open_checkpoint, args=(state, str(path)))


def query(loaded: LoadedCheckpoint, index: rx.GalleryIndex) -> rx.QueryImage | None:
    """The query: a split image, or the user's photo (shared with every page); ``None`` with a
    note when there is none yet."""
    state = app_state()
    settings = state.retrieval
    bind(st.radio, "Query", settings, "source", options=list(_SOURCES),
         format_func=_SOURCES.get, horizontal=True)
    if settings.source == "split":
        settings.query = min(max(int(settings.query), 0), index.num_queries - 1)
        i = bind(st.number_input, f"Query image (0 to {index.num_queries - 1})", settings,
                 "query", min_value=0, max_value=index.num_queries - 1)
        return index.query(int(i))
    photo = state.image.upload
    upload_control(state.image, loaded.meta, label="Upload a query image" if photo is None
                   else "Upload another image")
    photo = state.image.upload
    if photo is None:
        st.info("Upload an image to search the gallery with it (an unknown identity: no true "
                "matches, no AP).")
        return None
    try:
        found = _decode(photo.digest, photo.name, loaded.key, photo.data, loaded.meta)
    except ValueError as exc:
        st.error(f"Cannot use this image: {plain(exc)}")
        return None
    st.caption(f"Query: **{plain(photo.name)}** (your photo)")
    if found.notes:
        st.info(plain(f"{photo.name}: " + "; ".join(found.notes) + "."))
    return found


@st.cache_resource(max_entries=2, scope="session", show_spinner="Decoding the image...")
def _decode(digest: str, name: str, key: tuple, _data: bytes,
            _meta: CheckpointMeta) -> rx.QueryImage:
    return rx.upload_query(_data, _meta, name)


def _embeddings(index: rx.GalleryIndex, overrides: dict, what: str):
    if index.has(overrides):
        return index.embeddings(overrides)
    return with_progress(f"Embedding the split under the {what}...",
                         lambda bar: index.embeddings(overrides, progress=bar))


def ranking(loaded: LoadedCheckpoint, index: rx.GalleryIndex, found: rx.QueryImage):
    """The stage controls, then the query ranked under them; returns ``(view, trained metrics,
    current metrics, whether the setting differs)`` (kept in ``app_state().shown``)."""
    st.markdown("#### Stages")
    knobs = controls.stage_sliders(loaded) or {}
    overrides = index.overrides(knobs)
    trained = _embeddings(index, {}, "trained setting")
    current = _embeddings(index, overrides, "new setting") if overrides else trained
    view = index.search(found, overrides, current)
    shown = app_state().shown
    shown.retrieval = view
    shown.retrieval_metrics = (trained.metrics, current.metrics)
    return view, trained.metrics, current.metrics, bool(overrides)


def results(view, trained, current, changed: bool) -> None:
    """The query's AP and first match, the split's mAP and rank-1, and the top gallery
    images."""
    ranked = view.ranking
    a, b, c, d = st.columns(4)
    a.metric("AP of this query", "-" if ranked.ap is None else f"{ranked.ap:.1f} %")
    b.metric("first true match", "-" if ranked.first_match is None
             else f"rank {ranked.first_match}")
    t, m = trained, current
    c.metric("split mAP", f"{m.mAP:.1f} %", delta=f"{m.mAP - t.mAP:+.1f} vs trained"
             if changed else None, help=f"trained setting: {t.mAP:.1f} %")
    d.metric("split rank-1", f"{m.rank1:.1f} %", delta=f"{m.rank1 - t.rank1:+.1f} vs trained"
             if changed else None, help=f"trained setting: {t.rank1:.1f} %")
    st.caption(f"Split ({t.queries} queries, {t.gallery} gallery images) under the trained "
               f"setting: mAP {t.mAP:.1f} %, rank-1 {t.rank1:.1f} %, rank-5 {t.rank5:.1f} %"
               + ("" if not changed else f"; under this setting: mAP {m.mAP:.1f} %, rank-1 "
                  f"{m.rank1:.1f} %") + ".")
    if view.query.pid >= 0:
        st.caption(f"{ranked.num_matches} true matches in the gallery; {ranked.excluded} "
                   "images of the same identity and camera left out.")
    st.markdown(f"#### Top {len(ranked.indices)} gallery images")
    st.plotly_chart(figures.results_figure(view), key="retrieval_results_fig")
    st.caption("Boxes: each pooled stage's crop under the current setting (the legend names "
               "the stage and its pooling); a green frame and ✓: the query's identity (a true "
               "match); ✗: another identity; cam: the camera. Hover for distances.")


def query_figure(view) -> None:
    """The query with every stage's box."""
    st.plotly_chart(figures.query_figure(view), key="retrieval_query_fig")
