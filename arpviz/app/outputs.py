"""What the pages show alike: the model card (sidebar), the prediction flag and top-5 table,
each stage's numbers, the export buttons."""

from __future__ import annotations

import streamlit as st

from arpviz.app.images import ShownImage
from arpviz.app.state import LoadedCheckpoint, app_state
from arpviz.explorer import catalog, records, tables
from arpviz.explorer.results import ExploreView, PredictionTable
from arpviz.text import plain

__all__ = ["download_buttons", "show_model_card", "show_prediction_flag",
           "show_prediction_table", "show_predictions", "show_stage_numbers",
           "synthbirds_note"]


def synthbirds_note(loaded: LoadedCheckpoint) -> str:
    """What a SynthBirds checkpoint can and cannot say about a photo (model card, Explore)."""
    return (f"Trained on SynthBirds: procedural birds this project draws, "
            f"{len(loaded.meta.class_names)} classes told apart by small parts. A real photo "
            "is outside its world, so its predictions on one mean nothing; for photos choose "
            "an ImageNet ResNet with ARP under Checkpoint (converted once, on request).")


def show_model_card(loaded: LoadedCheckpoint) -> None:
    """The sidebar's model card: architecture, data, trained stage settings, last metrics."""
    card = catalog.model_card(loaded.meta)
    with st.expander("Model card", expanded=True):
        st.markdown(
            f"**{plain(loaded.label)}**  \n"
            f"backbone {plain(card['backbone'])}, {card['classes']} classes, input "
            f"{card['input_size']} px, {card['local_branches']} local branch(es)  \n"
            f"data set: {plain(card['dataset'])}, {card['epochs']} epoch(s)"
        )
        lines = [
            f"- {s['label']}"
            + ("" if s["k"] is None else f", k {s['k']:g}")
            + ("" if s["dsr"] == "-" else f", DSR {s['dsr']}")
            + ("" if s["detail"] is None else f" ({s['detail']})")
            for s in card["stages"]
        ]
        st.markdown("Trained settings:\n" + "\n".join(lines))
        for line in card["about"]:
            st.caption(plain(line))
        if card["metrics"]:
            metrics = ", ".join(f"{plain(k)} {v:.3g}" for k, v in card["metrics"].items())
            best = card["best_val_top1"]
            extra = f" (best val top-1 {best:.1f}%)" if best is not None else ""
            st.caption(f"last epoch: {metrics}{extra}")
        else:
            st.caption("no training history in this checkpoint")


def show_prediction_flag(table: PredictionTable, loaded: LoadedCheckpoint, shown: ShownImage,
                         *, reference: str = "trained setting") -> None:
    """A flag when the top-1 flips against ``reference`` (else its confirmation), and the
    verdict on a sample's true class."""
    top = table.top1
    if table.flipped:
        st.warning(
            f"Top-1 flipped: **{plain(table.ref_top1_name)}** ({table.ref_top1_prob:.1%}) under "
            f"the {reference} is now **{plain(top.name)}** ({top.prob:.1%}).", icon="⚠️")
    else:
        st.success(f"Top-1: **{plain(top.name)}** ({top.prob:.1%}), the same as under the "
                   f"{reference}.")
    if shown.image.truth is not None and shown.image.truth.label >= 0:
        truth = shown.image.truth
        verdict = "correct" if top.index == truth.label else "wrong"
        st.caption(f"True class: {plain(truth.name)} (top-1 is {verdict}).")


def show_prediction_table(table: PredictionTable, *, reference: str = "trained setting",
                          key: str) -> None:
    """The top-5 as a static table: rank, the full class name, the probability with a bar, its
    change and the rank under ``reference`` (hover a name for all of it). ``key`` names the
    table's container (for tests and the page's styles)."""
    with st.container(key=key):
        st.html(tables.prediction_table_html(table, reference))


def show_predictions(table: PredictionTable, loaded: LoadedCheckpoint, shown: ShownImage, *,
                     reference: str = "trained setting", key: str) -> None:
    """:func:`show_prediction_flag` then :func:`show_prediction_table`."""
    show_prediction_flag(table, loaded, shown, reference=reference)
    show_prediction_table(table, reference=reference, key=key)


def show_stage_numbers(view: ExploreView) -> None:
    """One line per pooled stage: its settings, crop (height x width, in input pixels), rates
    and output size, all in the order height x width."""
    lines = []
    for s in view.stages.values():
        x1, y1, x2, y2 = s.image_box
        k = "" if s.k is None else f"k {s.k:.2f}, "
        dsr = "" if s.dsr is None else f"DSR {s.dsr[0]:.2f}, "
        lines.append(
            f"**{s.label}**: {k}{dsr}crop {y2 - y1:.1f} x {x2 - x1:.1f} px at "
            f"({x1:.1f}, {y1:.1f}), rates {s.rates[0]:.3f} x {s.rates[1]:.3f}, output "
            f"{s.out_size[0]} x {s.out_size[1]} cells"
        )
    if lines:
        st.caption("  \n".join(lines) + "  \n(sizes and rates: height x width; px: the "
                   "network's input pixels)")


def download_buttons(view: ExploreView, loaded: LoadedCheckpoint, shown: ShownImage, *,
                     key: str) -> None:
    """Download buttons for the record of ``view`` (the JSON line ``arpviz-explain`` writes)
    and its overlay PNG on the image at its own size; built from the view on screen, without
    running the model again, and encoded only when a button is clicked. The record is kept in
    ``app_state().shown.records[key]``."""
    record = records.view_record(view, shown.image, loaded.meta.input_size)
    app_state().shown.records[key] = record
    stem = (shown.image.name or "image").rsplit(".", 1)[0].replace(" ", "_").replace("#", "")
    json_col, png_col = st.columns(2)
    json_col.download_button(
        "Record (JSON)", lambda: records.record_json(record), file_name=f"{stem}_{key}.json",
        mime="application/json", key=f"{key}_json", icon=":material/download:",
        help="Top-5 and every stage's box (image and input pixels), rates, k and DSR of the "
             "current settings: the record arpviz-explain writes.")
    if shown.image.original is not None:
        png_col.download_button(
            "Overlay (PNG)", lambda: records.record_overlay(record, shown.image),
            file_name=f"{stem}_{key}.png", mime="image/png", key=f"{key}_png",
            icon=":material/download:", help="The image at its own size with every box.")
