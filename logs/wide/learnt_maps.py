"""What a trained checkpoint's confidence maps show, against the bird's ground-truth mask.

For one pooled stage (default Conv4's local branch) over a SynthBirds split it measures, per
image: whether the map's peak cell lies on the bird (within one cell: the 3 x 3 cells around the
peak touch the mask), the Spearman correlation of the map's extent *on the bird* with the bird's
height, beside the same statistic for a constant map and for a uniform random one (restricted to
the mask, any map's extent follows the mask: the baselines say how much of the correlation is
the map's own), and how many cells above the map's mean (ARP-FG's foreground, where
``relu(s) > 0``) lie on and off the bird, by thirds of bird size. Usage (from the repository
root)::

    .venv/bin/python logs/wide/learnt_maps.py checkpoints/synthbirds_wide_msgn_arp.safetensors \
        --split test > logs/paired/learnt_maps_arp_seed0.json   # likewise arpfg_peak, zoom
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from arpviz import checkpoint as ckpt  # noqa: E402
from arpviz.analysis.statistics import correlation  # noqa: E402
from arpviz.evaluate import ground_truth_batches  # noqa: E402
from arpviz.models import mask_on_map  # noqa: E402
from arpviz.pooling import significance  # noqa: E402


def _extent(rows: np.ndarray) -> float:
    """``sqrt(12) * std`` of a row marginal over the row index, as a share of the map's side
    (NaN for a marginal with no mass)."""
    total = rows.sum()
    if total <= 0:
        return float("nan")
    p = rows / total
    idx = np.arange(len(p))
    mean = (p * idx).sum()
    return float(np.sqrt(12 * (p * (idx - mean) ** 2).sum()) / len(p))


@torch.no_grad()
def measure(path: str, split: str, stage: str, limit: int | None) -> dict:
    checkpoint = ckpt.load(path)
    model = checkpoint.model.eval()
    peak_on, heights, fg_on, fg_off, sizes = [], [], [], [], []
    extents: dict[str, list[float]] = {"map": [], "constant": [], "uniform_random": []}
    rng = torch.Generator().manual_seed(0)
    for batch in ground_truth_batches(checkpoint.meta, split, limit, 64):
        cache = model.prepare(batch.images, mask=batch.masks)
        explanation = model.explain_from(cache)
        map_size = explanation.map_sizes[stage]
        side = float(batch.images.shape[-1])
        whole = torch.tensor([[0.0, 0.0, side, side]]).expand(len(batch.indices), 4)
        frame = explanation.image_boxes.get("conv3", whole) if stage != "conv3" else whole
        mask = mask_on_map(batch.masks, frame, map_size) > 0.5  # [B, h, w]
        conf = explanation.stages[stage].confidence  # [B, h, w]
        # the stage's input features again, for the foreground (significance above the mean)
        if stage == "conv3":
            features = cache.conv3_input
        else:
            conv3 = explanation.stages.get("conv3")
            features = model.layer2(cache.conv3_input if conv3 is None else conv3.features)
        foreground = significance(features) > 0
        b = conf.shape[0]
        flat = conf.flatten(1).argmax(1)
        peak = torch.zeros_like(conf).flatten(1).scatter(1, flat[:, None], 1.0).view_as(conf)
        near = F.max_pool2d(peak[:, None], 3, 1, 1)[:, 0] > 0
        peak_on.append((near & mask).flatten(1).any(1).numpy())
        maps = {"map": conf, "constant": torch.ones_like(conf),
                "uniform_random": torch.rand(conf.shape, generator=rng)}
        for name, values in maps.items():
            rows_on_bird = (values * mask).sum(2)  # the map's mass on the bird, per row
            extents[name] += [_extent(rows_on_bird[i].numpy()) for i in range(b)]
        heights.append((batch.boxes[:, 3] - batch.boxes[:, 1]) / batch.images.shape[-1])
        fg_on.append((foreground & mask).flatten(1).sum(1).numpy())
        fg_off.append((foreground & ~mask).flatten(1).sum(1).numpy())
        sizes.append(np.maximum(batch.boxes[:, 3] - batch.boxes[:, 1],
                                batch.boxes[:, 2] - batch.boxes[:, 0]))
    peak_on = np.concatenate(peak_on)
    heights = np.concatenate(heights)
    fg_on, fg_off = np.concatenate(fg_on), np.concatenate(fg_off)
    sizes = np.concatenate(sizes)
    order = np.argsort(sizes, kind="stable")
    thirds = np.array_split(order, 3)
    spread = {}
    for name, values in extents.items():
        values = np.asarray(values)
        keep = np.isfinite(values)
        spread[name] = correlation(values[keep], heights[keep], n_boot=1000, seed=0)
    return {
        "checkpoint": str(path), "split": split, "stage": stage, "images": int(len(peak_on)),
        "peak_on_bird_share": float(peak_on.mean()),
        "extent_on_bird_vs_height": spread["map"],
        "extent_on_bird_vs_height_baselines": {"constant": spread["constant"],
                                               "uniform_random": spread["uniform_random"]},
        "foreground_cells_by_size_third": [
            {"third": name, "on_bird": int(fg_on[idx].sum()), "off_bird": int(fg_off[idx].sum()),
             "images": int(len(idx))}
            for name, idx in zip(("small", "medium", "large"), thirds, strict=True)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--split", default="test", choices=["val", "test"])
    parser.add_argument("--stage", default="conv4.local0")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(json.dumps(measure(args.checkpoint, args.split, args.stage, args.limit), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
