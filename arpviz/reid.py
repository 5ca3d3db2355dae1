"""Re-identification training pieces: data sets by name, the P x K sampler, the losses.

The paper's re-ID recipe (Section 4 and Appendix C): images resized to the input size (no
crop; random horizontal flip in training), the MSGN embedding as the descriptor, the sum of
cross-entropy over the training identities and the batch-hard triplet loss (Hermans, Beyer and
Leibe, "In Defense of the Triplet Loss for Person Re-Identification", 2017) on the embedding
(:func:`descriptor`), batches of P identities with K images each. :mod:`arpviz.train` uses
these when the data set is a re-ID one (:data:`~arpviz.datasources.REID_DATASETS`);
:mod:`arpviz.retrieval` evaluates. The data sets by name (:func:`build_reid`, :func:`is_reid`,
:func:`reid_labels`) live in :mod:`arpviz.datasources` and the descriptor in
:mod:`arpviz.retrieval`; they are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from arpviz.datasources import REID_DATASETS, build_reid, is_reid, reid_labels
from arpviz.models import MSGN
from arpviz.retrieval import descriptor, retrieval_metrics

__all__ = [
    "REID_DATASETS",
    "PKBatchSampler",
    "ReIDModel",
    "batch_hard_triplet_loss",
    "build_reid",
    "descriptor",
    "reid_epoch_loader",
    "is_reid",
    "reid_labels",
    "reid_loss",
    "reid_record",
    "warm_start",
]

logger = logging.getLogger(__name__)

class PKBatchSampler(Sampler[list[int]]):
    """Batches of ``p`` identities with ``k`` images each (indices into the data set).

    An epoch splits each identity's images (shuffled) into chunks of ``k``, the last chunk
    filled up by drawing again from the identity (an identity with fewer than ``k`` images
    repeats some); batches take ``p`` chunks of distinct identities, chosen at random among the
    identities with chunks left, until fewer than ``p`` remain (torchreid's
    ``RandomIdentitySampler``). Deterministic from ``seed`` and the epoch
    (:meth:`set_epoch`). With ``world > 1`` (DDP) process ``rank`` takes batches
    ``rank, rank + world, ...`` of the same sequence, all processes the same number.
    """

    def __init__(self, labels: Sequence[int], p: int, k: int, *, seed: int = 0,
                 rank: int = 0, world: int = 1) -> None:
        for name, value, low in (("p", p, 2), ("k", k, 1), ("world", world, 1),
                                 ("rank", rank, 0), ("seed", seed, 0)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {value!r}")
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if rank >= world:
            raise ValueError(f"rank must be < world ({world}), got {rank}")
        by_id: dict[int, list[int]] = {}
        for index, label in enumerate(labels):
            by_id.setdefault(int(label), []).append(index)
        if len(by_id) < p:
            raise ValueError(f"p must be <= the number of identities ({len(by_id)}), got {p}")
        self.by_id = by_id
        self.p, self.k, self.seed, self.rank, self.world = p, k, seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the batches of ``epoch``."""
        self.epoch = int(epoch)

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x9C, self.epoch]))
        chunks: dict[int, list[list[int]]] = {}
        for pid in sorted(self.by_id):
            items = rng.permutation(self.by_id[pid]).tolist()
            short = -len(items) % self.k
            items += rng.choice(self.by_id[pid], short, replace=True).tolist() if short else []
            chunks[pid] = [items[i:i + self.k] for i in range(0, len(items), self.k)]
        batches = []
        while True:
            alive = [pid for pid in sorted(chunks) if chunks[pid]]
            if len(alive) < self.p:
                break
            picked = rng.choice(alive, self.p, replace=False).tolist()
            batches.append([i for pid in picked for i in chunks[pid].pop()])
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches()
        usable = len(batches) // self.world * self.world
        return iter(batches[self.rank:usable:self.world])

    def __len__(self) -> int:
        return len(self._all_batches()) // self.world


def batch_hard_triplet_loss(embeddings: Tensor, labels: Tensor, margin: float = 0.3) -> Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017) with Euclidean distances.

    For every anchor: its farthest positive and nearest negative in the batch,
    ``relu(margin + d(a, p) - d(a, n))``, averaged over anchors that have at least one other
    positive and one negative (0 if none has).

    Args:
        embeddings: ``Tensor[B, D]``.
        labels: ``Tensor[B]`` integer identities.
        margin: ``>= 0``.
    """
    if not isinstance(embeddings, Tensor) or embeddings.dim() != 2:
        raise ValueError("embeddings must be a Tensor[B, D]")
    if not isinstance(labels, Tensor) or labels.shape != embeddings.shape[:1]:
        raise ValueError(f"labels must be a Tensor[{embeddings.shape[0]}]")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    x = embeddings.float()
    squared = (x[:, None, :] - x[None, :, :]).pow(2).sum(-1)
    dist = squared.clamp_min(1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive = same & ~eye
    valid = positive.any(1) & (~same).any(1)
    if not valid.any():
        return x.sum() * 0.0
    hardest_pos = dist.masked_fill(~positive, float("-inf")).amax(1)
    hardest_neg = dist.masked_fill(same, float("inf")).amin(1)
    return F.relu(margin + hardest_pos - hardest_neg)[valid].mean()


class ReIDModel(nn.Module):
    """An MSGN that returns ``(descriptor [B, D], logits [B, num_classes])`` (for DDP)."""

    def __init__(self, model: MSGN) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        desc = descriptor(self.model, self.model.forward_features(x))
        return desc, self.model.classifier(F.relu(desc))


def reid_loss(output: tuple[Tensor, Tensor], labels: Tensor, margin: float = 0.3) -> Tensor:
    """Cross-entropy over the training identities plus the batch-hard triplet loss."""
    embedding, logits = output
    return F.cross_entropy(logits.float(), labels) + batch_hard_triplet_loss(
        embedding, labels, margin)


def reid_epoch_loader(train_set: Dataset, config: Any, epoch: int, rank: int = 0,
                      world: int = 1) -> DataLoader:
    """The training loader of one epoch: P x K batches of ``config.batch_size`` images
    (``config``: a :class:`~arpviz.train.TrainConfig`; K = ``config.instances_per_id``)."""
    k = config.instances_per_id
    if not isinstance(k, int) or k < 1 or config.batch_size % k or config.batch_size // k < 2:
        raise ValueError(f"batch_size ({config.batch_size}) must be P x instances_per_id "
                         f"({k}) with P >= 2")
    labels, _ = reid_labels(train_set)
    sampler = PKBatchSampler(labels, config.batch_size // k, k, seed=config.seed, rank=rank,
                             world=world)
    sampler.set_epoch(epoch)
    return DataLoader(train_set, batch_sampler=sampler, num_workers=config.workers)


def reid_record(model: MSGN, sources: Any, device: torch.device, config: Any,
                rank: int = 0) -> dict[str, float]:
    """The epoch's test figures for the history (rank 0 only; other ranks get ``{}``):
    ``mAP``, ``rank1``, ``rank5``, ``rank10`` in %."""
    if rank != 0:
        return {}
    metrics = retrieval_metrics(model, sources.query, sources.gallery,
                                batch_size=config.batch_size, device=device,
                                progress=config.progress)
    return {"mAP": metrics.mAP, "rank1": metrics.rank1, "rank5": metrics.rank5,
            "rank10": metrics.rank10}


def warm_start(model: MSGN, path: str | Path) -> list[str]:
    """Copy into ``model`` every weight of arpviz checkpoint ``path`` whose name and shape fit,
    except the classifier (the training identities are new); returns the names copied.

    The re-ID counterpart of starting from ImageNet weights: e.g. the bundled SynthBirds MSGN
    (pooling modes may differ, RP/ARP/stride have no weights).
    """
    from arpviz import checkpoint as ckpt

    source = ckpt.load(path).model.state_dict()
    target = model.state_dict()
    copied = [name for name, value in source.items() if not name.startswith("classifier.")
              and name in target and target[name].shape == value.shape]
    if not copied:
        raise ValueError(f"pretrained: no weight of {path} fits this model")
    model.load_state_dict({**target, **{name: source[name] for name in copied}})
    logger.info("warm start from %s: %d of %d tensors", path, len(copied), len(target))
    return copied
