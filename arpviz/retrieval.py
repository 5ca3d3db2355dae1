"""Retrieval: embed images with an MSGN, rank a gallery, score with mAP and CMC.

The standard protocol of Market-1501 and VeRi-776: for each query the gallery is ranked by the
Euclidean distance between MSGN embeddings; gallery images of the query's identity taken by the
query's camera are removed from its ranking (they are "junk", neither right nor wrong); a query
whose identity has no other image left is skipped. AP is the mean of the precision at each true
match; CMC rank-k is the share of queries with a true match among the first k. Figures are in
percent. Ties in distance keep gallery order (stable sort).

For a page: :func:`load_retrieval_sets` (the checkpoint's query/gallery with identities and
cameras), :func:`embed` (with optional stage overrides, e.g. another ARP ``k``),
:func:`rank_query` (one query's top-k with distances, matches, AP and first-match rank).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from arpviz import checkpoint as ckpt
from arpviz.datasources import build, is_reid, reid_labels
from arpviz.models import MSGN
from arpviz.models.stages import StageOverride
from arpviz.validation import check_count

__all__ = [
    "QueryRanking",
    "RetrievalMetrics",
    "RetrievalSets",
    "average_precision",
    "descriptor",
    "embed",
    "evaluate_ranking",
    "evaluate_retrieval",
    "load_retrieval_sets",
    "pairwise_distances",
    "rank_query",
    "retrieval_metrics",
]

logger = logging.getLogger(__name__)



def descriptor(model: MSGN, features: Tensor) -> Tensor:
    """The re-ID descriptor ``[B, D]`` of MSGN features ``[B, num_branches * C]``: the embedding
    layer's output before its ReLU (Linear + BatchNorm).

    The triplet loss and the retrieval use it; the classifier sees its ReLU, as in MSGN. (A
    triplet loss on the ReLU output can collapse: once the embedding is all zero, every distance
    is 0, the loss sits at the margin and no gradient flows back.)
    """
    return model.embedding[:-1](features)

@dataclass(frozen=True)
class RetrievalMetrics:
    """mAP and CMC (in %) over ``queries`` scored queries (``skipped`` had no true match)."""

    mAP: float  # noqa: N815 - the field name is the metric's
    rank1: float
    rank5: float
    rank10: float
    queries: int
    skipped: int
    gallery: int


@dataclass(frozen=True)
class QueryRanking:
    """One query's ranking (excluded gallery images removed).

    ``indices`` ``[top]`` gallery indices, best first, with their ``distances`` and ``matches``
    (same identity); ``ap`` the query's average precision in % and ``first_match`` the 1-based
    rank of its first true match over the whole ranking (both None without a true match);
    ``excluded`` how many gallery images the protocol removed (same identity and camera).
    """

    indices: np.ndarray
    distances: np.ndarray
    matches: np.ndarray
    ap: float | None
    first_match: int | None
    num_matches: int
    excluded: int


@dataclass(frozen=True)
class RetrievalSets:
    """Query and gallery data sets (eval transform) with identities and cameras."""

    query: Dataset
    gallery: Dataset
    query_pids: np.ndarray
    query_camids: np.ndarray
    gallery_pids: np.ndarray
    gallery_camids: np.ndarray


def average_precision(matches: np.ndarray) -> float:
    """AP (in [0, 1]) of a ranked boolean ``matches`` vector with at least one True."""
    matches = np.asarray(matches, dtype=bool)
    if matches.ndim != 1 or not matches.any():
        raise ValueError("matches must be a 1-d boolean array with at least one True")
    hits = np.cumsum(matches)
    precision = hits / np.arange(1, len(matches) + 1)
    return float(precision[matches].mean())


def _as_array(name: str, values: Sequence[int] | np.ndarray | Tensor, length: int) -> np.ndarray:
    out = np.asarray(values.cpu() if isinstance(values, Tensor) else values)
    if out.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got {out.shape}")
    return out.astype(np.int64)


def _ranking(dist: np.ndarray, q_pid: int, q_cam: int, g_pids: np.ndarray,
             g_cams: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    order = np.argsort(dist, kind="stable")
    junk = (g_pids[order] == q_pid) & (g_cams[order] == q_cam)
    order = order[~junk]
    return order, g_pids[order] == q_pid, int(junk.sum())


def evaluate_ranking(
    distances: np.ndarray | Tensor,
    query_pids: Sequence[int] | np.ndarray,
    gallery_pids: Sequence[int] | np.ndarray,
    query_camids: Sequence[int] | np.ndarray,
    gallery_camids: Sequence[int] | np.ndarray,
) -> RetrievalMetrics:
    """mAP and CMC rank-1/5/10 of a ``[Q, G]`` distance matrix under the standard protocol."""
    dist = np.asarray(distances.cpu() if isinstance(distances, Tensor) else distances, float)
    if dist.ndim != 2:
        raise ValueError(f"distances must be [Q, G], got shape {dist.shape}")
    nq, ng = dist.shape
    q_pids = _as_array("query_pids", query_pids, nq)
    q_cams = _as_array("query_camids", query_camids, nq)
    g_pids = _as_array("gallery_pids", gallery_pids, ng)
    g_cams = _as_array("gallery_camids", gallery_camids, ng)
    aps, firsts = [], []
    for i in range(nq):
        _, matches, _ = _ranking(dist[i], q_pids[i], q_cams[i], g_pids, g_cams)
        if not matches.any():
            continue
        aps.append(average_precision(matches))
        firsts.append(int(np.argmax(matches)))
    if not aps:
        raise ValueError("no query has a true match in the gallery under another camera")
    firsts_arr = np.array(firsts)
    return RetrievalMetrics(
        mAP=100 * float(np.mean(aps)),
        rank1=100 * float(np.mean(firsts_arr < 1)),
        rank5=100 * float(np.mean(firsts_arr < 5)),
        rank10=100 * float(np.mean(firsts_arr < 10)),
        queries=len(aps), skipped=nq - len(aps), gallery=ng,
    )


def pairwise_distances(query: Tensor, gallery: Tensor) -> Tensor:
    """Euclidean distances ``[Q, G]`` between embeddings ``[Q, D]`` and ``[G, D]``."""
    if query.dim() != 2 or gallery.dim() != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(f"query and gallery must be [Q, D] and [G, D], got "
                         f"{tuple(query.shape)} and {tuple(gallery.shape)}")
    return torch.cdist(query.float(), gallery.float())


@torch.no_grad()
def embed(
    model: MSGN, dataset: Dataset, *, batch_size: int = 64, device: str | torch.device = "cpu",
    overrides: Mapping[str, StageOverride] | None = None, progress: bool = True,
    desc: str = "embedding",
) -> Tensor:
    """The re-ID descriptors ``[N, D]`` (float32, CPU; :func:`arpviz.reid.descriptor`: the
    MSGN embedding before its ReLU) of a data set of ``(image, label)``.

    ``overrides`` (stage name -> :class:`~arpviz.models.msgn.StageOverride`) embed under
    another ARP ``k`` or DSR, as :meth:`MSGN.explain` does.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an MSGN, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    device = torch.device(device)
    out = []
    loader = DataLoader(dataset, batch_size=batch_size)
    for images, _ in tqdm(loader, desc=desc, leave=False, disable=not progress):
        images = images.to(device)
        if overrides:
            features = model.explain(images, overrides).features
        else:
            features = model.forward_features(images)
        out.append(descriptor(model, features).float().cpu())
    model.train(was_training)
    if not out:
        raise ValueError("dataset is empty")
    return torch.cat(out)


def rank_query(
    query_embedding: Tensor, gallery_embeddings: Tensor, query_pid: int, query_camid: int,
    gallery_pids: Sequence[int] | np.ndarray, gallery_camids: Sequence[int] | np.ndarray,
    top: int = 10,
) -> QueryRanking:
    """Rank the gallery for one query (``[D]`` against ``[G, D]``) under the standard protocol.

    A query of unknown identity (an upload) may pass ``query_pid=-1``: nothing is excluded,
    no gallery image matches, ``ap``/``first_match`` are None.
    """
    top = check_count(top, "top")
    if query_embedding.dim() != 1:
        raise ValueError(f"query_embedding must be [D], got {tuple(query_embedding.shape)}")
    dist = pairwise_distances(query_embedding[None], gallery_embeddings)[0].numpy()
    ng = len(dist)
    g_pids = _as_array("gallery_pids", gallery_pids, ng)
    g_cams = _as_array("gallery_camids", gallery_camids, ng)
    order, matches, excluded = _ranking(dist, int(query_pid), int(query_camid), g_pids, g_cams)
    found = bool(matches.any())
    return QueryRanking(
        indices=order[:top], distances=dist[order[:top]], matches=matches[:top],
        ap=100 * average_precision(matches) if found else None,
        first_match=int(np.argmax(matches)) + 1 if found else None,
        num_matches=int(matches.sum()), excluded=excluded,
    )


def retrieval_metrics(
    model: MSGN, query: Dataset, gallery: Dataset, *, batch_size: int = 64,
    device: str | torch.device = "cpu", overrides: Mapping[str, StageOverride] | None = None,
    progress: bool = True,
) -> RetrievalMetrics:
    """Embed ``query`` and ``gallery`` (re-ID data sets) and score the ranking."""
    q_pids, q_cams = reid_labels(query)
    g_pids, g_cams = reid_labels(gallery)
    kwargs = {"batch_size": batch_size, "device": device, "overrides": overrides,
              "progress": progress}
    q = embed(model, query, desc="query", **kwargs)
    g = embed(model, gallery, desc="gallery", **kwargs)
    return evaluate_ranking(pairwise_distances(q, g), q_pids, g_pids, q_cams, g_cams)


def load_retrieval_sets(checkpoint: ckpt.Checkpoint) -> RetrievalSets:
    """The query and gallery of a re-ID checkpoint's data set, with identities and cameras."""
    meta = checkpoint.meta
    if not is_reid(meta.dataset):
        raise ValueError(f"checkpoint: data set {meta.dataset.get('name')!r} is not a re-ID one")
    sources = build(meta.dataset, meta.input_size)
    q_pids, q_cams = reid_labels(sources.query)
    g_pids, g_cams = reid_labels(sources.gallery)
    return RetrievalSets(sources.query, sources.gallery, np.array(q_pids), np.array(q_cams),
                         np.array(g_pids), np.array(g_cams))


def evaluate_retrieval(path: str | Path, *, device: str = "cpu",
                       batch_size: int = 64, progress: bool = True) -> RetrievalMetrics:
    """mAP/CMC of re-ID checkpoint ``path`` on its test query/gallery split."""
    checkpoint = ckpt.load(path, device=device)
    sets = load_retrieval_sets(checkpoint)
    return retrieval_metrics(checkpoint.model, sets.query, sets.gallery, batch_size=batch_size,
                             device=device, progress=progress)
