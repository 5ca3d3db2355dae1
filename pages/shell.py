"""The app's frame: the sidebar (checkpoint, device, model card) and the timed page run.

``app.py`` calls :func:`run_app` once per script run; the sidebar stores what it loaded for
:func:`pages.common.require_checkpoint`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import streamlit as st

from arpviz.checkpoint import CheckpointError
from arpviz.convert import convert_cached
from arpviz.explorer import catalog, session
from arpviz.weights import WeightsError
from pages import outputs
from pages.common import (
    APP_ROOT,
    ERROR_KEY,
    LOADED_KEY,
    MAX_CHECKPOINT_MB,
    LoadedCheckpoint,
    checkpoint_paths,
    load_checkpoint_file,
    load_checkpoint_upload,
    settle_heap,
    setup_threads,
    upload_key,
    with_progress,
)

logger = logging.getLogger(__name__)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(APP_ROOT))
    except ValueError:
        return str(path)


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


_IMAGENET = "imagenet:"
#: an ImageNet offer to choose in the checkpoint box on the next run (set after its download)
_OPEN = "_arpviz_open_offer"


def _convert(offer: catalog.ImagenetOffer) -> Path:
    """The offer's converted checkpoint: converted once (a progress bar), then reused."""
    if offer.target.is_file():
        return convert_cached(offer.arch)
    path = with_progress(f"Converting {offer.label}...",
                         lambda bar: convert_cached(offer.arch, progress=bar))
    st.toast(f"{offer.label}: converted once into {path.parent}")
    return path


def _download(offer: catalog.ImagenetOffer) -> None:
    """Download an offer's weights (a progress bar; the checksum verified), convert them once
    and open the result in Explore; on failure a one-line message and the way by hand."""
    try:
        with_progress(f"Downloading {offer.label}...",
                      lambda bar: catalog.get_offer(offer, progress=bar))
    except WeightsError as exc:
        logger.warning("download failed: %s", exc)
        st.error(exc.message)
        st.caption(exc.manual)
        return
    except (CheckpointError, OSError, ValueError) as exc:
        logger.warning("conversion failed: %s", exc)
        st.error(f"Cannot convert {offer.label}: {' '.join(str(exc).split())}")
        return
    st.session_state[_OPEN] = _IMAGENET + offer.arch
    st.switch_page("pages/explore.py")


def _imagenet_list(offers: list[catalog.ImagenetOffer], expanded: bool) -> None:
    """Every ImageNet ResNet with ARP, ready (in the torch cache) or to download on request
    (a button each; none where the deployment sets ``ARPVIZ_OFFLINE=1``)."""
    downloads = catalog.downloads_offered()
    with st.expander("ImageNet ResNets with ARP", expanded=expanded,
                     icon=":material/photo_library:"):
        st.caption("torchvision's ImageNet weights with ARP in Conv3 and Conv4 (not "
                   "fine-tuned), for photos. Ready ones are in the torch cache and in the "
                   "Checkpoint box above; the others download only when you press their "
                   "button (the checksum is verified, the file kept where torchvision keeps "
                   "it, then converted once).")
        for offer in offers:
            if offer.ready:
                st.markdown(f"**{offer.label}** · ready")
                continue
            st.markdown(f"**{offer.label}** · {offer.status}")
            if downloads:
                if st.button(f"Download {offer.entry.size_text if offer.entry else ''}".strip(),
                             key=f"arpviz_download:{offer.arch}", icon=":material/download:",
                             help=f"Fetch {offer.weights.name} into {offer.weights.parent}, "
                                  "verify its checksum, convert it and open it in Explore."):
                    _download(offer)
            else:
                st.caption(f"Downloads are off on this server. {offer.manual}.")


def _describe(path: str) -> str:
    """What the chosen file holds and where it is (a file whose header cannot be read: only
    where; loading it says what is wrong)."""
    try:
        return f"{catalog.describe_file(path)}  \nfile: {_rel(Path(path))}"
    except (CheckpointError, OSError, ValueError, TypeError):
        return f"file: {_rel(Path(path))}"


def _label(option: str, offers: dict[str, catalog.ImagenetOffer], titles: dict[str, str]
           ) -> str:
    if option.startswith(_IMAGENET):
        return offers[option].label
    return titles.get(option) or _rel(Path(option))


def _load(upload, choice: Path | None, device: str,
          offer: catalog.ImagenetOffer | None) -> LoadedCheckpoint | None:
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
    if offer is not None:
        loaded = _load(None, _convert(offer), device, None)
        return None if loaded is None else replace(loaded, label=offer.label)
    st.session_state[ERROR_KEY] = (
        "No checkpoint found: none in checkpoints/ nor in the folder given. Train one "
        "(arpviz-train), set a folder above, upload a .safetensors checkpoint, or download an "
        "ImageNet ResNet with ARP in the sidebar.")
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
        offer: catalog.ImagenetOffer | None = None
        every_offer = catalog.imagenet_offers(downloadable=True)
        offers = {_IMAGENET + o.arch: o for o in every_offer if o.ready}
        targets = {o.target.resolve() for o in offers.values()}
        paths = [p for p in paths if p.resolve() not in targets]
        if upload is None and (paths or offers):
            options = [str(p) for p in paths] + list(offers)
            default = catalog.default_checkpoint(paths)
            if st.session_state.get(_OPEN) in options:  # just downloaded: open it
                st.session_state["arpviz_checkpoint"] = st.session_state.pop(_OPEN)
            elif st.session_state.get("arpviz_checkpoint") not in options:
                st.session_state["arpviz_checkpoint"] = (
                    str(default) if default is not None else options[0])
            titles = catalog.checkpoint_titles(paths)
            current = st.session_state["arpviz_checkpoint"]
            picked = st.selectbox(
                "Checkpoint", options, key="arpviz_checkpoint",
                format_func=lambda p: _label(p, offers, titles),
                help=f"File: {_rel(Path(current)) if current in titles else current}. Named "
                     "by what tells the checkpoints apart (Conv4's and Conv3's pooling, the "
                     "data). The ImageNet entries are torchvision's ResNets from your torch "
                     "cache with ARP in Conv3 and Conv4 (not fine-tuned); converted once into "
                     f"{catalog.converted_cache_dir()}. More below, under ImageNet ResNets "
                     "with ARP.")
            if picked in titles:
                st.caption(_describe(picked))
            if picked in offers:
                offer = offers[picked]
                st.caption(f"{offer.label}: torchvision's weights from the torch cache, "
                           + ("converted" if offer.target.is_file() else "converted on first use")
                           + f" into {_rel(offer.target.parent)}.")
            elif picked:
                choice = Path(picked)
        _imagenet_list(every_offer, expanded=not (paths or offers))
        device_choice = st.radio("Device", ["auto", "cpu", "cuda"], horizontal=True,
                                 key="arpviz_device", help="auto picks CUDA when it is present.")
        device, note = session.resolve_device(device_choice)
        if note:
            st.warning(note)
        threads = setup_threads()
        st.caption(f"running on **{device}**" + (
            f" ({threads} CPU thread{'s' if threads > 1 else ''})" if device == "cpu" else ""))
        try:
            loaded = _load(upload, choice, device, offer)
        except (CheckpointError, FileNotFoundError, OSError, ValueError) as exc:
            logger.warning("checkpoint rejected: %s", exc)
            st.session_state[ERROR_KEY] = f"Cannot load this checkpoint: {exc}"
        except Exception as exc:  # noqa: BLE001 - a malformed file must not take the app down
            logger.exception("unexpected error loading a checkpoint")
            st.session_state[ERROR_KEY] = (
                f"Cannot load this checkpoint: it is malformed ({type(exc).__name__}: {exc})")
        if st.session_state[ERROR_KEY]:
            st.error(st.session_state[ERROR_KEY])
        if loaded is not None:
            settle_heap(loaded.key)
            outputs.show_model_card(loaded)
    st.session_state[LOADED_KEY] = loaded
    return loaded


_RUN_LOG_LOCK = threading.Lock()


@contextlib.contextmanager
def timed_run(name: str) -> Iterator[None]:
    """With env ``ARPVIZ_RUN_LOG`` set, append the block's run to that file as a JSON line
    ``{"page", "seconds", "cpu_seconds"}``: its wall-clock seconds and the CPU seconds of the
    script's own thread (the load test reads them: the server's time per interaction, apart from
    the browser's round trip; the CPU time leaves out the waits for other sessions' runs and
    torch's helper threads). Whole script runs are logged by :func:`run_app`, a fragment's own
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


def run_app(navigation) -> None:
    """Draw the sidebar, then run the page ``st.navigation`` chose (timed: :func:`timed_run`)."""
    with timed_run(navigation.url_path):
        sidebar()
        navigation.run()
