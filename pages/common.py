"""The sidebar every page shares (checkpoint, device, model card) and the cached loaders.

A page uses it and :mod:`pages.widgets` in this order::

    loaded = common.require_checkpoint()            # the sidebar (drawn by app.py) loaded it
    chosen = widgets.image_input(loaded, "mypage")   # sample or upload, errors shown in the page
    knobs = widgets.stage_sliders(loaded, "mypage")  # k and DSR of every RP/ARP stage
    view = common.live_session(loaded, chosen.image).explain(knobs)  # one library call
    st.plotly_chart(explore_figures.boxes_figure(view))              # rendering

Caches: checkpoint files and SynthBirds samples are shared by every visitor
(``st.cache_resource``); a visitor's uploads and live sessions are theirs alone
(``scope="session"``), so visitors never evict each other and an upload leaves with its session.
No tensor math here: it lives in :mod:`arpviz.explorer`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from arpviz.checkpoint import Checkpoint, CheckpointError, CheckpointMeta, load
from arpviz.explorer import catalog, session
from arpviz.explorer.inputs import PreparedImage
from arpviz.models import MSGN

logger = logging.getLogger(__name__)

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


def upload_key(upload) -> tuple[str, str, int]:
    """Names one upload: Streamlit's file id (new for every upload), name and size."""
    return (str(getattr(upload, "file_id", "")), upload.name, int(upload.size))


# ----------------------------------------------------------------------------- sidebar


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(APP_ROOT))
    except ValueError:
        return str(path)


def _model_card(loaded: LoadedCheckpoint) -> None:
    card = catalog.model_card(loaded.meta)
    with st.expander("Model card", expanded=True):
        st.markdown(
            f"**{loaded.label}**  \n"
            f"backbone `{card['backbone']}`, {card['classes']} classes, input "
            f"{card['input_size']} px, {card['local_branches']} local branch(es)  \n"
            f"data set: {card['dataset']}, {card['epochs']} epoch(s)"
        )
        lines = [
            f"- {s['stage']}: {s['mode'].upper()}"
            + ("" if s["detail"] is None else f" ({s['detail']})")
            + ("" if s["k"] is None else f", k {s['k']:g}")
            + ("" if s["dsr"] == "-" else f", DSR {s['dsr']}")
            for s in card["stages"]
        ]
        st.markdown("Trained settings:\n" + "\n".join(lines))
        if card["metrics"]:
            metrics = ", ".join(f"{k} {v:.3g}" for k, v in card["metrics"].items())
            best = card["best_val_top1"]
            extra = f" (best val top-1 {best:.1f}%)" if best is not None else ""
            st.caption(f"last epoch: {metrics}{extra}")
        else:
            st.caption("no training history in this checkpoint")


def checkpoint_paths() -> list[Path]:
    """The checkpoints of the bundled folder and of the sidebar's folder (when allowed)."""
    folders: list[str | Path] = [catalog.bundled_dir()]
    folder = st.session_state.get("arpviz_ckpt_dir") or os.environ.get("ARPVIZ_CHECKPOINT_DIR")
    if folder:
        try:
            folders.append(catalog.allowed_folder(folder))
        except catalog.FolderNotAllowed:
            pass
    return catalog.find_checkpoints(folders)


def _folder_input() -> list[Path]:
    folder = st.text_input(
        "Checkpoint folder", value=os.environ.get("ARPVIZ_CHECKPOINT_DIR", ""),
        key="arpviz_ckpt_dir",
        help="A folder with arpviz .safetensors checkpoints, listed beside the bundled ones "
             "(env ARPVIZ_CHECKPOINT_DIR sets the default). Only folders inside the roots the "
             "server's operator allows (env ARPVIZ_CHECKPOINT_ROOTS) can be opened.",
    )
    if folder:
        try:
            catalog.allowed_folder(folder)
        except catalog.FolderNotAllowed as exc:
            st.warning(str(exc))
        else:
            if not Path(folder).expanduser().is_dir():
                st.warning(f"No folder {folder!r}.")
    return checkpoint_paths()


def _load(upload, choice: Path | None, device: str) -> LoadedCheckpoint | None:
    if upload is not None:
        key = upload_key(upload)
        ckpt = load_checkpoint_upload(key, upload.getvalue, device)
        return LoadedCheckpoint(ckpt, ("upload", *key, device),
                                f"{upload.name} (uploaded)", device)
    if choice is not None:
        stat = choice.stat()
        ckpt = load_checkpoint_file(str(choice), (stat.st_mtime_ns, stat.st_size), device)
        return LoadedCheckpoint(ckpt, ("file", str(choice.resolve()), stat.st_mtime_ns, device),
                                _rel(choice), device)
    st.session_state[ERROR_KEY] = (
        "No checkpoint found: none in checkpoints/ nor in the folder given. Train one "
        "(python -m arpviz.train), set a folder above or upload a .safetensors checkpoint.")
    return None


def sidebar() -> LoadedCheckpoint | None:
    """Draw the sidebar (checkpoint, device, model card) and load the chosen checkpoint.

    Call once per run (``app.py`` does, before the page). The result is also stored under
    ``st.session_state[LOADED_KEY]`` (``None`` with a message under ``ERROR_KEY`` when nothing
    could be loaded) for :func:`current_checkpoint` / :func:`require_checkpoint`.
    """
    st.session_state[ERROR_KEY] = None
    loaded = None
    with st.sidebar:
        st.subheader("Checkpoint")
        paths = _folder_input()
        upload = st.file_uploader(
            "...or upload a checkpoint", type=["safetensors"], key="arpviz_ckpt_upload",
            max_upload_size=MAX_CHECKPOINT_MB,
            help="An arpviz .safetensors checkpoint; nothing is ever unpickled.",
        )
        choice: Path | None = None
        if upload is None and paths:
            options = [str(p) for p in paths]
            default = catalog.default_checkpoint(paths)
            picked = st.selectbox("Checkpoint", options, index=options.index(str(default)),
                                  format_func=lambda p: _rel(Path(p)), key="arpviz_checkpoint")
            choice = Path(picked) if picked else None
        device_choice = st.radio("Device", ["auto", "cpu", "cuda"], horizontal=True,
                                 key="arpviz_device", help="auto picks CUDA when it is present.")
        device, note = session.resolve_device(device_choice)
        if note:
            st.warning(note)
        threads = setup_threads()
        st.caption(f"running on **{device}**" + (
            f" ({threads} CPU thread{'s' if threads > 1 else ''})" if device == "cpu" else ""))
        try:
            loaded = _load(upload, choice, device)
        except (CheckpointError, FileNotFoundError, OSError) as exc:
            logger.warning("checkpoint rejected: %s", exc)
            st.session_state[ERROR_KEY] = f"Cannot load this checkpoint: {exc}"
        except Exception as exc:  # noqa: BLE001 - a malformed file must not take the app down
            logger.exception("unexpected error loading a checkpoint")
            st.session_state[ERROR_KEY] = (
                f"Cannot load this checkpoint: it is malformed ({type(exc).__name__}: {exc})")
        if st.session_state[ERROR_KEY]:
            st.error(st.session_state[ERROR_KEY])
        if loaded is not None:
            _model_card(loaded)
    st.session_state[LOADED_KEY] = loaded
    return loaded


_RUN_LOG_LOCK = threading.Lock()


def run_app(navigation) -> None:
    """Draw the sidebar, then run the page ``st.navigation`` chose.

    With env ``ARPVIZ_RUN_LOG`` set, the seconds of every script run are appended to that file
    as a JSON line ``{"page", "seconds"}`` (the load test reads them: the server's own time per
    interaction, apart from the browser's round trip).
    """
    path = os.environ.get("ARPVIZ_RUN_LOG")
    start = time.perf_counter()
    try:
        sidebar()
        navigation.run()
    finally:
        if path:
            line = json.dumps({"page": navigation.url_path,
                               "seconds": round(time.perf_counter() - start, 5)})
            with _RUN_LOG_LOCK, open(path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")


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
