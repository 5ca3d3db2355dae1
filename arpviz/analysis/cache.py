"""The analysis's JSON cache: reports and re-ID k curves keyed by the checkpoint file's digest
and the settings, written atomically so concurrent readers never see half a file."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from arpviz import checkpoint as ckpt
from arpviz.analysis.measure import analyse
from arpviz.analysis.report import AdaptivityReport

__all__ = ["analyse_cached", "cache_key", "write_atomic"]

logger = logging.getLogger(__name__)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (creating the folder),
    so a concurrent reader sees the old file or the whole new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def cache_key(
    digest: str, split: str, limit: int | None, tau: float, **settings: Any
) -> str:
    """A file-name-safe key of (checkpoint digest, split, limit, tau) and any other settings."""
    extra = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    return (f"{digest[:16]}_{split}_{'all' if limit is None else limit}_tau{float(tau):g}_"
            f"{extra.hexdigest()[:8]}")


def analyse_cached(
    path: str | Path, split: str = "test", *, cache_dir: str | Path, limit: int | None = None,
    tau: float = 1.0, **kwargs: Any,
) -> AdaptivityReport:
    """:func:`analyse` a checkpoint file, reading/writing ``cache_dir/<cache_key>.json``.

    The key is the file's digest, split, limit, tau and the other keyword arguments except
    ``device``, ``progress`` and ``show_progress``; a cached report is returned as is.
    """
    digest = ckpt.file_digest(path)
    settings = {k: v for k, v in kwargs.items()
                if k not in ("device", "progress", "show_progress")}
    cache_file = Path(cache_dir) / f"{cache_key(digest, split, limit, tau, **settings)}.json"
    if cache_file.is_file():
        logger.info("analysis read from %s", cache_file)
        return AdaptivityReport.from_dict(json.loads(cache_file.read_text()))
    report = analyse(path, split, limit=limit, tau=tau, **kwargs)
    write_atomic(cache_file, report.to_json())
    return report
