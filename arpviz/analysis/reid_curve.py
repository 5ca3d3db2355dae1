"""The re-ID k curve: mAP and rank-1 of a re-ID checkpoint against one ARP stage's k."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from arpviz import checkpoint as ckpt
from arpviz.analysis.cache import cache_key, write_atomic
from arpviz.analysis.measure import DEFAULT_K_VALUES, Progress
from arpviz.analysis.statistics import json_ready
from arpviz.models import MSGN, StageOverride
from arpviz.validation import check_count, check_k

__all__ = ["ReIDKCurve", "reid_k_curve"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReIDKCurve:
    """mAP and rank-1 (%) of a re-ID checkpoint against one ARP stage's ``k`` over its test
    query/gallery split (other stages unchanged): Figure 6 of the paper, for retrieval.

    ``k``, ``mAP`` and ``rank1`` are parallel tuples; ``trained_k`` is the stage's own k;
    ``queries`` the scored queries and ``gallery`` the gallery size; ``sha256`` the checkpoint
    file's digest (``""`` for a checkpoint held in memory).
    """

    stage: str
    k: tuple[float, ...]
    mAP: tuple[float, ...]  # noqa: N815 - the field name is the metric's
    rank1: tuple[float, ...]
    trained_k: float
    queries: int
    gallery: int
    sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists for the tuples)."""
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReIDKCurve:
        """The inverse of :meth:`to_dict`."""
        return cls(stage=str(data["stage"]), k=tuple(map(float, data["k"])),
                   mAP=tuple(map(float, data["mAP"])), rank1=tuple(map(float, data["rank1"])),
                   trained_k=float(data["trained_k"]), queries=int(data["queries"]),
                   gallery=int(data["gallery"]), sha256=str(data.get("sha256", "")))


def reid_k_curve(
    checkpoint: ckpt.Checkpoint | str | Path,
    stage: str,
    k_values: Sequence[float] = DEFAULT_K_VALUES,
    *,
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    progress: Progress | None = None,
    show_progress: bool = False,
) -> ReIDKCurve:
    """mAP and rank-1 of a re-ID checkpoint with ARP stage ``stage`` at each of ``k_values``
    (:func:`arpviz.retrieval.retrieval_metrics` with a :class:`StageOverride` per k) over the
    checkpoint's test query/gallery (:func:`arpviz.retrieval.load_retrieval_sets`).

    A checkpoint file with ``cache_dir`` is cached as ``cache_dir/reidk_<key>.json`` per
    (file digest, stage, k values). ``progress(fraction_done, message)`` is called after each k.

    Raises:
        ValueError: not a re-ID checkpoint, ``stage`` not an ARP stage, bad k values.
    """
    from arpviz.retrieval import load_retrieval_sets, retrieval_metrics

    k_values = tuple(check_k(k) for k in k_values)
    if not k_values:
        raise ValueError("k_values must hold at least one k")
    batch_size = check_count(batch_size, "batch_size")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {progress!r}")
    digest = cache_file = None
    if not isinstance(checkpoint, ckpt.Checkpoint):
        digest = ckpt.file_digest(checkpoint)
        if cache_dir is not None:
            key = cache_key(digest, "reid-test", None, 1.0, stage=stage, k_values=k_values)
            cache_file = Path(cache_dir) / f"reidk_{key}.json"
            if cache_file.is_file():
                logger.info("re-ID k curve read from %s", cache_file)
                return ReIDKCurve.from_dict(json.loads(cache_file.read_text()))
        checkpoint = ckpt.load(checkpoint, device=device)
    model = checkpoint.model.to(device).eval()
    if not isinstance(model, MSGN):
        raise TypeError(f"the checkpoint's model must be an MSGN, got {type(model).__name__}")
    settings = model.stage_settings()
    arp = [name for name, s in settings.items() if s.mode == "arp"]
    if stage not in arp:
        raise ValueError(f"stage must be one of the ARP stages {arp}, got {stage!r}")
    sets = load_retrieval_sets(checkpoint)  # raises ValueError for a non-re-ID checkpoint
    maps, rank1s, metrics = [], [], None
    for i, k in enumerate(tqdm(k_values, desc=f"re-ID k curve {stage}", unit="k",
                               disable=not show_progress)):
        metrics = retrieval_metrics(model, sets.query, sets.gallery, batch_size=batch_size,
                                    device=device, overrides={stage: StageOverride(k=k)},
                                    progress=False)
        maps.append(metrics.mAP)
        rank1s.append(metrics.rank1)
        if progress is not None:
            progress((i + 1) / len(k_values), f"k = {k:g}: mAP {metrics.mAP:.1f}%")
    curve = ReIDKCurve(stage=stage, k=k_values, mAP=tuple(maps), rank1=tuple(rank1s),
                       trained_k=float(settings[stage].k), queries=metrics.queries,
                       gallery=metrics.gallery, sha256=digest or "")
    if cache_file is not None:
        write_atomic(cache_file, json.dumps(curve.to_dict()))
    return curve
