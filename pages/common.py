"""What every page shares: the loaded checkpoint, the cached loaders, the live sessions.

The sidebar (:mod:`pages.shell`, drawn by ``app.py`` before the page) loads the checkpoint; a
page then uses this module, :mod:`pages.widgets`, :mod:`pages.sliders` and :mod:`pages.outputs`
in this order::

    loaded = common.require_checkpoint()            # the sidebar (drawn by app.py) loaded it
    chosen = widgets.image_input(loaded, "mypage")   # sample or upload, errors shown in the page
    knobs = sliders.stage_sliders(loaded, "mypage")  # k and DSR of every RP/ARP stage
    view = common.live_session(loaded, chosen.image).explain(knobs)  # one library call
    st.plotly_chart(figures.boxes_figure(view))                       # rendering
    outputs.show_predictions(view.predictions, loaded, chosen, key="mypage")

Caches: checkpoint files and SynthBirds samples are shared by every visitor
(``st.cache_resource``); a visitor's uploads and live sessions are theirs alone
(``scope="session"``), so visitors never evict each other and an upload leaves with its session.
No tensor math here: it lives in :mod:`arpviz.explorer`.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import streamlit as st

from arpviz.checkpoint import Checkpoint, CheckpointMeta, load
from arpviz.explorer import catalog, samples, session
from arpviz.explorer.inputs import PreparedImage
from arpviz.models import MSGN

logger = logging.getLogger(__name__)
T = TypeVar("T")

APP_ROOT = Path(__file__).resolve().parent.parent
#: session_state key of the :class:`LoadedCheckpoint` the sidebar loaded in this run (or None).
LOADED_KEY = "arpviz_loaded"
#: session_state key of the sidebar's error message when no checkpoint could be loaded.
ERROR_KEY = "arpviz_checkpoint_error"
#: Largest checkpoint upload in MB (bigger ones: put them in a folder).
MAX_CHECKPOINT_MB = 256


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint loaded on a device; ``key`` names this file version (or upload) and device."""

    checkpoint: Checkpoint
    key: tuple
    label: str
    device: str

    @property
    def model(self) -> MSGN:
        """The model (eval mode, on ``device``)."""
        return self.checkpoint.model

    @property
    def meta(self) -> CheckpointMeta:
        """The checkpoint's record."""
        return self.checkpoint.meta


# ----------------------------------------------------------------------------- loaders


@st.cache_resource(show_spinner=False)
def setup_threads() -> int:
    """Set torch's CPU threads once per process (:func:`arpviz.explorer.session.set_threads`)."""
    return session.set_threads()


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
                  _image: PreparedImage) -> session.LiveSession:
    return session.LiveSession(_loaded.model, _image, _loaded.meta.class_names,
                               device=_loaded.device)


def live_session(loaded: LoadedCheckpoint, image: PreparedImage) -> session.LiveSession:
    """This visitor's :class:`~arpviz.explorer.session.LiveSession` of a checkpoint and image
    (the last three are kept), so a slider move reuses the cached stages."""
    return _live_session(loaded.key, image.key, loaded, image)


@st.cache_resource(max_entries=8, show_spinner="Choosing a sample...")
def _default_sample(checkpoint_key: tuple, _loaded: LoadedCheckpoint) -> int:
    return samples.default_sample(_loaded.model, _loaded.meta)


def default_sample(loaded: LoadedCheckpoint) -> int:
    """The SynthBirds sample a page opens on for this checkpoint (a correctly classified,
    medium-size bird; :func:`arpviz.explorer.samples.default_sample`), once per checkpoint."""
    return _default_sample(loaded.key, loaded)


def fragment_rerun() -> bool:
    """Whether this script run reruns fragments only (a control inside one changed), not the
    whole page."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def kept(key: str, default: T) -> T:
    """The value keyed widget ``key`` holds in this session, else ``default``.

    Give it to the widget as its own default (``value=`` or ``index=``): a widget that the
    browser mounts afresh (after a run that did not draw it, or a rerun that crossed an upload's
    two runs) then shows the value the server computes with, not the element's default. Keyed
    widgets keep their identity when the default changes, so this never resets a widget.
    """
    return st.session_state.get(key, default)


def _wanted(key: str) -> str:
    return f"{key}__wanted"


def choice_index(key: str, options: Sequence[str], default: str) -> int:
    """Call before drawing choice widget ``key`` over ``options`` (a radio, a selectbox): the
    index to give it, and the user's own last choice put back when it is offered again.

    A run whose options lack the current choice (a checkpoint without samples, say) resets the
    widget to an offered one; without this, that reset would outlive the checkpoint switch.
    The widget must call :func:`remember_choice` as its ``on_change`` with ``args=(key,)``.
    """
    wanted = st.session_state.get(_wanted(key))
    current = kept(key, default)
    if wanted is None and current in options:  # what the user has seen so far is their choice
        st.session_state[_wanted(key)] = current
    elif wanted in options and current != wanted:
        st.session_state[key] = current = wanted
    return list(options).index(current if current in options else default)


def remember_choice(key: str) -> None:
    """``on_change`` of a widget drawn after :func:`choice_index`: the user chose its value."""
    set_choice(key, st.session_state[key])


def set_choice(key: str, value: str) -> None:
    """Choose ``value`` for choice widget ``key`` from code (before it is drawn in this run)."""
    st.session_state[key] = value
    st.session_state[_wanted(key)] = value


def with_progress(text: str, compute: Callable[[Callable[[float, str], None]], T]) -> T:
    """``compute(progress)`` under a progress bar that starts with ``text`` and shows every
    ``progress(fraction_done, message)``; the bar goes away when ``compute`` returns or fails."""
    bar = st.progress(0.0, text=text)
    try:
        return compute(lambda done, message: bar.progress(min(max(float(done), 0.0), 1.0),
                                                          text=message))
    finally:
        bar.empty()


def upload_key(upload) -> tuple[str, str, int]:
    """Names one upload: Streamlit's file id (new for every upload), name and size."""
    return (str(getattr(upload, "file_id", "")), upload.name, int(upload.size))


def current_checkpoint() -> LoadedCheckpoint | None:
    """The checkpoint the sidebar loaded in this run, or ``None``."""
    return st.session_state.get(LOADED_KEY)


def require_checkpoint() -> LoadedCheckpoint:
    """The loaded checkpoint; otherwise show why in the page and stop the page."""
    loaded = current_checkpoint()
    if loaded is None:
        message = st.session_state.get(ERROR_KEY)
        if message:
            st.error(message)
        else:
            st.info("Choose a checkpoint in the sidebar (start the app with app.py).")
        st.stop()
    return loaded


def checkpoint_paths() -> list[Path]:
    """The checkpoints of the bundled folder, the converted-model cache and the sidebar's folder
    (when allowed)."""
    folders: list[str | Path] = [catalog.bundled_dir()]
    typed = st.session_state.get("arpviz_ckpt_dir") or os.environ.get("ARPVIZ_CHECKPOINT_DIR")
    for folder in (catalog.converted_cache_dir(), typed):
        if not folder:
            continue
        try:
            folders.append(catalog.allowed_folder(folder))
        except catalog.FolderNotAllowed:
            pass
    return catalog.find_checkpoints(folders)
