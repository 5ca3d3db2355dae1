"""Train MSGN with the paper's recipe; ``arpviz-train --help``.

Recipe (the paper's Section 4.1 and Appendix C): SGD, momentum 0.9, weight decay 5e-4; the
learning rate warms up linearly from 0.001 to 0.01 over the first 10% of the epochs (per
iteration), then is multiplied by 0.1 at 40% and 70% of the epochs; cross-entropy. After every
epoch the probe images (the first ``probes`` images of the evaluation split) are explained and
their boxes, rates, confidence maps and top-5 predictions are stored in the checkpoint
(:mod:`arpviz.checkpoint`).

Several GPUs (or CPU processes): ``torchrun --nproc_per_node N -m arpviz.train ...`` (DDP; NCCL
on CUDA, gloo on CPU). Resume: ``--resume CKPT`` continues the schedule from the next epoch,
reading the optimizer state beside the checkpoint (``CKPT`` with ``.state.safetensors``).
ImageNet initialisation: ``--pretrained DEFAULT`` (or ``IMAGENET1K_V2``, ...: torchvision's
weights of the model's backbone) reads torchvision's file from the torch cache; ``--download``
fetches it first when it is not there (once per machine, its checksum verified; env
``ARPVIZ_WEIGHTS_MIRROR`` names a mirror).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset
from tqdm.auto import tqdm

from arpviz import checkpoint as ckpt
from arpviz.commands import command_parser
from arpviz.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from arpviz.datasources import DataSources, build, probe_batch
from arpviz.models import MSGN, MSGNConfig, from_torchvision
from arpviz.models.pretrained import fetch_pretrained, pretrained_entry
from arpviz.models.stages import MASK_MODES
from arpviz.recipe import (
    DEFAULT_WORDS,
    FIELD_HELP,
    SCHEDULES,
    TrainConfig,
    learning_rate,
    param_groups,
)
from arpviz.reid import ReIDModel, is_reid, reid_epoch_loader, reid_loss, reid_record, warm_start
from arpviz.validation import check_device, check_output_file
from arpviz.weights import WeightsError

__all__ = [
    "SCHEDULES", "TrainConfig", "learning_rate", "main", "model_inputs", "param_groups",
    "process_group_backend", "snapshot", "state_path", "top_predictions", "train",
]

logger = logging.getLogger(__name__)

def state_path(path: str | os.PathLike) -> Path:
    """Where the optimizer state of checkpoint ``path`` lives."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".safetensors") + ".state.safetensors")


# ----------------------------------------------------------------------------- helpers


def process_group_backend(device: torch.device | str) -> str:
    """The ``torch.distributed`` backend for training on ``device``: NCCL for CUDA, gloo for
    the CPU (whether or not the machine has CUDA)."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def _distributed(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(process_group_backend(device))
    if world > 1:
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_sum(values: Sequence[float], device: torch.device) -> list[float]:
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor.tolist()


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


@torch.no_grad()
def snapshot(
    model: MSGN, images: Tensor, epoch: int, mask: Tensor | None = None
) -> ckpt.EpochSnapshot:
    """Explain ``images`` ``[P, 3, H, W]`` (with their ``mask`` for an oracle stage) and keep
    what the training page shows."""
    was_training = model.training
    model.eval()
    explanation = model.explain(images, mask=mask)
    model.train(was_training)
    stages = {
        name: {
            "boxes": result.boxes.float().cpu(),
            "image_boxes": explanation.image_boxes[name].float().cpu(),
            "rates": result.rates.float().cpu(),
            "confidence": result.confidence.float().cpu(),
        }
        for name, result in explanation.stages.items()
    }
    probs = explanation.logits.float().softmax(dim=1)
    top = probs.topk(min(5, probs.shape[1]), dim=1)
    return ckpt.EpochSnapshot(epoch, stages, (top.indices.cpu(), top.values.cpu()))


def model_inputs(batch: Sequence[Tensor], device: torch.device) -> tuple[tuple, Tensor]:
    """A loader's batch as ``(model arguments, labels)`` on ``device``: ``(images,)``, or
    ``(images, masks)`` where the data set gives masks (``(image, label, mask)`` items)."""
    images, labels, *rest = batch
    args = (images.to(device, non_blocking=True), *(m.to(device) for m in rest))
    return args, labels.to(device)


@torch.no_grad()
def top_predictions(model: nn.Module, loader: DataLoader, device: torch.device,
                    amp: bool = True) -> tuple[Tensor, Tensor]:
    """Every image's top-5 classes and label, in the loader's order (this process's share).

    Returns:
        ``(top: Tensor[N, min(5, classes)] int64, labels: Tensor[N] int64)`` on the CPU, the
        best class first.
    """
    model.eval()
    tops: list[Tensor] = []
    labels_seen: list[Tensor] = []
    for batch in loader:
        args, labels = model_inputs(batch, device)
        with _autocast(device, amp):
            logits = model(*args)
        tops.append(logits.float().topk(min(5, logits.shape[1]), dim=1).indices.cpu())
        labels_seen.append(labels.cpu())
    if not tops:
        return torch.zeros(0, 5, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    return torch.cat(tops), torch.cat(labels_seen)


def evaluate_top(model: nn.Module, loader: DataLoader, device: torch.device,
                 amp: bool = True) -> tuple[float, float, int]:
    """Top-1 and top-5 accuracy (in %) and the count, summed over all processes."""
    top, labels = top_predictions(model, loader, device, amp)
    correct1 = float((top[:, 0] == labels).sum())
    correct5 = float((top == labels[:, None]).any(dim=1).sum())
    correct1, correct5, count = _all_sum([correct1, correct5, float(labels.numel())], device)
    return 100 * correct1 / max(count, 1), 100 * correct5 / max(count, 1), int(count)


def _limit(dataset, limit: int | None):
    return dataset if limit is None or limit >= len(dataset) else Subset(dataset, range(limit))


# ----------------------------------------------------------------------------- training


PROG = "arpviz-train"


def _fetch_pretrained(config: TrainConfig, backbone: str, world: int) -> None:
    """Download ``config.pretrained``'s torchvision file into the torch cache unless it is
    there: the first process of each machine fetches, the others wait for it."""
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        bar = tqdm(total=100, desc="ImageNet weights", disable=not config.progress,
                   bar_format="{percentage:3.0f}% {desc}")

        def progress(fraction: float, message: str) -> None:
            bar.n = round(100 * fraction)
            bar.set_description_str(message)

        try:
            fetch_pretrained(backbone, config.pretrained, progress=progress)
        finally:
            bar.close()
    if world > 1:
        dist.barrier()


def train(config: TrainConfig, resume: str | os.PathLike | None = None, *,
          download: bool = False) -> Path:
    """Run the recipe and write the checkpoint ``config.out`` after every epoch.

    ``download``: fetch ``config.pretrained``'s torchvision weights into the torch cache first
    when they are not there (:func:`arpviz.models.pretrained.fetch_pretrained`).

    Returns:
        The checkpoint path (on every process; only rank 0 writes it).
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    device = check_device(config.device)
    rank, world = _distributed(device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.manual_seed(config.seed)
    needs_mask = bool({config.model.get("conv3"), config.model.get("conv4")} & set(MASK_MODES))
    sources: DataSources = build(config.dataset, config.image_size, cache=config.cache,
                                 masks=needs_mask)
    reid = is_reid(config.dataset)
    if reid and needs_mask:
        raise ValueError("model: a mask stage ('oracle', 'oracle_fixed') needs masks, which "
                         "re-ID training lacks")
    model_config = MSGNConfig.from_dict(
        {**config.model, "num_classes": len(sources.class_names)}
    )
    if config.pretrained and config.pretrained.endswith(".safetensors"):
        model = MSGN(model_config)
        warm_start(model, config.pretrained)
    elif config.pretrained:
        if download:
            _fetch_pretrained(config, model_config.backbone, world)
        model = from_torchvision(model_config, config.pretrained)
    else:
        model = MSGN(model_config)
    model.to(device)
    optimizer = torch.optim.SGD(param_groups(model, config.localisation_lr_scale),
                                lr=config.warmup_lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    history: list[dict[str, Any]] = []
    snapshots: list[ckpt.EpochSnapshot] = []
    start_epoch = 0
    if resume is not None:
        previous = ckpt.load(resume, device="cpu")
        if previous.config != model_config:
            raise ValueError("resume: the checkpoint's model config differs from this run's")
        before = float(previous.meta.recipe.get("localisation_lr_scale", 1.0))
        if before != config.localisation_lr_scale:
            raise ValueError(f"resume: localisation_lr_scale was {before}, this run has "
                             f"{config.localisation_lr_scale}")
        model.load_state_dict(previous.model.state_dict())
        history = [dict(h) for h in previous.meta.history]
        snapshots = list(previous.snapshots)
        info = ckpt.load_training_state(state_path(resume), optimizer, model)
        start_epoch = int(info["epoch"])
        logger.info("resuming after epoch %d", start_epoch)

    train_set = _limit(sources.train, config.limit_train)
    val_set = _limit(sources.val, config.limit_val)
    val_indices = list(range(rank, len(val_set), world))
    val_loader = DataLoader(Subset(val_set, val_indices), batch_size=config.batch_size,
                            num_workers=config.workers)
    probe_indices = list(range(min(config.probes, len(val_set))))
    probes = probe_batch(val_set, probe_indices) if probe_indices and rank == 0 else None

    net: nn.Module = ReIDModel(model) if reid else model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    scaler = torch.amp.GradScaler(
        "cuda", enabled=device.type == "cuda" and config.amp
        and not torch.cuda.is_bf16_supported()
    )
    steps_per_epoch = math.ceil(len(train_set) / (config.batch_size * world))
    if reid:
        steps_per_epoch = len(reid_epoch_loader(train_set, config, 0, rank, world).batch_sampler)
    meta = ckpt.CheckpointMeta(
        config=model_config,
        class_names=sources.class_names,
        input_size=config.image_size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        recipe=config.to_dict(),
        dataset={**sources.record, "eval_split": "query" if reid else "val",
                 "probe_indices": probe_indices, "limit_val": config.limit_val},
    )
    out = Path(config.out)
    last = config.epochs if config.stop_after is None else min(config.stop_after, config.epochs)
    for epoch in range(start_epoch, last):
        started = time.perf_counter()
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        if world > 1:
            sampler = DistributedSampler(train_set, num_replicas=world, rank=rank,
                                         shuffle=True, seed=config.seed)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(train_set, generator=generator)
        torch.manual_seed(config.seed * 1000 + epoch + rank)
        loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler,
                            num_workers=config.workers, drop_last=False)
        if reid:
            loader = reid_epoch_loader(train_set, config, epoch, rank, world)
        net.train()
        loss_sum = correct = seen = 0.0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                   disable=rank != 0 or not config.progress)
        for step, batch in enumerate(bar):
            lr = learning_rate(config, epoch + step / steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            args, labels = model_inputs(batch, device)
            with _autocast(device, config.amp):
                if reid:
                    output = net(*args)
                    logits, loss = output[1], reid_loss(output, labels, config.triplet_margin)
                else:
                    logits = net(*args)
                    loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.item() * labels.numel()
            correct += (logits.argmax(1) == labels).sum().item()
            seen += labels.numel()
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", lr=f"{lr:.4f}")
        loss_sum, correct, seen = _all_sum([loss_sum, correct, seen], device)
        if reid:
            scores = reid_record(model, sources, device, config, rank)
        else:
            val_top1, val_top5, _ = evaluate_top(net, val_loader, device, config.amp)
            scores = {"val_top1": val_top1, "val_top5": val_top5}
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "train_top1": 100 * correct / max(seen, 1),
            **scores,
            "lr": learning_rate(config, epoch + 1 - 1e-9),
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        if rank == 0:
            if probes is not None:
                probe_mask = None if probes[2] is None else probes[2].to(device)
                snapshots.append(snapshot(model, probes[0].to(device), epoch + 1, probe_mask))
            final = dataclasses.replace(meta, history=tuple(history))
            ckpt.save(out, model, final, tuple(snapshots),
                      probes[1] if probes is not None else None)
            ckpt.save_training_state(state_path(out), optimizer, model,
                                     {"epoch": epoch + 1, "train_config": config.to_dict()})
            logger.info(
                "epoch %d/%d  loss %.4f  train %.1f%%  %s  lr %.5f  %.0fs", epoch + 1,
                config.epochs, record["train_loss"], record["train_top1"],
                "  ".join(f"{k} {v:.2f}%" for k, v in scores.items()), record["lr"],
                record["seconds"],
            )
        if world > 1:
            dist.barrier()
    if world > 1:
        dist.destroy_process_group()
    return out


# ----------------------------------------------------------------------------- CLI


def _default_text(name: str, default: Any) -> str:
    """A field's default as its help states it: words where the default is not a plain value
    (:data:`~arpviz.recipe.DEFAULT_WORDS`), else the value as it is typed on the command line."""
    if name in DEFAULT_WORDS:
        return DEFAULT_WORDS[name]
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, dict):
        return json.dumps(default)
    if isinstance(default, (tuple, list)):
        return " ".join(str(v) for v in default)
    return str(default)


def _flag_kwargs(name: str, hint: Any, default: Any) -> dict[str, Any]:
    """argparse keywords for a TrainConfig field of type ``hint`` (its default stated once, in
    the help; the parser's own default is None, so that a flag not given leaves ``--config``'s
    value)."""
    text = f"{FIELD_HELP.get(name, name)} (default: {_default_text(name, default)})"
    kwargs: dict[str, Any] = {"dest": name, "default": None, "help": text.replace("%", "%%")}
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) else hint
    if base is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(base) is dict or base is dict:
        kwargs["type"] = json.loads
        kwargs["metavar"] = "JSON"
    elif typing.get_origin(base) is tuple:
        kwargs.update(type=float, nargs="+")
    elif name == "device":
        kwargs["choices"] = ["auto", "cpu", "cuda"]
    elif name == "schedule":
        kwargs["choices"] = list(SCHEDULES)
    else:
        kwargs["type"] = base
    return kwargs


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        PROG,
        description="Train MSGN with the paper's recipe (SGD, linear warm-up, then the learning "
        "rate x0.1 at 40% and 70% of the epochs; P x K batches and a triplet loss on a re-ID data "
        "set) "
        "and write the checkpoint, with its probe images' boxes, after every epoch. Every "
        "TrainConfig field is a flag; flags override --config FILE, which overrides the "
        "defaults shown.",
        epilog="Several GPUs: torchrun --nproc_per_node N -m arpviz.train ... "
        "Details: docs/training.md.")
    parser.add_argument("--config", metavar="FILE",
                        help="a JSON file of TrainConfig fields (default: none, the defaults "
                        "below)")
    parser.add_argument("--resume", metavar="CKPT",
                        help="continue from this checkpoint after its last epoch, with the "
                        "optimizer state written beside it (default: a fresh run)")
    parser.add_argument("--download", action="store_true",
                        help="download --pretrained's torchvision weights into the torch cache "
                        "when they are not there (the SHA-256 checked; env ARPVIZ_WEIGHTS_MIRROR "
                        "names a mirror) (default: never download)")
    hints = typing.get_type_hints(TrainConfig)
    for spec in dataclasses.fields(TrainConfig):
        default = spec.default_factory() if spec.default is dataclasses.MISSING else spec.default
        flag = "--" + spec.name.replace("_", "-")
        parser.add_argument(flag, **_flag_kwargs(spec.name, hints[spec.name], default))
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Merge ``--config FILE`` with the flags that were given (``--model`` is merged into the
    file's model fields, every other flag replaces the file's value)."""
    data: dict[str, Any] = {}
    if args.config:
        data.update(json.loads(Path(args.config).read_text()))
    for spec in dataclasses.fields(TrainConfig):
        value = getattr(args, spec.name)
        if value is None:
            continue
        if spec.name == "model":
            value = {**data.get("model", {}), **value}
        data[spec.name] = value
    return TrainConfig.from_dict(data)


def _check_pretrained(config: TrainConfig, download: bool) -> None:
    """Usage errors of ``--pretrained``/``--download`` before any work: a name the backbone
    has no weights of, weights missing from the cache without ``--download``, ``--download``
    without a weights name."""
    pretrained = config.pretrained
    backbone = MSGNConfig.from_dict(config.model).backbone
    if not pretrained or pretrained.endswith(".safetensors"):
        entry = None
    else:
        entry = pretrained_entry(backbone, pretrained)
    if download and entry is None:
        raise ValueError("--download needs --pretrained NAME, a torchvision weights name of the "
                         f"backbone ({backbone}) such as DEFAULT or IMAGENET1K_V1")
    if entry is not None and not download and not entry.is_cached:
        raise ValueError(f"--pretrained {pretrained}: {entry.name} ({entry.size_text}) is not in "
                         f"the torch cache ({entry.cache_path}); add --download to fetch it. "
                         f"{entry.manual()}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; a usage error exits with 2, a failed download with 1 (one
    line each)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        config = config_from_args(args)
        _check_pretrained(config, args.download)
        check_output_file(config.out, "--out")
        check_device(config.device, "--device")
        if args.resume is not None and not Path(args.resume).is_file():
            raise ValueError(f"--resume: no checkpoint file at {args.resume}")
    except (ValueError, TypeError, OSError, json.JSONDecodeError) as exc:
        parser.error(" ".join(str(exc).split()))
    try:
        path = train(config, resume=args.resume, download=args.download)
    except (WeightsError, ValueError, TypeError, OSError) as exc:
        # a resume that does not fit, a data set that cannot be read, a full disk: one line
        # (the traceback goes to the log at debug level)
        logger.debug("training failed", exc_info=True)
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
