"""What the Adaptivity page shows: :mod:`arpviz.analysis` run, cached and read for plotting.

- :func:`unavailable_reason`: why a checkpoint cannot be analysed here (``None`` when it can);
- :func:`run_report`: :func:`arpviz.analysis.analyse_cached` for a checkpoint file (a JSON cache
  per checkpoint digest, split, limit and tau in :func:`analysis_cache_dir`), or
  :func:`arpviz.analysis.analyse` for a checkpoint held only in memory (an upload);
- :func:`precomputed_reports`: the committed ``logs/wide/*.analysis.json`` of the same checkpoint
  (the same SHA-256), shown as a labelled fallback;
- :func:`rate_points`, :func:`picked_index`, :func:`correlation_rows`, :func:`k_curves`: plain
  values for the figures (:mod:`arpviz.explorer.figures.adaptivity`);
- :func:`k_curve_candidates` (which checkpoint files have a top-1 or an mAP k curve) and
  :func:`reid_k_curves` (a re-ID checkpoint's mAP/rank-1 against k, cached per digest and k);
- :func:`verdict`: one plain sentence per stage, from the report's numbers, saying whether the
  rate follows the object.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arpviz.analysis import (
    DEFAULT_K_VALUES,
    AdaptivityReport,
    ReIDKCurve,
    StageAnalysis,
    analyse,
    analyse_cached,
    checkpoint_digest,
    reid_k_curve,
)
from arpviz.checkpoint import Checkpoint, CheckpointError, CheckpointMeta, read_meta
from arpviz.explorer.catalog import converted_cache_dir, trained_on_synthbirds
from arpviz.models import MSGNConfig
from arpviz.models.stages import mode_label, stage_label
from arpviz.reid import is_reid

__all__ = [
    "COMPARISON_ROWS",
    "WHY_NOT",
    "ComparisonRow",
    "comparison_rows",
    "wide_comparison",
    "AXES",
    "DEFAULT_LIMIT",
    "LIMITS",
    "PLACEMENTS",
    "KCurve",
    "RatePoints",
    "analysis_cache_dir",
    "arp_stages",
    "contrast_values",
    "correlation_rows",
    "k_curve_candidates",
    "k_curves",
    "offered",
    "picked_index",
    "precomputed_reports",
    "rate_points",
    "reid_k_curves",
    "run_report",
    "unavailable_reason",
    "verdict",
]

logger = logging.getLogger(__name__)

_REPO_ROOT = Path(__file__).resolve().parents[2]
#: Image counts the page offers; the default takes well under a minute on one CPU thread.
LIMITS: tuple[int, ...] = (16, 32, 64, 128, 300, 600)
DEFAULT_LIMIT = 32
#: The placements of ``StageAnalysis.placement``, in the order the bars show them.
PLACEMENTS: tuple[str, ...] = ("arp", "centred", "random", "least_confident")
#: Axis -> (per-image rate column, object size column, spread column, ``rate_vs_object`` key).
AXES: Mapping[str, tuple[str, str, str, str]] = {
    "height": ("rate_h", "object_h", "spread_h", "height"),
    "width": ("rate_w", "object_w", "spread_w", "width"),
}


def analysis_cache_dir() -> Path:
    """Where the page caches analyses: ``$ARPVIZ_CACHE/analysis``, else
    ``~/.cache/arpviz/analysis`` (beside :func:`~arpviz.explorer.catalog.converted_cache_dir`)."""
    return converted_cache_dir().parent / "analysis"


def unavailable_reason(meta: CheckpointMeta) -> str | None:
    """Why ``meta``'s checkpoint cannot be analysed here, or ``None`` when it can."""
    name = str(meta.dataset.get("name", "?"))
    if is_reid(meta.dataset):
        return (f"this is a re-ID checkpoint ({name}): the rate and placement analysis measures "
                "top-1 classification on SynthBirds and needs a classification checkpoint; "
                "its k curve is measured with mAP (below).")
    if not trained_on_synthbirds(meta):
        return (f"this checkpoint was trained on {name!r}: the page analyses SynthBirds "
                "val/test splits only (use python -m arpviz.analysis for other data).")
    return None


def run_report(
    checkpoint: Checkpoint | str | Path, split: str, limit: int | None, tau: float, *,
    cache_dir: str | Path | None = None, device: str = "cpu",
    progress: Callable[[float, str], None] | None = None,
) -> AdaptivityReport:
    """The analysis of a checkpoint file (cached as JSON per digest, split, limit and tau in
    ``cache_dir``, default :func:`analysis_cache_dir`) or of a loaded checkpoint (not cached).

    ``progress(fraction, message)`` is called after every batch of a fresh computation.
    """
    if isinstance(checkpoint, Checkpoint):
        return analyse(checkpoint, split, limit=limit, tau=tau, device=device,
                       progress=progress, show_progress=False)
    folder = analysis_cache_dir() if cache_dir is None else Path(cache_dir)
    return analyse_cached(checkpoint, split, cache_dir=folder, limit=limit, tau=tau,
                          device=device, progress=progress, show_progress=False)


def precomputed_reports(
    checkpoint: str | Path, folder: str | Path | None = None
) -> list[tuple[Path, AdaptivityReport]]:
    """The committed analyses (``folder/*.analysis.json``, default ``logs/paired/`` then
    ``logs/wide/``) of the checkpoint file ``checkpoint`` (the same SHA-256); unreadable files
    are skipped with a log line."""
    digest = checkpoint_digest(checkpoint)
    roots = ([_REPO_ROOT / "logs" / "paired", _REPO_ROOT / "logs" / "wide"] if folder is None
             else [Path(folder)])
    found = []
    for path in [p for root in roots for p in sorted(root.glob("*.analysis.json"))]:
        try:
            with open(path, encoding="utf-8") as handle:  # the digest sits near the top
                head = _DIGEST.search(handle.read(4096))
            if head is not None and head.group(1) != digest:
                continue
            data = json.loads(path.read_text())
            if data.get("sha256") != digest:
                continue
            found.append((path, AdaptivityReport.from_dict(data)))
        except (OSError, ValueError, TypeError) as exc:
            logger.warning("skipping %s: %s", path, exc)
    return found


_DIGEST = re.compile(r'"sha256":\s*"([0-9a-f]{64})"')


#: The argument the Adaptivity page states (docs/method.md and docs/adaptivity.md in full).
WHY_NOT = (
    "Every channel, standardised over the map (Eq. 1), averages 0, so the significance of "
    "Eq. 2 does too: where the object is significant, the background must be below 0, and "
    "sigmoid (Eq. 3) keeps it near 0.5, a floor. Summed over the many background cells, the "
    "floor dominates the marginals of Eq. 5, which stay close to a uniform distribution over "
    "the whole map; an object can only *narrow* that, so Eq. 9's rate stays near k and falls "
    "as the object grows. With perfect features (every channel the object's mask, a 28 x 28 "
    "map, k 1) the rate is 0.99 for an object a tenth of the side and 0.88 for one of 0.7, "
    "while Eq. 9 on the mask itself gives the object's side. And with k 0.7 and DSR 0.5, "
    "k x extent of any object under 0.71 of the side is clamped to the DSR: with an ideal "
    "map, ARP would be RP here. ARP-FG (beyond the paper) counts only the significance above "
    "the map's mean and bounds the rate by 0.125 instead of the DSR; on the ideal map its "
    "rate follows the bird. The Appendix A page simulates this for any object.")

#: The rows the Adaptivity page sets side by side (label -> run name in ``logs/paired/``): the
#: paired ablation under the recipe chosen on validation.
COMPARISON_ROWS: Mapping[str, str] = {
    "ARP (the paper)": "arp",
    "RP": "rp",
    "ARP-FG peak (beyond the paper)": "arpfg_peak",
    "learnt zoom (beyond the paper)": "zoom",
    "mask-placed crop 0.5": "mask50",
    "mask-placed crop, the oracle's mean size": "mask_mean",
    "oracle: ARP-FG on the bird's mask": "oracle",
}


def wide_comparison(
    seed: int = 0, folder: str | Path | None = None
) -> dict[str, AdaptivityReport]:
    """The committed analyses of one seed of each :data:`COMPARISON_ROWS` row (``folder``,
    default ``logs/paired/``), in that order; rows without one are left out."""
    root = _REPO_ROOT / "logs" / "paired" if folder is None else Path(folder)
    found = {}
    for label, row in COMPARISON_ROWS.items():
        path = root / f"{row}_seed{int(seed)}.analysis.json"
        try:
            found[label] = AdaptivityReport.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, TypeError) as exc:
            logger.warning("skipping %s: %s", path, exc)
    return found


@dataclass(frozen=True)
class ComparisonRow:
    """One checkpoint's stage in the side-by-side view: its top-1, rate and how the rate goes
    with the object's height; ``rate`` and ``size`` are the per-image columns."""

    label: str
    mode: str
    top1: float
    rate_mean: float
    rate_sd: float
    spearman: float | None
    ci95: tuple[float, float] | None
    size: np.ndarray
    rate: np.ndarray


def comparison_rows(reports: Mapping[str, AdaptivityReport],
                    stage: str = "conv4.local0") -> list[ComparisonRow]:
    """:class:`ComparisonRow` s of ``stage`` in every report that has it with ground truth,
    then the ideal rules (the paper's ARP and ARP-FG on the bird's mask) of the first report
    measured with ``--ideal``."""
    rows: list[ComparisonRow] = []
    ideal_source = None
    for label, report in reports.items():
        st = report.stages.get(stage)
        columns = report.per_image.get("stages", {}).get(stage, {})
        if st is None or not columns.get("object_h"):
            continue
        corr = (st.rate_vs_object or {}).get("height") or {}
        ci = (corr.get("ci95") or {}).get("spearman")
        rows.append(ComparisonRow(label, st.mode, report.top1, st.rate["h"]["mean"],
                                  st.rate["h"]["sd"], corr.get("spearman"),
                                  tuple(ci) if ci else None, np.asarray(columns["object_h"]),
                                  np.asarray(columns["rate_h"])))
        if ideal_source is None and st.ideal and columns.get("ideal_arpfg_h"):
            ideal_source = (report, st, columns)
    if ideal_source is not None:
        report, st, columns = ideal_source
        for rule, label in (("arp", "the paper's ARP on the mask"),
                            ("arpfg", "ARP-FG on the mask")):
            found = st.ideal[rule]
            corr = found["rate_vs_object"]["height"]
            ci = (corr.get("ci95") or {}).get("spearman")
            rows.append(ComparisonRow(
                f"ideal map: {label} (k {found['k']:g})", rule, float("nan"),
                found["rate"]["h"]["mean"], found["rate"]["h"]["sd"], corr.get("spearman"),
                tuple(ci) if ci else None, np.asarray(columns["object_h"]),
                np.asarray(columns[f"ideal_{rule}_h"])))
    return rows


# ----------------------------------------------------------------------------- plot values


@dataclass(frozen=True)
class RatePoints:
    """One point per image of one stage and axis (all arrays ``[N]``).

    Attributes:
        stage, axis: e.g. ``"conv4.local0"``, ``"height"``.
        index: the image's index in the split; ``correct``: top-1 right.
        rate: the rate the stage used on this axis.
        size: the object's extent as a share of the stage's frame (NaN without ground truth).
        spread: the parts' keypoint spread (SD) as a share of the frame (NaN without truth).
        label, pred: true and predicted class indices.
    """

    stage: str
    axis: str
    index: np.ndarray
    correct: np.ndarray
    rate: np.ndarray
    size: np.ndarray
    spread: np.ndarray
    label: np.ndarray
    pred: np.ndarray


def _check_stage(report: AdaptivityReport, stage: str) -> None:
    if stage not in report.stages:
        raise ValueError(f"stage must be one of {sorted(report.stages)}, got {stage!r}")


def rate_points(report: AdaptivityReport, stage: str, axis: str = "height") -> RatePoints:
    """The per-image rate of ``stage`` against the object's ``axis`` (``"height"``/``"width"``)."""
    _check_stage(report, stage)
    if axis not in AXES:
        raise ValueError(f"axis must be one of {sorted(AXES)}, got {axis!r}")
    rate_col, size_col, spread_col, _ = AXES[axis]
    columns = report.per_image["stages"][stage]
    count = len(columns[rate_col])

    def column(name: str) -> np.ndarray:
        values = columns.get(name)
        if values is None:
            return np.full(count, np.nan)
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)

    return RatePoints(
        stage=stage, axis=axis,
        index=np.asarray(report.per_image["index"], dtype=np.int64),
        correct=np.asarray(report.per_image["correct"], dtype=bool),
        rate=column(rate_col), size=column(size_col), spread=column(spread_col),
        label=np.asarray(report.per_image["label"], dtype=np.int64),
        pred=np.asarray(report.per_image["pred"], dtype=np.int64),
    )


def picked_index(points: Sequence[Mapping[str, Any]]) -> int | None:
    """The image index of the first selected point of the rate scatter (its ``customdata``
    holds the index first: a list, or a mapping ``{"0": index, ...}`` as Streamlit may send
    it), or ``None`` when nothing usable is selected."""
    for point in points or ():
        data = point.get("customdata")
        if isinstance(data, Mapping):
            data = data.get("0", data.get(0))
        elif isinstance(data, (list, tuple)) and data:
            data = data[0]
        if isinstance(data, (int, float)) and not isinstance(data, bool) and data >= 0:
            return int(data)
    return None


def _fmt_ci(ci: Sequence[float] | None) -> str:
    return "n/a" if not ci else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _fmt_r(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def correlation_rows(report: AdaptivityReport, stage: str) -> list[dict[str, Any]]:
    """The stage's correlations with the object as table rows (``measure``, ``n``, ``pearson``,
    ``pearson CI95``, ``spearman``, ``spearman CI95``; numbers as text with two decimals, "n/a"
    where undefined); empty without ground truth."""
    _check_stage(report, stage)
    found = report.stages[stage].rate_vs_object
    if not found:
        return []
    pairs = [("rate_h ~ object height", found["height"]),
             ("rate_w ~ object width", found["width"]),
             ("rate_h ~ keypoint spread (y)", found["keypoint_spread"]["h"]),
             ("rate_w ~ keypoint spread (x)", found["keypoint_spread"]["w"])]
    free = (report.stages[stage].floor_free or {}).get("rate_vs_object")
    if free:
        pairs += [("floor-free rate_h ~ height (diagnostic)", free["height"]),
                  ("floor-free rate_w ~ width (diagnostic)", free["width"])]
    rows = []
    for measure, corr in pairs:
        ci = corr.get("ci95") or {}
        rows.append({"measure": measure, "n": corr.get("n"),
                     "pearson": _fmt_r(corr.get("pearson")),
                     "pearson CI95": _fmt_ci(ci.get("pearson")),
                     "spearman": _fmt_r(corr.get("spearman")),
                     "spearman CI95": _fmt_ci(ci.get("spearman"))})
    return rows


@dataclass(frozen=True)
class KCurve:
    """Top-1 (%) against k of one ARP stage of one checkpoint; ``trained_k`` its own k."""

    label: str
    stage: str
    k: tuple[float, ...]
    top1: tuple[float, ...]
    trained_k: float | None


def k_curves(reports: Mapping[str, AdaptivityReport]) -> list[KCurve]:
    """Every ARP stage's k curve of every report (keyed by a label for the legend)."""
    out = []
    for label, report in reports.items():
        for name, stage in report.stages.items():
            if stage.k_curve:
                out.append(KCurve(label, name, tuple(stage.k_curve["k"]),
                                  tuple(stage.k_curve["top1"]), stage.k))
    return out


def arp_stages(config: MSGNConfig) -> list[str]:
    """The names of a network's ARP stages (keys as in :meth:`arpviz.models.MSGN.stage_settings`)
    from its config alone."""
    stages = ["conv3"] if config.conv3 == "arp" else []
    if config.conv4 == "arp":
        stages += (["conv4.main"] if config.local_branches == 0 else
                   [f"conv4.local{i}" for i in range(config.local_branches)])
    return stages


def k_curve_candidates(
    paths: Sequence[str | Path], metric: str = "top1"
) -> dict[str, str | None]:
    """For each checkpoint file: ``None`` when its k curve of ``metric`` can be computed here,
    else why not. ``"top1"``: SynthBirds classification checkpoints (analysed with the page's
    split, images and tau); ``"mAP"``: re-ID checkpoints (their test query/gallery). Either
    needs an ARP stage. Reads headers only."""
    if metric not in ("top1", "mAP"):
        raise ValueError(f"metric must be 'top1' or 'mAP', got {metric!r}")
    out: dict[str, str | None] = {}
    for path in paths:
        try:
            meta = read_meta(path)
        except (CheckpointError, OSError, ValueError) as exc:
            out[str(path)] = f"unreadable ({exc})"
            continue
        reid = is_reid(meta.dataset)
        if metric == "top1":
            reason = ("a re-ID checkpoint: its k curve is of mAP (re-ID checkpoints)" if reid
                      else unavailable_reason(meta))
        else:
            reason = None if reid else "not a re-ID checkpoint: its k curve is of top-1"
        if reason is None and not arp_stages(meta.config):
            reason = "no ARP stage, so no k curve"
        out[str(path)] = reason
    return out


def offered(candidates: Mapping[str, str | None]) -> tuple[list[str], dict[str, list[str]]]:
    """The usable paths of :func:`k_curve_candidates`'s answer, and the others' file names
    grouped by why not."""
    usable = [p for p, why in candidates.items() if why is None]
    skipped: dict[str, list[str]] = {}
    for p, why in candidates.items():
        if why is not None:
            skipped.setdefault(why, []).append(Path(p).name)
    return usable, skipped


def reid_k_curves(
    path: str | Path, k_values: Sequence[float] = DEFAULT_K_VALUES, *,
    cache_dir: str | Path | None = None, device: str = "cpu",
    progress: Callable[[float, str], None] | None = None,
) -> list[ReIDKCurve]:
    """mAP and rank-1 against k of every ARP stage of re-ID checkpoint file ``path``
    (:func:`arpviz.analysis.reid_k_curve`, cached per digest, stage and k values in
    ``cache_dir``, default :func:`analysis_cache_dir`); empty without an ARP stage.

    ``progress(fraction, message)`` is called after every k of a fresh computation.
    """
    stages = arp_stages(read_meta(path).config)
    folder = analysis_cache_dir() if cache_dir is None else Path(cache_dir)
    out = []
    for i, stage in enumerate(stages):
        def step(fraction: float, message: str, i: int = i, stage: str = stage) -> None:
            if progress is not None:
                progress((i + fraction) / len(stages), f"{stage}: {message}")
        out.append(reid_k_curve(path, stage, k_values, cache_dir=folder, device=device,
                                progress=step))
    return out


# ----------------------------------------------------------------------------- the verdict


def _direction(corr: Mapping[str, Any] | None) -> str:
    """``"up"``, ``"down"`` or ``"none"`` from a Spearman CI95 (``"none"``: it holds 0)."""
    if not corr or corr.get("spearman") is None:
        return "unknown"
    ci = (corr.get("ci95") or {}).get("spearman")
    if not ci:
        return "unknown"
    if ci[0] > 0:
        return "up"
    if ci[1] < 0:
        return "down"
    return "none"


def contrast_values(report: AdaptivityReport) -> dict[str, list[float]]:
    """Per pooled stage, the per-image object-minus-background confidence contrasts (empty
    without ground truth): the Adaptivity page's histogram."""
    stages = report.per_image.get("stages", {})
    return {name: list(stages.get(name, {}).get("contrast") or []) for name in report.stages}


def constant_rate(stage: StageAnalysis) -> str | None:
    """Why ``stage``'s rate is constant in effect, or ``None`` when it varies.

    A rate whose range over the split is under one cell of the stage's input map on both axes
    (``(max - min) * side < 1``) never moves the crop by a whole cell: the stage is a fixed
    crop. Without the map size (an older report), an SD under 0.005 counts as constant.
    """
    if stage.mode in ("rp", "stride"):
        return f"{mode_label(stage.mode)} crops a fixed size by design"
    h, w = stage.rate["h"], stage.rate["w"]
    if None in (h.get("min"), h.get("max"), w.get("min"), w.get("max")):
        return None
    if stage.map_size is not None:
        side_h, side_w = stage.map_size
        cells_h, cells_w = (h["max"] - h["min"]) * side_h, (w["max"] - w["min"]) * side_w
        if cells_h < 1 and cells_w < 1:
            return (f"over the split it runs from {h['min']:.3f} to {h['max']:.3f} (height), "
                    f"{h['min'] * side_h:.1f} to {h['max'] * side_h:.1f} of the {side_h} cells "
                    f"of its {side_h} x {side_w} map, less than one cell")
        return None
    if (h.get("sd") or 0) < 0.005 and (w.get("sd") or 0) < 0.005:
        return f"its SD over the split is {h['sd']:.4f} (height), {w['sd']:.4f} (width)"
    return None


def verdict(report: AdaptivityReport, stage: str) -> str:
    """One plain sentence: does ``stage``'s rate follow the object on this checkpoint?

    Decided from the Spearman correlations of the rate with the object's height and width and
    their bootstrap 95% intervals (above 0: follows; below 0: moves against; holding 0: no
    detectable relation at this image count), with the rate's spread; never hard-coded.
    """
    _check_stage(report, stage)
    st = report.stages[stage]
    label = stage_label(stage, st.mode)
    rate = st.rate["h"]
    spread = (f"its rate is {rate['mean']:.3f} ± {rate['sd']:.3f} (SD) over "
              f"{report.count} images") if rate["mean"] is not None else "no rates"
    constant = constant_rate(st)
    if constant is not None:
        return (f"{label} on this checkpoint: the rate is **constant in effect**: {constant}. "
                "Its correlation with the object's size describes changes too small to move "
                "the crop, so it says nothing about adaptation.")
    if not st.rate_vs_object:
        return (f"{label}: {spread}; without ground truth (object boxes) it cannot be said "
                "whether the rate follows the object.")
    height, width = st.rate_vs_object["height"], st.rate_vs_object["width"]
    by_axis = {"height": _direction(height), "width": _direction(width)}
    directions = set(by_axis.values())
    numbers = (f"Spearman with the object's height {height['spearman']:+.2f} "
               f"{_fmt_ci((height.get('ci95') or {}).get('spearman'))}, width "
               f"{width['spearman']:+.2f} {_fmt_ci((width.get('ci95') or {}).get('spearman'))}"
               if height.get("spearman") is not None and width.get("spearman") is not None
               else "the correlations are undefined (a constant rate or size)")
    if "unknown" in directions:
        answer = "cannot tell whether the rate follows the object"
    elif directions == {"up"}:
        answer = "the rate **follows the object**: bigger objects get bigger crops"
    elif directions == {"down"}:
        answer = ("the rate does **not** follow the object, it moves **against** it: bigger "
                  "objects get smaller crops")
    elif directions == {"down", "none"}:
        against = next(a for a, d in by_axis.items() if d == "down")
        answer = (f"the rate does **not** follow the object; along its {against} it moves "
                  f"**against** it (bigger objects get smaller crops), along the other axis "
                  "no relation is detectable")
    elif directions == {"none"}:
        answer = ("the rate does **not** follow the object detectably: no correlation "
                  "distinguishable from 0 at this image count")
    elif directions == {"up", "none"}:
        answer = "the rate follows the object on one axis only"
    else:
        answer = "the rate follows the object on one axis and moves against it on the other"
    return f"{label} on this checkpoint: {answer} ({numbers}; 95% bootstrap CIs); {spread}."
