"""Outputs the pages share: the model card (sidebar), the prediction flag and table, the stage
numbers, the export buttons."""

from __future__ import annotations

import streamlit as st

from arpviz.explorer import catalog, records, session
from arpviz.explorer.figures import explore as figures
from pages.common import LoadedCheckpoint
from pages.widgets import ChosenImage


def show_model_card(loaded: LoadedCheckpoint) -> None:
    """The sidebar's model card: architecture, data, trained stage settings, last metrics."""
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
        for line in card["about"]:
            st.caption(line)
        if card["metrics"]:
            metrics = ", ".join(f"{k} {v:.3g}" for k, v in card["metrics"].items())
            best = card["best_val_top1"]
            extra = f" (best val top-1 {best:.1f}%)" if best is not None else ""
            st.caption(f"last epoch: {metrics}{extra}")
        else:
            st.caption("no training history in this checkpoint")


def show_prediction_flag(table: session.PredictionTable, loaded: LoadedCheckpoint,
                         chosen: ChosenImage, *, reference: str = "trained setting") -> None:
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
    if chosen.uploaded and catalog.trained_on_synthbirds(loaded.meta):
        st.info("This checkpoint was trained on SynthBirds (synthetic birds); a real photo is "
                "far from anything it has seen, so read its predictions as a probe of the "
                "pooling, not as a classification.")


def show_prediction_table(table: session.PredictionTable, *, reference: str = "trained setting",
                          key: str, side_by_side: bool = True) -> None:
    """The top-5 as a table (probability, change, rank under ``reference``, rank change) and
    as a bar chart (hover: values), side by side or stacked."""
    rows = table.rows
    frame = {"rank": [r.rank for r in rows], "p": [r.prob for r in rows],
             "Δp": [r.delta for r in rows], "was rank": [r.ref_rank for r in rows],
             "Δrank": [r.rank_change for r in rows], "class": [r.name for r in rows]}
    number = st.column_config.NumberColumn
    config = {
        "rank": number(width="small"),
        "p": number(format="%.4f", width="small"),
        "Δp": number(format="%+.4f", width="small",
                     help=f"probability now minus under the {reference}"),
        "was rank": number(width="small", help=f"rank under the {reference}"),
        "Δrank": number(format="%+d", width="small", help="ranks gained (+) or lost (-)"),
    }
    chart = figures.predictions_figure(table, reference)
    left, right = st.columns([1.6, 1]) if side_by_side else (st.container(), st.container())
    with left:
        st.dataframe(frame, hide_index=True, key=f"{key}_table", column_config=config)
    with right:
        st.plotly_chart(chart, key=f"{key}_chart")


def show_predictions(table: session.PredictionTable, loaded: LoadedCheckpoint,
                     chosen: ChosenImage, *, reference: str = "trained setting",
                     key: str) -> None:
    """:func:`show_prediction_flag` then :func:`show_prediction_table` (stacked)."""
    show_prediction_flag(table, loaded, chosen, reference=reference)
    show_prediction_table(table, reference=reference, key=key, side_by_side=False)


def show_stage_numbers(view: session.ExploreView) -> None:
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


def download_buttons(view: session.ExploreView, loaded: LoadedCheckpoint, chosen: ChosenImage,
                     *, key: str) -> None:
    """Download buttons for the record of ``view`` (the JSON line ``python -m arpviz.explain``
    writes) and its overlay PNG on the image at its own size; built from the view on screen,
    without running the model again. Kept as ``st.session_state[f"{key}_record"]``."""
    record = records.view_record(view, chosen.image, loaded.meta.input_size)
    st.session_state[f"{key}_record"] = record
    stem = (chosen.image.name or "image").rsplit(".", 1)[0].replace(" ", "_").replace("#", "")
    json_col, png_col = st.columns(2)
    json_col.download_button(
        "Record (JSON)", records.record_json(record), file_name=f"{stem}_{key}.json",
        mime="application/json", key=f"{key}_json", icon=":material/download:",
        help="Top-5 and every stage's box (image and input pixels), rates, k and DSR of the "
             "current settings: the record python -m arpviz.explain writes.")
    if chosen.image.original is not None:
        png_col.download_button(
            "Overlay (PNG)", records.record_overlay(record, chosen.image),
            file_name=f"{stem}_{key}.png", mime="image/png", key=f"{key}_png",
            icon=":material/download:", help="The image at its own size with every box.")
