"""The paired ablation on the Adaptivity page: the committed runs of every row (5 seeds, the
same test images), each comparison's mean difference with its 95% interval and each seed's
McNemar test, and where the oracle's lead over RP comes from (placement, zoom, adaptivity).

Numbers come from :mod:`arpviz.analysis.paired` on ``logs/paired/`` of a source checkout (the
command ``python -m arpviz.analysis.paired logs/paired`` prints the same tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from arpviz.analysis.paired import (
    COMPARISONS,
    DECOMPOSITION,
    ROWS,
    Comparison,
    RowResult,
    compare,
    load_rows,
)

__all__ = ["Ablation", "comparison_records", "name", "paired_ablation", "row_records", "stamp"]

_FOLDER = Path(__file__).resolve().parents[2] / "logs" / "paired"


@dataclass(frozen=True)
class Ablation:
    """The rows that ran, the comparisons and the oracle's decomposition (label, comparison)."""

    rows: dict[str, RowResult]
    comparisons: list[Comparison]
    decomposition: list[tuple[str, Comparison]]


def paired_ablation(folder: str | Path | None = None) -> Ablation | None:
    """The ablation of ``folder`` (default ``logs/paired`` of the checkout), ``None`` when no
    run with per-image predictions is there."""
    rows = load_rows(_FOLDER if folder is None else folder)
    if not rows:
        return None
    comparisons = [compare(rows[a], rows[b]) for a, b in COMPARISONS if a in rows and b in rows]
    steps = [(label, compare(rows[a], rows[b])) for label, a, b in DECOMPOSITION
             if a in rows and b in rows]
    if "oracle" in rows and "rp" in rows and steps:
        steps.append(("total", compare(rows["oracle"], rows["rp"])))
    return Ablation(rows, comparisons, steps)


def stamp(folder: str | Path | None = None) -> float:
    """The newest modification time of the folder's evaluations (a cache key: 0 when none)."""
    files = list(Path(_FOLDER if folder is None else folder).glob("*_seed*.eval.json"))
    return max((f.stat().st_mtime for f in files), default=0.0)


def name(row: str) -> str:
    """A row as people read it."""
    return ROWS.get(row, row)


def row_records(ablation: Ablation) -> list[dict[str, Any]]:
    """One record per row for a table: seeds, test top-1 mean ± SD and range (%)."""
    out = []
    for key in [k for k in ROWS if k in ablation.rows]:
        result = ablation.rows[key]
        values = np.array([result.top1[s] for s in result.seeds])
        sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out.append({"row": name(key), "seeds": len(values),
                    "test top-1 %": f"{values.mean():.1f} ± {sd:.1f}",
                    "range %": f"{values.min():.1f} to {values.max():.1f}"})
    return out


def _interval(c: Comparison) -> str:
    low, high = c.summary["low"], c.summary["high"]
    if low is not None:
        return f"[{low:+.1f}, {high:+.1f}]"
    return "n/a (one seed)" if len(c.seeds) < 2 else "n/a (no spread)"


def comparison_records(comparisons: list[Comparison] | list[tuple[str, Comparison]]
                       ) -> list[dict[str, Any]]:
    """One record per comparison (or labelled step) for a table: the difference in points, its
    95% interval, the reading, and how many seeds' McNemar tests are below 0.05 each way;
    ``step`` is the step's label (empty for a plain comparison)."""
    out = []
    for item in comparisons:
        label, c = item if isinstance(item, tuple) else (None, item)
        ahead = sum(1 for b, cc, p in c.per_seed.values() if p < 0.05 and b > cc)
        behind = sum(1 for b, cc, p in c.per_seed.values() if p < 0.05 and b < cc)
        record = {"comparison": f"{name(c.first)} − {name(c.second)}",
                  "difference (points)": f"{c.summary['mean']:+.1f}",
                  "95% CI": _interval(c), "reading": c.word,
                  "McNemar p<0.05: ahead / behind": f"{ahead} / {behind} of "
                                                   f"{len(c.seeds)}"}
        # every record has the column, so a table mixing both shows no "None"
        out.append({"step": label or "", **record})
    return out
