"""Retrieval: a re-ID checkpoint's query ranked against its gallery, k and DSR steerable live.

Widgets, then the library (:class:`~arpviz.explorer.retrieval.GalleryIndex`: the split's
embeddings once per setting, then :meth:`~arpviz.explorer.retrieval.GalleryIndex.search`), then
rendering (:mod:`arpviz.explorer.figures.retrieval`). The index (rendered images, stage caches,
embeddings per setting) is shared by every visitor per checkpoint; an uploaded query is the
visitor's own. Kept for tests: ``retrieval_view`` (the
:class:`~arpviz.explorer.retrieval.SearchView` on screen) and ``retrieval_metrics``
(``(trained, current)`` :class:`~arpviz.retrieval.RetrievalMetrics`).

Opened on a classifier, the page offers the re-ID checkpoints the sidebar lists, one button
each: a click sets the sidebar's checkpoint (``st.session_state["arpviz_checkpoint"]``, the
selectbox of :mod:`pages.shell`) and the app reruns on it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from arpviz.checkpoint import CheckpointMeta
from arpviz.explorer import retrieval as rx
from arpviz.explorer.figures import retrieval as figures
from arpviz.explorer.inputs import IMAGE_TYPES, MAX_IMAGE_BYTES
from arpviz.models.stages import mode_label
from pages import common, sliders

logger = logging.getLogger(__name__)
PREFIX = "retrieval"
#: The sidebar's checkpoint selectbox (pages/shell.py): its value is the checkpoint's path.
CHECKPOINT_KEY = "arpviz_checkpoint"
#: The sidebar's checkpoint uploader: an upload wins over the selectbox.
UPLOAD_KEY = "arpviz_ckpt_upload"
_SPLIT, _UPLOAD = "From the query split", "Upload an image"


@st.cache_resource(max_entries=2, show_spinner="Rendering the query and gallery images...")
def gallery_index(key: tuple, cap: int, _loaded: common.LoadedCheckpoint) -> rx.GalleryIndex:
    """The checkpoint's query/gallery index (shared; one per checkpoint version and cap)."""
    return rx.GalleryIndex(_loaded.checkpoint, max_gallery=cap)


@st.cache_resource(max_entries=2, scope="session", show_spinner="Decoding the image...")
def _decode(key: tuple, meta_key: tuple, _data, _meta: CheckpointMeta) -> rx.QueryImage:
    return rx.upload_query(_data(), _meta, key[1])


@st.cache_resource(max_entries=4, show_spinner=False)
def _reid_checkpoints(stamps: tuple[tuple[str, int, int], ...]
                      ) -> list[tuple[Path, CheckpointMeta]]:
    """The re-ID checkpoints among the listed files (headers only; one call per listing)."""
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


def _open_checkpoint(path: str) -> None:
    """Make ``path`` the sidebar's checkpoint (runs before the rerun draws the sidebar)."""
    st.session_state[CHECKPOINT_KEY] = path


def offer_reid_checkpoints(loaded: common.LoadedCheckpoint) -> None:
    """Say why a classifier cannot rank a gallery and offer the listed re-ID checkpoints."""
    dataset = loaded.meta.dataset.get("name", "an unknown data set")
    st.info(f"This page ranks a gallery by re-identification, which needs a re-ID checkpoint "
            f"(trained on SynthReID, VeRi or another query/gallery data set); **{loaded.label}** "
            f"is a classifier trained on {dataset}.")
    found = _reid_checkpoints(_stamps(common.checkpoint_paths()))
    if not found:
        st.info("No re-ID checkpoint is listed in the sidebar. The bundled ones are "
                "`synthreid_msgn_arp.safetensors` (ARP in Conv4) and "
                "`synthreid_msgn_stride.safetensors`; train one with `python -m arpviz.train "
                "--config configs/synthreid_msgn_arp.json` (docs/reid.md).")
        return
    uploaded = st.session_state.get(UPLOAD_KEY) is not None
    if uploaded:
        st.warning("The sidebar uses your uploaded checkpoint: remove the upload there to open "
                   "one of these.")
    st.markdown("Open a re-ID checkpoint (the sidebar switches to it):")
    for i, (path, meta) in enumerate(found):
        cfg = meta.config
        st.button(f"Open {path.name} (Conv3 {mode_label(cfg.conv3)}, Conv4 "
                  f"{mode_label(cfg.conv4)})", key=f"{PREFIX}_open_{i}",
                  type="primary" if i == 0 else "secondary", disabled=uploaded,
                  on_click=_open_checkpoint, args=(str(path),))


def embeddings(index: rx.GalleryIndex, overrides: dict, what: str):
    """The split's embeddings under ``overrides``, with a progress bar when not kept yet."""
    if index.has(overrides):
        return index.embeddings(overrides)
    return common.with_progress(f"Embedding the split under the {what}...",
                                lambda bar: index.embeddings(overrides, progress=bar))


st.title("Retrieval")
st.caption(
    "Re-identification as the paper's VeRi experiments: the query's MSGN embedding ranks the "
    "gallery by Euclidean distance (gallery images of the query's identity under the query's "
    "camera are left out, the standard protocol). Move k or the DSR and the ranking follows."
)
loaded = common.require_checkpoint()
if not rx.is_reid_checkpoint(loaded.meta):
    offer_reid_checkpoints(loaded)
    st.stop()

index = gallery_index(loaded.key, rx.gallery_cap(), loaded)
g_ids = index.num_gallery_ids
note = (f" (the first {g_ids} of {index.total_ids} identities, {len(index.gallery_indices)} "
        f"of {index.total_gallery} images: a cap so that a new setting takes seconds on a CPU; "
        "env ARPVIZ_RETRIEVAL_GALLERY sets it)" if index.capped else "")
st.caption(f"Gallery: {len(index.gallery_indices)} images of {g_ids} identities{note}; "
           f"{index.num_queries} query images.")

left, right = st.columns([1, 1.6], gap="large")
with left:
    source = st.radio("Query", [_SPLIT, _UPLOAD], horizontal=True, key=f"{PREFIX}_source")
    if source == _SPLIT:
        i = st.number_input(f"Query image (0 to {index.num_queries - 1})", 0,
                            index.num_queries - 1, 0, key=f"{PREFIX}_query")
        query = index.query(int(i))
    else:
        limit_mb = MAX_IMAGE_BYTES // (1024 * 1024)
        upload = st.file_uploader("Upload a query image", type=list(IMAGE_TYPES),
                                  key=f"{PREFIX}_upload", max_upload_size=limit_mb)
        if upload is None:
            st.info("Upload an image to search the gallery with it (an unknown identity: no "
                    "true matches, no AP).")
            st.stop()
        try:
            query = _decode(common.upload_key(upload), (loaded.key,), upload.getvalue,
                            loaded.meta)
        except ValueError as exc:
            st.error(f"Cannot use this image: {exc}")
            st.stop()
        if query.notes:
            st.info(f"{upload.name}: " + "; ".join(query.notes) + ".")
    query_slot = st.container()
    st.markdown("#### Stages")
    knobs = sliders.stage_sliders(loaded, PREFIX)

overrides = index.overrides(knobs)
trained = embeddings(index, {}, "trained setting")
current = embeddings(index, overrides, "new setting") if overrides else trained
view = index.search(query, overrides, current)
st.session_state["retrieval_view"] = view
st.session_state["retrieval_metrics"] = (trained.metrics, current.metrics)

with query_slot:
    st.plotly_chart(figures.query_figure(view), key=f"{PREFIX}_query_fig")
with right:
    ranking = view.ranking
    a, b, c, d = st.columns(4)
    a.metric("AP of this query", "-" if ranking.ap is None else f"{ranking.ap:.1f} %")
    b.metric("first true match", "-" if ranking.first_match is None
             else f"rank {ranking.first_match}")
    t, m = trained.metrics, current.metrics
    c.metric("split mAP", f"{m.mAP:.1f} %", delta=f"{m.mAP - t.mAP:+.1f} vs trained"
             if overrides else None, help=f"trained setting: {t.mAP:.1f} %")
    d.metric("split rank-1", f"{m.rank1:.1f} %", delta=f"{m.rank1 - t.rank1:+.1f} vs trained"
             if overrides else None, help=f"trained setting: {t.rank1:.1f} %")
    st.caption(f"Split ({t.queries} queries, {t.gallery} gallery images) under the trained "
               f"setting: mAP {t.mAP:.1f} %, rank-1 {t.rank1:.1f} %, rank-5 {t.rank5:.1f} %"
               + ("" if not overrides else f"; under this setting: mAP {m.mAP:.1f} %, rank-1 "
                  f"{m.rank1:.1f} %") + ".")
    if query.pid >= 0:
        st.caption(f"{ranking.num_matches} true matches in the gallery; {ranking.excluded} "
                   "images of the same identity and camera left out.")
    st.markdown(f"#### Top {len(ranking.indices)} gallery images")
    st.plotly_chart(figures.results_figure(view), key=f"{PREFIX}_results_fig")
    st.caption("Boxes: each pooled stage's crop under the current setting (the legend names "
               "the stage and its pooling); a green frame and ✓: the query's identity (a true "
               "match); ✗: another identity; cam: the camera. Hover for distances.")
