"""The image control every image page shares: a data-set sample, the user's photo, or a file
the Gallery opened, bound to :attr:`AppState.image <arpviz.app.state.AppState.image>` so the
same image follows the user from page to page until they replace it.

:func:`image_input` draws the control and returns a :class:`ShownImage` (the prepared input,
the ground truth to draw, and the title every page shows above it); problems are shown in the
page and lose nothing (a file that cannot be used never replaces the photo in use).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from arpviz.app import resources
from arpviz.app.state import (
    AppState,
    ImageChoice,
    LoadedCheckpoint,
    SampleImage,
    UploadedImage,
    app_state,
    bind,
)
from arpviz.checkpoint import CheckpointMeta
from arpviz.explorer import catalog, inputs
from arpviz.text import plain

__all__ = ["ShownImage", "dataset_id", "image_input", "open_file", "open_sample",
           "resolve_image", "upload_control"]

logger = logging.getLogger(__name__)

_LABELS = {"sample": "Data-set sample", "upload": "Your photo", "file": "Gallery file"}


@dataclass(frozen=True)
class ShownImage:
    """The image a page shows: the network's input (``image``), the ground truth to draw
    (``truth``: a sample's, when the user asked for it), whether it is a photo (an upload or a
    file, not one of the checkpoint's own samples) and the ``title`` naming it (its name and
    size)."""

    image: inputs.PreparedImage
    truth: inputs.GroundTruth | None
    photo: bool
    title: str


@dataclass
class _Index:
    """A sample index as a widget shows it (the model keeps a :class:`SampleImage`)."""

    prefix = "image"
    sample: int


@dataclass
class _Source:
    """The image source as the radio shows it: the model's, or the one this checkpoint can
    show (a data set without samples offers photos only; the user's choice is kept for the
    next checkpoint that has samples)."""

    prefix = "image"
    source: str


def dataset_id(meta: CheckpointMeta) -> str:
    """A short name of a checkpoint's data set and input size: checkpoints with the same one
    number their samples alike."""
    text = json.dumps([dict(meta.dataset), meta.input_size], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _split(meta: CheckpointMeta) -> str:
    return inputs.sample_split(meta)


def open_sample(loaded: LoadedCheckpoint, index: int, state: AppState | None = None) -> None:
    """Make sample ``index`` of ``loaded``'s evaluation split the image (the Gallery's and
    Adaptivity's "open in Explore")."""
    state = state or app_state()
    state.image.show_sample(SampleImage(dataset_id(loaded.meta), _split(loaded.meta), int(index)))


def open_file(path: str | Path, state: AppState | None = None) -> None:
    """Make the image file ``path`` the image (the Gallery's "open in Explore")."""
    (state or app_state()).image.show_file(str(path))


def _title(image: inputs.PreparedImage, kind: str) -> str:
    width, height = image.source_size
    return f"{image.name}, {width} x {height} px ({kind})"


def _sample(loaded: LoadedCheckpoint, choice: ImageChoice, count: int,
            control: bool) -> ShownImage:
    meta = loaded.meta
    sample = choice.sample
    if sample is None or sample.dataset != dataset_id(meta) or not 0 <= sample.index < count:
        index = resources.default_sample(loaded)
    else:
        index = sample.index
    if control:
        shown = _Index(min(max(index, 0), count - 1))
        picked = bind(st.number_input, f"Sample of the {_split(meta)} split (0 to {count - 1})",
                      shown, "sample", min_value=0, max_value=count - 1, step=1)
        if int(picked) != index:
            index = int(picked)
            choice.sample = SampleImage(dataset_id(meta), _split(meta), index)
        bind(st.checkbox, "Show the ground truth box and keypoints", choice, "show_truth",
             key="image.show_truth")
    image = resources.sample_image(meta, index)
    return ShownImage(image, image.truth if choice.show_truth else None, False,
                      _title(image, "data-set sample"))


def upload_control(choice: ImageChoice, meta: CheckpointMeta, *, label: str) -> None:
    """The uploader: a new file becomes the photo (kept across pages) once it decodes; one that
    does not is reported and changes nothing."""
    limit_mb = inputs.MAX_IMAGE_BYTES // (1024 * 1024)
    upload = st.file_uploader(
        label, type=list(inputs.IMAGE_TYPES), key="image.upload", max_upload_size=limit_mb,
        help=f"At most {limit_mb} MB and {inputs.MAX_PIXELS / 1e6:g} megapixels; a GIF shows "
             "its first frame. The photo stays for every page until you upload another.")
    if upload is None or str(getattr(upload, "file_id", upload.name)) == choice.upload_id:
        return
    data = upload.getvalue()
    digest = inputs.image_digest(data)
    try:
        resources.decode_upload(data, digest, upload.name, meta)
    except ValueError as exc:
        logger.info("image rejected: %s", exc)
        st.error(f"Cannot use this image: {plain(exc)}")
        return
    except Exception as exc:  # noqa: BLE001 - an odd file must not take the app down
        logger.exception("unexpected error decoding %s", upload.name)
        st.error(f"Cannot use this image: {plain(upload.name)} could not be decoded "
                 f"({type(exc).__name__}: {plain(exc)})")
        return
    choice.show_upload(UploadedImage(upload.name, digest, data),
                       str(getattr(upload, "file_id", upload.name)))


def _photo(loaded: LoadedCheckpoint, choice: ImageChoice) -> ShownImage | None:
    photo = choice.upload
    if photo is None:
        return None
    try:
        image = resources.decode_upload(photo.data, photo.digest, photo.name, loaded.meta)
    except ValueError as exc:
        st.error(f"Cannot use {plain(photo.name)} with this checkpoint: {plain(exc)}")
        return None
    return ShownImage(image, None, True, _title(image, "your photo"))


def _file(loaded: LoadedCheckpoint, choice: ImageChoice) -> ShownImage | None:
    if choice.file is None:
        return None
    path = Path(choice.file.path)
    try:
        catalog.allowed_folder(path.parent)
        stat = path.stat()
        image = resources.decode_file(str(path), (stat.st_mtime_ns, stat.st_size), loaded.meta)
    except (ValueError, OSError) as exc:
        st.error(f"Cannot use {plain(path.name)}: {plain(exc)}")
        return None
    return ShownImage(image, None, True, _title(image, "opened from the Gallery"))


def resolve_image(loaded: LoadedCheckpoint, state: AppState | None = None, *,
                  control: bool = False) -> ShownImage | None:
    """The image in use for ``loaded`` (the sample control drawn when ``control``)."""
    choice = (state or app_state()).image
    count = inputs.sample_count(loaded.meta)
    if choice.source == "file":
        return _file(loaded, choice)
    if choice.source == "upload" or not count:  # a data set without samples: the photo
        return _photo(loaded, choice)
    return _sample(loaded, choice, count, control)


def image_input(loaded: LoadedCheckpoint) -> ShownImage | None:
    """The image control (sample, photo or Gallery file) and the image it shows, named by a
    caption (its name and size); ``None`` (with a note in the page) when there is none yet."""
    state = app_state()
    choice = state.image
    count = inputs.sample_count(loaded.meta)
    options = (["sample"] if count else []) + ["upload"] + (["file"] if choice.file else [])
    if not count and choice.source == "sample" and choice.upload is None:
        st.caption("This checkpoint's data set has no built-in samples; upload an image.")
    labels = dict(_LABELS)
    if choice.upload is not None:
        labels["upload"] = f"Your photo: {choice.upload.name}"
    if choice.file is not None:
        labels["file"] = f"Gallery file: {choice.file.name}"
    initial = choice.source if choice.source in options else "upload"
    source = bind(st.radio, "Image", _Source(initial), "source", options=options,
                  key="image.source", format_func=labels.get, horizontal=True)
    if source != initial or choice.source in options:
        choice.source = source
    if source == "upload":
        upload_control(choice, loaded.meta, label="Upload an image (png, jpg, webp, bmp, tiff, "
                       "gif)" if choice.upload is None else "Upload another image")
        if choice.upload is None:
            st.info("Upload an image to explore it.")
            return None
    shown = resolve_image(loaded, state, control=True)
    if shown is not None:
        state.shown.image = shown
        st.caption(f"Image: **{plain(shown.title)}**")
        truth = shown.image.truth
        if truth is not None:
            st.caption(f"True class: **{plain(truth.name)}**" if truth.label >= 0 else
                       f"**{plain(truth.name)}**: a test identity the classifier never saw "
                       "(Retrieval ranks the gallery by it)")
        if shown.image.notes:
            st.info(plain("; ".join(shown.image.notes) + "."))
    return shown
