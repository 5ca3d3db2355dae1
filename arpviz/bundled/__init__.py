"""The checkpoints that come with arpviz, so the app and the commands work with no download.

A source checkout keeps every trained checkpoint in ``checkpoints/`` at the repository root; an
installed wheel carries the two defaults in this package (``arpviz/bundled/``): the
classification MSGN with ARP on wide-scale SynthBirds (:data:`DEFAULT_CLASSIFICATION`) and the
re-identification MSGN on SynthReID (:data:`DEFAULT_REID`). :func:`bundled_dir` says which
folder is in use; ``ARPVIZ_BUNDLED_DIR`` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DEFAULT_CLASSIFICATION",
    "DEFAULT_REID",
    "bundled_dir",
    "default_checkpoint_path",
]

DEFAULT_CLASSIFICATION = "synthbirds_wide_msgn_arp.safetensors"
DEFAULT_REID = "synthreid_msgn_arp.safetensors"

_PACKAGE_DIR = Path(__file__).resolve().parent
_REPOSITORY_DIR = _PACKAGE_DIR.parents[1] / "checkpoints"


def bundled_dir() -> Path:
    """The bundled checkpoints' folder: env ``ARPVIZ_BUNDLED_DIR``; else the repository's
    ``checkpoints/`` when arpviz runs from a source checkout; else this package's folder (an
    installed wheel)."""
    named = os.environ.get("ARPVIZ_BUNDLED_DIR")
    if named:
        return Path(named)
    if (_REPOSITORY_DIR / DEFAULT_CLASSIFICATION).is_file():
        return _REPOSITORY_DIR
    return _PACKAGE_DIR


def default_checkpoint_path(kind: str = "classification") -> Path:
    """The bundled default checkpoint of ``kind`` (``"classification"`` or ``"reid"``).

    Raises:
        ValueError: an unknown ``kind``.
        FileNotFoundError: the file is not there (a checkout without its checkpoints, or an
            ``ARPVIZ_BUNDLED_DIR`` that lacks it), naming the path and what to pass instead.
    """
    names = {"classification": DEFAULT_CLASSIFICATION, "reid": DEFAULT_REID}
    if kind not in names:
        raise ValueError(f"kind must be one of {sorted(names)}, got {kind!r}")
    path = bundled_dir() / names[kind]
    if not path.is_file():
        raise FileNotFoundError(f"the bundled {kind} checkpoint is missing: {path} "
                                "(pass a checkpoint file instead)")
    return path
