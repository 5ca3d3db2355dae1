"""What am I looking at: MSGN's layout as a Graphviz diagram and a few plain sentences, built
from a model's stage settings (the app's "What am I looking at" panel).

The diagram follows the paper's Figure 3: a shared stem, Conv2 and Conv3 (pooled by RP/ARP or
strided), then a global branch (strided Conv4 and Conv5) and one or more local branches (Conv4
pooled, Conv5 at stride 1), each ending in global average pooling; the branches' features are
concatenated, embedded and classified. A pooled stage's node has its stage's box colour
(:func:`arpviz.palette.stage_colour`), so the diagram and the boxes on the image
read together.
"""

from __future__ import annotations

from collections.abc import Sequence

from arpviz.explorer.controls import StageControl
from arpviz.models.stages import mode_label, stage_label
from arpviz.palette import stage_colour

__all__ = ["PAPER_INPUT", "about_lines", "msgn_dot"]

#: The paper's input sides: 448 px for fine-grained classification, 224 px for re-ID.
PAPER_INPUT = {"classification": 448, "reid": 224}


def _setting(control: StageControl, values: bool = True) -> str:
    if control.mode == "stride":
        return "stride 2"
    parts = [mode_label(control.mode)]
    if not values:
        return parts[0]
    if control.k is not None:
        parts.append(f"k {control.k:g}")
    if control.dsr is not None:
        parts.append(f"DSR {control.dsr[0]:g}")
    return ", ".join(parts)


def _quote(text: str) -> str:
    """A DOT string literal; line breaks become DOT's centred ``\\n``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'


def msgn_dot(controls: Sequence[StageControl], input_size: int, values: bool = True) -> str:
    """Graphviz DOT text of the network ``controls`` describe (``controls.stage_controls``) at
    ``input_size`` px: one node per stage with its mode, ``k``, DSR and input map size
    (``values=False``: the mode and map size only, so the text changes only with a mode)."""
    if not isinstance(input_size, int) or input_size < 1:
        raise ValueError(f"input_size must be an int >= 1, got {input_size!r}")
    by_name = {c.name: c for c in controls}
    conv3 = by_name.get("conv3")
    if conv3 is None:
        raise ValueError("controls must hold a 'conv3' stage (controls.stage_controls(model))")
    side3 = max(1, input_size // 4)  # the stem and Conv2 downsample 4x
    side4 = max(1, side3 // 2)
    lines = [
        "digraph msgn {",
        '  rankdir=LR; bgcolor="transparent";',
        '  node [shape=box, style="rounded,filled", fillcolor="#f4f4f4", fontname="Helvetica",'
        ' fontsize=11];',
        '  edge [color="#777777"];',
        f'  input [label={_quote(f"image {input_size} x {input_size}")}, shape=note];',
        f"  stem [label={_quote('stem + Conv2' + chr(10) + '(stride 4)')}];",
    ]

    def pooled(name: str, control: StageControl, side: int, extra: str = "") -> str:
        label = f"{stage_label(name)}\n{_setting(control, values)}\ninput {side} x {side}{extra}"
        if control.mode == "stride":
            return f"  {_node(name)} [label={_quote(label)}];"
        colour = stage_colour(name)
        return (f"  {_node(name)} [label={_quote(label)}, fillcolor=\"#ffffff\", "
                f"color=\"{colour}\", penwidth=3];")

    lines.append(pooled("conv3", conv3, side3, "\n(shared)"))
    lines += ["  input -> stem;", f"  stem -> {_node('conv3')};"]
    heads = []
    for name, control in by_name.items():
        if name == "conv3":
            continue
        branch = name.split(".", 1)[1]
        conv5 = f"conv5_{branch}"
        stride5 = "stride 1" if branch.startswith("local") else "stride 2"
        conv5_label = stage_label(name).replace("Conv4", "Conv5")
        lines.append(pooled(name, control, side4))
        lines.append(f"  {conv5} [label={_quote(conv5_label + chr(10) + stride5)}];")
        lines.append(f"  {_node('conv3')} -> {_node(name)} -> {conv5};")
        heads.append(conv5)
    head = "average pooling per branch,\nconcatenated, embedded,\nclassified"
    lines.append(f"  head [label={_quote(head)}];")
    lines += [f"  {h} -> head;" for h in heads]
    lines.append("}")
    return "\n".join(lines)


def _node(name: str) -> str:
    return name.replace(".", "_")


def about_lines(controls: Sequence[StageControl], input_size: int, reid: bool = False,
                ) -> list[str]:
    """Plain sentences for the panel: which crop each stage's box shows, and the input size
    against the paper's."""
    pooled = [c for c in controls if c.mode != "stride"]
    paper = PAPER_INPUT["reid" if reid else "classification"]
    lines = [
        "MSGN (the paper's Figure 3) looks at an image twice: a *global* branch at the usual "
        "strides, and a *local* branch whose Conv4 crops the region the keypoint confidence "
        "marks and resamples it, so the later layers see it at a finer scale.",
    ]
    if any(c.name == "conv3" and c.mode != "stride" for c in pooled):
        lines.append("Conv3's box is a crop of the whole image. Every Conv4 map is computed "
                     "from Conv3's crop, so a Conv4 box always lies inside Conv3's box.")
    if any(c.name.startswith("conv4.local") for c in pooled):
        lines.append("'Conv4 local 0' is the first local branch (more local branches search "
                     "their windows with the earlier branches' boxes left out); 'Conv4 "
                     "global' keeps its stride and crops nothing.")
    lines.append(f"This network takes {input_size} x {input_size} px images; the paper uses "
                 f"{paper} x {paper}. A stage's box is drawn in the image's pixels; its "
                 "confidence map has one cell per pixel of the stage's input map.")
    return lines
