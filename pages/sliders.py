"""The stage sliders the Explore-family pages share: k and DSR of every RP/ARP stage, the
confidence temperature, and the values another page left in the session.

Widget keys are ``{prefix}_k:<stage>``, ``{prefix}_dsr:<stage>``, ``{prefix}_tau`` (one prefix
per page); the values go to :func:`arpviz.explorer.session.overrides_from` as ``Knob`` s.
"""

from __future__ import annotations

import streamlit as st

from arpviz.explorer import session
from pages.common import LoadedCheckpoint


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
                sorted(set(session.TAUS) | {trained}), key=f"{prefix}_tau", persist_state="session",
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
