"""The app's frame: the sidebar (checkpoint, device, model card) and the timed page run.

``app.py`` calls :func:`run_app` once per script run; the sidebar loads the chosen checkpoint
into :attr:`AppState.loaded <arpviz.app.state.AppState.loaded>` for
:func:`require_checkpoint`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import streamlit as st

from arpviz.app import outputs
from arpviz.app.resources import (
    load_checkpoint_file,
    load_checkpoint_upload,
    settle_heap,
    setup_threads,
    timed_run,
    with_progress,
)
from arpviz.app.state import AppState, LoadedCheckpoint, app_state, bind
from arpviz.checkpoint import CheckpointError
from arpviz.convert import convert_cached
from arpviz.explorer import catalog
from arpviz.explorer.runtime import DEVICE_CHOICES, resolve_device
from arpviz.text import plain
from arpviz.weights import WeightsError

__all__ = ["APP_ROOT", "MAX_CHECKPOINT_MB", "checkpoint_paths", "require_checkpoint",
           "run_app", "sidebar"]

logger = logging.getLogger(__name__)

#: The folder of app.py (the repository's root in a checkout).
APP_ROOT = Path(__file__).resolve().parents[2]
#: Largest checkpoint upload in MB (bigger ones: put them in a folder).
MAX_CHECKPOINT_MB = 256
_IMAGENET = "imagenet:"


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(APP_ROOT))
    except ValueError:
        return str(path)


def checkpoint_paths(state: AppState | None = None) -> list[Path]:
    """The checkpoints of the bundled folder, the converted-model cache and the sidebar's folder
    (when allowed)."""
    state = state or app_state()
    folders: list[str | Path] = [catalog.bundled_dir()]
    for folder in (catalog.converted_cache_dir(), state.folder):
        if not folder:
            continue
        try:
            folders.append(catalog.allowed_folder(folder))
        except catalog.FolderNotAllowed:
            pass
    return catalog.find_checkpoints(folders, roots=catalog.listing_roots())


def _folder_input(state: AppState) -> list[Path]:
    folder = bind(st.text_input, "Checkpoint folder", state, "folder", key="arpviz_ckpt_dir",
                  help="A folder with arpviz .safetensors checkpoints, listed beside the "
                       "bundled ones (env ARPVIZ_CHECKPOINT_DIR sets the default). Only folders "
                       "inside the roots the server's operator allows (env "
                       "ARPVIZ_CHECKPOINT_ROOTS) can be opened.")
    if folder:
        try:
            catalog.allowed_folder(folder)
        except catalog.FolderNotAllowed as exc:
            st.warning(str(exc))
        else:
            if not Path(folder).expanduser().is_dir():
                st.warning(f"No folder {plain(folder)}.")
    return checkpoint_paths(state)


def _convert(offer: catalog.ImagenetOffer) -> Path:
    """The offer's converted checkpoint: converted once (a progress bar), then reused."""
    if offer.target.is_file():
        return convert_cached(offer.arch)
    path = with_progress(f"Converting {offer.label}...",
                         lambda bar: convert_cached(offer.arch, progress=bar))
    st.toast(f"{offer.label}: converted once into {path.parent}")
    return path


def _download(state: AppState, offer: catalog.ImagenetOffer) -> None:
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
        st.error(f"Cannot convert {offer.label}: {plain(exc)}")
        return
    state.checkpoint, state.checkpoint_default = _IMAGENET + offer.arch, False
    st.switch_page("pages/explore.py")


def _offer_label(offer: catalog.ImagenetOffer) -> str:
    """An ImageNet entry of the checkpoint box: ready, or what it takes to get it."""
    if offer.ready:
        return f"{offer.label} (torch cache, not fine-tuned)"
    if not catalog.downloads_offered():
        return f"{offer.label} (not on this machine; downloads are off on this server)"
    size = offer.entry.size_text if offer.entry else "its weights"
    return f"{offer.label} (download {size}, needs the internet)"


def _offer_control(state: AppState, offer: catalog.ImagenetOffer) -> str:
    """Under the box, for an ImageNet entry not on this machine: the download button (or, with
    downloads off, the way by hand); returns the page's message while nothing is loaded."""
    if not catalog.downloads_offered():
        st.caption(f"Downloads are off on this server (ARPVIZ_OFFLINE). "
                   f"{plain(offer.manual)}.")
        return (f"{offer.label} is not on this machine and this server downloads nothing: "
                "choose another checkpoint, or install the weights by hand (the sidebar says "
                "how).")
    size = offer.entry.size_text if offer.entry else ""
    st.caption(f"torchvision's ImageNet weights ({size}) from the internet, the checksum "
               "verified, kept where torchvision keeps them, converted once with ARP in Conv3 "
               "and Conv4 (not fine-tuned). Nothing downloads until you press the button.")
    if st.button(f"Download {size}".strip(), key=f"arpviz_download:{offer.arch}",
                 icon=":material/download:", type="primary",
                 help=f"Fetch {offer.weights.name} into {offer.weights.parent}, verify its "
                      "checksum, convert it and open it in Explore (needs the internet)."):
        _download(state, offer)
    return (f"{offer.label} is not on this machine yet: press Download in the sidebar "
            f"({size}, needs the internet), or choose another checkpoint.")


def _describe(path: str) -> str:
    """What the chosen file holds and where it is (a file whose header cannot be read: only
    where; loading it says what is wrong)."""
    try:
        return f"{plain(catalog.describe_file(path))}  \nfile: {plain(_rel(Path(path)))}"
    except (CheckpointError, OSError, ValueError, TypeError):
        return f"file: {plain(_rel(Path(path)))}"


def _load(upload, choice: Path | None, device: str,
          offer: catalog.ImagenetOffer | None) -> LoadedCheckpoint | None:
    if upload is not None:
        key = (str(getattr(upload, "file_id", "")), upload.name, int(upload.size))
        ckpt = load_checkpoint_upload(key, upload.getvalue, device)
        return LoadedCheckpoint(ckpt, ("upload", *key, device),
                                f"{upload.name} (uploaded)", device)
    if choice is not None:
        if not catalog.within_roots(choice):
            raise ValueError(f"{choice.name} resolves outside the folders this server lets you "
                             "open (ARPVIZ_CHECKPOINT_ROOTS)")
        stat = choice.stat()
        ckpt = load_checkpoint_file(str(choice), (stat.st_mtime_ns, stat.st_size), device)
        return LoadedCheckpoint(ckpt, ("file", str(choice.resolve()), stat.st_mtime_ns, device),
                                _rel(choice), device)
    if offer is not None:
        loaded = _load(None, _convert(offer), device, None)
        return None if loaded is None else replace(loaded, label=offer.label)
    return None


_NOTHING = ("No checkpoint found: none in checkpoints/ nor in the folder given. Train one "
            "(arpviz-train), set a folder above, upload a .safetensors checkpoint, or pick an "
            "ImageNet ResNet with ARP in the Checkpoint box (downloaded on request).")


def _choose(state: AppState, paths: list[Path], offers: dict[str, catalog.ImagenetOffer]
            ) -> tuple[Path | None, catalog.ImagenetOffer | None, str | None]:
    """The checkpoint box, bound to ``state.checkpoint``: a file, or an ImageNet ResNet (ready
    in the torch cache, or to download on request). Returns ``(file, ready offer, message)``;
    the message says why nothing loads (an entry still to download)."""
    options = [str(p) for p in paths] + list(offers)
    default = catalog.default_checkpoint(paths)
    ready = [key for key, o in offers.items() if o.ready]
    picked_for_them = state.checkpoint_default and state.checkpoint not in map(str, paths)
    if state.checkpoint not in options or (picked_for_them and default is not None):
        # the first file, else a ready network, else the first entry; a choice the app made
        # (not the user) gives way to a file as soon as one is listed
        state.checkpoint = str(default) if default is not None else (ready or options)[0]
        state.checkpoint_default = True
    titles = catalog.checkpoint_titles(paths)
    picked = bind(
        st.selectbox, "Checkpoint", state, "checkpoint", options=options,
        key="arpviz_checkpoint", on_change=lambda: setattr(state, "checkpoint_default", False),
        format_func=lambda p: _offer_label(offers[p]) if p in offers else
        (titles.get(p) or _rel(Path(p))),
        help="Files of the bundled folder and the folder above, named by what tells them apart "
             "(Conv4's and Conv3's pooling, the data), the file last. Then torchvision's "
             "ImageNet ResNets with ARP in Conv3 and Conv4 (not fine-tuned), for photos: "
             "ready when their weights are in your torch cache, else downloaded when you ask "
             f"(converted once into {catalog.converted_cache_dir()}).")
    if picked not in offers:
        st.caption(_describe(picked))
        return Path(picked), None, None
    offer = offers[picked]
    if offer.ready:
        st.caption(f"{offer.label}: torchvision's weights from the torch cache, "
                   + ("converted" if offer.target.is_file() else "converted on first use")
                   + f" into {plain(_rel(offer.target.parent))}.")
        return None, offer, None
    return None, None, _offer_control(state, offer)


def sidebar() -> LoadedCheckpoint | None:
    """Draw the sidebar (checkpoint, device, model card) and load the chosen checkpoint into
    ``app_state().loaded`` (``None``, with a message in ``load_error``, when nothing could be
    loaded). Call once per run (``app.py`` does, before the page)."""
    state = app_state()
    state.load_error = state.load_wait = None
    loaded = None
    with st.sidebar:
        st.subheader("Checkpoint")
        paths = _folder_input(state)
        upload = st.file_uploader(
            "...or upload a checkpoint", type=["safetensors"], key="arpviz_ckpt_upload",
            max_upload_size=MAX_CHECKPOINT_MB,
            help="An arpviz .safetensors checkpoint; nothing is ever unpickled.")
        offers = {_IMAGENET + o.arch: o for o in catalog.imagenet_offers(downloadable=True)}
        targets = {o.target.resolve() for o in offers.values() if o.ready}
        paths = [p for p in paths if p.resolve() not in targets]
        choice: Path | None = None
        offer: catalog.ImagenetOffer | None = None
        waiting: str | None = None
        if upload is None:
            choice, offer, waiting = _choose(state, paths, offers)
        device_choice = bind(st.radio, "Device", state, "device", options=DEVICE_CHOICES,
                             key="arpviz_device", horizontal=True,
                             help="auto picks CUDA when it is present.")
        device, note = resolve_device(device_choice)
        if note:
            st.warning(note)
        threads = setup_threads()
        st.caption(f"running on **{device}**" + (
            f" ({threads} CPU thread{'s' if threads > 1 else ''})" if device == "cpu" else ""))
        try:
            loaded = _load(upload, choice, device, offer)
            state.load_wait = waiting
            if loaded is None and waiting is None:
                state.load_error = _NOTHING
        except (CheckpointError, FileNotFoundError, OSError, ValueError) as exc:
            logger.warning("checkpoint rejected: %s", exc)
            state.load_error = f"Cannot load this checkpoint: {plain(exc)}"
        except Exception as exc:  # noqa: BLE001 - a malformed file must not take the app down
            logger.exception("unexpected error loading a checkpoint")
            state.load_error = (f"Cannot load this checkpoint: it is malformed "
                                f"({type(exc).__name__}: {plain(exc)})")
        if state.load_error:
            st.error(state.load_error)
        if loaded is not None:
            settle_heap(loaded.key)
            outputs.show_model_card(loaded)
    state.loaded = loaded
    return loaded


def require_checkpoint() -> LoadedCheckpoint:
    """The checkpoint the sidebar loaded in this run; otherwise say why in the page and stop
    the page."""
    state = app_state()
    if state.loaded is None:
        if state.load_wait:
            st.info(state.load_wait, icon=":material/download:")
        elif state.load_error:
            st.error(state.load_error)
        else:
            st.info("Choose a checkpoint in the sidebar (start the app with app.py).")
        st.stop()
    return state.loaded


def run_app(navigation) -> None:
    """Draw the sidebar, then run the page ``st.navigation`` chose (timed: :func:`timed_run`)."""
    with timed_run(navigation.url_path):
        sidebar()
        navigation.run()
