"""``arpviz-explain`` (``python -m arpviz.explain``): the batch command (see
:mod:`arpviz.explain`), sharded under ``torchrun``, writing ``results.jsonl``, overlays and
``manifest.json``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.contrib.logging import logging_redirect_tqdm

from arpviz import checkpoint as ckpt
from arpviz.bundled import default_checkpoint_path
from arpviz.commands import command_parser
from arpviz.explain.batch import (
    BATCH_DECODED_PIXELS,
    BATCH_INPUT_PIXELS,
    DEFAULT_MAX_BYTES,
    explain_files,
    images_per_pass,
    list_images,
    model_device,
)
from arpviz.explain.overlay import overlay_png
from arpviz.explain.records import record_to_json, synthetic_data_note
from arpviz.images import DEFAULT_MAX_PIXELS
from arpviz.models import STEERABLE_MODES, StageOverride
from arpviz.validation import check_device, check_output_dir

__all__ = ["PROG", "UsageError", "main", "parse_overrides"]

logger = logging.getLogger(__name__)
PROG = "arpviz-explain"


class UsageError(ValueError):
    """A mistake on the command line (exit status 2)."""


_SET = re.compile(r"^(?P<stage>[A-Za-z0-9_.]+)\.(?P<field>k|dsr|tau|mode)=(?P<value>.+)$")


def parse_overrides(items: Sequence[str]) -> dict[str, StageOverride]:
    """``["conv4.local0.k=0.5", "conv3.dsr=0.6", "conv3.mode=rp"]`` -> stage overrides.

    ``dsr`` is one number or ``h,w``. Stage names are checked by the model later.

    Raises:
        ValueError: bad syntax, a value that is not a number, a field set twice, ``k <= 0``,
            a DSR outside ``(0, 1]``.
    """
    fields: dict[str, dict[str, Any]] = {}
    for item in items:
        match = _SET.match(item.strip())
        if match is None:
            raise ValueError(f"--set {item!r}: expected STAGE.k=V, STAGE.dsr=V, STAGE.tau=V or "
                             "STAGE.mode=M, e.g. conv4.local0.k=0.5")
        stage, name, raw = match["stage"], match["field"], match["value"].strip()
        try:
            if name in ("k", "tau"):
                value: Any = float(raw)
            elif name == "dsr":
                parts = [float(v) for v in raw.split(",")]
                if len(parts) not in (1, 2):
                    raise ValueError
                value = parts[0] if len(parts) == 1 else tuple(parts)
            else:
                value = raw
        except ValueError:
            raise ValueError(f"--set {item!r}: {raw!r} is not a valid {name}") from None
        if name in fields.setdefault(stage, {}):
            raise ValueError(f"--set {item!r}: {stage}.{name} is set twice")
        fields[stage][name] = value
    out = {}
    for stage, values in fields.items():
        try:
            out[stage] = StageOverride(**values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--set {stage}: {exc}") from None
    return out


def _card(meta: ckpt.CheckpointMeta) -> dict[str, Any]:
    history = list(meta.history)
    return {
        "config": meta.config.to_dict(),
        "classes": len(meta.class_names),
        "input": {"size": meta.input_size, "mean": list(meta.mean), "std": list(meta.std)},
        "dataset": str(meta.dataset.get("name", "unknown")),
        "epochs": len(history),
        "last_epoch": dict(history[-1]) if history else {},
        "created": meta.created,
    }


def _versions() -> dict[str, str]:
    import torchvision

    import arpviz

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__,
            "pillow": Image.__version__, "arpviz": getattr(arpviz, "__version__", "unknown")}


def _distributed() -> tuple[int, int]:
    """``(rank, world_size)``; starts the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _gather(rows: list[tuple[int, dict[str, Any]]], world: int) -> list[tuple[int, dict]]:
    """Every rank's ``(input index, record JSON)`` rows, sorted by input index."""
    if world > 1:
        import torch.distributed as dist

        parts: list[Any] = [None] * world
        dist.all_gather_object(parts, rows)
        rows = [row for part in parts for row in part]
    return sorted(rows, key=lambda row: row[0])


def _finish(world: int) -> None:
    """Wait for every rank and leave the process group (under torchrun)."""
    if world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def _overlay_name(index: int, file: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file).stem)[:60] or "image"
    return f"{index:06d}_{stem}.png"


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        PROG,
        description="Explain image files and folders with an arpviz checkpoint: write one JSON "
        "record per image (results.jsonl: the top-5 and every pooled stage's box), an overlay "
        "PNG of the boxes and manifest.json into --out. Exit status: 0 when every image worked, "
        "1 when some failed, 2 for a usage error.",
        epilog="Under torchrun each process explains a share of the images. Details: "
        "docs/explain.md.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files and folders (searched recursively)")
    parser.add_argument("--checkpoint", default=None, metavar="CKPT",
                        help="an arpviz .safetensors checkpoint (default: the bundled "
                        "classification MSGN with ARP)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (created if missing)")
    parser.add_argument("--device", default="auto",
                        help="auto, cpu, cuda or cuda:N (default: %(default)s, CUDA when "
                        "present)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="N",
                        help="images per forward pass, fewer when they would hold more than "
                        f"{BATCH_INPUT_PIXELS} input pixels: 32 at 224 px, 1 at 1024 "
                        "(default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="STAGE.FIELD=V",
                        help="override a pooled stage: STAGE.k=V, STAGE.dsr=V (or H,W), "
                             f"STAGE.tau=V, STAGE.mode={'|'.join(STEERABLE_MODES)} (arpfg: "
                             "ARP-FG, beyond the paper); repeatable, e.g. --set "
                             "conv4.local0.k=0.5 (default: the trained settings)")
    parser.add_argument("--no-overlays", dest="overlays", action="store_false",
                        help="skip the overlay PNGs (drawn by default)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help="refuse images with more pixels, checked before decoding "
                        "(default: %(default)s)")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, metavar="N",
                        help="refuse image files larger than this (default: %(default)s bytes, "
                        f"{DEFAULT_MAX_BYTES / 2**20:g} MiB)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    return parser


def _prepare(args: argparse.Namespace, local_rank: int) -> tuple[ckpt.Checkpoint, dict, list]:
    """Check every argument and load the model; raises UsageError."""
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.max_pixels < 1 or args.max_bytes < 1:
        raise UsageError("--max-pixels and --max-bytes must be >= 1")
    if Image.MAX_IMAGE_PIXELS is not None and args.max_pixels > Image.MAX_IMAGE_PIXELS:
        raise UsageError(f"--max-pixels can be at most {Image.MAX_IMAGE_PIXELS} (Pillow's own "
                         f"limit for decoding an image safely), got {args.max_pixels}")
    try:
        overrides = parse_overrides(args.overrides)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        device = check_device(args.device, "--device", local_rank=local_rank)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        if args.checkpoint is None:
            args.checkpoint = str(default_checkpoint_path())
        bundle = ckpt.load(args.checkpoint, device=device)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"--checkpoint: {exc}") from None
    try:
        bundle.model.stage_settings(overrides)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--set: {exc}") from None
    files = list_images(args.inputs)
    if not files:
        raise UsageError(f"no image files found in {args.inputs}")
    try:
        check_output_dir(args.out, "--out")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return bundle, overrides, files


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 all ok, 1 some failed, 2 usage error)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(message)s")
    rank, world = _distributed()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    try:
        bundle, overrides, files = _prepare(args, local_rank)
    except UsageError as exc:
        if rank == 0:
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        _finish(world)
        return 2
    out = Path(args.out)
    overlays = out / "overlays"
    (overlays if args.overlays else out).mkdir(parents=True, exist_ok=True)
    device = model_device(bundle.model)

    note = synthetic_data_note(bundle.meta.dataset)  # photos mean nothing to such a model
    mine = list(range(rank, len(files), world))  # strided shard: similar work per rank
    rows: list[tuple[int, dict[str, Any]]] = []
    # log lines (a failed file, an overlay error) print above the bar, never through it
    with logging_redirect_tqdm():
        explained = explain_files(bundle, [files[i] for i in mine], overrides,
                                  batch_size=args.batch_size, progress=not args.quiet and rank == 0,
                                  max_pixels=args.max_pixels, max_bytes=args.max_bytes)
        for index, item in zip(mine, explained, strict=True):
            row = record_to_json(item.record)
            row["file"] = str(files[index])
            if note is not None and row["ok"]:
                row["notes"].append(note)
            if args.overlays and item.image is not None:
                name = _overlay_name(index, row["file"])
                try:
                    (overlays / name).write_bytes(overlay_png(item.image, item.record))
                    row["overlay"] = f"overlays/{name}"
                except Exception as exc:  # noqa: BLE001 - a drawing failure must not stop the run
                    logger.warning("overlay of %s failed: %s", row["file"], exc)
                    row["overlay"] = None
            rows.append((index, row))
    rows = _gather(rows, world)
    failed = sum(not row["ok"] for _, row in rows)
    if rank == 0:
        with open(out / "results.jsonl", "w", encoding="utf-8") as handle:
            for _, row in rows:
                handle.write(json.dumps(row, allow_nan=False) + "\n")
        manifest = {
            "command": PROG,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "checkpoint": {"path": str(args.checkpoint),
                           "sha256": ckpt.file_digest(Path(args.checkpoint)),
                           "card": _card(bundle.meta), "note": note},
            "settings": {
                "inputs": [str(i) for i in args.inputs],
                "images": len(files),
                "overrides": {name: {"mode": o.mode, "k": o.k,
                                     "dsr": list(o.dsr) if o.dsr is not None else None}
                              for name, o in overrides.items()},
                "stages": {name: {"mode": s.mode, "k": s.k,
                                  "dsr": list(s.dsr) if s.dsr is not None else None}
                           for name, s in bundle.model.stage_settings(overrides).items()},
                "batch_size": args.batch_size,
                # the memory budget: images per forward pass, decoded pixels per batch
                "images_per_pass": images_per_pass(bundle.meta.input_size, args.batch_size),
                "batch_input_pixels": BATCH_INPUT_PIXELS,
                "batch_decoded_pixels": BATCH_DECODED_PIXELS,
                "max_pixels": args.max_pixels,
                "max_bytes": args.max_bytes,
                "overlays": args.overlays,
            },
            "device": {"type": device.type, "name": (torch.cuda.get_device_name(device)
                                                      if device.type == "cuda" else
                                                      platform.processor() or platform.machine()),
                       "world_size": world},
            "versions": _versions(),
            "results": {"ok": len(rows) - failed, "failed": failed},
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"{len(rows) - failed} of {len(rows)} images explained; {failed} failed; "
              f"results in {out / 'results.jsonl'}")
    _finish(world)
    return 0 if failed == 0 else 1

