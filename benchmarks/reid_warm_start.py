"""mAP/CMC of the re-ID configs' warm start alone (no re-ID training), for context.

Run: ``.venv/bin/python -m benchmarks.reid_warm_start [--out FILE]``. For each of
``configs/synthreid_msgn_{arp,stride}.json`` it builds the model, copies the weights of its
``pretrained`` SynthBirds checkpoint (:func:`arpviz.reid.warm_start`) and scores the test
query/gallery (:func:`arpviz.retrieval.retrieval_metrics`); prints JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from arpviz.datasources import build
from arpviz.models import MSGN, MSGNConfig
from arpviz.reid import warm_start
from arpviz.retrieval import retrieval_metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reid_warm_start",
                                     description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", help="also write the JSON to this file")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = {}
    for mode in ("arp", "stride"):
        config = json.loads(Path(f"configs/synthreid_msgn_{mode}.json").read_text())
        model = MSGN(MSGNConfig.from_dict(config["model"]))
        warm_start(model, config["pretrained"])
        sources = build(config["dataset"], config["image_size"])
        result[mode] = asdict(retrieval_metrics(model, sources.query, sources.gallery,
                                                progress=False))
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
