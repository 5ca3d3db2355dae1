"""The stage controls the Explore-family pages share: the pooling mode, k and DSR of every
steerable stage, the confidence temperature, and the values another page left in the session.

Widget keys are ``{prefix}_mode:<stage>``, ``{prefix}_k:<stage>``, ``{prefix}_dsr:<stage>``,
``{prefix}_tau`` (one prefix per page); the values go to
:func:`arpviz.explorer.session.overrides_from` as ``Knob`` s. The k slider holds the k of the
stage's chosen mode: choosing another mode sets it to that mode's k (trained, or the mode's
default).
"""

from __future__ import annotations

import streamlit as st

from arpviz.explorer import session
from pages.common import LoadedCheckpoint, kept


def _trained_values(
    prefix: str, controls: tuple[session.StageControl, ...]
) -> dict[str, float | str]:
    """Widget key -> trained value of every slider of ``controls``."""
    values: dict[str, float | str] = {}
    for c in controls:
        values[f"{prefix}_mode:{c.name}"] = c.mode
        if c.k is not None:
            values[f"{prefix}_k:{c.name}"] = float(c.k)
        if c.trained_dsr is not None:
            values[f"{prefix}_dsr:{c.name}"] = float(c.trained_dsr)
    if controls:
        values[f"{prefix}_tau"] = float(controls[0].tau)
    return values


def _reset(prefix: str, controls: tuple[session.StageControl, ...]) -> None:
    st.session_state.update(_trained_values(prefix, controls))


def _mode_changed(prefix: str, control: session.StageControl) -> None:
    """A new mode for a stage: its k slider takes that mode's k (trained, or the default)."""
    mode = st.session_state[f"{prefix}_mode:{control.name}"]
    k = control.k if mode == control.mode else control.default_k(mode)
    if k is not None:
        st.session_state[f"{prefix}_k:{control.name}"] = float(k)


def _mode_name(control: session.StageControl, mode: str) -> str:
    text = session.mode_label(mode)
    if mode == control.mode:
        return f"{text} (trained)"
    return f"{text} (beyond the paper)" if mode.startswith("arpfg") else text

def _slider(label: str, value: float, bounds: tuple[float, float], step: float, key: str,
            help: str) -> float:
    lo, hi = min(bounds[0], value), max(bounds[1], value)
    current = min(max(float(kept(key, value)), lo), hi)
    return st.slider(label, min_value=float(lo), max_value=float(hi), value=current, step=step,
                     key=key, persist_state="session", help=help)


def stage_sliders(
    loaded: LoadedCheckpoint, prefix: str, *, k: bool = True, dsr: bool = True, tau: bool = True,
    modes: bool = True,
) -> dict[str, session.Knob]:
    """For every steerable stage (RP, ARP, ARP-FG): the pooling mode (``modes``), k (adaptive
    modes) and DSR sliders, with a "reset to trained" button, and (``tau``) the confidence
    temperature of every pooled stage, labelled beyond the paper.

    Keys: ``{prefix}_mode:<stage>``, ``{prefix}_k:<stage>``, ``{prefix}_dsr:<stage>``,
    ``{prefix}_tau``, ``{prefix}_reset``. Everything goes back to the trained values when the
    checkpoint changes. Returns ``{stage: Knob}``.
    """
    controls = tuple(c for c in session.stage_controls(loaded.model) if c.steerable)
    if not controls:
        st.info("This model has no RP, ARP or ARP-FG stage to steer.")
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
            st.markdown(f"**{c.label}**")
            mode = c.mode
            if modes:
                mode_key = f"{prefix}_mode:{c.name}"
                mode = st.selectbox(
                    "Pooling", session.STEERABLE_MODES, key=mode_key,
                    index=session.STEERABLE_MODES.index(kept(mode_key, c.mode)),
                    format_func=lambda m, c=c: _mode_name(c, m), on_change=_mode_changed,
                    args=(prefix, c), persist_state="session",
                    help="RP: a fixed crop of the DSR. ARP: the paper's adaptive crop (Eq. 9). "
                         "ARP-FG: beyond the paper, the spread of the above-mean confidence "
                         "(no floor), lower bound 0.125; 'peak': only the region around the "
                         "map's maximum.")
            else:
                st.caption(session.mode_label(mode))
            k_value = dsr_value = None
            default_k = c.k if mode == c.mode else c.default_k(mode)
            if k and default_k is not None:
                origin = "trained" if mode == c.mode else f"{session.mode_label(mode)} default"
                k_value = _slider(
                    f"k ({origin} {default_k:g})", default_k, session.K_RANGE, session.K_STEP,
                    f"{prefix}_k:{c.name}",
                    f"The trade-off coefficient of {session.mode_label(mode)} in {c.label} "
                    f"({origin}: {default_k:g}). Larger k: larger crops.")
            elif mode == "rp":
                crop = (f"{c.crop[0]:g}, trained" if c.mode == "rp" and c.crop is not None
                        else "the DSR")
                st.caption(f"RP has no k (a fixed crop of {crop}).")
            if dsr and c.trained_dsr is not None:
                dsr_value = _slider(
                    f"DSR (trained {c.trained_dsr:g})", c.trained_dsr, session.DSR_RANGE,
                    session.DSR_STEP, f"{prefix}_dsr:{c.name}",
                    f"Target downsampling rate of {c.label} (output = input x DSR; ARP's "
                    f"lower bound on the crop); trained with {c.trained_dsr:g}.")
            knobs[c.name] = session.Knob(k_value, dsr_value, None, mode if modes else None)
    if tau:
        trained = float(controls[0].tau)
        with st.expander("Beyond the paper: confidence temperature tau"):
            value = st.select_slider(
                f"tau, every RP/ARP stage (trained {trained:g}; 1 = the paper)",
                sorted(set(session.TAUS) | {trained}), value=kept(f"{prefix}_tau", trained),
                key=f"{prefix}_tau", persist_state="session",
                help="An extension, not in the paper: C = sigmoid(tau * s). A larger tau "
                     "sharpens the keypoint confidence (the background moves towards 0).")
        knobs = {name: session.Knob(knob.k, knob.dsr, float(value), knob.mode)
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
                                         st.session_state.get(f"{prefix}_dsr:{c.name}"),
                                         st.session_state.get(f"{prefix}_tau"),
                                         st.session_state.get(f"{prefix}_mode:{c.name}"))
    return knobs
