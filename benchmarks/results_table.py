"""The Table 3 ablation on wide-scale SynthBirds, from the bundled checkpoints, as a table.

Run: ``.venv/bin/python -m benchmarks.results_table [--split test]``. Each row evaluates one
checkpoint with :func:`arpviz.evaluate.evaluate` (top-1, top-5, keypoints inside the Conv4 local
crops, IoU of the Conv3 crop with the object box) and reads its training history.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from arpviz import checkpoint as ckpt
from arpviz.evaluate import evaluate

ROWS = [  # the wide-scale ablation of issue 12 (Conv3 ARP in every MSGN row), seed 0
    ("Baseline (stride)", "synthbirds_wide_baseline_stride"),
    ("Baseline w/ ARP (Conv4, k 0.9)", "synthbirds_wide_baseline_arp"),
    ("MSGN w/ stride", "synthbirds_wide_msgn_stride"),
    ("MSGN w/ RP", "synthbirds_wide_msgn_rp"),
    ("MSGN w/ ARP (k 0.7)", "synthbirds_wide_msgn_arp"),
    ("MSGN w/ STN, bounded box", "synthbirds_wide_msgn_stn"),
]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def main() -> None:
    """Print the table; rows whose checkpoint is missing say so."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--folder", default="checkpoints")
    args = parser.parse_args()
    print(f"| variant | {args.split} top-1 % | top-5 % | keypoints in Conv4 crop % | "
          "Conv3 crop IoU % | best val top-1 % | epochs | train minutes |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, name in ROWS:
        path = Path(args.folder) / f"{name}.safetensors"
        if not path.exists():
            print(f"| {label} | not trained | | | | | | |")
            continue
        meta = ckpt.read_meta(path)
        result = evaluate(path, args.split)
        best = max(h["val_top1"] for h in meta.history)
        minutes = sum(h["seconds"] for h in meta.history) / 60
        print(f"| {label} | {result.top1:.1f} | {result.top5:.1f} | "
              f"{_fmt(result.keypoints_in_conv4)} | {_fmt(result.conv3_iou)} | {best:.1f} | "
              f"{len(meta.history)} | {minutes:.0f} |")


if __name__ == "__main__":
    main()
