"""What a checkpoint says about its model: the one-line description that tells checkpoints
apart (:func:`describe`, :func:`describe_file`, :func:`checkpoint_titles`), the sidebar's model
card (:func:`model_card`) and whether it was trained on SynthBirds
(:func:`trained_on_synthbirds`). A stage's settings come from its config through
:func:`arpviz.models.stages.config_settings`; only the header is read, no model is built.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arpviz.checkpoint import CheckpointMeta, read_meta
from arpviz.geometry import eval_resize
from arpviz.models import MSGNConfig
from arpviz.models.stages import StageSettings, config_settings, mode_label, stage_label

__all__ = [
    "checkpoint_titles",
    "describe",
    "describe_file",
    "model_card",
    "trained_on_synthbirds",
]

logger = logging.getLogger(__name__)


def _stage_settings(config: MSGNConfig) -> dict[str, StageSettings]:
    """Every stage's settings as the config describes them (no model is built)."""
    branches = ["main"] if config.local_branches == 0 else (
        ["global"] + [f"local{i}" for i in range(config.local_branches)])
    crop = config.conv4_crop
    settings = {"conv3": config_settings(config.conv3, config.conv3_k, config.dsr, config.tau,
                                         config.min_rate)}
    for branch in branches:
        mode = "stride" if branch == "global" else config.conv4
        settings[f"conv4.{branch}"] = config_settings(mode, config.conv4_k, config.dsr,
                                                      config.tau, config.min_rate, crop)
    return {name: st for name, st in settings.items() if name != "conv4.global"}


def _data_text(meta: CheckpointMeta) -> str:
    dataset = meta.dataset
    name = str(dataset.get("name", "unknown"))
    if name == "synthbirds":
        config = dataset.get("config") or {}
        lo, hi = config.get("scale_min"), config.get("scale_max")
        scale = (f" {100 * lo:.0f}-{100 * hi:.0f}%"
                 if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) else "")
        return f"SynthBirds{scale}"
    return {"synthreid": "SynthReID", "cub": "CUB-200-2011", "folder": "image folders",
            "imagenet": "ImageNet", "veri776": "VeRi-776",
            "market1501": "Market-1501"}.get(name, name)


def _fmt_rate(dsr: tuple[float, float] | None) -> str:
    if dsr is None:
        return "-"
    return f"{dsr[0]:g}" if dsr[0] == dsr[1] else f"({dsr[0]:g}, {dsr[1]:g})"


_PARTS = ("data", "conv4", "conv3", "branches", "backbone")


def _describe_parts(meta: CheckpointMeta) -> dict[str, str]:
    """The pieces of :func:`describe`, by :data:`_PARTS` key."""
    parts = {"data": _data_text(meta), "backbone": meta.config.backbone, "branches": ""}
    for name, settings in _stage_settings(meta.config).items():
        text = f"{stage_label(name).split(' ')[0]} {mode_label(settings.mode)}"
        if settings.k is not None:
            text += f" k {settings.k:g}"
        if settings.crop is not None:
            text += f" crop {_fmt_rate(settings.crop)}"
        parts.setdefault(name.split(".")[0], text)
    if meta.config.local_branches == 0:
        parts["branches"] = "baseline, one branch"
    elif meta.config.local_branches > 1:
        parts["branches"] = f"{meta.config.local_branches} local branches"
    return parts


def describe(meta: CheckpointMeta) -> str:
    """What tells a checkpoint apart, in one line: its data, the mode (with k, RP's crop) of
    Conv4 and Conv3, the branches and the backbone, e.g. ``"SynthBirds 15-85% · Conv4
    ARP-FG k 1.5 · Conv3 ARP k 1 · tiny"`` (SynthBirds with the bird's size range, as a share
    of the image side)."""
    parts = _describe_parts(meta)
    return " · ".join(parts[key] for key in _PARTS if parts.get(key))


@functools.lru_cache(maxsize=256)
def _parts_of_file(path: str, stamp: tuple[int, int]) -> tuple[tuple[str, str], ...]:
    return tuple(_describe_parts(read_meta(path)).items())


def describe_file(path: str | os.PathLike) -> str:
    """:func:`describe` of a checkpoint file (its header read once per file version)."""
    stat = Path(path).stat()
    parts = dict(_parts_of_file(str(path), (stat.st_mtime_ns, stat.st_size)))
    return " · ".join(parts[key] for key in _PARTS if parts.get(key))


def checkpoint_titles(paths: Sequence[Path]) -> dict[str, str]:
    """``{str(path): title}`` for a checkpoint list, built so that the start of each title
    tells the checkpoints apart (a sidebar cuts long ones): of :func:`describe`'s pieces, those
    that vary most across the list come first and those the same for all are left out; the
    file's name ends every title (a file whose header cannot be read has only its name). Each
    file's header is read once per file version."""
    parts: dict[str, dict[str, str]] = {}
    titles: dict[str, str] = {}
    for path in paths:
        try:
            stat = path.stat()
            parts[str(path)] = dict(_parts_of_file(str(path), (stat.st_mtime_ns, stat.st_size)))
        except Exception as exc:  # noqa: BLE001 - one odd file must not take the listing down
            logger.warning("cannot describe %s: %s", path, exc)
    variety = {key: len({p.get(key, "") for p in parts.values()}) for key in _PARTS}
    keys = sorted((k for k in _PARTS if variety[k] > 1 or len(parts) == 1),
                  key=lambda k: (-variety[k], _PARTS.index(k)))
    for name, found in parts.items():
        titles[name] = " · ".join(found[k] for k in keys if found.get(k))
    return {str(p): " · ".join(t for t in (titles.get(str(p)), p.name) if t) for p in paths}


def model_card(meta: CheckpointMeta) -> dict[str, Any]:
    """What the sidebar's model card shows, as plain values.

    Keys: ``backbone``, ``classes``, ``input_size``, ``local_branches``, ``dataset``,
    ``stages`` (list of ``{"stage", "mode", "label", "k", "dsr", "detail"}``: the stage's
    name, its mode, both as one label (``"Conv4 local 0 (ARP)"``), ``k`` of an adaptive mode,
    the DSR, and ``detail``: ``"bounded box"`` for a bounded spatial transformer, RP's fixed
    crop, ARP-FG's lower bound, else ``None``), ``epochs``,
    ``metrics`` (the last history entry's numbers, e.g. ``val_top1``), ``best_val_top1``,
    ``about`` (sentences on where the weights came from, from ``meta.dataset``'s ``title``,
    ``source``, ``fine_tuned``, ``arp_inserted``, ``pooled_stages``, ``conv3_k``, ``conv4_k``,
    ``dsr``, which a converted checkpoint has (:mod:`arpviz.convert`), and on how it sees an
    image: torchvision's evaluation, the aspect kept (``eval_resize`` of
    :mod:`arpviz.geometry`); empty when the record has none).
    """
    cfg = meta.config
    stages = []
    for name, settings in _stage_settings(cfg).items():
        detail = None
        if settings.mode == "stn" and cfg.stn_bounded:
            detail = "bounded box"
        elif settings.crop is not None:
            detail = f"crop {_fmt_rate(settings.crop)}"
        elif settings.min_rate is not None:
            detail = f"lower bound {settings.min_rate:g}, beyond the paper"
        stages.append({"stage": stage_label(name), "mode": settings.mode,
                       "label": stage_label(name, settings.mode), "k": settings.k,
                       "dsr": _fmt_rate(settings.dsr) if settings.dsr is not None else "-",
                       "detail": detail})
    history = list(meta.history)
    last = history[-1] if history else {}
    metrics = {key: value for key, value in last.items()
               if isinstance(value, (int, float)) and key not in ("epoch", "seconds", "lr")}
    tops = [h.get("val_top1") for h in history if isinstance(h.get("val_top1"), (int, float))]
    return {
        "backbone": cfg.backbone,
        "classes": cfg.num_classes,
        "input_size": meta.input_size,
        "local_branches": cfg.local_branches,
        "dataset": str(meta.dataset.get("name", "unknown")),
        "stages": stages,
        "epochs": int(last.get("epoch", len(history))) if history else 0,
        "metrics": metrics,
        "best_val_top1": max(tops) if tops else None,
        "about": _about(meta),
    }


def _about(meta: CheckpointMeta) -> list[str]:
    """The model card's sentences on a converted checkpoint's origin and evaluation geometry
    (see :func:`model_card`)."""
    dataset = meta.dataset
    lines = []
    if dataset.get("title"):
        lines.append(str(dataset["title"]))
    if dataset.get("source"):
        lines.append(f"weights: {dataset['source']}")
    if dataset.get("fine_tuned") is False:
        lines.append("not fine-tuned: the weights were trained without ARP; the predictions "
                     "differ from the original network's")

    def k_of(stage: str) -> str | None:
        k = dataset.get(f"{stage}_k")
        return f"{stage} k {k:g}" if isinstance(k, (int, float)) else None

    inserted = list(dataset.get("arp_inserted") or ())
    dsr = dataset.get("dsr")
    dsr_text = (", DSR " + " x ".join(f"{float(r):g}" for r in dsr)
                if isinstance(dsr, (list, tuple)) and dsr else "")
    if inserted:
        ks = [k for k in map(k_of, inserted) if k]
        text = f"ARP inserted in {', '.join(inserted)}"
        if ks:
            text += f" ({', '.join(ks)})"
        lines.append(text + dsr_text)
    for stage in dataset.get("pooled_stages") or ():
        mode = dataset.get(stage)
        if stage in inserted or not isinstance(mode, str):
            continue
        k = k_of(stage)
        lines.append(f"{mode_label(mode)} inserted in {stage}" + (f" ({k})" if k else "")
                     + ("" if inserted else dsr_text))
    if dataset.get("name") == "imagenet" or dataset.get("keep_aspect"):
        resize, keep = eval_resize(meta)
        if keep:
            lines.append(f"evaluated as torchvision evaluates it: the shorter side resized to "
                         f"{resize} (the aspect kept), then the centre {meta.input_size} x "
                         f"{meta.input_size} crop")
        else:
            lines.append(f"evaluated with a square resize to {resize} and the centre "
                         f"{meta.input_size} x {meta.input_size} crop")
    return lines


def trained_on_synthbirds(meta: CheckpointMeta) -> bool:
    """Whether the checkpoint's data set record names SynthBirds."""
    return meta.dataset.get("name") == "synthbirds"
