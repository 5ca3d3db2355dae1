"""The SynthReID results table from the runs' ``arpviz.evaluate`` JSON files.

Run: ``.venv/bin/python -m benchmarks.reid_results [--folder logs/reid] [--out FILE]``. Reads
``synthreid_msgn_<variant>_seed<N>.eval.json`` (written by ``python -m arpviz.evaluate CKPT
--split test``), prints a markdown table of mAP and rank-1/5/10 per variant and seed with the
mean and standard deviation over seeds, and writes the per-seed figures as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections.abc import Sequence
from pathlib import Path

_NAME = re.compile(r"^synthreid_msgn_(?P<variant>.+)_seed(?P<seed>\d+)\.eval\.json$")
KEYS = ("mAP", "rank1", "rank5", "rank10")


def collect(folder: Path) -> dict[str, dict[int, dict[str, float]]]:
    """``{variant: {seed: {metric: value}}}`` from the evaluation files in ``folder``."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for path in sorted(folder.glob("*.eval.json")):
        match = _NAME.match(path.name)
        if match is None or not path.read_text().strip():
            continue
        data = json.loads(path.read_text())
        out.setdefault(match["variant"], {})[int(match["seed"])] = {k: data[k] for k in KEYS}
    return out


def table(results: dict[str, dict[int, dict[str, float]]]) -> str:
    """A markdown table: one row per variant and seed, then the mean (sd) over seeds."""
    lines = ["| variant | seed | mAP | rank-1 | rank-5 | rank-10 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for variant, seeds in results.items():
        for seed, row in sorted(seeds.items()):
            lines.append(f"| {variant} | {seed} | "
                         + " | ".join(f"{row[k]:.1f}" for k in KEYS) + " |")
        if len(seeds) > 1:
            cells = []
            for key in KEYS:
                values = [row[key] for row in seeds.values()]
                cells.append(f"{statistics.mean(values):.1f} ({statistics.stdev(values):.1f})")
            lines.append(f"| {variant} | mean (sd) of {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reid_results",
                                     description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--folder", default="logs/reid", help="where the .eval.json files are")
    parser.add_argument("--out", help="write the per-seed figures as JSON here")
    args = parser.parse_args(argv)
    results = collect(Path(args.folder))
    if not results:
        parser.error(f"no synthreid_msgn_*_seed*.eval.json in {args.folder}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
