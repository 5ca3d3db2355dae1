"""Figures of the Training page: learning curves and the probe images' crops epoch by epoch.

Built from :class:`~arpviz.explorer.catalog.TrainingRecord` (one per run) and the probe images
of :func:`~arpviz.explorer.inputs.probe_images`. Probe images are laid out as one mosaic (one
image trace) with the boxes of a stage as one line trace, so a figure stays small however many
probes there are, and an animation over epochs only swaps the box traces and captions.

Stages are named by :func:`arpviz.models.stages.stage_label` with the run's pooling mode
(:func:`stage_title`: ``"Conv4 local 0 (ARP)"``); sizes and rates read height x width.

- :mod:`~arpviz.explorer.figures.history.names`: :func:`run_label`, :func:`stage_mode`,
  :func:`stage_title`, :func:`shared_stage_title`;
- :mod:`~arpviz.explorer.figures.history.mosaic`: the tile mosaic (:class:`BoxLayer`,
  :func:`tiles_figure`), :func:`probe_figure`, :func:`comparison_figure`;
- :mod:`~arpviz.explorer.figures.history.maps`: :func:`confidence_figure`, :func:`stage_rows`
  (:data:`STAGE_COLUMNS`);
- :mod:`~arpviz.explorer.figures.history.curves`: :func:`learning_curves`,
  :func:`rates_figure`.

Every name is re-exported here.
"""

from arpviz.explorer.figures.history.curves import learning_curves, rates_figure
from arpviz.explorer.figures.history.maps import STAGE_COLUMNS, confidence_figure, stage_rows
from arpviz.explorer.figures.history.mosaic import (
    BoxLayer,
    comparison_figure,
    probe_figure,
    tiles_figure,
)
from arpviz.explorer.figures.history.names import (
    run_label,
    shared_stage_title,
    stage_mode,
    stage_title,
)

__all__ = [
    "STAGE_COLUMNS",
    "BoxLayer",
    "comparison_figure",
    "confidence_figure",
    "learning_curves",
    "probe_figure",
    "rates_figure",
    "run_label",
    "shared_stage_title",
    "stage_mode",
    "stage_rows",
    "stage_title",
    "tiles_figure",
]
