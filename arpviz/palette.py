"""The one palette of the app's figures and the batch command's overlays: a colour per stage (and
branch), per run, per part (plain constants, no plotting library)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "CROP_SIZE",
    "INSIDE",
    "LINE",
    "MARK",
    "NETWORK_INPUT",
    "OUTSIDE",
    "PALETTE",
    "REFERENCE",
    "RIGHT",
    "SERIES",
    "SIDES",
    "TRUE_INTERVAL",
    "OBJECT",
    "TRUTH",
    "WRONG",
    "series_colour",
    "stage_colour",
]

#: Colours of Conv3 and of the Conv4 branches (global/main, local0, local1, ...).
PALETTE: Mapping[str, str] = {
    "conv3": "#1f77b4",
    "conv4.main": "#ff7f0e",
    "conv4.global": "#7f7f7f",
    "conv4.local0": "#ff7f0e",
    "conv4.local1": "#2ca02c",
    "conv4.local2": "#d62728",
    "conv4.local3": "#9467bd",
}
_EXTRA = ("#8c564b", "#e377c2", "#17becf", "#bcbd22")
#: Colours of series that are not stages: runs, tracked classes (in order).
SERIES = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
#: The two sides of a run comparison: left (ARP), right (STN).
SIDES = ("#ff7f0e", "#17becf")
#: Ground truth drawn on an image; a stage's box on a confidence map; the reference bars.
TRUTH = "#ffffff"
#: The simulated object's outline (Appendix A): reads on the dark maps and in the legend.
OBJECT = "#00c853"
#: The frame of the network's input drawn on the uploaded photo.
NETWORK_INPUT = "#00e5ff"
#: A crop's size plotted beside class curves (a neutral colour no class or stage uses).
CROP_SIZE = "#3d3d3d"
MARK = "#ff4d4d"
REFERENCE = "#c7c7c7"
#: A probe's caption when its top-1 is right, and when it is wrong.
RIGHT = "#1a7f37"
WRONG = "#c62828"
#: Appendix A (Figure 7): the distribution's line, the area inside and outside the crop.
LINE = "#1f3b99"
INSIDE = "rgba(214, 39, 40, 0.55)"
OUTSIDE = "rgba(31, 119, 180, 0.35)"
TRUE_INTERVAL = "#555555"


def stage_colour(name: str) -> str:
    """The colour of a stage's boxes and curves (one per branch; the same name, the same
    colour)."""
    if name in PALETTE:
        return PALETTE[name]
    return _EXTRA[sum(name.encode()) % len(_EXTRA)]


def series_colour(index: int) -> str:
    """The colour of the ``index``-th run or tracked class."""
    return SERIES[index % len(SERIES)]
