"""Tables of the wide-scale ablation (docs/adaptivity.md) from logs/wide/*.json.

Usage (from the repository root):

    python logs/wide/summarise.py > logs/wide/summary.md            # every table, every run
    python logs/wide/summarise.py --splice docs/adaptivity.md       # refresh the doc's tables

``--splice`` replaces what stands between ``<!-- top1 -->`` and ``<!-- /top1 -->`` (test top-1
over seeds and the paired differences) and between ``<!-- adapt -->`` and ``<!-- /adapt -->``
(the adaptivity figures as mean ± SD over seeds) in the given Markdown file.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROWS = ("baseline_stride", "baseline_arp", "msgn_stride", "msgn_rp", "msgn_arp", "msgn_stn",
        "msgn_rp70", "msgn_arpfg", "msgn_arpfg_peak", "msgn_oracle")
LABELS = {
    "baseline_stride": "Baseline (stride)", "baseline_arp": "Baseline w/ ARP (k 0.9)",
    "msgn_stride": "MSGN, Conv4 stride", "msgn_rp": "MSGN, Conv4 RP",
    "msgn_arp": "MSGN, Conv4 ARP (k 0.7)", "msgn_stn": "MSGN, Conv4 bounded STN",
    "msgn_rp70": "MSGN, Conv4 RP crop 0.7 (fixed-size control)",
    "msgn_arpfg": "MSGN, Conv4 ARP-FG (k 1.5; beyond the paper)",
    "msgn_arpfg_peak": "MSGN, Conv4 ARP-FG peak (k 1.5; beyond the paper)",
    "msgn_oracle": "MSGN, Conv4 oracle (ARP-FG on the true mask)",
}
PAIRS = (("msgn_arp", "msgn_stride"), ("msgn_rp", "msgn_stride"), ("msgn_arp", "msgn_rp"),
         ("msgn_stn", "msgn_stride"), ("baseline_arp", "baseline_stride"),
         ("msgn_arp", "msgn_rp70"), ("msgn_rp70", "msgn_rp"),
         ("msgn_arpfg", "msgn_arp"), ("msgn_arpfg", "msgn_rp"),
         ("msgn_arpfg_peak", "msgn_arp"), ("msgn_arpfg_peak", "msgn_rp"),
         ("msgn_oracle", "msgn_arp"), ("msgn_oracle", "msgn_rp"),
         ("msgn_oracle", "msgn_arpfg_peak"))
ADAPTIVE = ("arp", "arpfg", "arpfg_peak", "oracle")


def _load(kind: str) -> dict[tuple[str, int], dict]:
    out = {}
    for path in sorted(HERE.glob(f"synthbirds_wide_*_seed*.{kind}.json")):
        match = re.match(r"synthbirds_wide_(.+)_seed(\d+)\." + kind, path.name)
        if match:
            out[(match.group(1), int(match.group(2)))] = json.loads(path.read_text())
    return out


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f} (1 seed)"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f} ({len(values)} seeds)"


def _top1_tables(evals: dict) -> None:
    print("| row | mean ± SD | per seed |")
    print("|---|---|---|")
    for row in ROWS:
        seeds = sorted(s for r, s in evals if r == row)
        values = [evals[(row, s)]["top1"] for s in seeds]
        each = ", ".join(f"seed {s}: {v:.1f}" for s, v in zip(seeds, values, strict=True))
        print(f"| {LABELS[row]} | {_ms(values)} | {each or 'not run'} |")
    print("\n**Paired differences** (percentage points, same seed; mean ± SD over seeds)\n")
    print("| pair | per seed | mean |")
    print("|---|---|---|")
    for a, b in PAIRS:
        seeds = sorted(s for r, s in evals if r == a and (b, s) in evals)
        diffs = [evals[(a, s)]["top1"] - evals[(b, s)]["top1"] for s in seeds]
        each = ", ".join(f"seed {s}: {d:+.1f}" for s, d in zip(seeds, diffs, strict=True))
        mean = f"{statistics.mean(diffs):+.1f}" if diffs else "-"
        sd = f" ± {statistics.stdev(diffs):.1f}" if len(diffs) > 1 else ""
        print(f"| {LABELS[a]} − {LABELS[b]} | {each or 'no pair'} | {mean}{sd} |")


def _over_seeds(analyses: dict) -> None:
    """Per row and pooled stage: each figure's mean ± SD over the seeds analysed."""
    print("| row | stage | seeds | rate_h | Spearman rate_h ~ height | rate_w ~ width | "
          "crop precision % | kp recall % | top-1 arp / centred / random / least-conf. | "
          "contrast |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def ms(values: list[float], spec: str = ".3f") -> str:
        if len(values) == 1:
            return format(values[0], spec)
        return f"{statistics.mean(values):{spec}} ± {statistics.stdev(values):{spec.lstrip('+')}}"

    for row in ROWS:
        runs = [(seed, rep) for (r, seed), rep in sorted(analyses.items()) if r == row]
        if not runs:
            continue
        for name in runs[0][1]["stages"]:
            sts = [rep["stages"][name] for _, rep in runs if name in rep["stages"]]
            rate = [st["rate"]["h"]["mean"] for st in sts]
            cells = []
            for key in ("height", "width"):
                vals = [st["rate_vs_object"][key]["spearman"] for st in sts]
                cells.append("-" if any(v is None for v in vals) else
                             ms(vals, "+.2f") + " (" + ", ".join(f"{v:+.2f}" for v in vals) + ")")
            prec = [100 * st["crop_precision"] for st in sts]
            rec = [100 * st["keypoint_recall"] for st in sts]
            place = " / ".join(ms([st["placement"][k] for st in sts], ".1f")
                               for k in ("arp", "centred", "random", "least_confident"))
            contrast = [st["confidence"]["contrast"]["mean"] for st in sts]
            seeds = ", ".join(str(seed) for seed, _ in runs)
            print(f"| {LABELS[row]} | {name} | {seeds} | {ms(rate)} | {cells[0]} | {cells[1]} | "
                  f"{ms(prec, '.1f')} | {ms(rec, '.1f')} | {place} | {ms(contrast, '+.3f')} |")


def _terciles(rep: dict) -> list[tuple[str, str, dict[str, float]]]:
    """``(stage, "small" | "medium" | "large", means)`` of one run's images split in thirds by
    the bird box's longer side over the input side (none without ground truth)."""
    pi = rep["per_image"]
    if not pi.get("object_height_px"):
        return []
    size = 128.0
    longer = [max(h, w) / size for h, w in zip(pi["object_height_px"], pi["object_width_px"],
                                                strict=True)]
    order = sorted(range(len(longer)), key=longer.__getitem__)
    thirds = [order[i * len(order) // 3:(i + 1) * len(order) // 3] for i in range(3)]
    correct = [100.0 * float(c) for c in pi["correct"]]
    out = []
    for name, cols in pi["stages"].items():
        for label, idx in zip(("small", "medium", "large"), thirds, strict=True):
            means = {key: statistics.mean(values[i] for i in idx) for key, values in (
                ("longer", longer), ("object_h", cols["object_h"]),
                ("object_w", cols["object_w"]), ("rate_h", cols["rate_h"]),
                ("rate_w", cols["rate_w"]), ("top1", correct))}
            out.append((name, label, means))
    return out


def _terciles_over_seeds(analyses: dict) -> None:
    """Per ARP row and stage: each tercile's mean rate and top-1 over the seeds analysed."""
    print("| row | stage | tercile | longer side | object w share of frame | rate_h / rate_w "
          "(mean over seeds) | top-1 % |")
    print("|---|---|---|---|---|---|---|")
    for row in ROWS:
        runs = [rep for (r, _), rep in sorted(analyses.items()) if r == row]
        per_run = [_terciles(rep) for rep in runs]
        if not per_run or not per_run[0]:
            continue
        for i, (name, label, _) in enumerate(per_run[0]):
            if runs[0]["stages"][name]["mode"] not in ADAPTIVE:
                continue
            vals = [terciles[i][2] for terciles in per_run]

            def m(key: str, vals: list = vals) -> float:
                return statistics.mean(v[key] for v in vals)

            print(f"| {LABELS[row]} | {name} | {label} | {m('longer'):.2f} | "
                  f"{m('object_w'):.3f} | {m('rate_h'):.4f} / {m('rate_w'):.4f} | "
                  f"{m('top1'):.1f} |")


def _ideal_over_seeds(analyses: dict) -> None:
    """Per row and pooled stage with ``--ideal`` results: what the paper's ARP and ARP-FG pick
    when every channel of the stage's input is the bird's mask (mean ± SD over seeds)."""
    print("| row | stage | seeds | ideal ARP: k, rate_h, Spearman ~ height | ideal ARP-FG: k, "
          "rate_h, Spearman ~ height |")
    print("|---|---|---|---|---|")
    for row in ROWS:
        runs = [(seed, rep) for (r, seed), rep in sorted(analyses.items()) if r == row]
        for name in (runs[0][1]["stages"] if runs else {}):
            sts = [rep["stages"][name] for _, rep in runs
                   if (rep["stages"].get(name) or {}).get("ideal")]
            if not sts:
                continue
            cells = []
            for rule in ("arp", "arpfg"):
                rate = [st["ideal"][rule]["rate"]["h"]["mean"] for st in sts]
                rho = [st["ideal"][rule]["rate_vs_object"]["height"]["spearman"] for st in sts]
                k = sts[0]["ideal"][rule]["k"]
                rho_text = "-" if any(v is None for v in rho) else \
                    f"{statistics.mean(rho):+.2f}"
                cells.append(f"{k:g}, {statistics.mean(rate):.3f}, {rho_text}")
            seeds = ", ".join(str(seed) for seed, rep in runs
                              if (rep["stages"].get(name) or {}).get("ideal"))
            print(f"| {LABELS[row]} | {name} | {seeds} | {cells[0]} | {cells[1]} |")


def _splice(doc: Path, evals: dict, analyses: dict) -> None:
    """Replace the marked blocks of ``doc`` with fresh tables."""
    text = doc.read_text()
    for marker, write in (("top1", lambda: _top1_tables(evals)),
                          ("adapt", lambda: (_over_seeds(analyses), print(
                              "\nRates by bird size (terciles of the box's longer side over the "
                              "input side), adaptive stages\n"), _terciles_over_seeds(analyses))),
                          ("ideal", lambda: _ideal_over_seeds(analyses))):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            write()
        start, end = f"<!-- {marker} -->\n", f"<!-- /{marker} -->"
        if start not in text or end not in text:
            raise SystemExit(f"{doc}: no {start.strip()} ... {end} block")
        head, rest = text.split(start, 1)
        text = head + start + out.getvalue() + end + rest.split(end, 1)[1]
    doc.write_text(text)


def main() -> None:
    evals, analyses = _load("eval"), _load("analysis")
    if len(sys.argv) == 3 and sys.argv[1] == "--splice":
        _splice(Path(sys.argv[2]), evals, analyses)
        return
    print("## Test top-1 (%), 600 images\n")
    _top1_tables(evals)
    print("\n## Adaptivity over seeds (mean ± SD of each run's figure)\n")
    _over_seeds(analyses)
    print("\n## The ideal map: every channel the bird's mask (--ideal)\n")
    _ideal_over_seeds(analyses)
    print("\n## Adaptivity per pooled stage and run (arpviz.analysis, test split)\n")
    print("| run | stage | rate_h mean ± SD [min, max] | Spearman rate_h~height [CI95] | "
          "rate_w~width [CI95] | rate_h~kp spread h [CI95] | crop precision | kp recall | "
          "top-1 arp / centred / random / least-conf. | contrast |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (row, seed), rep in sorted(analyses.items()):
        for name, st in rep["stages"].items():
            r = st["rate"]["h"]
            rvo = st["rate_vs_object"]

            def sp(c: dict) -> str:
                ci = c["ci95"]["spearman"]
                if c["spearman"] is None:
                    return "-"
                return f"{c['spearman']:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else \
                    f"{c['spearman']:+.2f}"

            p = st["placement"]
            contrast = st["confidence"]["contrast"]["mean"]
            print(f"| {row} s{seed} | {name} | {r['mean']:.3f} ± {r['sd']:.3f} "
                  f"[{r['min']:.3f}, {r['max']:.3f}] | {sp(rvo['height'])} | "
                  f"{sp(rvo['width'])} | {sp(rvo['keypoint_spread']['h'])} | "
                  f"{100 * st['crop_precision']:.1f}% | {100 * st['keypoint_recall']:.1f}% | "
                  f"{p['arp']:.1f} / {p['centred']:.1f} / {p['random']:.1f} / "
                  f"{p['least_confident']:.1f} | {contrast:+.3f} |")
    print("\n## Rates by bird size (terciles of the box's longer side / input side)\n")
    print("| run | stage | tercile | longer side | object h / w share of frame | "
          "rate_h / rate_w | top-1 |")
    print("|---|---|---|---|---|---|---|")
    for (row, seed), rep in sorted(analyses.items()):
        for name, label, t in _terciles(rep):
            print(f"| {row} s{seed} | {name} | {label} | {t['longer']:.2f} | "
                  f"{t['object_h']:.3f} / {t['object_w']:.3f} | "
                  f"{t['rate_h']:.4f} / {t['rate_w']:.4f} | {t['top1']:.1f} |")
    print("\n## Diagnostic: Eq. 9 on the map above its floor, relu(C - median C)\n")
    print("| run | stage | rate_h mean ± SD | Spearman ~height [CI95] | ~width [CI95] |")
    print("|---|---|---|---|---|")
    for (row, seed), rep in sorted(analyses.items()):
        for name, st in rep["stages"].items():
            free = st.get("floor_free")
            if not free or not free["rate_vs_object"]:
                continue
            r, rvo = free["rate"]["h"], free["rate_vs_object"]
            cells = []
            for key in ("height", "width"):
                c = rvo[key]
                ci = c["ci95"]["spearman"]
                cells.append("-" if c["spearman"] is None else
                             f"{c['spearman']:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]")
            print(f"| {row} s{seed} | {name} | {r['mean']:.3f} ± {r['sd']:.3f} | "
                  f"{cells[0]} | {cells[1]} |")
    print("\n## k curves (top-1 % against the stage's k)\n")
    for (row, seed), rep in sorted(analyses.items()):
        for name, st in rep["stages"].items():
            if st["k_curve"]:
                kc = st["k_curve"]
                pts = ", ".join(f"{k:g}: {t:.1f}" for k, t in zip(kc["k"], kc["top1"],
                                                                  strict=True))
                print(f"- {row} s{seed} {name}: {pts}")


if __name__ == "__main__":
    main()
