"""The image input the Explore-family pages share (upload, SynthBirds sample, Gallery file).

Widget keys are ``{prefix}_<what>`` (one prefix per page); the values go to
:mod:`arpviz.explorer` and come back as plain results to draw.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from arpviz.checkpoint import CheckpointMeta
from arpviz.explorer import catalog, inputs
from pages import common
from pages.common import LoadedCheckpoint, upload_key

logger = logging.getLogger(__name__)

_UPLOAD_CHOICE = "Upload an image"
SAMPLE_CHOICE = "SynthBirds sample"
FILE_CHOICE = "Gallery image"
#: session_state key of the image file the Gallery opened (Explore offers it as FILE_CHOICE).
OPEN_FILE_KEY = "arpviz_open_file"


@dataclass(frozen=True)
class ChosenImage:
    """The image a page works on: prepared input, ground truth to draw (or None), origin."""

    image: inputs.PreparedImage
    truth: inputs.GroundTruth | None
    uploaded: bool


@st.cache_resource(max_entries=64, show_spinner=False)
def _synth_sample(dataset_json: str, stats: tuple, index: int,
                  _meta: CheckpointMeta) -> inputs.PreparedImage:
    return inputs.synth_sample(_meta, index)


@st.cache_resource(max_entries=2, scope="session", show_spinner="Decoding the image...")
def _decode_upload(key: tuple, stats: tuple, _data: Callable[[], bytes],
                   _meta: CheckpointMeta) -> inputs.PreparedImage:
    return inputs.load_upload(_data(), _meta, key[1])


@st.cache_resource(max_entries=2, scope="session", show_spinner="Decoding the image...")
def _decode_file(path: str, stamp: tuple, stats: tuple,
                 _meta: CheckpointMeta) -> inputs.PreparedImage:
    return inputs.load_file(path, _meta)


def _gallery_file(meta: CheckpointMeta) -> ChosenImage | None:
    path = Path(st.session_state[OPEN_FILE_KEY])
    st.caption(f"Opened from the Gallery: {path.name}")
    try:
        catalog.allowed_folder(path.parent)
        stat = path.stat()
        image = _decode_file(str(path), (stat.st_mtime_ns, stat.st_size), _stats(meta), meta)
    except (ValueError, OSError) as exc:
        st.error(f"Cannot use this image: {exc}")
        return None
    return ChosenImage(image, None, uploaded=True)


def open_sample(loaded: LoadedCheckpoint, index: int, prefix: str = "explore") -> None:
    """Make sample ``index`` of ``loaded``'s evaluation split the image of page ``prefix`` (the
    Gallery's and Adaptivity's "open in Explore"); the page then keeps it for this checkpoint
    instead of its default sample."""
    common.set_choice(f"{prefix}_source", SAMPLE_CHOICE)
    st.session_state[f"{prefix}_sample"] = int(index)
    st.session_state[f"{prefix}_sample_for"] = loaded.key


def _stats(meta: CheckpointMeta) -> tuple:
    return (meta.input_size, tuple(meta.mean), tuple(meta.std))


def image_input(loaded: LoadedCheckpoint, prefix: str) -> ChosenImage | None:
    """A SynthBirds sample picker or an image upload; problems are shown in the page.

    Widget keys: ``{prefix}_source`` (radio), ``{prefix}_sample`` (number input),
    ``{prefix}_show_gt`` (checkbox), ``{prefix}_upload`` (file uploader). When the Gallery
    opened a file (``st.session_state[OPEN_FILE_KEY]``) the radio offers it too.
    """
    meta = loaded.meta
    count = inputs.sample_count(meta)
    choices = [SAMPLE_CHOICE, _UPLOAD_CHOICE] if count else [_UPLOAD_CHOICE]
    if st.session_state.get(OPEN_FILE_KEY):
        choices.append(FILE_CHOICE)
    key = f"{prefix}_source"
    source = st.radio("Image", choices, horizontal=True, key=key,
                      index=common.choice_index(key, choices, choices[0]),
                      on_change=common.remember_choice, args=(key,), persist_state="session")
    if source == FILE_CHOICE:
        return _gallery_file(meta)
    if source == SAMPLE_CHOICE:
        split = meta.dataset.get("eval_split", "val")
        # a checkpoint opens on a correctly classified, medium-size bird
        if st.session_state.get(f"{prefix}_sample_for") != loaded.key:
            st.session_state[f"{prefix}_sample"] = common.default_sample(loaded)
            st.session_state[f"{prefix}_sample_for"] = loaded.key
        index = st.number_input(f"Sample of the SynthBirds {split} split (0 to {count - 1})",
                                min_value=0, max_value=count - 1, step=1,
                                value=min(max(int(common.kept(f"{prefix}_sample", 0)), 0),
                                          count - 1),
                                key=f"{prefix}_sample", persist_state="session")
        show = st.checkbox("Show the ground truth box and keypoints", key=f"{prefix}_show_gt",
                           value=bool(common.kept(f"{prefix}_show_gt", False)),
                           persist_state="session")
        image = _synth_sample(json.dumps(dict(meta.dataset), sort_keys=True, default=str),
                              _stats(meta), int(index), meta)
        if image.truth is not None:
            st.caption(f"{image.name}: true class **{image.truth.name}**")
        return ChosenImage(image, image.truth if show else None, uploaded=False)
    if not count:
        st.caption("This checkpoint's data set has no built-in samples; upload an image.")
    limit_mb = inputs.MAX_IMAGE_BYTES // (1024 * 1024)
    upload = st.file_uploader(
        "Upload an image (png, jpg, webp, bmp, tiff, gif)", type=list(inputs.IMAGE_TYPES),
        key=f"{prefix}_upload", max_upload_size=limit_mb,
        help=f"At most {limit_mb} MB and {inputs.MAX_PIXELS / 1e6:g} megapixels; a GIF shows "
             "its first frame.",
    )
    if upload is None:
        st.info("Upload an image to explore it.")
        return None
    try:
        image = _decode_upload(upload_key(upload), _stats(meta), upload.getvalue, meta)
    except ValueError as exc:
        logger.info("image rejected: %s", exc)
        st.error(f"Cannot use this image: {exc}")
        return None
    except Exception as exc:  # noqa: BLE001 - an odd file must not take the app down
        logger.exception("unexpected error decoding %s", upload.name)
        st.error(f"Cannot use this image: {upload.name!r} could not be decoded "
                 f"({type(exc).__name__}: {exc})")
        return None
    if image.notes:
        st.info(f"{upload.name}: " + "; ".join(image.notes) + ".")
    return ChosenImage(image, None, uploaded=True)
