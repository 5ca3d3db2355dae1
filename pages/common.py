"""Shared Streamlit helpers of the app's pages: the sidebar, cached loaders, inputs, outputs.

A page uses them in this order::

    loaded = common.require_checkpoint()          # the sidebar (drawn by app.py) loaded it
    chosen = common.image_input(loaded, "mypage")  # sample or upload, errors shown in the page
    knobs = common.stage_sliders(loaded, "mypage")  # k and DSR of every RP/ARP stage
    session = common.live_session(loaded, chosen.image)
    view = session.explain(knobs)                   # library call; then draw with arpviz.figures

No tensor math here: it lives in :mod:`arpviz.explore`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from arpviz import explore as ex
from arpviz import figures
from arpviz.checkpoint import Checkpoint, CheckpointError, CheckpointMeta, load
from arpviz.models import MSGN

logger = logging.getLogger(__name__)

APP_ROOT = Path(__file__).resolve().parent.parent
#: session_state key of the :class:`LoadedCheckpoint` the sidebar loaded in this run (or None).
LOADED_KEY = "arpviz_loaded"
#: session_state key of the sidebar's error message when no checkpoint could be loaded.
ERROR_KEY = "arpviz_checkpoint_error"
#: session_state key of the live sessions (``{(checkpoint key, image key): LiveSession}``).
LIVE_KEY = "arpviz_live"
#: Largest checkpoint upload in MB (bigger ones: put them in a folder).
MAX_CHECKPOINT_MB = 256
_UPLOAD_CHOICE = "Upload an image"
_SAMPLE_CHOICE = "SynthBirds sample"


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint loaded on a device; ``key`` names this file version on this device."""

    checkpoint: Checkpoint
    key: str
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


@dataclass(frozen=True)
class ChosenImage:
    """The image a page works on: prepared input, ground truth to draw (or None), origin."""

    image: ex.PreparedImage
    truth: ex.GroundTruth | None
    uploaded: bool


# ----------------------------------------------------------------------------- loaders


def bundled_dir() -> Path:
    """The bundled checkpoints' folder (``checkpoints/``; env ``ARPVIZ_BUNDLED_DIR`` overrides)."""
    return Path(os.environ.get("ARPVIZ_BUNDLED_DIR") or APP_ROOT / "checkpoints")


@st.cache_resource(max_entries=4, show_spinner="Loading the checkpoint...")
def load_checkpoint_file(path: str, stamp: tuple[int, int], device: str) -> Checkpoint:
    """Load a checkpoint file once per file version (``stamp``: mtime, size) and device."""
    logger.info("loading checkpoint %s on %s", path, device)
    return load(path, device)


@st.cache_resource(max_entries=2, show_spinner="Loading the uploaded checkpoint...")
def load_checkpoint_bytes(upload_key: str, _data: Callable[[], bytes], device: str) -> Checkpoint:
    """Load an uploaded checkpoint once per upload (``upload_key``) and device; ``_data``
    returns the file's bytes (called only when not cached)."""
    logger.info("loading uploaded checkpoint %s on %s", upload_key, device)
    return load(_data(), device)


@st.cache_resource(max_entries=64, show_spinner=False)
def synth_sample(dataset_json: str, input_size: int, stats: tuple, index: int,
                 _meta: CheckpointMeta) -> ex.PreparedImage:
    """A SynthBirds sample of the checkpoint's data set, rendered once."""
    return ex.synth_sample(_meta, index)


@st.cache_resource(max_entries=8, show_spinner="Decoding the image...")
def decode_upload(file_key: str, stats: tuple, _data: Callable[[], bytes], _name: str,
                  _meta: CheckpointMeta) -> ex.PreparedImage:
    """Decode and prepare an uploaded image once per upload (raises ValueError if unusable);
    ``_data`` returns the file's bytes (called only when not cached)."""
    return ex.load_upload(_data(), _meta, _name)


def _upload_key(upload: Any) -> str:
    """Names one upload: Streamlit's file id (new for every upload), name and size."""
    return f"{getattr(upload, 'file_id', '')}:{upload.name}:{upload.size}"


def _stats(meta: CheckpointMeta) -> tuple:
    return (meta.input_size, tuple(meta.mean), tuple(meta.std))


# ----------------------------------------------------------------------------- sidebar


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(APP_ROOT))
    except ValueError:
        return str(path)


def _model_card(loaded: LoadedCheckpoint) -> None:
    card = ex.model_card(loaded.meta)
    with st.expander("Model card", expanded=True):
        st.markdown(
            f"**{loaded.label}**  \n"
            f"backbone `{card['backbone']}`, {card['classes']} classes, input "
            f"{card['input_size']} px, {card['local_branches']} local branch(es)  \n"
            f"data set: {card['dataset']}, {card['epochs']} epoch(s)"
        )
        lines = [
            f"- {st_['stage']}: {st_['mode'].upper()}"
            + ("" if st_["detail"] is None else f" ({st_['detail']})")
            + ("" if st_["k"] is None else f", k {st_['k']:g}")
            + ("" if st_["dsr"] == "-" else f", DSR {st_['dsr']}")
            for st_ in card["stages"]
        ]
        st.markdown("Trained settings:\n" + "\n".join(lines))
        if card["metrics"]:
            metrics = ", ".join(f"{k} {v:.3g}" for k, v in card["metrics"].items())
            best = card["best_val_top1"]
            extra = f" (best val top-1 {best:.1f}%)" if best is not None else ""
            st.caption(f"last epoch: {metrics}{extra}")
        else:
            st.caption("no training history in this checkpoint")


def sidebar() -> LoadedCheckpoint | None:
    """Draw the sidebar (checkpoint, device, model card) and load the chosen checkpoint.

    Call once per run (``app.py`` does, before the page). The result is also stored under
    ``st.session_state[LOADED_KEY]`` (``None`` with a message under ``ERROR_KEY`` when nothing
    could be loaded) for :func:`current_checkpoint` / :func:`require_checkpoint`.
    """
    st.session_state[LOADED_KEY] = None
    st.session_state[ERROR_KEY] = None
    loaded = None
    with st.sidebar:
        st.subheader("Checkpoint")
        folder = st.text_input(
            "Checkpoint folder", value=os.environ.get("ARPVIZ_CHECKPOINT_DIR", ""),
            key="arpviz_ckpt_dir",
            help="A folder with arpviz .safetensors checkpoints, listed beside the bundled "
                 "ones in checkpoints/ (env ARPVIZ_CHECKPOINT_DIR sets the default).",
        )
        if folder and not Path(folder).expanduser().is_dir():
            st.warning(f"No folder {folder!r}.")
        paths = ex.find_checkpoints([bundled_dir(), folder])
        upload = st.file_uploader(
            "...or upload a checkpoint", type=["safetensors"], key="arpviz_ckpt_upload",
            max_upload_size=MAX_CHECKPOINT_MB,
            help="An arpviz .safetensors checkpoint; nothing is ever unpickled.",
        )
        choice: Path | None = None
        if upload is None and paths:
            options = [str(p) for p in paths]
            default = ex.default_checkpoint(paths)
            picked = st.selectbox(
                "Checkpoint", options, index=options.index(str(default)),
                format_func=lambda p: _rel(Path(p)), key="arpviz_checkpoint",
            )
            choice = Path(picked) if picked else None
        device_choice = st.radio("Device", ["auto", "cpu", "cuda"], horizontal=True,
                                 key="arpviz_device",
                                 help="auto picks CUDA when it is present.")
        device, note = ex.resolve_device(device_choice)
        if note:
            st.warning(note)
        threads = ex.set_threads()
        st.caption(f"running on **{device}**"
                   + (f" ({threads} CPU thread{'s' if threads > 1 else ''})"
                      if device == "cpu" else ""))
        try:
            if upload is not None:
                upload_key = _upload_key(upload)
                ckpt = load_checkpoint_bytes(upload_key, upload.getvalue, device)
                loaded = LoadedCheckpoint(ckpt, f"upload:{upload_key}:{device}",
                                          f"{upload.name} (uploaded)", device)
            elif choice is not None:
                stat = choice.stat()
                ckpt = load_checkpoint_file(str(choice), (stat.st_mtime_ns, stat.st_size),
                                            device)
                loaded = LoadedCheckpoint(
                    ckpt, f"file:{choice.resolve()}:{stat.st_mtime_ns}:{device}",
                    _rel(choice), device)
            else:
                st.session_state[ERROR_KEY] = (
                    "No checkpoint found: none in checkpoints/ nor in the folder given. Train "
                    "one (python -m arpviz.train), set a folder above or upload a .safetensors "
                    "checkpoint."
                )
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


# ----------------------------------------------------------------------------- image input


def image_input(loaded: LoadedCheckpoint, prefix: str) -> ChosenImage | None:
    """A SynthBirds sample picker or an image upload; problems are shown in the page.

    Widget keys: ``{prefix}_source`` (radio), ``{prefix}_sample`` (number input),
    ``{prefix}_show_gt`` (checkbox), ``{prefix}_upload`` (file uploader).
    """
    meta = loaded.meta
    count = ex.sample_count(meta)
    choices = [_SAMPLE_CHOICE, _UPLOAD_CHOICE] if count else [_UPLOAD_CHOICE]
    source = st.radio("Image", choices, horizontal=True, key=f"{prefix}_source",
                      persist_state="session")
    if source == _SAMPLE_CHOICE:
        split = meta.dataset.get("eval_split", "val")
        index = st.number_input(f"Sample of the SynthBirds {split} split (0 to {count - 1})",
                                min_value=0, max_value=count - 1, value=0, step=1,
                                key=f"{prefix}_sample", persist_state="session")
        show = st.checkbox("Show the ground truth box and keypoints", key=f"{prefix}_show_gt",
                           persist_state="session")
        image = synth_sample(json.dumps(dict(meta.dataset), sort_keys=True, default=str),
                             meta.input_size, _stats(meta), int(index), meta)
        truth = image.truth
        if truth is not None:
            st.caption(f"{image.name}: true class **{truth.name}**")
        return ChosenImage(image, truth if show else None, uploaded=False)
    if not count:
        st.caption("This checkpoint's data set has no built-in samples; upload an image.")
    upload = st.file_uploader(
        "Upload an image (png, jpg, webp, bmp, tiff, gif)", type=list(ex.IMAGE_TYPES),
        key=f"{prefix}_upload", max_upload_size=ex.MAX_IMAGE_BYTES // (1024 * 1024),
        help=f"At most {ex.MAX_IMAGE_BYTES // (1024 * 1024)} MB and "
             f"{ex.MAX_PIXELS / 1e6:g} megapixels; a GIF shows its first frame.",
    )
    if upload is None:
        st.info("Upload an image to explore it.")
        return None
    try:
        image = decode_upload(_upload_key(upload), _stats(meta), upload.getvalue, upload.name,
                              meta)
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


# ----------------------------------------------------------------------------- sliders


def _k_key(prefix: str, stage: str) -> str:
    return f"{prefix}_k:{stage}"


def _dsr_key(prefix: str, stage: str) -> str:
    return f"{prefix}_dsr:{stage}"


def _reset(prefix: str, controls: tuple[ex.StageControl, ...]) -> None:
    for c in controls:
        if c.mode == "arp" and c.k is not None:
            st.session_state[_k_key(prefix, c.name)] = float(c.k)
        if c.trained_dsr is not None:
            st.session_state[_dsr_key(prefix, c.name)] = float(c.trained_dsr)


def stage_sliders(
    loaded: LoadedCheckpoint, prefix: str, *, k: bool = True, dsr: bool = True
) -> dict[str, ex.Knob]:
    """k (ARP stages) and DSR sliders for every RP/ARP stage, with a "reset to trained" button.

    Keys: ``{prefix}_k:<stage>``, ``{prefix}_dsr:<stage>``, ``{prefix}_reset``. The sliders go
    back to the trained values when the checkpoint changes. Returns ``{stage: Knob}``.
    """
    controls = tuple(c for c in ex.stage_controls(loaded.model) if c.steerable)
    if not controls:
        st.info("This model has no RP/ARP stage to steer.")
        return {}
    marker = f"{prefix}_knobs_for"
    if st.session_state.get(marker) != loaded.key:
        _reset(prefix, controls)
        st.session_state[marker] = loaded.key
    else:  # a slider Streamlit forgot (not drawn in some run) starts at the trained value
        for c in controls:
            if c.mode == "arp" and c.k is not None and _k_key(prefix, c.name) \
                    not in st.session_state:
                st.session_state[_k_key(prefix, c.name)] = float(c.k)
            if c.trained_dsr is not None and _dsr_key(prefix, c.name) not in st.session_state:
                st.session_state[_dsr_key(prefix, c.name)] = float(c.trained_dsr)
    st.button("Reset to trained", key=f"{prefix}_reset", on_click=_reset,
              args=(prefix, controls), help="Every slider back to the checkpoint's values.")
    knobs: dict[str, ex.Knob] = {}
    columns = st.columns(len(controls))
    for column, c in zip(columns, controls, strict=True):
        with column:
            st.markdown(f"**{c.label}** ({c.mode.upper()})")
            k_value = None
            if k and c.mode == "arp" and c.k is not None:
                lo, hi = min(ex.K_RANGE[0], c.k), max(ex.K_RANGE[1], c.k)
                k_value = st.slider(
                    f"k (trained {c.k:g})", min_value=float(lo), max_value=float(hi),
                    step=ex.K_STEP, key=_k_key(prefix, c.name), persist_state="session",
                    help=f"ARP's trade-off coefficient in {c.label}; the checkpoint was "
                         f"trained with k = {c.k:g}. Larger k: larger crops.",
                )
            elif c.mode == "rp":
                st.caption("RP has no k (fixed crop of the DSR).")
            dsr_value = None
            if dsr and c.trained_dsr is not None:
                lo, hi = min(ex.DSR_RANGE[0], c.trained_dsr), max(ex.DSR_RANGE[1], c.trained_dsr)
                dsr_value = st.slider(
                    f"DSR (trained {c.trained_dsr:g})", min_value=float(lo), max_value=float(hi),
                    step=ex.DSR_STEP, key=_dsr_key(prefix, c.name), persist_state="session",
                    help=f"Target downsampling rate of {c.label} (output = input x DSR; ARP's "
                         f"lower bound on the crop); trained with {c.trained_dsr:g}.",
                )
            knobs[c.name] = ex.Knob(k_value, dsr_value)
    return knobs


# ----------------------------------------------------------------------------- sessions


def live_session(loaded: LoadedCheckpoint, image: ex.PreparedImage) -> ex.LiveSession:
    """The :class:`~arpviz.explore.LiveSession` of this checkpoint and image (kept per session,
    the last three), so a slider move reuses the cached stages."""
    store: dict = st.session_state.setdefault(LIVE_KEY, {})
    key = (loaded.key, image.key)
    session = store.pop(key, None)
    if session is None:
        with st.spinner("Running the model on the new image..."):
            session = ex.LiveSession(loaded.model, image, loaded.meta.class_names,
                                     device=loaded.device)
    store[key] = session  # most recent last
    while len(store) > 3:
        store.pop(next(iter(store)))
    return session


# ----------------------------------------------------------------------------- outputs


def show_prediction_flag(
    table: ex.PredictionTable,
    loaded: LoadedCheckpoint,
    chosen: ChosenImage,
    *,
    reference: str = "trained setting",
) -> None:
    """A flag when the top-1 flips against ``reference`` (else its confirmation), the ground
    truth of a sample, and a note when a photo meets a SynthBirds model."""
    top = table.top1
    if table.flipped:
        st.warning(
            f"Top-1 flipped: **{table.ref_top1_name}** ({table.ref_top1_prob:.1%}) under the "
            f"{reference} is now **{top.name}** ({top.prob:.1%}).", icon="⚠️")
    else:
        st.success(f"Top-1: **{top.name}** ({top.prob:.1%}), the same as under the {reference}.")
    if chosen.image.truth is not None:
        truth = chosen.image.truth
        verdict = "correct" if top.index == truth.label else "wrong"
        st.caption(f"True class: {truth.name} (top-1 is {verdict}).")
    if chosen.uploaded and ex.trained_on_synthbirds(loaded.meta):
        st.info("This checkpoint was trained on SynthBirds (synthetic birds); a real photo is "
                "far from anything it has seen, so read its predictions as a probe of the "
                "pooling, not as a classification.")


def show_prediction_table(
    table: ex.PredictionTable,
    *,
    reference: str = "trained setting",
    key: str,
    side_by_side: bool = True,
) -> None:
    """The top-5 as a table (probability, change, rank under ``reference``, rank change) and
    as a bar chart (hover: values), side by side or stacked."""
    frame = pd.DataFrame(
        {
            "rank": [r.rank for r in table.rows],
            "p": [r.prob for r in table.rows],
            "Δp": [r.delta for r in table.rows],
            "was rank": [r.ref_rank for r in table.rows],
            "Δrank": [r.rank_change for r in table.rows],
            "class": [r.name for r in table.rows],
        }
    )
    config = {
        "rank": st.column_config.NumberColumn(width="small"),
        "p": st.column_config.NumberColumn(format="%.4f", width="small"),
        "Δp": st.column_config.NumberColumn(format="%+.4f", width="small",
                                            help=f"probability now minus under the {reference}"),
        "was rank": st.column_config.NumberColumn(width="small",
                                                  help=f"rank under the {reference}"),
        "Δrank": st.column_config.NumberColumn(format="%+d", width="small",
                                               help="ranks gained (+) or lost (-)"),
    }
    chart = figures.predictions_figure(table, reference)
    if side_by_side:
        left, right = st.columns([1.6, 1])
        with left:
            st.dataframe(frame, hide_index=True, key=f"{key}_table", column_config=config)
        with right:
            st.plotly_chart(chart, key=f"{key}_chart")
    else:
        st.dataframe(frame, hide_index=True, key=f"{key}_table", column_config=config)
        st.plotly_chart(chart, key=f"{key}_chart")


def show_predictions(
    table: ex.PredictionTable,
    loaded: LoadedCheckpoint,
    chosen: ChosenImage,
    *,
    reference: str = "trained setting",
    key: str,
) -> None:
    """:func:`show_prediction_flag` then :func:`show_prediction_table` (stacked)."""
    show_prediction_flag(table, loaded, chosen, reference=reference)
    show_prediction_table(table, reference=reference, key=key, side_by_side=False)


def show_stage_numbers(view: ex.ExploreView) -> None:
    """One line per pooled stage: settings, crop box in image pixels, crop size, rates."""
    lines = []
    for s in view.stages.values():
        x1, y1, x2, y2 = s.image_box
        k = "" if s.k is None else f", k {s.k:.2f}"
        dsr = "" if s.dsr is None else f", DSR {s.dsr[0]:.2f}"
        lines.append(
            f"**{s.label}** ({s.mode.upper()}{k}{dsr}): box ({x1:.1f}, {y1:.1f}) to "
            f"({x2:.1f}, {y2:.1f}), crop {x2 - x1:.1f} x {y2 - y1:.1f} px, "
            f"rates {s.rates[0]:.3f} x {s.rates[1]:.3f}"
        )
    if lines:
        st.caption("  \n".join(lines))
