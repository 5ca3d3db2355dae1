"""The analysis's results: :class:`StageAnalysis` per pooled stage in an
:class:`AdaptivityReport`, both JSON round-trippable."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from arpviz.analysis.statistics import json_ready
from arpviz.validation import dataclass_fields_of

__all__ = ["AdaptivityReport", "StageAnalysis"]


@dataclass(frozen=True)
class StageAnalysis:
    """What :func:`analyse` measured for one pooled stage (JSON-ready values; module docs).

    Attributes:
        stage: the stage name, e.g. ``"conv4.local0"``.
        mode: the stage's mode (``"rp"``, ``"arp"``, ``"arpfg"``, ``"stn"``, ...).
        k: the k of an adaptive mode (else ``None``).
        rate: ``{"h": stats, "w": stats}`` (:func:`stats`).
        rate_vs_object: ``{"height", "width", "keypoint_spread": {"h", "w"}}`` of
            :func:`correlation` results, or ``None`` without ground truth.
        crop_precision, keypoint_recall: means in [0, 1], or ``None`` without ground truth.
        placement: top-1 (%) per placement (``arp``, ``centred``, ``random``,
            ``least_confident``) and ``n_random``.
        placement_keypoint_recall: keypoint recall per placement, or ``None``.
        k_curve: ``{"k", "top1", "rate_h", "rate_w"}`` lists (ARP stages), else ``None``.
        confidence: ``{"min", "max", "object", "background", "contrast"}``; the last three are
            :func:`stats` over images (``None`` without ground truth).
        floor_free: ``{"k", "rate": {"h", "w"}, "rate_vs_object": {"height", "width"} or
            None}``: the diagnostic rate of the map with its floor removed (module docs).
        ideal: with ``--ideal``, per rule (``"arp"``: the paper's ARP, ``"arpfg"``: ARP-FG,
            beyond the paper) ``{"k", "rate": {"h", "w"}, "rate_vs_object": {"height",
            "width"}}``: what the rule picks when every channel of the stage's input is the
            object's ground-truth mask on that map; else ``None``.
        map_size: ``(h, w)`` of the stage's input map (``None`` in older reports): a rate
            that varies by less than ``1 / h`` never changes the crop by a whole cell.
    """

    stage: str
    mode: str
    k: float | None
    rate: dict[str, Any]
    rate_vs_object: dict[str, Any] | None
    crop_precision: float | None
    keypoint_recall: float | None
    placement: dict[str, Any]
    placement_keypoint_recall: dict[str, Any] | None
    k_curve: dict[str, Any] | None
    confidence: dict[str, Any]
    floor_free: dict[str, Any] | None = None
    ideal: dict[str, Any] | None = None
    map_size: tuple[int, int] | None = None


def _stage(data: Mapping[str, Any]) -> StageAnalysis:
    values = dict(data)
    if values.get("map_size") is not None:
        values["map_size"] = tuple(values["map_size"])
    return StageAnalysis(**values)


@dataclass(frozen=True)
class AdaptivityReport:
    """The result of :func:`analyse` for one checkpoint and split.

    Attributes:
        checkpoint: the checkpoint's path as given; ``sha256`` its digest (both empty when
            a loaded :class:`~arpviz.checkpoint.Checkpoint` was passed).
        split, limit, count: the split, the requested limit and the images analysed.
        tau: the confidence temperature used (1: the paper).
        top1: test top-1 (%) of the unaltered network (at ``tau``).
        ground_truth: whether object boxes and keypoints were available.
        object: ``{"height", "width"}`` (:func:`stats` of the object box in input pixels) and
            ``area_share`` (mean share of the input the box covers: the crop precision of a
            stage that keeps the whole image), or ``None``.
        stages: :class:`StageAnalysis` per pooled stage, in execution order.
        per_image: lists for plots: ``index``, ``label``, ``pred``, ``correct`` and per stage
            (``stages[name]``) ``rate_h``, ``rate_w``, ``conf_max`` (the map's maximum) and,
            with ground truth, ``object_h``,
            ``object_w`` (shares of the frame), ``spread_h``, ``spread_w``, ``precision``,
            ``recall``, ``object_conf``, ``background_conf``, ``contrast`` (rounded to 5
            decimals).
        faithfulness: :func:`arpviz.faithfulness.faithfulness_over_loader`'s summary for the
            first Conv4 pooled stage, or ``None`` when not requested.
        settings: ``n_random``, ``seed``, ``k_values``, ``n_boot``, ``batch_size``.
    """

    checkpoint: str
    sha256: str
    split: str
    limit: int | None
    count: int
    tau: float
    top1: float
    ground_truth: bool
    object: dict[str, Any] | None
    stages: dict[str, StageAnalysis]
    per_image: dict[str, Any]
    faithfulness: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (NaN becomes ``None``)."""
        return json_ready(dataclasses.asdict(self))

    def to_json(self) -> str:
        """Indented JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdaptivityReport:
        """Inverse of :meth:`to_dict`."""
        values = dataclass_fields_of(data, cls)
        values["stages"] = {name: _stage(stage)
                            for name, stage in dict(values.get("stages", {})).items()}
        return cls(**values)
