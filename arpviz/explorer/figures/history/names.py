"""The names the Training page's figures give runs and stages (one rule: every stage name goes
through :func:`arpviz.models.stages.stage_label` with the run's pooling mode), and the size text
of a box (height x width)."""

from __future__ import annotations

from collections.abc import Sequence

from arpviz.explorer.catalog import TrainingRecord
from arpviz.models.stages import crop_text, mode_label, stage_label

__all__ = ["run_label", "shared_stage_title", "stage_mode", "stage_title"]


def stage_mode(record: TrainingRecord, stage: str) -> str:
    """The pooling mode ``stage`` ran with in ``record``'s model: Conv3's mode for ``conv3``,
    stride for the global branch, Conv4's mode for the local branches (or the one branch of a
    model without local branches)."""
    config = record.meta.config
    if stage == "conv3":
        return config.conv3
    if stage == "conv4.global":
        return "stride"
    return config.conv4


def stage_title(record: TrainingRecord, stage: str) -> str:
    """The name people read for ``stage`` of ``record``: ``"Conv4 local 0 (ARP)"``."""
    return stage_label(stage, stage_mode(record, stage))


def shared_stage_title(records: Sequence[TrainingRecord], stage: str) -> str:
    """``stage``'s name for several runs: with the mode when all the runs that pool it share
    it (``"Conv3 (ARP)"``; strided runs have no such stage to show), else without
    (``"Conv4 local 0"``)."""
    modes = {stage_mode(r, stage) for r in records} - {"stride"} or {"stride"}
    return stage_label(stage, modes.pop()) if len(modes) == 1 else stage_label(stage)


def run_label(record: TrainingRecord) -> str:
    """A run in one line: ``"name (tiny, 1 local branch, Conv3 ARP, Conv4 RP crop 0.7)"``."""
    cfg = record.meta.config
    branches = ("one branch" if cfg.local_branches == 0 else
                f"{cfg.local_branches} local branch{'es' if cfg.local_branches > 1 else ''}")
    conv4 = mode_label(cfg.conv4)
    if cfg.conv4_crop is not None:
        conv4 += f" crop {crop_text(cfg.conv4_crop)}"
    if cfg.conv4 == "stn" and cfg.stn_bounded:
        conv4 += " bounded"
    return (f"{record.name} ({cfg.backbone}, {branches}, Conv3 {mode_label(cfg.conv3)}, "
            f"Conv4 {conv4})")


def _size(box: Sequence[float]) -> str:
    """A box ``(x1, y1, x2, y2)``'s size as ``"h x w"``."""
    x1, y1, x2, y2 = box
    return f"{y2 - y1:.1f} x {x2 - x1:.1f}"
