"""The stage controls the image pages share, bound to the one
:class:`~arpviz.app.state.Steering` of the loaded checkpoint: each stage's pooling mode, the
``k`` of that mode, the DSR, and the confidence temperature. Explore, RP against ARP and
Retrieval show the same values: a ``k`` set on one page is the ``k`` of the others.

Widget keys: ``mode:<stage>``, ``k:<stage>`` (``k:<stage>:<side>`` for a side of the
comparison), ``dsr:<stage>``, ``tau``, ``reset``.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from arpviz.app.state import LoadedCheckpoint, StageChoice, Steering, app_state, bind
from arpviz.explorer.controls import (
    DSR_RANGE,
    DSR_STEP,
    K_RANGE,
    K_STEP,
    STEERABLE_MODES,
    TAUS,
    Knob,
    StageControl,
    stage_controls,
)
from arpviz.models.stages import ADAPTIVE_MODES, crop_text, mode_label

__all__ = ["MODE_HELP", "mode_name", "side_controls", "stage_sliders", "steering"]

MODE_HELP = ("RP: a fixed crop of the DSR. ARP: the paper's adaptive crop (Eq. 9). Beyond the "
             "paper: ARP-FG sizes the crop from the spread of the above-mean confidence (no "
             "floor; lower bound 0.125), 'peak' only from the region around the map's maximum; "
             "the learnt zoom crops the padded box of the map's peak region.")


@dataclass
class _Value:
    """One number of the model as a widget shows it (a mode's k)."""

    value: float


def steering(loaded: LoadedCheckpoint) -> tuple[Steering, tuple[StageControl, ...]]:
    """The loaded checkpoint's stage settings (the trained ones for a new checkpoint) and its
    steerable stages."""
    controls = tuple(c for c in stage_controls(loaded.model) if c.steerable)
    return app_state().steering_for(loaded, controls), controls


#: Marks a mode beyond the paper in a mode choice (short, so the closed box never cuts it).
BEYOND = "\u2020"


def mode_name(control: StageControl, mode: str) -> str:
    """A mode as the mode choice names it: ``ARP (trained)``, ``ARP-FG †`` (beyond the
    paper; a caption under the controls says what † means)."""
    text = mode_label(mode) + ("" if mode in ("rp", "arp") else f" {BEYOND}")
    return f"{text} (trained)" if mode == control.mode else text


def _slider(label: str, owner: object, name: str, bounds: tuple[float, float], step: float,
            key: str, help: str) -> float:
    value = float(getattr(owner, name))
    lo, hi = min(bounds[0], value), max(bounds[1], value)
    setattr(owner, name, min(max(value, lo), hi))
    return float(bind(st.slider, label, owner, name, key=key, min_value=float(lo),
                      max_value=float(hi), step=step, help=help))


def _k_slider(control: StageControl, choice: StageChoice, mode: str, key: str,
              named: bool = False) -> None:
    """The ``k`` of ``mode`` for one stage (nothing for a mode without ``k``); ``named``: the
    label starts with the stage's name (where no stage heading stands above it)."""
    default = control.default_k(mode)
    stage = f"{control.label}: " if named else ""
    if mode not in ADAPTIVE_MODES or default is None:
        if mode == "rp":
            crop = (f"{crop_text(control.crop)}, trained" if control.mode == "rp"
                    and control.crop is not None else "the DSR")
            st.caption(f"{stage}RP has no k (a fixed crop of {crop}).")
        elif mode == "zoom":
            article = "the" if stage else "The"
            st.caption(f"{stage}{article} learnt zoom has no k: its box is the map's peak "
                       "region, padded.")
        return
    origin = "trained" if mode == control.mode else f"{mode_label(mode)} default"
    shown = _Value(choice.ks.get(mode, default))
    choice.ks[mode] = _slider(
        f"{stage}k of {mode_label(mode)} ({origin} {default:g})", shown, "value", K_RANGE,
        K_STEP, key,
        f"The trade-off coefficient of {mode_label(mode)} in {control.label} ({origin}: "
        f"{default:g}). Larger k: larger crops.")


def _dsr_slider(control: StageControl, choice: StageChoice) -> None:
    if control.trained_dsr is None or choice.dsr is None:
        return
    _slider(f"DSR (trained {control.trained_dsr:g})", choice, "dsr", DSR_RANGE, DSR_STEP,
            f"dsr:{control.name}",
            f"Target downsampling rate of {control.label} (output = input x DSR; ARP's lower "
            f"bound on the crop); trained with {control.trained_dsr:g}.")


def _tau(state: Steering, controls: tuple[StageControl, ...]) -> None:
    trained = float(controls[0].tau)
    with st.expander("Beyond the paper: confidence temperature tau"):
        bind(st.select_slider, f"tau, every pooled stage (trained {trained:g}; 1 = the paper)",
             state, "tau", options=sorted(set(TAUS) | {trained}), key="tau",
             help="An extension, not in the paper: C = sigmoid(tau * s). A larger tau sharpens "
                  "the keypoint confidence (the background moves towards 0).")


def _reset_button(state: Steering, controls: tuple[StageControl, ...]) -> None:
    st.button("Reset to trained", key="reset", on_click=state.reset, args=(controls,),
              help="Every stage back to the checkpoint's values.")


def stage_sliders(loaded: LoadedCheckpoint, *, modes: bool = True, tau: bool = True
                  ) -> dict[str, Knob] | None:
    """For every steerable stage: the pooling mode (``modes``), the k of that mode and the
    DSR, a "reset to trained" button and (``tau``) the confidence temperature. Returns
    ``{stage: Knob}``, or ``None`` (with a note) when no stage can be steered."""
    state, controls = steering(loaded)
    if not controls:
        st.info("This model has no RP, ARP, ARP-FG or learnt-zoom stage to steer.")
        return None
    _reset_button(state, controls)
    for column, control in zip(st.columns(len(controls)), controls, strict=True):
        choice = state.stages[control.name]
        with column:
            st.markdown(f"**{control.label}**")
            if modes:
                bind(st.selectbox, "Pooling", choice, "mode", options=STEERABLE_MODES,
                     key=f"mode:{control.name}",
                     format_func=lambda m, c=control: mode_name(c, m), help=MODE_HELP)
            else:
                st.caption(mode_label(choice.mode))
            _k_slider(control, choice, choice.mode, f"k:{control.name}")
            _dsr_slider(control, choice)
    if modes:
        st.caption(f"{BEYOND} beyond the paper (ARP-FG, ARP-FG peak, the learnt zoom). Hover a "
                   "mode's ? for what each does.")
    if tau:
        _tau(state, controls)
    return state.knobs()


def side_controls(loaded: LoadedCheckpoint, side: str, mode: str) -> None:
    """The ``k`` of ``mode`` for every steerable stage, under one side of the comparison (the
    same values Explore shows for that mode)."""
    state, controls = steering(loaded)
    for control in controls:
        _k_slider(control, state.stages[control.name], mode, f"k:{control.name}:{side}",
                  named=True)


def shared_controls(loaded: LoadedCheckpoint) -> None:
    """The DSR of every steerable stage (both sides of a comparison), the reset button and the
    confidence temperature."""
    state, controls = steering(loaded)
    if not controls:
        return
    _reset_button(state, controls)
    for column, control in zip(st.columns(len(controls)), controls, strict=True):
        with column:
            st.markdown(f"**{control.label}**")
            _dsr_slider(control, state.stages[control.name])
    _tau(state, controls)
