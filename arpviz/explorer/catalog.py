"""What the app can open: checkpoints, model cards, training records and the choice of runs.

- where checkpoints may come from (:func:`bundled_dir`, :func:`converted_cache_dir`,
  :func:`checkpoint_roots`, :func:`allowed_folder`) and which are there
  (:func:`find_checkpoints`, :func:`default_checkpoint`);
- the ImageNet ResNets with ARP it offers (:func:`imagenet_offers`, :class:`ImagenetOffer`):
  from the torch cache, or downloaded on request (:func:`get_offer`, :func:`downloads_offered`);
- what a checkpoint says about its model (:func:`model_card`, :func:`trained_on_synthbirds`);
- what it says about its training (:class:`TrainingRecord`, :func:`load_record`,
  :func:`metric_columns`, :func:`record_epochs`), and which runs the Training page shows
  (:func:`discover_runs`, :func:`default_runs`, :func:`comparison_pairs`).

Every checkpoint file is read through :mod:`arpviz.checkpoint`; nothing here builds a model.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from arpviz.bundled import DEFAULT_CLASSIFICATION, bundled_dir
from arpviz.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointMeta,
    EpochSnapshot,
    read_meta,
    read_snapshots,
)
from arpviz.convert import (
    ARCHITECTURES,
    Progress,
    cached_weights,
    convert_cached,
    converted_cache_dir,
    converted_name,
    download_entry,
    imagenet_config,
)
from arpviz.geometry import eval_resize
from arpviz.models import MSGNConfig
from arpviz.models.stages import StageSettings, config_settings, mode_label, stage_label
from arpviz.weights import WeightsEntry, offline

__all__ = [
    "BUNDLED_DEFAULT",
    "checkpoint_titles",
    "describe",
    "describe_file",
    "METRICS",
    "FolderNotAllowed",
    "ImagenetOffer",
    "TrainingRecord",
    "allowed_folder",
    "bundled_dir",
    "checkpoint_roots",
    "comparison_pairs",
    "converted_cache_dir",
    "default_checkpoint",
    "default_runs",
    "discover_runs",
    "downloads_offered",
    "find_checkpoints",
    "get_offer",
    "imagenet_label",
    "imagenet_offers",
    "load_record",
    "metric_columns",
    "model_card",
    "record_epochs",
    "record_from_checkpoint",
    "stage_names",
    "trained_on_synthbirds",
    "unique_name",
]

logger = logging.getLogger(__name__)

#: The checkpoint the app opens first when it is present.
BUNDLED_DEFAULT = DEFAULT_CLASSIFICATION
#: history keys the learning curves know, with their display names.
METRICS: dict[str, str] = {
    "train_loss": "train loss",
    "train_top1": "train top-1 %",
    "val_top1": "val top-1 %",
    "val_top5": "val top-5 %",
    "mAP": "test mAP %",
    "rank1": "test rank-1 %",
    "rank5": "test rank-5 %",
    "rank10": "test rank-10 %",
    "lr": "learning rate",
    "seconds": "seconds",
}


# ----------------------------------------------------------------------------- where from


def checkpoint_roots() -> tuple[Path, ...]:
    """The folders (resolved) whose checkpoints a visitor may list and load.

    Env ``ARPVIZ_CHECKPOINT_ROOTS`` (``os.pathsep``-separated) names them; by default the
    bundled folder and :func:`converted_cache_dir`. The operator's ``ARPVIZ_CHECKPOINT_DIR``,
    when set, is a root too.
    """
    raw = os.environ.get("ARPVIZ_CHECKPOINT_ROOTS", "")
    named = [p for p in raw.split(os.pathsep) if p.strip()]
    folders = named or [str(bundled_dir()), str(converted_cache_dir())]
    extra = os.environ.get("ARPVIZ_CHECKPOINT_DIR", "").strip()
    if extra:
        folders.append(extra)
    out: list[Path] = []
    for folder in folders:
        resolved = Path(folder.strip()).expanduser().resolve()
        if resolved not in out:
            out.append(resolved)
    return tuple(out)


class FolderNotAllowed(ValueError):
    """A folder outside the checkpoint roots (the message is fit to show a visitor)."""


def allowed_folder(folder: str | os.PathLike, roots: Sequence[Path] | None = None) -> Path:
    """``folder`` resolved (symlinks, ``..``, ``~``), when it lies inside one of ``roots``.

    Args:
        folder: a folder a visitor typed.
        roots: the allowed folders (default :func:`checkpoint_roots`).

    Raises:
        FolderNotAllowed: the folder lies outside every root.
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path, got {type(folder).__name__}")
    resolved = Path(folder).expanduser().resolve()
    roots = checkpoint_roots() if roots is None else tuple(Path(r).resolve() for r in roots)
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise FolderNotAllowed(
            f"{str(folder)!r} is outside the folders this server lets you open; the operator "
            "names them with ARPVIZ_CHECKPOINT_ROOTS")
    return resolved


_ARCH_LABELS = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50",
                "resnet101": "ResNet-101", "resnext101_32x8d": "ResNeXt-101 32x8d"}


def imagenet_label(arch: str) -> str:
    """What the sidebar calls a converted torchvision network: "ImageNet ResNet-50 with ARP"."""
    return f"ImageNet {_ARCH_LABELS.get(arch, arch)} with ARP"


@dataclass(frozen=True)
class ImagenetOffer:
    """A torchvision ImageNet network the sidebar offers with ARP in Conv3 and Conv4.

    Attributes:
        arch: ``"resnet50"``, ...; label: :func:`imagenet_label`.
        weights: torchvision's file in the torch hub cache (where the download puts it when
            it is not there yet).
        target: where :func:`arpviz.convert.convert_cached` writes (or finds) its default
            conversion; it may not exist yet.
        ready: whether ``weights`` is in the torch cache (no download needed).
        entry: the weights a download fetches (URL, size, checksum prefix).
    """

    arch: str
    label: str
    weights: Path
    target: Path
    ready: bool = True
    entry: WeightsEntry | None = None

    @property
    def status(self) -> str:
        """``"ready"`` or ``"download 98 MB"``."""
        if self.ready or self.entry is None:
            return "ready"
        return f"download {self.entry.size_text}"

    @property
    def manual(self) -> str:
        """How to put the weights in place by hand (the URL and the torch cache path)."""
        if self.entry is None:
            return f"Put torchvision's {self.arch} weights at {self.weights}"
        return self.entry.manual()


def imagenet_offers(out_dir: str | os.PathLike | None = None, *,
                    downloadable: bool = False) -> list[ImagenetOffer]:
    """One :class:`ImagenetOffer` per architecture whose weights are in the torch cache, and
    with ``downloadable`` one for every other supported architecture too (``ready`` False,
    torchvision's default weights to download), converting into ``out_dir`` (default
    :func:`arpviz.convert.converted_cache_dir`) with the default settings."""
    folder = Path(out_dir) if out_dir is not None else converted_cache_dir()
    offers = []
    for arch in ARCHITECTURES:
        entry = download_entry(arch)
        cached = cached_weights(arch)
        if cached is None and not downloadable:
            continue
        weights = cached if cached is not None else entry.cache_path
        offers.append(ImagenetOffer(arch, imagenet_label(arch), weights,
                                    folder / converted_name(imagenet_config(arch), weights),
                                    ready=cached is not None, entry=entry))
    return offers


def downloads_offered() -> bool:
    """Whether the app may offer to download weights (env ``ARPVIZ_OFFLINE`` unset)."""
    return not offline()


def get_offer(offer: ImagenetOffer, progress: Progress | None = None) -> Path:
    """The offer's converted checkpoint: torchvision's weights downloaded first when they are
    not in the torch cache (the checksum verified), converted once, then reused.

    Raises:
        arpviz.weights.WeightsError: the download failed (``.message`` one line, ``.manual``
            the way by hand); nothing is left in the cache.
        FileNotFoundError, arpviz.convert.ConvertError: the weights cannot be converted.
    """
    if not isinstance(offer, ImagenetOffer):
        raise TypeError(f"offer must be an ImagenetOffer, got {type(offer).__name__}")
    return convert_cached(offer.arch, offer.target.parent, progress, download=True)


def find_checkpoints(folders: Iterable[str | os.PathLike | None]) -> list[Path]:
    """Every ``*.safetensors`` checkpoint in ``folders`` (not recursive), in folder order.

    Training-state files (``*.state.safetensors``) and missing folders are skipped; a file
    found twice is listed once.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for folder in folders:
        if not folder:
            continue
        path = Path(folder).expanduser()
        if not path.is_dir():
            continue
        for file in sorted(path.glob("*.safetensors")):
            if file.name.endswith(".state.safetensors") or not file.is_file():
                continue
            resolved = file.resolve()
            if resolved not in seen:
                seen.add(resolved)
                found.append(file)
    return found


def default_checkpoint(paths: Sequence[Path]) -> Path | None:
    """``synthbirds_wide_msgn_arp.safetensors`` when listed, else the first path, else ``None``."""
    for path in paths:
        if path.name == BUNDLED_DEFAULT:
            return path
    return paths[0] if paths else None


# ----------------------------------------------------------------------------- model card


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


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class TrainingRecord:
    """What a checkpoint says about its training (no model).

    Attributes:
        name: a display name (the file's stem unless given).
        meta: the checkpoint's metadata (``meta.history`` is the per-epoch metrics).
        snapshots: one :class:`EpochSnapshot` per recorded epoch, in epoch order.
        probe_labels: ``[P]`` labels of the probe images, or ``None``.
        path: the file, or ``None`` for bytes.
    """

    name: str
    meta: CheckpointMeta
    snapshots: tuple[EpochSnapshot, ...]
    probe_labels: np.ndarray | None
    path: Path | None = None

    def __post_init__(self) -> None:
        _check_record(self)

    @property
    def epochs(self) -> tuple[int, ...]:
        """Epochs with a snapshot, ascending."""
        return tuple(s.epoch for s in self.snapshots)

    @property
    def has_history(self) -> bool:
        """Whether there is anything to plot (metrics or snapshots)."""
        return bool(self.meta.history) or bool(self.snapshots)

    @property
    def is_reid(self) -> bool:
        """Whether the run is re-ID training (history: test ``mAP``/``rank1``; probes: query
        images of test identities, which the classifier never saw)."""
        from arpviz.reid import is_reid

        return is_reid(self.meta.dataset)

    @property
    def conv4(self) -> str:
        """Conv4's downsampling of the local branch(es): stride, rp, arp or stn."""
        return self.meta.config.conv4

    @property
    def label(self) -> str:
        """A short description: name, backbone, branches, Conv3/Conv4 modes."""
        cfg = self.meta.config
        return (
            f"{self.name} ({cfg.backbone}, {cfg.local_branches} local, "
            f"Conv3 {cfg.conv3.upper()}, Conv4 {cfg.conv4.upper()}"
            f"{' bounded' if cfg.stn_bounded else ''})"
        )

    @property
    def probe_indices(self) -> tuple[int, ...]:
        """Indices of the probe images in the evaluation split."""
        return tuple(int(i) for i in self.meta.dataset.get("probe_indices", ()))

    @property
    def probe_count(self) -> int:
        """Probe images per snapshot (0 without snapshots)."""
        return int(self.snapshots[0].top5[0].shape[0]) if self.snapshots else 0

    def at(self, epoch: int) -> EpochSnapshot:
        """The snapshot of ``epoch``, or of the last epoch before it (the first if none)."""
        if not self.snapshots:
            raise ValueError(f"{self.name}: the checkpoint holds no epoch snapshots")
        best = self.snapshots[0]
        for snap in self.snapshots:
            if snap.epoch <= epoch:
                best = snap
        return best


def _check_record(record: TrainingRecord) -> None:
    """Raise :class:`CheckpointError` unless the history, probe indices and snapshots are
    well formed (numbers where numbers belong, one probe count, the documented shapes)."""
    name = record.name

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{name}: {what}")

    for i, row in enumerate(record.meta.history):
        if not isinstance(row, Mapping):
            raise bad(f"history row {i} is not an object")
        for key in ("epoch", *METRICS):
            value = row.get(key)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise bad(f"history row {i}: {key} is not a number ({value!r})")
        epoch = row.get("epoch", i + 1)  # absent: numbered by position, as the curves do
        if (isinstance(epoch, bool) or not isinstance(epoch, (int, float))
                or not math.isfinite(epoch)):
            raise bad(f"history row {i}: epoch must be a finite number, got {epoch!r}")
    indices = record.meta.dataset.get("probe_indices", ())
    if not isinstance(indices, (list, tuple)) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices):
        raise bad("dataset.probe_indices must be a list of ints >= 0")
    count = None
    widths = {"boxes": 4, "image_boxes": 4, "rates": 2}
    for snap in record.snapshots:
        indices_t, probs = snap.top5
        if indices_t.ndim != 2 or probs.shape != indices_t.shape:
            raise bad(f"snapshot {snap.epoch}: top-5 must be two [P, k] tensors")
        count = indices_t.shape[0] if count is None else count
        if indices_t.shape[0] != count:
            raise bad(f"snapshot {snap.epoch}: {indices_t.shape[0]} probes, earlier {count}")
        for stage, values in snap.stages.items():
            for field_name, width in widths.items():
                if tuple(values[field_name].shape) != (count, width):
                    raise bad(f"snapshot {snap.epoch}/{stage}: {field_name} must be "
                              f"[{count}, {width}], got {list(values[field_name].shape)}")
            conf = values["confidence"]
            if conf.ndim != 3 or conf.shape[0] != count or min(conf.shape) < 1:
                raise bad(f"snapshot {snap.epoch}/{stage}: confidence must be [{count}, h, w]")
    labels = record.probe_labels
    if labels is not None and count is not None and tuple(labels.shape) != (count,):
        raise bad(f"probe.labels must be [{count}], got {list(labels.shape)}")




def load_record(source: str | os.PathLike | bytes, name: str | None = None) -> TrainingRecord:
    """Read a checkpoint's metadata and epoch snapshots without building its model.

    Args:
        source: a ``.safetensors`` path, or the file's bytes.
        name: display name (default: the file's stem, or ``"upload"``).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a valid arpviz checkpoint (a ``ValueError``).
    """
    read = read_snapshots(source)
    label = name or (read.path.stem if read.path is not None else "upload")
    labels = read.probe_labels
    probe_labels = labels.numpy().astype(np.int64) if labels is not None else None
    logger.info("read %s: %d history rows, %d snapshots", label, len(read.meta.history),
                len(read.snapshots))
    return TrainingRecord(label, read.meta, read.snapshots, probe_labels, read.path)


def record_from_checkpoint(checkpoint: Checkpoint, name: str | None = None) -> TrainingRecord:
    """The :class:`TrainingRecord` of an already loaded checkpoint (shares its tensors)."""
    path = checkpoint.path
    labels = checkpoint.probe_labels
    return TrainingRecord(
        name or (path.stem if path is not None else "checkpoint"),
        checkpoint.meta,
        tuple(checkpoint.snapshots),
        labels.cpu().numpy().astype(np.int64) if labels is not None else None,
        path,
    )


def metric_columns(meta: CheckpointMeta) -> dict[str, list[float | None]]:
    """``meta.history`` as columns: ``epoch`` plus every key of :data:`METRICS` present."""
    rows = list(meta.history)
    out: dict[str, list[float | None]] = {"epoch": [float(r.get("epoch", i + 1))
                                                    for i, r in enumerate(rows)]}
    for key in METRICS:
        if any(key in r for r in rows):
            out[key] = [None if r.get(key) is None else float(r[key]) for r in rows]
    return out


def record_epochs(records: Sequence[TrainingRecord]) -> list[int]:
    """The epochs of ``records`` together (snapshots and history rows, numbered as
    :func:`metric_columns` numbers them), ascending; ``[1]`` when there are none."""
    epochs = {e for r in records for e in r.epochs}
    epochs |= {int(e) for r in records for e in metric_columns(r.meta)["epoch"]}
    return sorted(e for e in epochs if e > 0) or [1]


def stage_names(snapshot: EpochSnapshot) -> tuple[str, ...]:
    """The snapshot's pooled stages, Conv3 first, then Conv4 of each branch in name order."""
    names = list(snapshot.stages)
    return tuple(sorted(names, key=lambda n: (not n.startswith("conv3"), n)))


# ----------------------------------------------------------------------------- run choice


def comparison_pairs(
    records: Sequence[TrainingRecord],
) -> list[tuple[TrainingRecord, TrainingRecord]]:
    """Pairs ``(ARP run, STN run)`` of MSGN runs with snapshots that share their probe images."""
    usable = [r for r in records if r.snapshots and r.meta.config.local_branches > 0]
    arp = [r for r in usable if r.conv4 == "arp"]
    stn = [r for r in usable if r.conv4 == "stn"]
    pairs = []
    for a in arp:
        for s in stn:
            if _same_probes(a, s):
                pairs.append((a, s))
    return pairs


def _same_probes(a: TrainingRecord, b: TrainingRecord) -> bool:
    da, db = dict(a.meta.dataset), dict(b.meta.dataset)
    return (
        a.meta.input_size == b.meta.input_size
        and da.get("name") == db.get("name")
        and da.get("config") == db.get("config")
        and da.get("eval_split", "val") == db.get("eval_split", "val")
        and a.probe_indices == b.probe_indices
        and bool(a.probe_indices)
    )


def unique_name(name: str, fallback: str, taken: Mapping[str, Any]) -> str:
    """``name``, else ``fallback``, else ``fallback`` with a number: not a key of ``taken``."""
    if name not in taken:
        return name
    candidate, number = fallback, 2
    while candidate in taken:
        candidate, number = f"{fallback} #{number}", number + 1
    return candidate


def discover_runs(
    paths: Iterable[Path],
    read: Callable[[Path], TrainingRecord] = load_record,
    upload: tuple[Checkpoint, str] | None = None,
) -> tuple[dict[str, TrainingRecord], list[str]]:
    """Every checkpoint with a training history, keyed by a unique name, and the skipped ones.

    Args:
        paths: checkpoint files (see :func:`find_checkpoints`).
        read: reads one file's record (a page passes its cached :func:`load_record`).
        upload: an uploaded checkpoint and its label, listed after the files.

    Returns:
        ``({name: record}, ["file: why it was skipped", ...])``.
    """
    records: dict[str, TrainingRecord] = {}
    skipped: list[str] = []

    def add(record: TrainingRecord, fallback: str) -> None:
        name = unique_name(record.name, fallback, records)
        records[name] = record if name == record.name else replace(record, name=name)

    for path in paths:
        try:
            record = read(path)
        except (CheckpointError, OSError) as exc:
            skipped.append(f"{path.name}: {exc}")
            continue
        if not record.has_history:
            skipped.append(f"{path.name}: no training history")
            continue
        add(record, f"{record.name} ({path.parent})")
    if upload is not None:
        checkpoint, label = upload
        try:
            record = record_from_checkpoint(checkpoint, label)
        except CheckpointError as exc:
            skipped.append(f"{label}: {exc}")
        else:
            if record.has_history:
                add(record, f"{record.name} (upload)")
    return records, skipped


def default_runs(
    records: Mapping[str, TrainingRecord], current: Path | str | None = None
) -> list[str]:
    """The runs a page shows first: ``current`` (a checkpoint path, or an upload's label) when
    it has a history, else the bundled default, else the first; with its ARP or STN
    counterpart when there is one (the comparison then shows at once)."""
    if not records:
        raise ValueError("records must not be empty")
    first = _first_run(records, current)
    for arp, stn in comparison_pairs(list(records.values())):
        if first in (arp.name, stn.name):
            return [arp.name, stn.name]
    return [first]


def _first_run(records: Mapping[str, TrainingRecord], current: Path | str | None) -> str:
    if isinstance(current, Path):
        for name, record in records.items():
            if record.path is not None and Path(record.path).resolve() == current.resolve():
                return name
    elif isinstance(current, str) and current in records and records[current].path is None:
        return current
    for name, record in records.items():
        if record.path is not None and Path(record.path).name == BUNDLED_DEFAULT:
            return name
    return next(iter(records))
