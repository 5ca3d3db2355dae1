"""The Retrieval page's library: a re-ID checkpoint's query and gallery, ranked live.

:class:`GalleryIndex` holds a re-ID checkpoint's test split (the query images and a gallery of
at most ``max_gallery`` images, rendered once), a :class:`~arpviz.models.StageCache` per batch
of them (the stem, Conv3 and the global branch run once), and the embeddings of every split
image under each stage setting it was asked for (:meth:`GalleryIndex.embeddings`: computed
once per setting, with a progress callback, then kept). :meth:`GalleryIndex.search` embeds one
query under a setting at once and ranks the gallery (:func:`arpviz.retrieval.rank_query`: the
standard protocol), returning a :class:`SearchView` of plain numbers to draw.

Images are what the re-ID network sees: resized square to the input size, no crop
(:func:`arpviz.reid.build_reid`'s evaluation transform). Boxes are ``(x1, y1, x2, y2)`` in
those input pixels.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from arpviz.checkpoint import Checkpoint, CheckpointError, CheckpointMeta, read_meta
from arpviz.explorer.controls import Knob, overrides_from, stage_controls
from arpviz.models import MSGN, StageCache, StageOverride
from arpviz.models.stages import stage_label
from arpviz.reid import descriptor, is_reid
from arpviz.retrieval import (
    QueryRanking,
    RetrievalMetrics,
    evaluate_ranking,
    load_retrieval_sets,
    pairwise_distances,
    rank_query,
)
from arpviz.validation import check_count

__all__ = [
    "MAX_GALLERY",
    "GalleryIndex",
    "QueryImage",
    "SearchView",
    "SettingEmbeddings",
    "gallery_cap",
    "is_reid_checkpoint",
    "reid_checkpoints",
    "setting_key",
    "upload_query",
]

logger = logging.getLogger(__name__)

#: Default cap on the gallery (whole identities, in order), so that a new setting takes
#: seconds on a CPU (the bundled SynthReID gallery, 288 images, fits).
MAX_GALLERY = 300
#: Largest memory the per-batch stage caches may take; above it every setting reruns the stem.
CACHE_BUDGET_BYTES = 512 * 1024 * 1024
_BATCH = 64

Progress = Callable[[float, str], None]


def gallery_cap() -> int:
    """The gallery cap of the app: env ``ARPVIZ_RETRIEVAL_GALLERY`` (images), else
    :data:`MAX_GALLERY`."""
    raw = os.environ.get("ARPVIZ_RETRIEVAL_GALLERY", "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value >= 1:
            return value
        logger.warning("ignoring ARPVIZ_RETRIEVAL_GALLERY=%r (not an int >= 1)", raw)
    return MAX_GALLERY


def is_reid_checkpoint(meta: CheckpointMeta) -> bool:
    """Whether the checkpoint was trained on a re-ID data set (it has a query and gallery)."""
    return is_reid(meta.dataset)


def reid_checkpoints(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, CheckpointMeta]]:
    """The re-ID checkpoints among ``paths`` with their metadata, in order (only each file's
    header is read; unreadable files are left out)."""
    found = []
    for path in paths:
        try:
            meta = read_meta(path)
        except (CheckpointError, OSError, ValueError) as exc:
            logger.info("not a usable checkpoint, skipped: %s (%s)", path, exc)
            continue
        if is_reid_checkpoint(meta):
            found.append((Path(path), meta))
    return found


def setting_key(overrides: Mapping[str, StageOverride]) -> tuple:
    """A hashable name of a stage setting (``()`` for the trained one)."""
    return tuple(sorted((name, o.mode, o.k, o.dsr) for name, o in overrides.items()))


def _to_uint8(batch: Tensor, meta: CheckpointMeta) -> np.ndarray:
    """Normalised ``[N, 3, S, S]`` back to ``uint8 [N, S, S, 3]``."""
    mean = torch.tensor(meta.mean).view(1, 3, 1, 1)
    std = torch.tensor(meta.std).view(1, 3, 1, 1)
    raw = (batch.float().cpu() * std + mean).clamp(0, 1).mul(255).round().byte()
    return raw.permute(0, 2, 3, 1).numpy()


@dataclass(frozen=True)
class QueryImage:
    """A query: ``image`` ``uint8 [S, S, 3]``, ``tensor`` ``[1, 3, S, S]`` (normalised), its
    identity and camera (``-1`` for an upload: nothing excluded, nothing matches); ``notes``:
    what the loader converted (EXIF rotation, 16-bit, first frame, ...) and what the image's
    shape means for the network (tiny, extreme aspect)."""

    image: np.ndarray
    tensor: Tensor
    pid: int
    camid: int
    name: str
    notes: tuple[str, ...] = ()


def upload_query(data: bytes, meta: CheckpointMeta, name: str = "upload") -> QueryImage:
    """Decode an uploaded image safely and prepare it as the re-ID network sees a query.

    Raises:
        ValueError: empty, corrupt, unsupported or too large (the message names the file).
    """
    from arpviz.data.transforms import eval_transform
    from arpviz.explorer.inputs import decode_upload

    info = decode_upload(data, name)
    size = meta.input_size
    tensor = eval_transform(size, resize=size, mean=meta.mean, std=meta.std)(info.image)[None]
    return QueryImage(_to_uint8(tensor, meta)[0], tensor, -1, -1, name, info.notes_for(size))


@dataclass(frozen=True)
class SettingEmbeddings:
    """Every split image under one setting: descriptors ``query [Q, D]``, ``gallery [G, D]``,
    their crop boxes per pooled stage (``{stage: [N, 4]}`` input pixels) and the split's
    mAP/CMC."""

    query: Tensor
    gallery: Tensor
    query_boxes: Mapping[str, np.ndarray]
    gallery_boxes: Mapping[str, np.ndarray]
    metrics: RetrievalMetrics


@dataclass(frozen=True)
class SearchView:
    """One query ranked under one setting, ready to draw.

    ``query_boxes``: ``{stage: (4,)}``; ``top_images`` ``uint8 [T, S, S, 3]`` with
    ``top_boxes`` ``{stage: [T, 4]}``, ``top_pids``/``top_camids`` ``[T]``; ``ranking`` the
    protocol's result (indices into the gallery, matches, the query's AP and first-match rank);
    ``stage_labels`` each boxed stage's name under the setting (``"Conv4 local 0 (ARP)"``).
    """

    query: QueryImage
    query_boxes: Mapping[str, tuple[float, float, float, float]]
    ranking: QueryRanking
    top_images: np.ndarray
    top_boxes: Mapping[str, np.ndarray]
    top_pids: np.ndarray
    top_camids: np.ndarray
    setting: tuple
    stage_labels: Mapping[str, str] = field(default_factory=dict)


def _boxes(image_boxes: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    return {name: b.detach().float().cpu().numpy() for name, b in image_boxes.items()}


class GalleryIndex:
    """A re-ID checkpoint's query and (capped) gallery, with embeddings kept per setting.

    Args:
        checkpoint: a loaded re-ID checkpoint (model on its device, eval mode).
        max_gallery: at most this many gallery images; whole test identities are kept in
            identity order, and only the queries of kept identities.
        max_settings: embeddings of this many settings are kept (least recently used dropped).
        progress: called with ``(fraction, text)`` while the images are rendered.
    """

    def __init__(self, checkpoint: Checkpoint, *, max_gallery: int = MAX_GALLERY,
                 max_settings: int = 16, progress: Progress | None = None) -> None:
        if not is_reid_checkpoint(checkpoint.meta):
            raise ValueError("checkpoint: not a re-ID checkpoint (its data set has no "
                             "query/gallery split)")
        max_gallery = check_count(max_gallery, "max_gallery")
        self.model: MSGN = checkpoint.model
        self.meta = checkpoint.meta
        self.device = next(self.model.parameters()).device
        sets = load_retrieval_sets(checkpoint)
        ids, count = [], 0
        for pid in sorted(set(sets.gallery_pids.tolist())):
            n = int((sets.gallery_pids == pid).sum())
            if ids and count + n > max_gallery:
                break
            ids.append(pid)
            count += n
        self.total_gallery = len(sets.gallery_pids)
        self.total_ids = len(set(sets.gallery_pids.tolist()))
        self.gallery_indices = np.flatnonzero(np.isin(sets.gallery_pids, ids))
        self.query_indices = np.flatnonzero(np.isin(sets.query_pids, ids))
        if not len(self.query_indices):
            raise ValueError("no query image of the kept gallery identities")
        self.query_pids = sets.query_pids[self.query_indices]
        self.query_camids = sets.query_camids[self.query_indices]
        self.gallery_pids = sets.gallery_pids[self.gallery_indices]
        self.gallery_camids = sets.gallery_camids[self.gallery_indices]
        items = [(sets.query, int(i)) for i in self.query_indices]
        items += [(sets.gallery, int(i)) for i in self.gallery_indices]
        tensors = []
        for n, (dataset, i) in enumerate(items):
            tensors.append(dataset[i][0])
            if progress and (n % 16 == 0 or n + 1 == len(items)):
                progress((n + 1) / len(items), f"rendering the split ({n + 1}/{len(items)})")
        self._tensors = torch.stack(tensors)
        self.images = _to_uint8(self._tensors, self.meta)  # query images first, then gallery
        self._caches: list[StageCache] | None = None
        self._kept: OrderedDict[tuple, SettingEmbeddings] = OrderedDict()
        self._max_settings = max_settings
        self._lock = threading.Lock()
        logger.info("retrieval index: %d queries, %d of %d gallery images",
                    len(self.query_indices), len(self.gallery_indices), self.total_gallery)

    @property
    def num_queries(self) -> int:
        """Query images kept (those of the kept identities)."""
        return len(self.query_indices)

    @property
    def num_gallery_ids(self) -> int:
        """Identities in the kept gallery."""
        return len(set(self.gallery_pids.tolist()))

    @property
    def capped(self) -> bool:
        """Whether the gallery holds fewer images than the split's."""
        return len(self.gallery_indices) < self.total_gallery

    def query(self, index: int) -> QueryImage:
        """Query ``index`` (``0 .. num_queries - 1``) of the kept queries."""
        if not isinstance(index, int) or not 0 <= index < self.num_queries:
            raise ValueError(f"index must be an int in [0, {self.num_queries}), got {index!r}")
        return QueryImage(self.images[index], self._tensors[index:index + 1],
                          int(self.query_pids[index]), int(self.query_camids[index]),
                          f"query #{index}")

    def overrides(self, knobs: Mapping[str, Knob]) -> dict[str, StageOverride]:
        """The stage overrides of a slider setting (``{}`` for the trained one)."""
        return overrides_from(stage_controls(self.model), knobs)

    def has(self, overrides: Mapping[str, StageOverride]) -> bool:
        """Whether the embeddings of this setting are already kept."""
        return setting_key(overrides) in self._kept

    def _explain_batches(self, overrides: Mapping[str, StageOverride]):
        """Explanations of every split image in batches (stage caches kept when they fit)."""
        if self._caches is None:
            caches = []
            for start in range(0, len(self._tensors), _BATCH):
                caches.append(self.model.prepare(
                    self._tensors[start:start + _BATCH].to(self.device), max_entries=4))
            size = sum(c.conv3_input.numel() * c.conv3_input.element_size() for c in caches)
            keep = 3 * size <= CACHE_BUDGET_BYTES  # conv3 input, Conv3 and branch outputs
            self._caches = caches if keep else []
            logger.info("stage caches: %.0f MB (%s)", size / 2**20, "kept" if keep else "not kept")
            for cache in caches:
                yield self.model.explain_from(cache, dict(overrides))
            return
        if self._caches:
            for cache in self._caches:
                yield self.model.explain_from(cache, dict(overrides))
            return
        for start in range(0, len(self._tensors), _BATCH):
            yield self.model.explain(self._tensors[start:start + _BATCH].to(self.device),
                                     dict(overrides))

    def embeddings(self, overrides: Mapping[str, StageOverride],
                   progress: Progress | None = None) -> SettingEmbeddings:
        """The split's descriptors, boxes and mAP/CMC under ``overrides`` (computed once per
        setting; ``progress(fraction, text)`` is called per batch while computing)."""
        key = setting_key(overrides)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
            batches = -(-len(self._tensors) // _BATCH)
            descs, boxes = [], []
            with torch.no_grad():
                for n, explanation in enumerate(self._explain_batches(overrides)):
                    descs.append(descriptor(self.model, explanation.features).float().cpu())
                    boxes.append(_boxes(explanation.image_boxes))
                    if progress:
                        progress((n + 1) / batches, f"embedding the split ({n + 1}/{batches})")
            desc = torch.cat(descs)
            stacked = {s: np.concatenate([b[s] for b in boxes]) for s in boxes[0]}
            q = self.num_queries
            metrics = evaluate_ranking(pairwise_distances(desc[:q], desc[q:]), self.query_pids,
                                       self.gallery_pids, self.query_camids, self.gallery_camids)
            result = SettingEmbeddings(desc[:q], desc[q:], {s: b[:q] for s, b in stacked.items()},
                                       {s: b[q:] for s, b in stacked.items()}, metrics)
            self._kept[key] = result
            while len(self._kept) > self._max_settings:
                self._kept.popitem(last=False)
            return result

    def search(self, query: QueryImage, overrides: Mapping[str, StageOverride],
               gallery: SettingEmbeddings, top: int = 10) -> SearchView:
        """Embed ``query`` under ``overrides`` now and rank ``gallery`` (the embeddings of the
        same setting, from :meth:`embeddings`)."""
        if len(gallery.gallery) != len(self.gallery_indices):
            raise ValueError("gallery: embeddings of another index")
        with torch.no_grad():
            explanation = self.model.explain(query.tensor.to(self.device), dict(overrides))
            q = descriptor(self.model, explanation.features).float().cpu()[0]
        ranking = rank_query(q, gallery.gallery, query.pid, query.camid, self.gallery_pids,
                             self.gallery_camids, top=min(top, len(self.gallery_indices)))
        idx = ranking.indices
        settings = self.model.stage_settings(dict(overrides))
        return SearchView(
            query=query,
            query_boxes={s: tuple(float(v) for v in b[0])
                         for s, b in _boxes(explanation.image_boxes).items()},
            ranking=ranking,
            top_images=self.images[self.num_queries + idx],
            top_boxes={s: b[idx] for s, b in gallery.gallery_boxes.items()},
            top_pids=self.gallery_pids[idx],
            top_camids=self.gallery_camids[idx],
            setting=setting_key(overrides),
            stage_labels={s: stage_label(s, settings[s].mode) for s in explanation.image_boxes},
        )
