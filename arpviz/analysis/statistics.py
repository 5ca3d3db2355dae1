"""The analysis's statistics: summaries, correlations with bootstrap intervals, JSON values."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["correlation", "json_ready", "stats"]


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


def json_ready(value: Any) -> Any:
    """Plain JSON types: mappings and sequences recursed, numpy scalars unwrapped, NaN as None."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return _finite(float(value))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
