"""Widgets the Explore-family pages share: the image input and the stage sliders.

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
from arpviz.explorer import catalog, inputs, session
from pages.common import LoadedCheckpoint, upload_key

logger = logging.getLogger(__name__)

#: Confidence temperatures offered (beyond the paper; 1 is the paper).
TAUS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
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
    source = st.radio("Image", choices, horizontal=True, key=f"{prefix}_source",
                      persist_state="session")
    if source == FILE_CHOICE:
        return _gallery_file(meta)
    if source == SAMPLE_CHOICE:
        split = meta.dataset.get("eval_split", "val")
        index = st.number_input(f"Sample of the SynthBirds {split} split (0 to {count - 1})",
                                min_value=0, max_value=count - 1, step=1,
                                key=f"{prefix}_sample", persist_state="session")
        show = st.checkbox("Show the ground truth box and keypoints", key=f"{prefix}_show_gt",
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


# ----------------------------------------------------------------------------- sliders


def _trained_values(prefix: str, controls: tuple[session.StageControl, ...]) -> dict[str, float]:
    """Widget key -> trained value of every slider of ``controls``."""
    values = {}
    for c in controls:
        if c.mode == "arp" and c.k is not None:
            values[f"{prefix}_k:{c.name}"] = float(c.k)
        if c.trained_dsr is not None:
            values[f"{prefix}_dsr:{c.name}"] = float(c.trained_dsr)
    if controls:
        values[f"{prefix}_tau"] = float(controls[0].tau)
    return values


def _reset(prefix: str, controls: tuple[session.StageControl, ...]) -> None:
    st.session_state.update(_trained_values(prefix, controls))


def _slider(label: str, value: float, bounds: tuple[float, float], step: float, key: str,
            help: str) -> float:
    lo, hi = min(bounds[0], value), max(bounds[1], value)
    return st.slider(label, min_value=float(lo), max_value=float(hi), step=step, key=key,
                     persist_state="session", help=help)


def stage_sliders(
    loaded: LoadedCheckpoint, prefix: str, *, k: bool = True, dsr: bool = True, tau: bool = True
) -> dict[str, session.Knob]:
    """k (ARP stages) and DSR sliders for every RP/ARP stage, with a "reset to trained" button,
    and (``tau``) the confidence temperature of every RP/ARP stage, labelled beyond the paper.

    Keys: ``{prefix}_k:<stage>``, ``{prefix}_dsr:<stage>``, ``{prefix}_tau``,
    ``{prefix}_reset``. The sliders go back to the trained values when the checkpoint changes.
    Returns ``{stage: Knob}``.
    """
    controls = tuple(c for c in session.stage_controls(loaded.model) if c.steerable)
    if not controls:
        st.info("This model has no RP/ARP stage to steer.")
        return {}
    marker = f"{prefix}_knobs_for"
    if st.session_state.get(marker) != loaded.key:
        _reset(prefix, controls)
        st.session_state[marker] = loaded.key
    else:  # a slider Streamlit forgot (not drawn in some run) starts at the trained value
        for key, value in _trained_values(prefix, controls).items():
            st.session_state.setdefault(key, value)
    st.button("Reset to trained", key=f"{prefix}_reset", on_click=_reset,
              args=(prefix, controls), help="Every slider back to the checkpoint's values.")
    knobs: dict[str, session.Knob] = {}
    for column, c in zip(st.columns(len(controls)), controls, strict=True):
        with column:
            st.markdown(f"**{c.label}** ({c.mode.upper()})")
            k_value = dsr_value = None
            if k and c.mode == "arp" and c.k is not None:
                k_value = _slider(
                    f"k (trained {c.k:g})", c.k, session.K_RANGE, session.K_STEP,
                    f"{prefix}_k:{c.name}",
                    f"ARP's trade-off coefficient in {c.label}; the checkpoint was trained "
                    f"with k = {c.k:g}. Larger k: larger crops.")
            elif c.mode == "rp":
                st.caption("RP has no k (fixed crop of the DSR).")
            if dsr and c.trained_dsr is not None:
                dsr_value = _slider(
                    f"DSR (trained {c.trained_dsr:g})", c.trained_dsr, session.DSR_RANGE,
                    session.DSR_STEP, f"{prefix}_dsr:{c.name}",
                    f"Target downsampling rate of {c.label} (output = input x DSR; ARP's "
                    f"lower bound on the crop); trained with {c.trained_dsr:g}.")
            knobs[c.name] = session.Knob(k_value, dsr_value)
    if tau:
        trained = float(controls[0].tau)
        with st.expander("Beyond the paper: confidence temperature tau"):
            value = st.select_slider(
                f"tau, every RP/ARP stage (trained {trained:g}; 1 = the paper)",
                sorted(set(TAUS) | {trained}), key=f"{prefix}_tau", persist_state="session",
                help="An extension, not in the paper: C = sigmoid(tau * s). A larger tau "
                     "sharpens the keypoint confidence (the background moves towards 0).")
        knobs = {name: session.Knob(knob.k, knob.dsr, float(value))
                 for name, knob in knobs.items()}
    return knobs


def saved_knobs(loaded: LoadedCheckpoint, prefix: str) -> dict[str, session.Knob]:
    """The k and DSR a page's sliders hold in ``st.session_state`` for this checkpoint (e.g.
    Explore's from another page), without drawing them; ``{}`` when they are not set."""
    if st.session_state.get(f"{prefix}_knobs_for") != loaded.key:
        return {}
    knobs = {}
    for c in session.stage_controls(loaded.model):
        if c.steerable:
            knobs[c.name] = session.Knob(st.session_state.get(f"{prefix}_k:{c.name}"),
                                         st.session_state.get(f"{prefix}_dsr:{c.name}"))
    return knobs
