"""Evaluate a checkpoint: ``arpviz-evaluate [CKPT] [--split val|test]`` (``python -m
arpviz.evaluate``); without ``CKPT`` the bundled default (:mod:`arpviz.bundled`).

A re-ID checkpoint (:mod:`arpviz.reid`) reports mAP and CMC rank-1/5/10 (in %) on the test
query/gallery under the standard protocol (:mod:`arpviz.retrieval`). Otherwise it reports
top-1 and top-5 accuracy on a split, and on SynthBirds the crop quality: the share of
ground-truth part keypoints inside the Conv4 local crops (their union when there are several
local branches) and the IoU of the Conv3 crop with the object box. A strided stage crops
nothing, so its "crop" is the whole image; the figures then say how much a crop would have to
beat. The JSON names the checkpoint it evaluated (``checkpoint``: its path and SHA-256, as
:func:`arpviz.checkpoint.file_digest` gives it), and so does the log.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from arpviz import checkpoint as ckpt
from arpviz.bundled import default_checkpoint_path
from arpviz.commands import command_parser
from arpviz.data.synthbirds import SynthBirds
from arpviz.data.transforms import default_resize
from arpviz.datasources import build, synth_config
from arpviz.numerics import describe, set_deterministic
from arpviz.validation import check_count, check_device

__all__ = [
    "EvalResult",
    "GroundTruthBatch",
    "box_iou",
    "crop_quality",
    "evaluate",
    "ground_truth_batches",
    "main",
]

logger = logging.getLogger(__name__)
PROG = "arpviz-evaluate"


@dataclass(frozen=True)
class EvalResult:
    """Accuracy (in %) on ``count`` images of ``split``, and crop quality where measurable.

    ``predicted`` and ``labels`` hold every image's top-1 class and true class in the split's
    order (paired tests between runs, such as McNemar's, need them per image).
    """

    split: str
    count: int
    top1: float
    top5: float
    keypoints_in_conv4: float | None = None
    conv3_iou: float | None = None
    predicted: list[int] | None = None
    labels: list[int] | None = None


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a[i]`` and ``b[i]`` (``[N, 4]`` as x1, y1, x2, y2)."""
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 2], b[:, 2])
    y2 = np.minimum(a[:, 3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-12)


def _inside(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    return (
        (points[:, 0] >= box[0]) & (points[:, 0] <= box[2])
        & (points[:, 1] >= box[1]) & (points[:, 1] <= box[3])
    )


@dataclass(frozen=True)
class GroundTruthBatch:
    """SynthBirds images as the network sees them, with their ground truth in its pixels.

    Attributes:
        indices: ``int64 [B]``, image indices in the split.
        images: ``Tensor[B, 3, S, S]`` float32, normalised (the eval transform's output).
        labels: ``Tensor[B]`` int64.
        boxes: ``float64 [B, 4]``, object boxes ``(x1, y1, x2, y2)`` in input pixels (may
            reach outside ``[0, S]`` where the bird leaves the centre crop).
        keypoints: ``float64 [B, P, 2]``, part keypoints ``(x, y)`` in input pixels
            (``PART_NAMES`` order).
        masks: ``Tensor[B, 1, S, S]`` float32 in [0, 1], the birds' ground-truth masks in input
            pixels (for an ``"oracle"`` stage and the ideal-map analysis).
    """

    indices: np.ndarray
    images: torch.Tensor
    labels: torch.Tensor
    boxes: np.ndarray
    keypoints: np.ndarray
    masks: torch.Tensor


def _ground_truth_count(meta: ckpt.CheckpointMeta, split: str, limit: int | None) -> int:
    """How many images :func:`ground_truth_batches` gives: the split's first ``limit``."""
    available = synth_config(meta.dataset, meta.input_size).split_size(split)
    return available if limit is None else min(limit, available)


def ground_truth_batches(
    meta: ckpt.CheckpointMeta, split: str = "val", limit: int | None = None,
    batch_size: int = 64,
) -> Iterator[GroundTruthBatch]:
    """Batches of a checkpoint's SynthBirds split with ground truth (the first ``limit``).

    Images are rendered at the eval transform's resize and centre-cropped, and the ground
    truth is shifted by the same offset.

    Raises:
        ValueError: the checkpoint's data set is not SynthBirds.
    """
    if meta.dataset.get("name") != "synthbirds":
        raise ValueError("ground truth needs a SynthBirds checkpoint")
    size = meta.input_size
    offset = (default_resize(size) - size) // 2
    source = SynthBirds(synth_config(meta.dataset, size), split)
    count = _ground_truth_count(meta, split, limit)
    mean = torch.tensor(meta.mean)[:, None, None]
    std = torch.tensor(meta.std)[:, None, None]
    for start in range(0, count, batch_size):
        indices = np.arange(start, min(start + batch_size, count))
        samples = [source.render(int(i)) for i in indices]
        window = (slice(offset, offset + size), slice(offset, offset + size))
        crops = np.stack([s.image[window] for s in samples])
        images = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255)
        masks = torch.from_numpy(np.stack([s.mask[window] for s in samples]))[:, None]
        yield GroundTruthBatch(
            indices=indices,
            images=(images - mean) / std,
            labels=torch.tensor([s.label for s in samples], dtype=torch.int64),
            boxes=np.array([s.box for s in samples], dtype=np.float64) - offset,
            keypoints=np.array([list(s.keypoints.values()) for s in samples],
                               dtype=np.float64) - offset,
            masks=masks.float().div(255),
        )


@torch.no_grad()
def crop_quality(
    checkpoint: ckpt.Checkpoint, split: str = "val", limit: int | None = None,
    batch_size: int = 64,
) -> tuple[float, float]:
    """(share of keypoints inside the Conv4 local crops, mean IoU of Conv3 crop and object box).

    SynthBirds only (:func:`ground_truth_batches`).
    """
    meta = checkpoint.meta
    if meta.dataset.get("name") != "synthbirds":
        raise ValueError("crop quality needs SynthBirds ground truth")
    size = meta.input_size
    model = checkpoint.model
    device = next(model.parameters()).device
    inside = total = 0
    ious: list[np.ndarray] = []
    batches = ground_truth_batches(meta, split, limit, batch_size)
    total = math.ceil(_ground_truth_count(meta, split, limit) / batch_size)
    for batch in tqdm(batches, total=total, desc=f"crops {split}", leave=False):
        explanation = model.explain(batch.images.to(device), mask=batch.masks.to(device))
        whole = np.tile([0.0, 0.0, size, size], (len(batch.indices), 1))
        conv3 = explanation.image_boxes.get("conv3")
        conv3 = whole if conv3 is None else conv3.cpu().numpy()
        ious.append(box_iou(conv3, batch.boxes))
        local = [v.cpu().numpy() for k, v in explanation.image_boxes.items()
                 if k.startswith("conv4.local") or k == "conv4.main"] or [whole]
        for i, points in enumerate(batch.keypoints):
            hit = np.zeros(len(points), dtype=bool)
            for boxes in local:
                hit |= _inside(points, boxes[i])
            inside += int(hit.sum())
            total += len(points)
    return 100 * inside / max(total, 1), 100 * float(np.concatenate(ious).mean())


@torch.no_grad()
def evaluate(
    path: str | Path, split: str = "val", *, device: str = "cpu", limit: int | None = None,
    batch_size: int = 64, crops: bool = True,
) -> EvalResult:
    """Top-1/top-5 of checkpoint ``path`` on ``split`` (and crop quality on SynthBirds)."""
    from arpviz.train import top_predictions

    checkpoint = ckpt.load(path, device=device)
    meta = checkpoint.meta
    if limit is None and split == meta.dataset.get("eval_split", "val"):
        limit = meta.dataset.get("limit_val")
    sources = build(meta.dataset, meta.input_size, eval_split=split,
                    masks=checkpoint.model.needs_mask)
    data = sources.val if limit is None else Subset(sources.val, range(min(limit,
                                                                              len(sources.val))))
    loader = DataLoader(data, batch_size=batch_size)
    top, labels = top_predictions(checkpoint.model, loader, torch.device(device))
    count = int(labels.numel())
    top1 = 100 * float((top[:, 0] == labels).sum()) / max(count, 1)
    top5 = 100 * float((top == labels[:, None]).any(dim=1).sum()) / max(count, 1)
    keypoints = iou = None
    if crops and meta.dataset.get("name") == "synthbirds":
        keypoints, iou = crop_quality(checkpoint, split, limit, batch_size)
    return EvalResult(split, count, top1, top5, keypoints, iou,
                      top[:, 0].tolist(), labels.tolist())


def _evaluate_any(args: argparse.Namespace) -> tuple[object, dict[str, str]]:
    """Re-ID checkpoints: mAP/CMC on the test query/gallery; others: :func:`evaluate`. Returns
    the result and the checkpoint evaluated (``path``, ``sha256``)."""
    from arpviz.datasources import is_reid
    from arpviz.retrieval import evaluate_retrieval

    check_device(args.device, "--device")
    check_count(args.limit, "--limit", optional=True)
    check_count(args.batch_size, "--batch-size")
    if args.checkpoint is None:
        args.checkpoint = str(default_checkpoint_path())
    reid = is_reid(ckpt.read_meta(args.checkpoint).dataset)
    if reid and args.split != "test":
        raise ValueError("re-ID checkpoints are evaluated on --split test (query/gallery)")
    if reid and args.limit is not None:
        raise ValueError("--limit does not apply to re-ID checkpoints: mAP and CMC need "
                         "the whole query and gallery")
    checkpoint = {"path": str(args.checkpoint), "sha256": ckpt.file_digest(args.checkpoint)}
    logger.info("evaluating %s (SHA-256 %s)", checkpoint["path"], checkpoint["sha256"])
    if reid:
        return evaluate_retrieval(args.checkpoint, device=args.device,
                                  batch_size=args.batch_size), checkpoint
    return evaluate(args.checkpoint, args.split, device=args.device, limit=args.limit,
                    batch_size=args.batch_size, crops=args.crops), checkpoint


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        PROG,
        description="Evaluate an arpviz checkpoint and print the result as JSON: top-1 and top-5 "
        "accuracy on a split (and on SynthBirds the crop quality), or mAP and CMC for a re-ID "
        "checkpoint, with the checkpoint's path and SHA-256.",
        epilog="Details: docs/training.md (Evaluate), docs/reid.md.")
    parser.add_argument("checkpoint", nargs="?", default=None,
                        help="an arpviz .safetensors checkpoint (default: the bundled "
                        "classification MSGN with ARP)")
    parser.add_argument("--split", default="val", choices=["val", "test"],
                        help="the split to score; re-ID checkpoints: test, the query/gallery "
                        "(default: %(default)s)")
    parser.add_argument("--device", default="cpu",
                        help="torch device, e.g. cpu, cuda, cuda:1 (default: %(default)s)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="score only the first N images (default: the whole split; on the "
                        "split the checkpoint was validated on, the number it recorded)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N",
                        help="images per forward pass (default: %(default)s)")
    parser.add_argument("--no-crops", dest="crops", action="store_false",
                        help="skip the crop quality (keypoints in the Conv4 crops, Conv3 IoU), "
                        "which is measured on SynthBirds by default")
    parser.add_argument("--deterministic", action="store_true",
                        help="TF32 off and deterministic algorithms (arpviz.numerics); on CUDA "
                        "the default numerics may differ from the CPU in a few images")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: prints the result as JSON, the checkpoint (path, SHA-256)
    first."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.deterministic:
        set_deterministic()
    try:
        result, checkpoint = _evaluate_any(args)
    except (ValueError, TypeError, OSError) as exc:  # CheckpointError is a ValueError
        parser.error(str(exc))
    text = json.dumps({"checkpoint": checkpoint, **asdict(result),
                       "numerics": describe(args.device)}, indent=2)
    # every image's prediction on one line each, not one number per line
    print(re.sub(r"\[\s+(-?\d[\d,\s-]*?)\s+\]",
                 lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
