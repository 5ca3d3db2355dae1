"""What a training run is made of: :class:`TrainConfig` (round-trips through JSON, ``--config
FILE``), the learning-rate schedule (:func:`learning_rate`) and the optimizer's parameter groups
(:func:`param_groups`). :mod:`arpviz.train` runs it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from arpviz.checkpoint_format import MAX_INPUT_SIZE, MIN_INPUT_SIZE
from arpviz.models import MSGNConfig
from arpviz.validation import check_count, check_positive, dataclass_fields_of

__all__ = [
    "DEFAULT_WORDS", "FIELD_HELP", "SCHEDULES", "TrainConfig", "learning_rate", "param_groups",
]

#: learning-rate schedules after the warm-up (:func:`learning_rate`)
SCHEDULES: tuple[str, ...] = ("step", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run is made of; round-trips through JSON (``--config FILE``).

    ``limit_train``/``limit_val`` cut the splits (smoke tests); ``threads`` sets torch's CPU
    threads; ``cache`` renders SynthBirds once into memory; ``stop_after`` ends the run after
    that epoch (the schedule stays that of ``epochs``; ``--resume`` goes on); ``device`` is
    ``auto`` (CUDA when present), ``cpu`` or ``cuda``. ``image_size`` becomes the checkpoint's
    input size, so it is bounded as a checkpoint's is (:data:`arpviz.checkpoint.MIN_INPUT_SIZE`
    to :data:`~arpviz.checkpoint.MAX_INPUT_SIZE`) before any work. ``localisation_lr_scale``
    multiplies the learning rate of the spatial transformers' localisation networks (the STN
    baseline; the spatial-transformer paper trains them at a reduced rate), 1 for every other
    parameter.
    A re-ID data set (:data:`arpviz.reid.REID_DATASETS`) switches to the re-ID recipe: P x K
    batches (``batch_size`` = P x ``instances_per_id``), cross-entropy plus batch-hard triplet
    loss with ``triplet_margin``, mAP/CMC on the test query/gallery after every epoch.
    """

    out: str = "runs/msgn.safetensors"
    model: dict[str, Any] = field(default_factory=lambda: {"backbone": "tiny", "num_classes": 24})
    dataset: dict[str, Any] = field(default_factory=lambda: {"name": "synthbirds"})
    image_size: int = 128
    epochs: int = 12
    batch_size: int = 64
    lr: float = 0.01
    warmup_lr: float = 0.001
    warmup_fraction: float = 0.1
    milestones: tuple[float, ...] = (0.4, 0.7)
    gamma: float = 0.1
    schedule: str = "step"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    workers: int = 0
    probes: int = 16
    device: str = "auto"
    amp: bool = True
    threads: int | None = None
    pretrained: str | None = None
    limit_train: int | None = None
    limit_val: int | None = None
    progress: bool = True
    cache: bool = True
    stop_after: int | None = None
    localisation_lr_scale: float = 1.0
    triplet_margin: float = 0.3
    instances_per_id: int = 4

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "image_size"):
            check_count(getattr(self, name), name)
        if not MIN_INPUT_SIZE <= self.image_size <= MAX_INPUT_SIZE:
            # the checkpoint's input size, which arpviz.checkpoint refuses outside these bounds
            raise ValueError(f"image_size must be in [{MIN_INPUT_SIZE}, {MAX_INPUT_SIZE}] pixels "
                             "(the input sizes a checkpoint may have, "
                             f"arpviz.checkpoint.MAX_INPUT_SIZE), got {self.image_size!r}")
        for name in ("lr", "warmup_lr", "localisation_lr_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if not isinstance(self.probes, int) or self.probes < 0:
            raise ValueError(f"probes must be an int >= 0, got {self.probes!r}")
        for name in ("momentum", "weight_decay", "triplet_margin"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        check_positive(self.gamma, "gamma")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 0:
            raise ValueError(f"workers must be an int >= 0, got {self.workers!r}")
        for name in ("threads", "limit_train", "limit_val", "stop_after"):
            check_count(getattr(self, name), name, optional=True)
        check_count(self.instances_per_id, "instances_per_id")
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))
        if not all(0 < m <= 1 for m in self.milestones) or list(self.milestones) != sorted(
                self.milestones):
            raise ValueError("milestones must be increasing fractions of the epochs in (0, 1], "
                             f"got {list(self.milestones)}")
        MSGNConfig.from_dict(self.model)  # validates the model part early

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        out = dataclasses.asdict(self)
        out["milestones"] = list(self.milestones)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are a ``ValueError``."""
        return cls(**dataclass_fields_of(data, cls))


def learning_rate(config: TrainConfig, progress: float) -> float:
    """The learning rate at ``progress`` epochs (fractional) into training.

    A linear warm-up from ``warmup_lr`` to ``lr`` over ``warmup_fraction`` of the epochs, then
    ``"step"``: ``lr`` times ``gamma`` at each milestone (the paper's recipe), or
    ``"cosine"``: half a cosine from ``lr`` down to 0 at the end (milestones unused).
    """
    warm = config.warmup_fraction * config.epochs
    if progress < warm:
        return config.warmup_lr + (config.lr - config.warmup_lr) * progress / warm
    if config.schedule == "cosine":
        done = min(max((progress - warm) / max(config.epochs - warm, 1e-12), 0.0), 1.0)
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * done))
    passed = sum(progress >= m * config.epochs for m in config.milestones)
    return config.lr * config.gamma**passed


def param_groups(model: nn.Module, localisation_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: the spatial transformers' parameters (``lr_scale``
    ``localisation_lr_scale``) and all others (``lr_scale`` 1); an empty group is left out."""
    from arpviz.models.stn import SpatialTransformer

    local = {id(p) for m in model.modules() if isinstance(m, SpatialTransformer)
             for p in m.parameters()}
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if id(p) not in local], "lr_scale": 1.0},
        {"params": [p for p in params if id(p) in local], "lr_scale": localisation_lr_scale},
    ]
    return [g for g in groups if g["params"]]


# help text of every TrainConfig field; the flags are derived from the fields (one place)
FIELD_HELP: dict[str, str] = {
    "out": "checkpoint path (.safetensors)",
    "model": "MSGNConfig fields as JSON, merged into the config's, e.g. '{\"backbone\": \"tiny\"}'",
    "dataset": "data set as JSON, replacing the config's, "
    "e.g. '{\"name\": \"cub\", \"root\": \"CUB_200_2011\"}'",
    "image_size": f"input side in pixels, {MIN_INPUT_SIZE} to {MAX_INPUT_SIZE} (training crop "
    "and test centre crop)",
    "epochs": "epochs of the schedule",
    "batch_size": "images per step and process",
    "lr": "peak learning rate (after warm-up)",
    "warmup_lr": "learning rate at the start of the linear warm-up",
    "warmup_fraction": "share of the epochs spent warming up",
    "milestones": "fractions of the epochs where the learning rate is multiplied by gamma",
    "gamma": "learning-rate factor at each milestone",
    "schedule": "after the warm-up: step (gamma at each milestone, the paper) or cosine (to 0)",
    "momentum": "SGD momentum",
    "weight_decay": "SGD weight decay",
    "seed": "random seed (model initialisation, data order)",
    "workers": "DataLoader worker processes",
    "probes": "probe images explained and stored after every epoch",
    "device": "auto (CUDA when present), cpu or cuda",
    "amp": "mixed precision on CUDA (bfloat16 where supported)",
    "threads": "torch CPU threads",
    "pretrained": "initialisation: a torchvision weights name of the backbone (DEFAULT, "
    "IMAGENET1K_V2, ...: read from the torch cache, see --download) or a state-dict file "
    "(ImageNet), or an arpviz .safetensors checkpoint (all fitting weights but the classifier)",
    "triplet_margin": "re-ID: margin of the batch-hard triplet loss",
    "instances_per_id": "re-ID: K images per identity in a P x K batch",
    "limit_train": "use only the first N training images (smoke runs)",
    "limit_val": "use only the first N evaluation images (smoke runs)",
    "progress": "show progress bars",
    "cache": "render SynthBirds once into memory",
    "stop_after": "end the run after this epoch (the schedule stays that of --epochs)",
    "localisation_lr_scale": "learning-rate factor of the spatial transformer's localisation net",
}

# the defaults that are not a plain value, in words (the flags' help states every default once)
DEFAULT_WORDS: dict[str, str] = {
    "threads": "torch's choice",
    "pretrained": "none, a random initialisation",
    "limit_train": "every training image",
    "limit_val": "every evaluation image",
    "stop_after": "the last epoch",
}
