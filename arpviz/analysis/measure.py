"""The measurements of :func:`analyse` (see :mod:`arpviz.analysis`): one pass over a split,
per pooled stage, with forced boxes for the placement and overrides for the k curve."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from arpviz import checkpoint as ckpt
from arpviz.analysis.geometry import (
    box_precision,
    inside_share,
    keypoints_inside,
    on_off_means,
    to_map,
)
from arpviz.analysis.report import AdaptivityReport, StageAnalysis
from arpviz.analysis.statistics import correlation, stats
from arpviz.datasources import build
from arpviz.evaluate import GroundTruthBatch, ground_truth_batches
from arpviz.faithfulness import centre_boxes, faithfulness_over_loader, random_boxes
from arpviz.foreground import FG_K, foreground_region_pool
from arpviz.models import ADAPTIVE_MODES, MSGN, POOLED_MODES, StageOverride, mask_on_map
from arpviz.models.stages import PAPER_K, StageSettings
from arpviz.pooling import adaptive_rates, adaptive_region_pool, select_boxes
from arpviz.validation import check_count, check_k, check_tau

__all__ = ["DEFAULT_K_VALUES", "IDEAL_MODES", "Progress", "analyse", "ideal_k", "ideal_rates"]

logger = logging.getLogger(__name__)

#: The k values of the k curve.
DEFAULT_K_VALUES: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9, 1.0, 1.2, 1.5)
#: The rules of the ideal-map analysis: the paper's ARP and ARP-FG (beyond the paper).
IDEAL_MODES: tuple[str, ...] = ("arp", "arpfg")
#: ``progress(fraction_done, message)``, called after every batch (a Streamlit progress bar).
Progress = Callable[[float, str], None]


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


class _StageAccumulator:
    """Per-image arrays of one stage, collected batch by batch."""

    def __init__(self, stage: str, mode: str, k: float | None, k_values: Sequence[float],
                 n_random: int, ideal_k: Mapping[str, float] | None = None):
        self.stage, self.mode, self.k, self.n_random = stage, mode, k, n_random
        self.ideal_k = dict(ideal_k or {})
        self.columns: dict[str, list[np.ndarray]] = {}
        self.placement_correct: dict[str, int] = {}
        self.placement_recall: dict[str, list[np.ndarray]] = {}
        self.k_values = tuple(k_values) if mode in ADAPTIVE_MODES else ()
        self.k_correct = [0] * len(self.k_values)
        self.k_rates: list[list[np.ndarray]] = [[] for _ in self.k_values]
        self.conf_min = math.inf
        self.conf_max = -math.inf
        self.map_size: tuple[int, int] | None = None

    def add(self, name: str, values: np.ndarray) -> None:
        self.columns.setdefault(name, []).append(np.asarray(values, dtype=np.float64))

    def column(self, name: str) -> np.ndarray:
        parts = self.columns.get(name)
        return np.concatenate(parts) if parts else np.zeros(0)


def _tau_overrides(model: MSGN, tau: float) -> dict[str, StageOverride]:
    if tau == model.config.tau:
        return {}
    return {name: StageOverride(tau=tau) for name, s in model.stage_settings().items()
            if s.mode in POOLED_MODES}


def ideal_k(name: str, settings: StageSettings) -> dict[str, float]:
    """The ``k`` of each ideal rule for stage ``name``: the stage's own where it runs that
    rule (ARP, or a foreground mode for ARP-FG), else the paper's for ARP (Conv3 1.0, Conv4 0.7:
    :data:`arpviz.models.stages.PAPER_K`) and :data:`arpviz.foreground.FG_K` for ARP-FG."""
    own = settings.k
    foreground = settings.mode in ("arpfg", "arpfg_peak", "oracle")
    paper = PAPER_K["conv3" if name == "conv3" else "conv4"]
    return {"arp": own if settings.mode == "arp" and own is not None else paper,
            "arpfg": own if foreground and own is not None else FG_K}


def ideal_rates(
    mask_map: Tensor, settings: StageSettings, k: Mapping[str, float], min_rate: float,
    kernel: str, sigma: float,
) -> dict[str, Tensor]:
    """The rates ``[B, 2]`` each ideal rule (:data:`IDEAL_MODES`) picks when every channel of
    the stage's input is the object's mask on that map (``mask_map``: ``[B, h, w]``).

    A channel repeated any number of times standardises and averages to itself, so one channel
    stands for all of them."""
    x = mask_map[:, None].float()
    dsr = settings.dsr or (0.5, 0.5)
    return {
        "arp": adaptive_region_pool(x, dsr, k["arp"], kernel=kernel, sigma=sigma).rates,
        "arpfg": foreground_region_pool(x, dsr, k["arpfg"], min_rate=min_rate, kernel=kernel,
                                        sigma=sigma).rates,
    }


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
    ideal: bool = False,
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
        ideal: also measure, for every pooled stage, the rates the paper's ARP and ARP-FG pick
            when every channel of the stage's input is replaced by the object's ground-truth
            mask on that map (``StageAnalysis.ideal``; SynthBirds only).
        progress: called as ``progress(fraction_done, message)`` after every batch (for a
            Streamlit progress bar).
        show_progress: show a tqdm bar.

    Raises:
        ValueError: bad arguments, or a network without pooled stages.
    """
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    limit = check_count(limit, "limit", optional=True)
    tau = check_tau(tau)
    n_random = check_count(n_random, "n_random")
    k_values = tuple(check_k(k) for k in k_values)
    batch_size = check_count(batch_size, "batch_size")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {progress!r}")
    path = ""
    digest = ""
    if not isinstance(checkpoint, ckpt.Checkpoint):
        path = str(checkpoint)
        digest = ckpt.file_digest(path)
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
    if (ideal or model.needs_mask) and not has_truth:
        raise ValueError("ideal maps and oracle stages need the objects' masks, which only "
                         "SynthBirds renders")
    generator = torch.Generator().manual_seed(int(seed))
    accs = {name: _StageAccumulator(name, settings[name].mode, settings[name].k, k_values,
                                    n_random,
                                    ideal_k(name, settings[name]) if ideal else None)
            for name in pooled}
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
            truth = batch.truth
            mask = None if truth is None else truth.masks.to(device)
            cache = model.prepare(x, max_entries=4 + len(k_values), mask=mask)
            base = model.explain_from(cache, overrides)
            correct = base.logits.argmax(1) == labels
            correct_total += int(correct.sum())
            image_cols["index"].append(batch.indices)
            image_cols["label"].append(batch.labels.numpy())
            image_cols["pred"].append(base.logits.argmax(1).cpu().numpy())
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
    acc.map_size = (int(map_size[0]), int(map_size[1]))
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
    frame_t = _frame(base, name, batch, base.image_size)
    frame = frame_t.cpu().numpy().astype(np.float64)
    if acc.ideal_k:
        settings = base.settings[name]
        mask_map = mask_on_map(truth.masks.to(frame_t.device), frame_t, map_size)
        for rule, rates_ideal in ideal_rates(mask_map, settings, acc.ideal_k, cfg.min_rate,
                                             cfg.kernel, cfg.sigma).items():
            acc.add(f"ideal_{rule}_h", rates_ideal[:, 0].cpu().numpy())
            acc.add(f"ideal_{rule}_w", rates_ideal[:, 1].cpu().numpy())
    objects = truth.boxes
    points = truth.keypoints
    fh = frame[:, 3] - frame[:, 1]
    fw = frame[:, 2] - frame[:, 0]
    acc.add("object_h", inside_share(objects[:, 1], objects[:, 3], frame[:, 1], frame[:, 3]))
    acc.add("object_w", inside_share(objects[:, 0], objects[:, 2], frame[:, 0], frame[:, 2]))
    acc.add("spread_h", points[..., 1].std(axis=1) / fh)
    acc.add("spread_w", points[..., 0].std(axis=1) / fw)
    chosen = image_boxes["arp"][0]
    acc.add("precision", box_precision(chosen, objects))
    acc.add("recall", keypoints_inside(chosen, points))
    for key, parts in image_boxes.items():
        recall = np.mean([keypoints_inside(b, points) for b in parts], axis=0)
        acc.placement_recall.setdefault(key, []).append(recall)
    obj, bg = on_off_means(confidence.cpu().numpy(), to_map(objects, frame, map_size))
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
    ideal = None
    if acc.ideal_k and has_truth:
        ideal = {}
        for rule, k in acc.ideal_k.items():
            ih, iw = acc.column(f"ideal_{rule}_h"), acc.column(f"ideal_{rule}_w")
            ideal[rule] = {"k": k, "rate": {"h": stats(ih), "w": stats(iw)},
                           "rate_vs_object": {"height": corr(ih, acc.column("object_h")),
                                              "width": corr(iw, acc.column("object_w"))}}
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
        k_curve=k_curve, confidence=contrast, floor_free=floor_free, ideal=ideal,
        map_size=acc.map_size,
    )
