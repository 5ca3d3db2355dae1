"""GFLOPs (at 224 and 448 px) and parameter counts of MSGN variants for every backbone.

Run: ``.venv/bin/python -m benchmarks.flops_table`` (about a minute). Models are
built on the meta device (no memory, no compute); FLOPs are ``torch.utils.flop_counter`` counts
(2 x multiply-adds) of one eval-mode forward of batch 1. Prints a Markdown table.
"""

from __future__ import annotations

import torch

from arpviz.models import BACKBONES, MSGN, MSGNConfig, count_flops, count_parameters

VARIANTS: dict[str, dict[str, object]] = {
    "baseline (stride)": {"local_branches": 0, "conv3": "stride", "conv4": "stride"},
    "baseline, ARP Conv4 (k 0.9)": {"local_branches": 0, "conv3": "stride", "conv4": "arp",
                                    "conv4_k": 0.9},
    "MSGN, stride": {"local_branches": 1, "conv3": "stride", "conv4": "stride"},
    "MSGN, 1 LVB (ARP)": {"local_branches": 1},
    "MSGN, 1 LVB (STN)": {"local_branches": 1, "conv4": "stn"},
    "MSGN, 2 LVB (ARP)": {"local_branches": 2, "conv4_k": 0.5},
    "MSGN, 4 LVB (ARP)": {"local_branches": 4, "conv4_k": 0.5},
}


def main() -> None:
    print("| backbone | variant | GFLOPs 224 | GFLOPs 448 | params (M) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for backbone in BACKBONES:
        for name, options in VARIANTS.items():
            config = MSGNConfig(backbone=backbone, num_classes=200, **options)
            with torch.device("meta"):
                model = MSGN(config)
            small, large = (count_flops(model, size) / 1e9 for size in (224, 448))
            params = count_parameters(model) / 1e6
            print(f"| {backbone} | {name} | {small:.2f} | {large:.2f} | {params:.2f} |")


if __name__ == "__main__":
    main()
