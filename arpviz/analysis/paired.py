"""Paired comparisons of training runs: which row is ahead, by how much, and how sure we are.

Two rows (say the paper's ARP and RP) trained with the same seeds are compared seed by seed:

- over seeds, the mean of the per-seed differences in test top-1 with its 95% interval from
  Student's t (``n - 1`` degrees of freedom) and the paired t test's two-sided p-value;
- per seed, McNemar's exact test on the test images both runs scored: of the images exactly
  one of the two gets right (``b`` only the first, ``c`` only the second), is ``b`` vs ``c``
  more lopsided than a fair coin would make it (two-sided binomial p-value)?

A comparison is worded by its interval: "ahead" or "behind" when the 95% interval excludes 0,
else "indistinguishable at N seeds". ``python -m arpviz.analysis.paired [FOLDER]`` prints the
tables of the committed runs (``<row>_seed<S>.eval.json``, as ``arpviz-evaluate`` writes them
with every image's prediction) as Markdown.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arpviz.commands import command_parser

__all__ = [
    "COMPARISONS",
    "DECOMPOSITION",
    "ROWS",
    "Comparison",
    "RowResult",
    "compare",
    "crop_table",
    "load_rows",
    "main",
    "mcnemar",
    "paired_t",
    "student_t_cdf",
    "student_t_quantile",
]

#: The rows of the paired ablation: file stem -> the name people read.
ROWS: dict[str, str] = {
    "stride": "Conv4 stride",
    "rp": "RP (crop 0.5)",
    "arp": "the paper's ARP (k 0.7)",
    "rp70": "RP, fixed 0.7 crop",
    "arpfg_peak": "ARP-FG peak (beyond the paper)",
    "zoom": "learnt zoom (beyond the paper)",
    "mask50": "mask-placed crop 0.5 (RP's window placed by the mask)",
    "mask_mean": "mask-placed crop of the oracle's mean size",
    "oracle": "oracle (ARP-FG on the bird's mask)",
}

#: The comparisons the tables report, ``(first, second)``: first minus second.
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("arp", "rp"), ("rp", "stride"), ("arp", "stride"), ("arp", "rp70"), ("rp70", "rp"),
    ("arpfg_peak", "arp"), ("zoom", "rp"), ("zoom", "arp"), ("zoom", "rp70"),
    ("oracle", "zoom"), ("oracle", "rp"),
)

#: Where the oracle's lead over RP comes from: the three steps from RP to the oracle.
DECOMPOSITION: tuple[tuple[str, str, str], ...] = (
    ("placement", "mask50", "rp"),
    ("zoom (the oracle's mean size, fixed)", "mask_mean", "mask50"),
    ("adaptivity (the size follows the bird)", "oracle", "mask_mean"),
)


# ----------------------------------------------------------------------------- statistics


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df!r}")
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def paired_t(differences: Sequence[float]) -> dict[str, float | int | None]:
    """Mean of ``differences`` with its 95% t interval and the two-sided p-value of "the mean
    is 0": ``{"n", "mean", "sd", "low", "high", "p"}``. Interval and p are ``None`` for one value,
    and for values that are all equal but not 0 (no spread, so no interval: the t test is
    undefined there, not infinitely sure); all 0 gives ``[0, 0]`` and p 1. Values are compared
    to 9 decimals, so float noise (87.833 - 87.5 against 88.167 - 87.833) is no spread."""
    values = np.round(np.asarray(list(differences), dtype=np.float64), 9)
    n = int(values.size)
    if n == 0:
        raise ValueError("differences must not be empty")
    mean = float(values.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "sd": None, "low": None, "high": None, "p": None}
    sd = float(values.std(ddof=1))
    se = sd / math.sqrt(n)
    half = student_t_quantile(0.975, n - 1) * se
    if se == 0:
        if mean != 0:
            return {"n": n, "mean": mean, "sd": 0.0, "low": None, "high": None, "p": None}
        p = 1.0
    else:
        p = 2.0 * (1.0 - student_t_cdf(abs(mean) / se, n - 1))
    return {"n": n, "mean": mean, "sd": sd, "low": mean - half, "high": mean + half, "p": p}


def mcnemar(first: Sequence[bool], second: Sequence[bool]) -> tuple[int, int, float]:
    """McNemar's exact test of two classifiers on the same images.

    Returns:
        ``(b, c, p)``: ``b`` images only ``first`` gets right, ``c`` only ``second``, and the
        two-sided p-value of ``b`` or something more lopsided out of ``b + c`` fair coin flips
        (1 when they disagree on no image).
    """
    a = np.asarray(first, dtype=bool)
    z = np.asarray(second, dtype=bool)
    if a.shape != z.shape:
        raise ValueError(f"first and second must score the same images, got {a.shape} and "
                         f"{z.shape}")
    b = int((a & ~z).sum())
    c = int((~a & z).sum())
    n = b + c
    if n == 0:
        return b, c, 1.0
    low = min(b, c)
    tail = sum(math.comb(n, i) for i in range(low + 1)) / 2.0 ** n
    return b, c, min(1.0, 2.0 * tail)


# ----------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RowResult:
    """One row's runs: per seed, the test top-1 (%) and which test images it got right."""

    row: str
    top1: Mapping[int, float]
    correct: Mapping[int, np.ndarray]

    @property
    def seeds(self) -> list[int]:
        """The seeds with a result, in order."""
        return sorted(self.top1)


@dataclass(frozen=True)
class Comparison:
    """``first`` minus ``second`` over their common seeds."""

    first: str
    second: str
    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    summary: Mapping[str, float | int | None]
    per_seed: Mapping[int, tuple[int, int, float]]

    @property
    def word(self) -> str:
        """"ahead", "behind" or "indistinguishable at N seeds", from the 95% interval; with
        no interval, why (one seed, or the same difference on every seed)."""
        low, high = self.summary["low"], self.summary["high"]
        n = len(self.seeds)
        if low is None or high is None:
            return (f"one seed only ({n})" if n < 2 else
                    f"the same difference on all {n} seeds: no interval")
        if low > 0:
            return "ahead"
        if high < 0:
            return "behind"
        return f"indistinguishable at {n} seeds"


_NAME = re.compile(r"^(?P<row>.+)_seed(?P<seed>\d+)\.eval\.json$")


def load_rows(folder: str | Path) -> dict[str, RowResult]:
    """Every ``<row>_seed<S>.eval.json`` of ``folder`` with per-image predictions, by row."""
    top1: dict[str, dict[int, float]] = {}
    correct: dict[str, dict[int, np.ndarray]] = {}
    for path in sorted(Path(folder).glob("*_seed*.eval.json")):
        match = _NAME.match(path.name)
        if not match:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("predicted") is None or data.get("labels") is None:
            continue
        row, seed = match["row"], int(match["seed"])
        hits = np.asarray(data["predicted"]) == np.asarray(data["labels"])
        top1.setdefault(row, {})[seed] = float(data["top1"])
        correct.setdefault(row, {})[seed] = hits
    return {row: RowResult(row, top1[row], correct[row]) for row in top1}


def compare(first: RowResult, second: RowResult) -> Comparison:
    """``first`` minus ``second`` on the seeds both have.

    Raises:
        ValueError: no common seed.
    """
    seeds = tuple(s for s in first.seeds if s in second.top1)
    if not seeds:
        raise ValueError(f"rows {first.row!r} and {second.row!r} share no seed")
    diffs = tuple(first.top1[s] - second.top1[s] for s in seeds)
    per_seed = {s: mcnemar(first.correct[s], second.correct[s]) for s in seeds}
    return Comparison(first.row, second.row, seeds, diffs, paired_t(diffs), per_seed)


# ----------------------------------------------------------------------------- tables


def _name(row: str) -> str:
    return ROWS.get(row, row)


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.0e}"


def rows_table(rows: Mapping[str, RowResult]) -> str:
    """Each row's test top-1 per seed, mean and SD, as Markdown."""
    seeds = sorted({s for r in rows.values() for s in r.seeds})
    lines = ["| row | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± SD | min |",
             "| --- |" + " ---: |" * (len(seeds) + 2)]
    for key in [k for k in ROWS if k in rows] + sorted(set(rows) - set(ROWS)):
        result = rows[key]
        values = np.array([result.top1[s] for s in result.seeds])
        sd = values.std(ddof=1) if len(values) > 1 else 0.0
        cells = [f"{result.top1[s]:.1f}" if s in result.top1 else "" for s in seeds]
        lines.append(f"| {_name(key)} | " + " | ".join(cells)
                     + f" | {values.mean():.1f} ± {sd:.1f} | {values.min():.1f} |")
    return "\n".join(lines)


def _comparison_line(label: str, c: Comparison) -> str:
    s = c.summary
    ci = "n/a" if s["low"] is None else f"[{s['low']:+.1f}, {s['high']:+.1f}]"
    p = "n/a" if s["p"] is None else _p(float(s["p"]))
    seeds = "; ".join(f"{seed}: {b}/{cc}, p {_p(pv)}" for seed, (b, cc, pv)
                      in sorted(c.per_seed.items()))
    return f"| {label} | {s['mean']:+.1f} | {ci} | {p} | {c.word} | {seeds} |"


_HEADER = ("| comparison | mean difference (points) | 95% CI | paired t p | reading | per seed "
           "McNemar: only first right / only second right, p |\n"
           "| --- | ---: | ---: | ---: | --- | --- |")


def comparisons_table(rows: Mapping[str, RowResult],
                      pairs: Sequence[tuple[str, str]] = COMPARISONS) -> str:
    """Every pair of ``pairs`` both of whose rows ran, as Markdown."""
    lines = [_HEADER]
    for first, second in pairs:
        if first in rows and second in rows:
            lines.append(_comparison_line(f"{_name(first)} − {_name(second)}",
                                          compare(rows[first], rows[second])))
    return "\n".join(lines)


def decomposition_table(rows: Mapping[str, RowResult]) -> str:
    """The oracle's lead over RP in three steps (placement, zoom, adaptivity), as Markdown."""
    lines = [_HEADER]
    for label, first, second in DECOMPOSITION:
        if first in rows and second in rows:
            lines.append(_comparison_line(f"{label}: {_name(first)} − {_name(second)}",
                                          compare(rows[first], rows[second])))
    if "oracle" in rows and "rp" in rows:
        lines.append(_comparison_line(f"total: {_name('oracle')} − {_name('rp')}",
                                      compare(rows["oracle"], rows["rp"])))
    return "\n".join(lines)


_ANALYSIS = re.compile(r"^(?P<row>.+)_seed(?P<seed>\d+)\.analysis\.json$")


def crop_table(folder: str | Path, stage: str = "conv4.local0") -> str:
    """Does each row's crop follow the bird? From every ``<row>_seed<S>.analysis.json`` of
    ``folder`` (``arpviz-analysis --out``): per row, the stage's crop rate (mean over the test
    images, then over seeds; the SD is over the images of a run, averaged over seeds), the
    Spearman correlation of the rate with the bird's height per seed, and top-1 with the crop
    as chosen, centred and at random places of the same size (means over seeds), as
    Markdown. Rows whose stage has no rate to correlate (RP, stride) show "-"."""
    found: dict[str, dict[int, dict]] = {}
    for path in sorted(Path(folder).glob("*_seed*.analysis.json")):
        match = _ANALYSIS.match(path.name)
        if not match:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        stats = (data.get("stages") or {}).get(stage)
        if stats is not None:
            found.setdefault(match["row"], {})[int(match["seed"])] = stats
    lines = ["| row | seeds | rate (mean, SD over images) | Spearman rate ~ bird height, per "
             "seed | top-1 as chosen / centred / random place |",
             "| --- | --- | ---: | --- | --- |"]
    for key in [k for k in ROWS if k in found] + sorted(set(found) - set(ROWS)):
        runs = [found[key][s] for s in sorted(found[key])]
        rates = [r["rate"]["h"] for r in runs]
        mean = float(np.mean([r["mean"] for r in rates]))
        sd = float(np.mean([r["sd"] for r in rates]))
        rhos = []
        for r in runs:
            height = (r.get("rate_vs_object") or {}).get("height") or {}
            rho = height.get("spearman")
            rhos.append("-" if rho is None or not math.isfinite(rho) or sd < 1e-6
                        else f"{rho:+.2f}")
        places = [r.get("placement") or {} for r in runs]
        top1 = []
        for where in ("arp", "centred", "random"):  # "arp": the box as the stage chose it
            values = [p[where] for p in places if p.get(where) is not None]
            top1.append(f"{np.mean(values):.1f}" if values else "-")
        lines.append(f"| {_name(key)} | {', '.join(map(str, sorted(found[key])))} | "
                     f"{mean:.3f} ± {sd:.3f} | {', '.join(rhos)} | {' / '.join(top1)} |")
    return "\n".join(lines)


def report(folder: str | Path) -> str:
    """The tables of ``folder``'s runs, as Markdown: test top-1 per seed, the paired
    comparisons, the oracle's decomposition and whether each crop follows the bird."""
    rows = load_rows(folder)
    if not rows:
        return f"No <row>_seed<S>.eval.json with per-image predictions in {folder}."
    return "\n\n".join([
        "### Test top-1 (%) per seed", rows_table(rows),
        "### Paired comparisons", comparisons_table(rows),
        "### Where the oracle's lead over RP comes from", decomposition_table(rows),
        "### Does the Conv4 crop follow the bird? (test split, from the analyses)",
        crop_table(folder)])


def main(argv: Sequence[str] | None = None) -> int:
    """Print :func:`report` of a folder of evaluations (default ``logs/paired``)."""
    parser = command_parser(
        "python -m arpviz.analysis.paired",
        description="Paired comparisons of committed runs, printed as Markdown tables: test "
        "top-1 per seed, the mean difference with its 95% interval, McNemar's test per seed.",
        epilog="Details: docs/adaptivity.md.")
    parser.add_argument("folder", nargs="?", default="logs/paired",
                        help="a folder of <row>_seed<S>.eval.json files, as arpviz-evaluate "
                        "writes them (default: %(default)s)")
    args = parser.parse_args(argv)
    if not Path(args.folder).is_dir():
        parser.error(f"no folder {args.folder}")
    print(report(args.folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
