"""Does ARP adapt? Rates against the object, crop precision, placement, k curves and contrast.

``python -m arpviz.analysis CKPT --split test [--limit N] [--tau T] --out FILE.json`` runs a
checkpoint over a split and measures, for every pooled stage (RP, ARP or STN; keys as in
:class:`arpviz.models.MSGNExplanation`, e.g. ``"conv3"``, ``"conv4.local0"``):

- ``rate``: the downsampling rate actually used, per axis (``h``, ``w``): mean, SD, min, max;
- ``rate_vs_object`` (ground truth only): Pearson and Spearman correlation, with seeded
  bootstrap 95% intervals, of the rate with the object's ``height`` (rate_h) and ``width``
  (rate_w) and with the ``keypoint_spread`` of the parts (SD of the keypoints' y for rate_h,
  x for rate_w). Object sizes are measured *as a share of the stage's frame* (the image region
  the stage's input map spans: the whole image for Conv3 and for Conv4 after a strided Conv3,
  Conv3's crop otherwise), which is what a rate that follows the object would equal;
- ``crop_precision`` (share of the crop's area on the object box) and ``keypoint_recall``
  (share of the parts' keypoints inside the crop), ground truth only;
- ``placement``: top-1 (%) with the stage's boxes as chosen (key ``arp``, whatever the stage's
  mode), replaced by a same-size box centred in the stage's input map (``centred``), by
  same-size boxes at seeded uniform random places (``random``, mean over ``n_random`` draws)
  and by the same-size window of *least* confidence (``least_confident``, Eq. 4 on ``1 - C``);
  everything after the stage runs on the forced crop (:meth:`arpviz.models.MSGN.explain` with
  ``boxes``). ``placement_keypoint_recall`` gives the parts inside each of these boxes;
- ``k_curve`` (ARP stages): top-1 and the mean rates against ``k`` over the split (the paper's
  Figure 6 at data-set level), other stages unchanged;
- ``confidence``: the keypoint confidence map's range and, with ground truth, its mean over the
  cells on the object box and off it, and their difference (``contrast``), per image;
- ``floor_free`` (a diagnostic, **not** the paper's operator): Eq. 9's rate computed from the
  same map with its floor removed, ``relu(C - median(C))`` per image (k of the stage, 1 for
  RP/STN; not bounded below by dsr; no network pass), and its correlation with the object
  (ground truth only): whether the map's shape above its floor could follow the object at all.

What needs ground truth (SynthBirds renders it) is ``None`` (JSON ``null``) on other data.
``tau`` (beyond the paper; 1 is the paper) analyses the checkpoint with every RP/ARP stage's
confidence at that temperature. :func:`analyse` returns an :class:`AdaptivityReport` (a
dataclass with :meth:`~AdaptivityReport.to_dict`); :func:`analyse_cached` caches it as JSON per
(checkpoint digest, split, limit, tau, settings). See ``docs/adaptivity.md``.

For a re-ID checkpoint, :func:`reid_k_curve` gives the k curve of retrieval instead: mAP and
rank-1 against one ARP stage's k over the test query/gallery (a :class:`ReIDKCurve`).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from arpviz import checkpoint as ckpt
from arpviz.datasources import build
from arpviz.evaluate import GroundTruthBatch, ground_truth_batches
from arpviz.faithfulness import centre_boxes, faithfulness_over_loader, random_boxes
from arpviz.models import MSGN, StageOverride
from arpviz.pooling import adaptive_rates, select_boxes
from arpviz.validation import check_k, check_tau, dataclass_fields_of

__all__ = [
    "DEFAULT_K_VALUES",
    "AdaptivityReport",
    "ReIDKCurve",
    "StageAnalysis",
    "analyse",
    "analyse_cached",
    "cache_key",
    "checkpoint_digest",
    "correlation",
    "format_table",
    "main",
    "reid_k_curve",
    "stats",
]

logger = logging.getLogger(__name__)

#: The k values of the k curve.
DEFAULT_K_VALUES: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9, 1.0, 1.2, 1.5)
_POOLED_BY_RULE = ("rp", "arp")
Progress = Callable[[float, str], None]


# ----------------------------------------------------------------------------- statistics


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def stats(values: np.ndarray) -> dict[str, float | None]:
    """``{"mean", "sd", "min", "max", "n"}`` of the finite ``values`` (SD with ``ddof=1``)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {"mean": float(values.mean()), "sd": sd, "min": float(values.min()),
            "max": float(values.max()), "n": int(values.size)}


def _rank(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as ``scipy.stats.rankdata``)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    edges = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1], True])
    average = (edges[:-1] + edges[1:] - 1) / 2.0 + 1.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(average, np.diff(edges))
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    denom = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum()) / denom if denom > 0 else math.nan


def correlation(
    x: np.ndarray, y: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Pearson and Spearman correlation of paired samples with bootstrap 95% intervals.

    Pairs with a non-finite value are dropped. The intervals are the 2.5 and 97.5 percentiles
    over ``n_boot`` resamples of the pairs (seeded); a constant sample gives ``None``.

    Returns:
        ``{"n", "pearson", "spearman", "ci95": {"pearson": [lo, hi], "spearman": [lo, hi]}}``.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    out: dict[str, Any] = {"n": n, "pearson": None, "spearman": None,
                           "ci95": {"pearson": None, "spearman": None}}
    if n < 3:
        return out
    out["pearson"] = _finite(_pearson(x, y))
    out["spearman"] = _finite(_pearson(_rank(x), _rank(y)))
    if n_boot > 0 and out["pearson"] is not None:
        rng = np.random.default_rng(seed)
        boot = np.empty((n_boot, 2))
        for b in range(n_boot):
            idx = rng.integers(0, n, n)
            bx, by = x[idx], y[idx]
            boot[b] = (_pearson(bx, by), _pearson(_rank(bx), _rank(by)))
        for j, name in enumerate(("pearson", "spearman")):
            column = boot[:, j][np.isfinite(boot[:, j])]
            if column.size:
                lo, hi = np.percentile(column, [2.5, 97.5])
                out["ci95"][name] = [float(lo), float(hi)]
    return out


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class StageAnalysis:
    """What :func:`analyse` measured for one pooled stage (JSON-ready values; module docs).

    Attributes:
        stage: the stage name, e.g. ``"conv4.local0"``.
        mode: ``"rp"``, ``"arp"`` or ``"stn"``.
        k: ARP's k (else ``None``).
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
        return _json_ready(dataclasses.asdict(self))

    def to_json(self) -> str:
        """Indented JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdaptivityReport:
        """Inverse of :meth:`to_dict`."""
        values = dataclass_fields_of(data, cls)
        values["stages"] = {name: StageAnalysis(**stage)
                            for name, stage in dict(values.get("stages", {})).items()}
        return cls(**values)


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return _finite(float(value))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# ----------------------------------------------------------------------------- geometry


def _inside_share(lo: np.ndarray, hi: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Length of ``[lo, hi] & [a, b]`` over ``b - a`` (per row)."""
    return np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0, None) / np.maximum(b - a, 1e-12)


def _box_precision(crops: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Share of each crop's area ``[B, 4]`` that lies on the object box ``[B, 4]``."""
    w = np.clip(np.minimum(crops[:, 2], objects[:, 2]) - np.maximum(crops[:, 0], objects[:, 0]),
                0, None)
    h = np.clip(np.minimum(crops[:, 3], objects[:, 3]) - np.maximum(crops[:, 1], objects[:, 1]),
                0, None)
    area = (crops[:, 2] - crops[:, 0]) * (crops[:, 3] - crops[:, 1])
    return w * h / np.maximum(area, 1e-12)


def _recall(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Share of each image's keypoints ``[B, P, 2]`` inside its box ``[B, 4]``."""
    x, y = points[..., 0], points[..., 1]
    inside = ((x >= boxes[:, None, 0]) & (x <= boxes[:, None, 2])
              & (y >= boxes[:, None, 1]) & (y <= boxes[:, None, 3]))
    return inside.mean(axis=1)


def _to_map(boxes: np.ndarray, frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Image-pixel boxes ``[B, 4]`` in the coordinates of a map of ``size`` spanning ``frame``."""
    height, width = size
    sx = width / np.maximum(frame[:, 2] - frame[:, 0], 1e-12)
    sy = height / np.maximum(frame[:, 3] - frame[:, 1], 1e-12)
    return np.stack([(boxes[:, 0] - frame[:, 0]) * sx, (boxes[:, 1] - frame[:, 1]) * sy,
                     (boxes[:, 2] - frame[:, 0]) * sx, (boxes[:, 3] - frame[:, 1]) * sy], axis=1)


def _contrast(confidence: np.ndarray, objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean confidence ``[B, H, W]`` over cells whose centre is on / off the object box
    (``[B, 4]`` in map coordinates); NaN where either set is empty."""
    _, height, width = confidence.shape
    ys = np.arange(height) + 0.5
    xs = np.arange(width) + 0.5
    in_x = (xs[None, :] >= objects[:, 0:1]) & (xs[None, :] < objects[:, 2:3])  # [B, W]
    in_y = (ys[None, :] >= objects[:, 1:2]) & (ys[None, :] < objects[:, 3:4])  # [B, H]
    mask = in_y[:, :, None] & in_x[:, None, :]
    on = mask.sum(axis=(1, 2))
    off = mask[0].size - on
    total = confidence.sum(axis=(1, 2))
    on_sum = (confidence * mask).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        obj = np.where(on > 0, on_sum / np.maximum(on, 1), np.nan)
        bg = np.where(off > 0, (total - on_sum) / np.maximum(off, 1), np.nan)
    return obj, bg


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class _Batch:
    indices: np.ndarray
    images: Tensor
    labels: Tensor
    truth: GroundTruthBatch | None


def _batches(
    checkpoint: ckpt.Checkpoint, split: str, limit: int | None, batch_size: int
) -> tuple[Iterator[_Batch], int, bool]:
    """The split's batches (with ground truth on SynthBirds), their image count, and whether
    ground truth exists."""
    meta = checkpoint.meta
    if meta.dataset.get("name") == "synthbirds":
        sources = build(meta.dataset, meta.input_size, eval_split=split)
        total = len(sources.val) if limit is None else min(limit, len(sources.val))
        gen = (_Batch(b.indices, b.images, b.labels, b)
               for b in ground_truth_batches(meta, split, limit, batch_size))
        return gen, total, True
    sources = build(meta.dataset, meta.input_size, eval_split=split)
    data = sources.val if limit is None else Subset(sources.val, range(min(limit,
                                                                          len(sources.val))))

    def plain() -> Iterator[_Batch]:
        start = 0
        for images, labels in DataLoader(data, batch_size=batch_size):
            indices = np.arange(start, start + len(labels))
            start += len(labels)
            yield _Batch(indices, images, labels, None)

    return plain(), len(data), False


# ----------------------------------------------------------------------------- the analysis


class _StageAccumulator:
    """Per-image arrays of one stage, collected batch by batch."""

    def __init__(self, stage: str, mode: str, k: float | None, k_values: Sequence[float],
                 n_random: int):
        self.stage, self.mode, self.k, self.n_random = stage, mode, k, n_random
        self.columns: dict[str, list[np.ndarray]] = {}
        self.placement_correct: dict[str, int] = {}
        self.placement_recall: dict[str, list[np.ndarray]] = {}
        self.k_values = tuple(k_values) if mode == "arp" else ()
        self.k_correct = [0] * len(self.k_values)
        self.k_rates: list[list[np.ndarray]] = [[] for _ in self.k_values]
        self.conf_min = math.inf
        self.conf_max = -math.inf

    def add(self, name: str, values: np.ndarray) -> None:
        self.columns.setdefault(name, []).append(np.asarray(values, dtype=np.float64))

    def column(self, name: str) -> np.ndarray:
        parts = self.columns.get(name)
        return np.concatenate(parts) if parts else np.zeros(0)


def _check_limit(limit: object) -> int | None:
    if limit is None:
        return None
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be an int >= 1 or None, got {limit!r}")
    return limit


def _tau_overrides(model: MSGN, tau: float) -> dict[str, StageOverride]:
    if tau == model.config.tau:
        return {}
    return {name: StageOverride(tau=tau) for name, s in model.stage_settings().items()
            if s.mode in _POOLED_BY_RULE}


def _frame(explanation: Any, stage: str, batch: int, size: tuple[int, int]) -> Tensor:
    """The image region ``[B, 4]`` a stage's input map spans."""
    if stage != "conv3" and "conv3" in explanation.image_boxes:
        return explanation.image_boxes["conv3"].float()
    height, width = size
    return torch.tensor([0.0, 0.0, float(width), float(height)]).expand(batch, 4)


@torch.no_grad()
def analyse(
    checkpoint: ckpt.Checkpoint | str | Path,
    split: str = "test",
    *,
    limit: int | None = None,
    tau: float = 1.0,
    device: str = "cpu",
    batch_size: int = 64,
    n_random: int = 3,
    k_values: Sequence[float] = DEFAULT_K_VALUES,
    seed: int = 0,
    n_boot: int = 1000,
    faithfulness: bool = False,
    progress: Progress | None = None,
    show_progress: bool = True,
) -> AdaptivityReport:
    """Measure how a checkpoint's pooled stages crop over a split (see the module docstring).

    Args:
        checkpoint: a loaded :class:`arpviz.checkpoint.Checkpoint` or a path to one.
        split: ``"val"`` or ``"test"`` (SynthBirds; CUB uses its test split).
        limit: analyse only the first ``limit`` images.
        tau: confidence temperature of every RP/ARP stage (beyond the paper; 1 is the paper).
        device: where the network runs.
        n_random: random same-size boxes per image in ``placement``.
        k_values: the k values of the k curve (ARP stages).
        seed: seed of the random boxes and of the bootstrap.
        n_boot: bootstrap resamples of the correlation intervals.
        faithfulness: also run :func:`arpviz.faithfulness.faithfulness_over_loader` on the
            first Conv4 pooled stage (slow: about 15 network passes per image).
        progress: called as ``progress(fraction_done, message)`` after every batch (for a
            Streamlit progress bar).
        show_progress: show a tqdm bar.

    Raises:
        ValueError: bad arguments, or a network without pooled stages.
    """
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    limit = _check_limit(limit)
    tau = check_tau(tau)
    if not isinstance(n_random, int) or isinstance(n_random, bool) or n_random < 1:
        raise ValueError(f"n_random must be an int >= 1, got {n_random!r}")
    k_values = tuple(check_k(k) for k in k_values)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {progress!r}")
    path = ""
    digest = ""
    if not isinstance(checkpoint, ckpt.Checkpoint):
        path = str(checkpoint)
        digest = checkpoint_digest(path)
        checkpoint = ckpt.load(path, device=device)
    model = checkpoint.model.to(device).eval()
    if not isinstance(model, MSGN):
        raise TypeError(f"the checkpoint's model must be an MSGN, got {type(model).__name__}")
    settings = model.stage_settings()
    pooled = [name for name, s in settings.items() if s.mode != "stride"]
    if not pooled:
        raise ValueError("this network pools nothing (every stage is strided): nothing to analyse")
    overrides = _tau_overrides(model, tau)
    settings = model.stage_settings(overrides)
    batches, total, has_truth = _batches(checkpoint, split, limit, batch_size)
    generator = torch.Generator().manual_seed(int(seed))
    accs = {name: _StageAccumulator(name, settings[name].mode, settings[name].k, k_values,
                                    n_random) for name in pooled}
    image_cols: dict[str, list[np.ndarray]] = {"index": [], "label": [], "pred": [],
                                               "object_height_px": [], "object_width_px": []}
    kept_images: list[Tensor] = []
    correct_total = count = 0
    bar = tqdm(total=total, desc=f"analysis {split}", unit="img", disable=not show_progress)
    try:
        for batch in batches:
            x = batch.images.to(device)
            labels = batch.labels.to(device)
            if faithfulness:
                kept_images.append(batch.images)
            cache = model.prepare(x, max_entries=4 + len(k_values))
            base = model.explain_from(cache, overrides)
            correct = base.logits.argmax(1) == labels
            correct_total += int(correct.sum())
            image_cols["index"].append(batch.indices)
            image_cols["label"].append(batch.labels.numpy())
            image_cols["pred"].append(base.logits.argmax(1).cpu().numpy())
            truth = batch.truth
            if truth is not None:
                image_cols["object_height_px"].append(truth.boxes[:, 3] - truth.boxes[:, 1])
                image_cols["object_width_px"].append(truth.boxes[:, 2] - truth.boxes[:, 0])
            for name in pooled:
                _analyse_stage(model, cache, base, name, accs[name], overrides, labels, truth,
                               n_random, generator)
            count += len(batch.indices)
            bar.update(len(batch.indices))
            if progress is not None:
                progress(min(count / max(total, 1), 1.0), f"{count} of {total} images")
    finally:
        bar.close()
    if count == 0:
        raise ValueError(f"the {split} split has no images")
    per_image: dict[str, Any] = {
        key: np.concatenate(parts).tolist() if parts else None
        for key, parts in image_cols.items()
    }
    per_image["correct"] = [p == t for p, t in zip(per_image["pred"], per_image["label"],
                                                   strict=True)]
    per_image["stages"] = {name: {col: np.round(acc.column(col), 5).tolist()  # for plots
                                  for col in acc.columns}
                           for name, acc in accs.items()}
    stages = {name: _summarise(acc, count, has_truth, seed, n_boot) for name, acc in accs.items()}
    obj = None
    if has_truth:
        heights = np.asarray(per_image["object_height_px"])
        widths = np.asarray(per_image["object_width_px"])
        size = checkpoint.meta.input_size
        obj = {"height": stats(heights), "width": stats(widths),
               "area_share": float(np.mean(np.clip(heights, 0, size) * np.clip(widths, 0, size))
                                   / (size * size))}
    faith = None
    if faithfulness:
        conv4 = [name for name in pooled if name.startswith("conv4.")]
        if conv4:
            faith = faithfulness_over_loader(model, kept_images, conv4[0], overrides=overrides,
                                             seed=seed, progress=show_progress,
                                             batch_size=batch_size)
    return AdaptivityReport(
        checkpoint=path, sha256=digest, split=split, limit=limit, count=count, tau=tau,
        top1=100.0 * correct_total / count, ground_truth=has_truth, object=obj, stages=stages,
        per_image=per_image, faithfulness=faith,
        settings={"n_random": n_random, "seed": seed, "k_values": list(k_values),
                  "n_boot": n_boot, "batch_size": batch_size},
    )


def _analyse_stage(
    model: MSGN, cache: Any, base: Any, name: str, acc: _StageAccumulator,
    overrides: Mapping[str, StageOverride], labels: Tensor, truth: GroundTruthBatch | None,
    n_random: int, generator: torch.Generator,
) -> None:
    """Add one batch's measurements of stage ``name`` to ``acc``."""
    result = base.stages[name]
    batch = labels.shape[0]
    map_size = base.map_sizes[name]
    rates = result.rates.float()
    acc.add("rate_h", rates[:, 0].cpu().numpy())
    acc.add("rate_w", rates[:, 1].cpu().numpy())
    confidence = result.confidence.float()
    acc.conf_min = min(acc.conf_min, float(confidence.min()))
    acc.conf_max = max(acc.conf_max, float(confidence.max()))
    acc.add("conf_max", confidence.flatten(1).max(1).values.cpu().numpy())
    floor = confidence.flatten(1).median(dim=1).values[:, None, None]
    # no dsr bound below (1e-3): the diagnostic asks what the map's shape says, not the crop
    free = adaptive_rates((confidence - floor).clamp_min(0.0), (1e-3, 1e-3), acc.k or 1.0)
    acc.add("free_h", free[:, 0].cpu().numpy())
    acc.add("free_w", free[:, 1].cpu().numpy())

    # placement: the chosen boxes, a centred box, random boxes, the least confident window
    boxes = result.boxes.float()
    cfg = model.config
    least = select_boxes(1.0 - confidence, rates, kernel=cfg.kernel, sigma=cfg.sigma)
    alternatives: list[tuple[str, Tensor]] = [("centred", centre_boxes(boxes, map_size)),
                                              ("least_confident", least)]
    randoms = random_boxes(boxes, map_size, n_random, generator)
    alternatives += [("random", randoms[:, i]) for i in range(n_random)]
    acc.placement_correct["arp"] = acc.placement_correct.get("arp", 0) + int(
        (base.logits.argmax(1) == labels).sum())
    image_boxes: dict[str, list[np.ndarray]] = {"arp": [base.image_boxes[name].cpu().numpy()]}
    for key, forced in alternatives:
        explanation = model.explain_from(cache, overrides, boxes={name: forced})
        hit = int((explanation.logits.argmax(1) == labels).sum())
        acc.placement_correct[key] = acc.placement_correct.get(key, 0) + hit
        image_boxes.setdefault(key, []).append(explanation.image_boxes[name].cpu().numpy())

    # k curve (ARP stages): this stage's k changed, everything else as analysed
    for i, k in enumerate(acc.k_values):
        changed = dict(overrides)
        changed[name] = dataclasses.replace(overrides.get(name, StageOverride()), k=k)
        explanation = model.explain_from(cache, changed)
        acc.k_correct[i] += int((explanation.logits.argmax(1) == labels).sum())
        acc.k_rates[i].append(explanation.stages[name].rates.float().cpu().numpy())

    if truth is None:
        return
    frame = _frame(base, name, batch, base.image_size).cpu().numpy().astype(np.float64)
    objects = truth.boxes
    points = truth.keypoints
    fh = frame[:, 3] - frame[:, 1]
    fw = frame[:, 2] - frame[:, 0]
    acc.add("object_h", _inside_share(objects[:, 1], objects[:, 3], frame[:, 1], frame[:, 3]))
    acc.add("object_w", _inside_share(objects[:, 0], objects[:, 2], frame[:, 0], frame[:, 2]))
    acc.add("spread_h", points[..., 1].std(axis=1) / fh)
    acc.add("spread_w", points[..., 0].std(axis=1) / fw)
    chosen = image_boxes["arp"][0]
    acc.add("precision", _box_precision(chosen, objects))
    acc.add("recall", _recall(chosen, points))
    for key, parts in image_boxes.items():
        recall = np.mean([_recall(b, points) for b in parts], axis=0)
        acc.placement_recall.setdefault(key, []).append(recall)
    obj, bg = _contrast(confidence.cpu().numpy(), _to_map(objects, frame, map_size))
    acc.add("object_conf", obj)
    acc.add("background_conf", bg)
    acc.add("contrast", obj - bg)


def _summarise(
    acc: _StageAccumulator, count: int, has_truth: bool, seed: int, n_boot: int
) -> StageAnalysis:
    rate_h, rate_w = acc.column("rate_h"), acc.column("rate_w")
    placement: dict[str, Any] = {
        key: 100.0 * hits / (count * (acc.n_random if key == "random" else 1))
        for key, hits in acc.placement_correct.items()}
    placement["n_random"] = acc.n_random
    rate_vs_object = recall_by_placement = None
    precision = recall = None
    contrast: dict[str, Any] = {"min": acc.conf_min, "max": acc.conf_max, "object": None,
                                "background": None, "contrast": None}
    if has_truth:
        def corr(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
            return correlation(a, b, n_boot=n_boot, seed=seed)

        rate_vs_object = {
            "height": corr(rate_h, acc.column("object_h")),
            "width": corr(rate_w, acc.column("object_w")),
            "keypoint_spread": {"h": corr(rate_h, acc.column("spread_h")),
                                "w": corr(rate_w, acc.column("spread_w"))},
        }
        precision = float(np.mean(acc.column("precision")))
        recall = float(np.mean(acc.column("recall")))
        recall_by_placement = {key: float(np.mean(np.concatenate(parts)))
                               for key, parts in acc.placement_recall.items()}
        contrast.update(object=stats(acc.column("object_conf")),
                        background=stats(acc.column("background_conf")),
                        contrast=stats(acc.column("contrast")))
    free_h, free_w = acc.column("free_h"), acc.column("free_w")
    floor_free = {"k": acc.k or 1.0, "rate": {"h": stats(free_h), "w": stats(free_w)},
                  "rate_vs_object": None}
    if has_truth:
        floor_free["rate_vs_object"] = {
            "height": correlation(free_h, acc.column("object_h"), n_boot=n_boot, seed=seed),
            "width": correlation(free_w, acc.column("object_w"), n_boot=n_boot, seed=seed)}
    k_curve = None
    if acc.k_values:
        k_rates = [np.concatenate(parts) for parts in acc.k_rates]
        k_curve = {"k": list(acc.k_values),
                   "top1": [100.0 * c / count for c in acc.k_correct],
                   "rate_h": [float(r[:, 0].mean()) for r in k_rates],
                   "rate_w": [float(r[:, 1].mean()) for r in k_rates]}
    return StageAnalysis(
        stage=acc.stage, mode=acc.mode, k=acc.k,
        rate={"h": stats(rate_h), "w": stats(rate_w)},
        rate_vs_object=rate_vs_object, crop_precision=precision, keypoint_recall=recall,
        placement=placement, placement_keypoint_recall=recall_by_placement,
        k_curve=k_curve, confidence=contrast, floor_free=floor_free,
    )


# ----------------------------------------------------------------------------- caching


def checkpoint_digest(path: str | Path) -> str:
    """SHA-256 hex digest of a checkpoint file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(
    digest: str, split: str, limit: int | None, tau: float, **settings: Any
) -> str:
    """A file-name-safe key of (checkpoint digest, split, limit, tau) and any other settings."""
    extra = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    return (f"{digest[:16]}_{split}_{'all' if limit is None else limit}_tau{float(tau):g}_"
            f"{extra.hexdigest()[:8]}")


def analyse_cached(
    path: str | Path, split: str = "test", *, cache_dir: str | Path, limit: int | None = None,
    tau: float = 1.0, **kwargs: Any,
) -> AdaptivityReport:
    """:func:`analyse` a checkpoint file, reading/writing ``cache_dir/<cache_key>.json``.

    The key is the file's digest, split, limit, tau and the other keyword arguments except
    ``device``, ``progress`` and ``show_progress``; a cached report is returned as is.
    """
    digest = checkpoint_digest(path)
    settings = {k: v for k, v in kwargs.items()
                if k not in ("device", "progress", "show_progress")}
    cache_file = Path(cache_dir) / f"{cache_key(digest, split, limit, tau, **settings)}.json"
    if cache_file.is_file():
        logger.info("analysis read from %s", cache_file)
        return AdaptivityReport.from_dict(json.loads(cache_file.read_text()))
    report = analyse(path, split, limit=limit, tau=tau, **kwargs)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(cache_file.name + ".tmp")
    tmp.write_text(report.to_json())
    tmp.replace(cache_file)  # atomic: concurrent readers never see half a file
    return report


# ----------------------------------------------------------------------------- re-ID k curve


@dataclass(frozen=True)
class ReIDKCurve:
    """mAP and rank-1 (%) of a re-ID checkpoint against one ARP stage's ``k`` over its test
    query/gallery split (other stages unchanged): Figure 6 of the paper, for retrieval.

    ``k``, ``mAP`` and ``rank1`` are parallel tuples; ``trained_k`` is the stage's own k;
    ``queries`` the scored queries and ``gallery`` the gallery size; ``sha256`` the checkpoint
    file's digest (``""`` for a checkpoint held in memory).
    """

    stage: str
    k: tuple[float, ...]
    mAP: tuple[float, ...]  # noqa: N815 - the field name is the metric's
    rank1: tuple[float, ...]
    trained_k: float
    queries: int
    gallery: int
    sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists for the tuples)."""
        return _json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReIDKCurve:
        """The inverse of :meth:`to_dict`."""
        return cls(stage=str(data["stage"]), k=tuple(map(float, data["k"])),
                   mAP=tuple(map(float, data["mAP"])), rank1=tuple(map(float, data["rank1"])),
                   trained_k=float(data["trained_k"]), queries=int(data["queries"]),
                   gallery=int(data["gallery"]), sha256=str(data.get("sha256", "")))


def reid_k_curve(
    checkpoint: ckpt.Checkpoint | str | Path,
    stage: str,
    k_values: Sequence[float] = DEFAULT_K_VALUES,
    *,
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    progress: Progress | None = None,
    show_progress: bool = False,
) -> ReIDKCurve:
    """mAP and rank-1 of a re-ID checkpoint with ARP stage ``stage`` at each of ``k_values``
    (:func:`arpviz.retrieval.retrieval_metrics` with a :class:`StageOverride` per k) over the
    checkpoint's test query/gallery (:func:`arpviz.retrieval.load_retrieval_sets`).

    A checkpoint file with ``cache_dir`` is cached as ``cache_dir/reidk_<key>.json`` per
    (file digest, stage, k values). ``progress(fraction_done, message)`` is called after each k.

    Raises:
        ValueError: not a re-ID checkpoint, ``stage`` not an ARP stage, bad k values.
    """
    from arpviz.retrieval import load_retrieval_sets, retrieval_metrics

    k_values = tuple(check_k(k) for k in k_values)
    if not k_values:
        raise ValueError("k_values must hold at least one k")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {progress!r}")
    digest = cache_file = None
    if not isinstance(checkpoint, ckpt.Checkpoint):
        digest = checkpoint_digest(checkpoint)
        if cache_dir is not None:
            key = cache_key(digest, "reid-test", None, 1.0, stage=stage, k_values=k_values)
            cache_file = Path(cache_dir) / f"reidk_{key}.json"
            if cache_file.is_file():
                logger.info("re-ID k curve read from %s", cache_file)
                return ReIDKCurve.from_dict(json.loads(cache_file.read_text()))
        checkpoint = ckpt.load(checkpoint, device=device)
    model = checkpoint.model.to(device).eval()
    if not isinstance(model, MSGN):
        raise TypeError(f"the checkpoint's model must be an MSGN, got {type(model).__name__}")
    settings = model.stage_settings()
    arp = [name for name, s in settings.items() if s.mode == "arp"]
    if stage not in arp:
        raise ValueError(f"stage must be one of the ARP stages {arp}, got {stage!r}")
    sets = load_retrieval_sets(checkpoint)  # raises ValueError for a non-re-ID checkpoint
    maps, rank1s, metrics = [], [], None
    for i, k in enumerate(tqdm(k_values, desc=f"re-ID k curve {stage}", unit="k",
                               disable=not show_progress)):
        metrics = retrieval_metrics(model, sets.query, sets.gallery, batch_size=batch_size,
                                    device=device, overrides={stage: StageOverride(k=k)},
                                    progress=False)
        maps.append(metrics.mAP)
        rank1s.append(metrics.rank1)
        if progress is not None:
            progress((i + 1) / len(k_values), f"k = {k:g}: mAP {metrics.mAP:.1f}%")
    curve = ReIDKCurve(stage=stage, k=k_values, mAP=tuple(maps), rank1=tuple(rank1s),
                       trained_k=float(settings[stage].k), queries=metrics.queries,
                       gallery=metrics.gallery, sha256=digest or "")
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(cache_file.name + ".tmp")
        tmp.write_text(json.dumps(curve.to_dict()))
        tmp.replace(cache_file)  # atomic, as in analyse_cached
    return curve


# ----------------------------------------------------------------------------- CLI


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _fmt_corr(corr: Mapping[str, Any] | None) -> str:
    if corr is None or corr.get("spearman") is None:
        return "-"
    ci = corr["ci95"]["spearman"]
    return f"{corr['spearman']:+.2f} [{ci[0]:+.2f},{ci[1]:+.2f}]" if ci else \
        f"{corr['spearman']:+.2f}"


def format_table(report: AdaptivityReport) -> str:
    """A plain-text table of the report's main figures."""
    lines = [f"{report.checkpoint or '(checkpoint)'}  {report.split}  {report.count} images  "
             f"tau {report.tau:g}  top-1 {report.top1:.1f}%"]
    header = (f"{'stage':<14}{'mode':<5}{'rate_h mean+-sd [min,max]':<31}"
              f"{'rho(rate_h,height)':<22}{'rho(rate_h,spread)':<22}{'prec':>6}{'recall':>7}"
              f"{'arp':>7}{'centre':>7}{'random':>7}{'least':>7}{'contrast':>9}")
    lines.append(header)
    for name, st in report.stages.items():
        r = st.rate["h"]
        rate = (f"{_fmt(r['mean'])}+-{_fmt(r['sd'], '.4f')} "
                f"[{_fmt(r['min'])},{_fmt(r['max'])}]")
        rvo = st.rate_vs_object or {}
        spread = (rvo.get("keypoint_spread") or {}).get("h")
        p = st.placement
        contrast = (st.confidence.get("contrast") or {}).get("mean")
        pct = (lambda v: "-" if v is None else f"{100 * v:.1f}")  # noqa: E731
        lines.append(
            f"{name:<14}{st.mode:<5}{rate:<31}{_fmt_corr(rvo.get('height')):<22}"
            f"{_fmt_corr(spread):<22}{pct(st.crop_precision):>6}{pct(st.keypoint_recall):>7}"
            f"{p['arp']:>7.1f}{p['centred']:>7.1f}{p['random']:>7.1f}"
            f"{p['least_confident']:>7.1f}{_fmt(contrast):>9}")
        free = st.floor_free
        if free and free["rate_vs_object"]:
            r = free["rate"]["h"]
            lines.append(f"{'':<14}floor-free rate_h {_fmt(r['mean'])}+-{_fmt(r['sd'], '.4f')}"
                         f"  rho(height) {_fmt_corr(free['rate_vs_object']['height'])}"
                         f"  rho(width) {_fmt_corr(free['rate_vs_object']['width'])}")
        if st.k_curve:
            pairs = ", ".join(f"{k:g}: {t:.1f}" for k, t in zip(st.k_curve["k"],
                                                               st.k_curve["top1"], strict=True))
            lines.append(f"{'':<14}k curve (top-1 %) {pairs}")
    return "\n".join(lines)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown in every flag's help; the description kept as written."""


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: analyse a checkpoint, print a table, write JSON."""
    parser = argparse.ArgumentParser(prog="python -m arpviz.analysis", description=__doc__,
                                     formatter_class=_Formatter)
    parser.add_argument("checkpoint", help="a .safetensors checkpoint")
    parser.add_argument("--split", default="test", choices=["val", "test"], help="data split")
    parser.add_argument("--limit", type=int, default=None, help="analyse the first N images")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--tau", type=float, default=1.0,
                        help="confidence temperature of RP/ARP stages (beyond the paper; "
                        "1 = the paper)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch")
    parser.add_argument("--n-random", type=int, default=3,
                        help="random same-size boxes per image (placement)")
    parser.add_argument("--k-values", type=float, nargs="+", default=list(DEFAULT_K_VALUES),
                        help="k values of the k curve")
    parser.add_argument("--seed", type=int, default=0, help="seed of random boxes and bootstrap")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--faithfulness", action="store_true",
                        help="also run arpviz.faithfulness on the first Conv4 pooled stage")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--out", default=None, help="write the report as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    try:
        report = analyse(args.checkpoint, args.split, limit=args.limit, tau=args.tau,
                         device=args.device, batch_size=args.batch_size, n_random=args.n_random,
                         k_values=args.k_values, seed=args.seed, n_boot=args.n_boot,
                         faithfulness=args.faithfulness, show_progress=not args.no_progress)
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError, RuntimeError) as exc:
        print(f"python -m arpviz.analysis: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(report))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.to_json() + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
