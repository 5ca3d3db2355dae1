"""Tables of the wide-scale ablation (docs/adaptivity.md) from logs/wide/*.json.

Usage (from the repository root): python logs/wide/summarise.py > logs/wide/summary.md
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROWS = ("baseline_stride", "baseline_arp", "msgn_stride", "msgn_rp", "msgn_arp", "msgn_stn")
LABELS = {
    "baseline_stride": "Baseline (stride)", "baseline_arp": "Baseline w/ ARP (k 0.9)",
    "msgn_stride": "MSGN, Conv4 stride", "msgn_rp": "MSGN, Conv4 RP",
    "msgn_arp": "MSGN, Conv4 ARP (k 0.7)", "msgn_stn": "MSGN, Conv4 bounded STN",
}
PAIRS = (("msgn_arp", "msgn_stride"), ("msgn_rp", "msgn_stride"), ("msgn_arp", "msgn_rp"),
         ("msgn_stn", "msgn_stride"), ("baseline_arp", "baseline_stride"))


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


def main() -> None:
    evals, analyses = _load("eval"), _load("analysis")
    print("## Test top-1 (%), 600 images\n")
    print("| row | mean ± SD | per seed |")
    print("|---|---|---|")
    for row in ROWS:
        seeds = sorted(s for r, s in evals if r == row)
        values = [evals[(row, s)]["top1"] for s in seeds]
        each = ", ".join(f"seed {s}: {v:.1f}" for s, v in zip(seeds, values, strict=True))
        print(f"| {LABELS[row]} | {_ms(values)} | {each or 'not run'} |")
    print("\n## Paired differences (percentage points, same seed)\n")
    print("| pair | per seed | mean |")
    print("|---|---|---|")
    for a, b in PAIRS:
        seeds = sorted(s for r, s in evals if r == a and (b, s) in evals)
        diffs = [evals[(a, s)]["top1"] - evals[(b, s)]["top1"] for s in seeds]
        each = ", ".join(f"seed {s}: {d:+.1f}" for s, d in zip(seeds, diffs, strict=True))
        mean = f"{statistics.mean(diffs):+.1f}" if diffs else "-"
        print(f"| {LABELS[a]} − {LABELS[b]} | {each or 'no pair'} | {mean} |")
    print("\n## Adaptivity per pooled stage (arpviz.analysis, test split)\n")
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
        pi = rep["per_image"]
        if not pi.get("object_height_px"):
            continue
        size = 128.0
        longer = [max(h, w) / size for h, w in zip(pi["object_height_px"],
                                                    pi["object_width_px"], strict=True)]
        order = sorted(range(len(longer)), key=longer.__getitem__)
        thirds = [order[i * len(order) // 3:(i + 1) * len(order) // 3] for i in range(3)]
        for name, cols in pi["stages"].items():
            for label, idx in zip(("small", "medium", "large"), thirds, strict=True):
                def m(values: list, idx: list = idx) -> float:
                    return statistics.mean(values[i] for i in idx)

                top1 = 100 * m([float(c) for c in pi["correct"]])
                print(f"| {row} s{seed} | {name} | {label} | {m(longer):.2f} | "
                      f"{m(cols['object_h']):.3f} / {m(cols['object_w']):.3f} | "
                      f"{m(cols['rate_h']):.4f} / {m(cols['rate_w']):.4f} | {top1:.1f} |")
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
