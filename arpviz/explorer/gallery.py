"""The Gallery: many images explained at once, filtered and sorted (no Streamlit here).

A :class:`GallerySource` is a folder of images (inside the allowed roots,
:func:`arpviz.explorer.catalog.allowed_folder`) or the SynthBirds evaluation split of a
checkpoint. :func:`explain_gallery_page` explains one page of it with
:func:`arpviz.explain.explain_page` (a folder) or :func:`arpviz.explain.explain_images`
(rendered samples) and draws each thumbnail with :func:`arpviz.explain.overlay_png`; with
``flips`` it also runs the trained setting, so an item knows whether its top-1 flips under the
overrides. :func:`select` filters and sorts the explained items (:class:`GalleryQuery`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from arpviz.checkpoint import Checkpoint, CheckpointMeta
from arpviz.data.synthbirds import SynthBirds
from arpviz.datasources import synth_config
from arpviz.explain import ImageRecord, explain_images, explain_page, list_images, overlay_png
from arpviz.explorer.catalog import allowed_folder, checkpoint_roots, within_roots
from arpviz.explorer.inputs import sample_count
from arpviz.models import StageOverride
from arpviz.validation import check_count

__all__ = [
    "SORTS",
    "GalleryItem",
    "GalleryQuery",
    "GallerySource",
    "explain_gallery",
    "explain_gallery_page",
    "folder_source",
    "page_count",
    "select",
    "synth_source",
]

#: The orders :class:`GalleryQuery` knows.
SORTS: tuple[str, ...] = ("source order", "confidence, high first", "confidence, low first",
                          "rate, high first", "rate, low first")


@dataclass(frozen=True)
class GallerySource:
    """What a gallery shows: ``files`` of a folder, or ``count`` SynthBirds samples of
    ``split``; ``key`` names it for caches."""

    kind: str
    key: str
    files: tuple[Path, ...] = ()
    count: int = 0
    split: str = ""

    def __len__(self) -> int:
        return len(self.files) if self.kind == "folder" else self.count


def folder_source(folder: str | os.PathLike, roots: Sequence[Path] | None = None) -> GallerySource:
    """The images of ``folder`` (recursively, :func:`arpviz.explain.list_images`); a symlinked
    file that resolves outside ``roots`` (default the checkpoint roots) is left out.

    Raises:
        FolderNotAllowed: outside the allowed roots
            (:func:`~arpviz.explorer.catalog.allowed_folder`).
        ValueError: not a folder.
    """
    path = allowed_folder(folder, roots)
    if not path.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder")
    allowed = checkpoint_roots() if roots is None else roots
    files = tuple(f for f in list_images([path]) if within_roots(f, allowed))
    return GallerySource("folder", f"folder:{path}", files=files)


def synth_source(meta: CheckpointMeta) -> GallerySource:
    """The SynthBirds evaluation split of a checkpoint (``ValueError`` when it has none)."""
    count = sample_count(meta) if meta.dataset.get("name") == "synthbirds" else 0
    if not count:
        raise ValueError("this checkpoint was not trained on SynthBirds; it has no samples")
    split = str(meta.dataset.get("eval_split", "val"))
    return GallerySource("synthbirds", f"synthbirds:{split}:{count}", count=count, split=split)


def page_count(total: int, page_size: int) -> int:
    """Pages of ``page_size`` for ``total`` items (at least one)."""
    return max(1, math.ceil(total / page_size))


@dataclass(frozen=True)
class GalleryItem:
    """One explained image of a gallery.

    Attributes:
        index: its position in the source.
        record: its explain record under the overrides (boxes in its own pixels).
        thumbnail: the overlay PNG (longer side ``thumb``), ``None`` when it failed.
        label, label_name: the true class (SynthBirds), else ``None``.
        trained_top1: the top-1 class under the trained setting (when asked for), else ``None``.
    """

    index: int
    record: ImageRecord
    thumbnail: bytes | None
    label: int | None = None
    label_name: str | None = None
    trained_top1: int | None = None

    @property
    def top1(self) -> int | None:
        """The predicted class, ``None`` for a failed image."""
        return self.record.top5[0].index if self.record.top5 else None

    @property
    def confidence(self) -> float | None:
        """The top-1 probability."""
        return self.record.top5[0].p if self.record.top5 else None

    @property
    def correct(self) -> bool | None:
        """Whether the top-1 is the true class (``None`` without a label)."""
        return None if self.label is None or self.top1 is None else self.top1 == self.label

    @property
    def flipped(self) -> bool | None:
        """Whether the top-1 differs from the trained setting's (``None`` when not known)."""
        if self.trained_top1 is None or self.top1 is None:
            return None
        return self.top1 != self.trained_top1

    def rate(self, stage: str) -> float | None:
        """The mean of ``stage``'s ``(rate_h, rate_w)``: the crop's side as a share of its map."""
        found = self.record.stages.get(stage)
        return None if found is None else (found.rates[0] + found.rates[1]) / 2


def _synth_images(meta: CheckpointMeta, source: GallerySource,
                  indices: range) -> tuple[list[Image.Image], list[int]]:
    data = SynthBirds(synth_config(meta.dataset, meta.input_size), source.split)
    samples = [data.render(i) for i in indices]
    return [Image.fromarray(s.image) for s in samples], [int(s.label) for s in samples]


def explain_gallery_page(
    bundle: Checkpoint,
    source: GallerySource,
    page: int,
    page_size: int = 24,
    overrides: Mapping[str, StageOverride] | None = None,
    *,
    flips: bool = False,
    thumb: int = 200,
) -> list[GalleryItem]:
    """Page ``page`` (0-based) of ``source`` explained under ``overrides``, with thumbnails.

    ``flips`` also explains the page under the trained setting (``trained_top1``). Failed
    files stay in place with ``thumbnail`` ``None``. Raises ``ValueError`` for a page out of
    range or a bad ``page_size`` (as :func:`arpviz.explain.explain_page`).
    """
    if not isinstance(source, GallerySource):
        raise TypeError(f"source must be a GallerySource, got {type(source).__name__}")
    start = page * page_size if isinstance(page, int) and isinstance(page_size, int) else 0
    labels: list[int | None]
    if source.kind == "folder":
        explained = explain_page(bundle, list(source.files), page, page_size, overrides)
        records = [e.record for e in explained]
        images = [e.image for e in explained]
        labels = [None] * len(records)
    else:
        page_size = check_count(page_size, "page_size")
        pages = page_count(len(source), page_size)
        if not isinstance(page, int) or not 0 <= page < pages:
            raise ValueError(f"page must be in [0, {pages}), got {page!r}")
        indices = range(start, min(start + page_size, len(source)))
        pils, truth = _synth_images(bundle.meta, source, indices)
        records = explain_images(bundle, pils, overrides,
                                 names=[f"{source.split} #{i}" for i in indices])
        images, labels = list(pils), list(truth)
    trained: list[int | None] = [None] * len(records)
    if flips:
        good = [i for i, image in enumerate(images) if image is not None]
        base = explain_images(bundle, [images[i] for i in good])
        for i, record in zip(good, base, strict=True):
            trained[i] = record.top5[0].index
    names = bundle.meta.class_names
    return [
        GalleryItem(
            index=start + i, record=record,
            thumbnail=None if image is None else overlay_png(image, record, max_side=thumb,
                                                             labels=False),
            label=label, label_name=None if label is None else (
                names[label] if label < len(names) else str(label)),
            trained_top1=trained[i])
        for i, (record, image, label) in enumerate(zip(records, images, labels, strict=True))
    ]


def explain_gallery(
    bundle: Checkpoint,
    source: GallerySource,
    limit: int,
    page_size: int = 24,
    overrides: Mapping[str, StageOverride] | None = None,
    *,
    progress: Callable[[float, str], None] | None = None,
) -> list[GalleryItem]:
    """The first ``limit`` images of ``source`` explained page by page
    (:func:`explain_gallery_page`, with the trained top-1 for flips when there are
    ``overrides``); ``progress(fraction_done, message)`` after each page."""
    limit = check_count(limit, "limit")
    items: list[GalleryItem] = []
    pages = page_count(min(limit, len(source)), page_size)
    for page in range(pages):
        items += explain_gallery_page(bundle, source, page, page_size, overrides,
                                      flips=bool(overrides))
        if progress is not None:
            progress((page + 1) / pages, f"Explained {min(len(items), limit)} of {limit}")
    return items[:limit]


@dataclass(frozen=True)
class GalleryQuery:
    """Filters and order of :func:`select`.

    Attributes:
        classes: keep items whose top-1 name is one of these (empty: all).
        correct: ``"all"``, ``"correct"`` or ``"incorrect"`` (items without a label are kept
            only by ``"all"``).
        stage, rate_range: keep items whose ``stage`` rate lies in ``[lo, hi]`` (``stage``
            ``None``: no rate filter).
        flips_only: keep only items whose top-1 flips against the trained setting.
        sort: one of :data:`SORTS` (rate sorts use ``stage``).
        include_failed: keep failed images (listed last).
    """

    classes: tuple[str, ...] = ()
    correct: str = "all"
    stage: str | None = None
    rate_range: tuple[float, float] = (0.0, 1.0)
    flips_only: bool = False
    sort: str = SORTS[0]
    include_failed: bool = True


def select(items: Sequence[GalleryItem], query: GalleryQuery) -> list[GalleryItem]:
    """The items that pass ``query``'s filters, in its order."""
    if query.correct not in ("all", "correct", "incorrect"):
        raise ValueError(f"correct must be 'all', 'correct' or 'incorrect', got {query.correct!r}")
    if query.sort not in SORTS:
        raise ValueError(f"sort must be one of {SORTS}, got {query.sort!r}")
    lo, hi = query.rate_range
    kept, failed = [], []
    for item in items:
        if not item.record.ok:
            if query.include_failed and query.correct == "all" and not query.flips_only \
                    and not query.classes:
                failed.append(item)
            continue
        if query.classes and item.record.top5[0].name not in query.classes:
            continue
        if query.correct != "all" and item.correct is not (query.correct == "correct"):
            continue
        if query.flips_only and not item.flipped:
            continue
        if query.stage is not None:
            rate = item.rate(query.stage)
            if rate is None or not lo - 1e-9 <= rate <= hi + 1e-9:
                continue
        kept.append(item)
    if query.sort.startswith("confidence"):
        kept.sort(key=lambda i: i.confidence or 0.0, reverse=query.sort.endswith("high first"))
    elif query.sort.startswith("rate") and query.stage is not None:
        kept.sort(key=lambda i: i.rate(query.stage) or 0.0,
                  reverse=query.sort.endswith("high first"))
    return kept + failed
