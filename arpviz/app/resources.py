"""What the pages load once and share: checkpoints, decoded images, live sessions; progress bars
and the run timer.

Caches: checkpoint files and data-set samples are shared by every visitor
(``st.cache_resource``); a visitor's uploads and live sessions are theirs alone
(``scope="session"``), so visitors never evict each other and an upload leaves with its session.
No tensor math here: it lives in :mod:`arpviz.explorer`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import streamlit as st

from arpviz.app.state import LoadedCheckpoint
from arpviz.checkpoint import Checkpoint, CheckpointMeta, load
from arpviz.explorer import inputs, samples
from arpviz.explorer.live import LiveSession
from arpviz.explorer.runtime import set_threads

__all__ = [
    "decode_file",
    "decode_upload",
    "default_sample",
    "fragment_rerun",
    "live_session",
    "load_checkpoint_file",
    "load_checkpoint_upload",
    "sample_image",
    "settle_heap",
    "setup_threads",
    "timed_run",
    "with_progress",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def setup_threads() -> int:
    """Set torch's CPU threads once per process (:func:`arpviz.explorer.runtime.set_threads`)."""
    return set_threads()


@st.cache_resource(max_entries=16, show_spinner=False)
def settle_heap(checkpoint_key: tuple) -> None:
    """Once per loaded checkpoint: collect, then freeze everything alive so far
    (``gc.freeze``) so that the collector's full passes skip the model, torch and the app's
    long-lived objects. Without it a full collection (about 0.2 s on two cores) fell inside
    most slider steps and held every reply back (measured in docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    logger.info("heap frozen after loading %s (%d objects)", checkpoint_key[1],
                gc.get_freeze_count())


@st.cache_resource(max_entries=4, show_spinner="Loading the checkpoint...")
def load_checkpoint_file(path: str, stamp: tuple[int, int], device: str) -> Checkpoint:
    """Load a checkpoint file once per file version (``stamp``: mtime, size) and device."""
    logger.info("loading checkpoint %s on %s", path, device)
    return load(path, device)


@st.cache_resource(max_entries=1, scope="session", show_spinner="Loading the checkpoint...")
def load_checkpoint_upload(key: tuple, _data: Callable[[], bytes], device: str) -> Checkpoint:
    """Load this visitor's uploaded checkpoint once per upload and device (``_data`` returns
    the file's bytes, called only when not cached)."""
    logger.info("loading uploaded checkpoint %s on %s", key[1], device)
    return load(_data(), device)


@st.cache_resource(max_entries=3, scope="session", show_spinner="Running the model...")
def _live_session(checkpoint_key: tuple, image_key: str, _loaded: LoadedCheckpoint,
                  _image: inputs.PreparedImage) -> LiveSession:
    return LiveSession(_loaded.model, _image, _loaded.meta.class_names, device=_loaded.device)


def live_session(loaded: LoadedCheckpoint, image: inputs.PreparedImage) -> LiveSession:
    """This visitor's :class:`~arpviz.explorer.live.LiveSession` of a checkpoint and image
    (the last three are kept), so a slider move reuses the cached stages. A checkpoint that
    crops by the object's true mask shown a photo (no mask) stops the page with a note."""
    if loaded.model.needs_mask and image.mask is None:
        st.info("This checkpoint crops by the bird's true mask (an oracle or mask-placed stage, "
                "beyond the paper), which only its SynthBirds samples have: choose a sample.")
        st.stop()
    return _live_session(loaded.key, image.key, loaded, image)


@st.cache_resource(max_entries=8, show_spinner="Choosing a sample...")
def _default_sample(checkpoint_key: tuple, _loaded: LoadedCheckpoint) -> int:
    return samples.default_sample(_loaded.model, _loaded.meta)


def default_sample(loaded: LoadedCheckpoint) -> int:
    """The sample a page opens on for this checkpoint (a correctly classified, medium-size
    bird; :func:`arpviz.explorer.samples.default_sample`), once per checkpoint."""
    return _default_sample(loaded.key, loaded)


def _stats(meta: CheckpointMeta) -> tuple:
    return (meta.input_size, tuple(meta.mean), tuple(meta.std))


@st.cache_resource(max_entries=64, show_spinner=False)
def _sample(dataset_json: str, stats: tuple, index: int,
            _meta: CheckpointMeta) -> inputs.PreparedImage:
    return inputs.synth_sample(_meta, index)


def sample_image(meta: CheckpointMeta, index: int) -> inputs.PreparedImage:
    """Sample ``index`` of the checkpoint's evaluation split, prepared (shared by visitors)."""
    dataset = json.dumps(dict(meta.dataset), sort_keys=True, default=str)
    return _sample(dataset, _stats(meta), int(index), meta)


@st.cache_resource(max_entries=2, scope="session", show_spinner="Decoding the image...")
def _upload(digest: str, name: str, stats: tuple, _data: bytes,
            _meta: CheckpointMeta) -> inputs.PreparedImage:
    return inputs.load_upload(_data, _meta, name)


def decode_upload(data: bytes, digest: str, name: str,
                  meta: CheckpointMeta) -> inputs.PreparedImage:
    """An uploaded photo prepared for ``meta``'s network (this visitor's, once per photo and
    input geometry).

    Raises:
        ValueError: the bytes are no usable image (the message is fit to show).
    """
    return _upload(digest, name, _stats(meta), data, meta)


@st.cache_resource(max_entries=2, scope="session", show_spinner="Decoding the image...")
def _file(path: str, stamp: tuple, stats: tuple, _meta: CheckpointMeta) -> inputs.PreparedImage:
    return inputs.load_file(path, _meta)


def decode_file(path: str, stamp: tuple, meta: CheckpointMeta) -> inputs.PreparedImage:
    """An image file prepared for ``meta``'s network, once per file version (``stamp``).

    Raises:
        ValueError, OSError: missing, unreadable or no usable image.
    """
    return _file(path, stamp, _stats(meta), meta)


def fragment_rerun() -> bool:
    """Whether this script run reruns fragments only (a control inside one changed), not the
    whole page."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def with_progress(text: str, compute: Callable[[Callable[[float, str], None]], T]) -> T:
    """``compute(progress)`` under a progress bar that starts with ``text`` and shows every
    ``progress(fraction_done, message)``; the bar goes away when ``compute`` returns or fails."""
    bar = st.progress(0.0, text=text)
    try:
        return compute(lambda done, message: bar.progress(min(max(float(done), 0.0), 1.0),
                                                          text=message))
    finally:
        bar.empty()


_RUN_LOG_LOCK = threading.Lock()


@contextlib.contextmanager
def timed_run(name: str) -> Iterator[None]:
    """With env ``ARPVIZ_RUN_LOG`` set, append the block's run to that file as a JSON line
    ``{"page", "seconds", "cpu_seconds"}``: its wall-clock seconds and the CPU seconds of the
    script's own thread (the load test reads them: the server's time per interaction, apart from
    the browser's round trip; the CPU time leaves out the waits for other sessions' runs and
    torch's helper threads). Whole script runs are logged by the app's frame, a fragment's own
    reruns by the fragment (e.g. Explore's stage controls, ``"explore:steer"``)."""
    path = os.environ.get("ARPVIZ_RUN_LOG")
    start = time.perf_counter()
    cpu_start = time.thread_time()
    try:
        yield
    finally:
        if path:
            line = json.dumps({"page": name,
                               "seconds": round(time.perf_counter() - start, 5),
                               "cpu_seconds": round(time.thread_time() - cpu_start, 5)})
            with _RUN_LOG_LOCK, open(path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
