"""RP against ARP's parts: the two sides' modes and k, then both sides, stage by stage.

The sides are :attr:`AppState.comparison <arpviz.app.state.AppState.comparison>`; each side's
``k`` is the stage's ``k`` of that side's mode (the one Explore shows for that mode), the DSR
and ``tau`` are shared by both sides.
"""

from __future__ import annotations

import streamlit as st

from arpviz.app import controls, outputs
from arpviz.app.images import ShownImage
from arpviz.app.resources import live_session
from arpviz.app.state import LoadedCheckpoint, app_state, bind
from arpviz.explorer import catalog, photo
from arpviz.explorer.controls import STEERABLE_MODES
from arpviz.explorer.figures import explore as figures
from arpviz.explorer.figures import panels
from arpviz.explorer.results import ModeComparison
from arpviz.models.stages import mode_label

__all__ = ["compare", "show_sides"]


def compare(loaded: LoadedCheckpoint, shown: ShownImage) -> ModeComparison | None:
    """The side pickers with each side's k, the shared DSR and tau; then the comparison (kept
    in ``app_state().shown.comparison``). ``None`` when no stage can be steered."""
    state = app_state()
    steering, steerable = controls.steering(loaded)
    if not steerable:
        st.info("This model has no RP, ARP, ARP-FG or learnt-zoom stage; there is nothing to "
                "switch.")
        return None
    sides = state.comparison
    left, right = st.columns(2, gap="large")
    with left:
        bind(st.selectbox, "Left side", sides, "left", options=STEERABLE_MODES,
             key="compare.left", format_func=mode_label, help=controls.MODE_HELP)
        controls.side_controls(loaded, "left", sides.left)
    with right:
        bind(st.selectbox, "Right side", sides, "right", options=STEERABLE_MODES,
             key="compare.right", format_func=mode_label, help=controls.MODE_HELP)
        controls.side_controls(loaded, "right", sides.right)
    st.caption("Both sides share each stage's DSR and tau; each side runs every steerable stage "
               "in its mode with that mode's k (the k Explore shows for it).")
    controls.shared_controls(loaded)
    session = live_session(loaded, shown.image)
    comparison = session.compare(steering.knobs_in(sides.left), steering.knobs_in(sides.right),
                                 (sides.left, sides.right))
    state.shown.comparison = comparison
    return comparison


def show_sides(loaded: LoadedCheckpoint, shown: ShownImage, comparison: ModeComparison) -> None:
    """Both sides: boxes on the photo at its aspect, stage numbers, the top-5 (left against the
    trained setting, right against the left), then rates and crops of both."""
    names = [mode_label(m) for m in comparison.modes]
    if shown.photo and catalog.trained_on_synthbirds(loaded.meta):
        st.info(outputs.synthbirds_note(loaded), icon=":material/info:")
    drawn = photo.photo_of(shown.image, loaded.meta)
    sides = (("left", comparison.first, names[0], "trained setting"),
             ("right", comparison.second, names[1], f"{names[0]} side"))
    for column, (side, view, name, reference) in zip(st.columns(2, gap="large"), sides,
                                                     strict=True):
        with column:
            st.markdown(f"### {name}")
            st.plotly_chart(figures.boxes_figure(view, shown.truth, height=400, photo=drawn),
                            key=f"compare_boxes_{side}")
            outputs.show_stage_numbers(view)
            outputs.download_buttons(view, loaded, shown, key=f"compare_{side}")
            st.markdown(f"#### Top-5 against the {reference}")
            outputs.show_predictions(view.predictions, loaded, shown, reference=reference,
                                     key=f"compare_predictions_{side}")
    st.markdown("### Rates per stage")
    st.plotly_chart(panels.rates_figure(comparison.views), key="compare_rates")
    st.markdown("### Resampled crops")
    st.plotly_chart(figures.crops_figure(comparison.views), key="compare_crops")
