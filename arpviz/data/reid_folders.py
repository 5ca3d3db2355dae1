"""Loaders for the real re-ID layouts: VeRi-776 and Market-1501 (the data are not bundled).

VeRi-776: ``image_train/``, ``image_query/``, ``image_test/`` (the gallery); file names
``<vehicle id>_c<camera>_<frame>_<n>.jpg``, e.g. ``0002_c002_00030600_0.jpg``.

Market-1501: ``bounding_box_train/``, ``query/``, ``bounding_box_test/`` (the gallery); file
names ``<person id>_c<camera>s<sequence>_<frame>_<box>.jpg``, e.g. ``0002_c1s1_000451_03.jpg``.
Following the standard protocol (the data set's evaluation code, torchreid, fast-reid), images
of identity ``-1`` ("junk": bad detections) are dropped from every split, and the distractors
of identity ``0000`` are kept in the gallery as negatives (never in training or as queries).

Training labels are the training identities relabelled ``0..N-1`` in sorted order; query and
gallery items keep the original identities (:attr:`ReIDFolder.pids`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

__all__ = ["LAYOUTS", "ReIDFolder", "ReIDItem", "parse_name"]

LAYOUTS: dict[str, dict[str, str]] = {
    "veri776": {"train": "image_train", "query": "image_query", "gallery": "image_test"},
    "market1501": {"train": "bounding_box_train", "query": "query",
                   "gallery": "bounding_box_test"},
}
_PATTERNS = {
    "veri776": re.compile(r"^(\d+)_c(\d+)_"),
    "market1501": re.compile(r"^(-?\d+)_c(\d+)s\d+_"),
}
_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class ReIDItem:
    """One image: its ``path``, identity ``pid`` and 0-based ``camera``."""

    path: Path
    pid: int
    camera: int


def parse_name(layout: str, name: str) -> tuple[int, int] | None:
    """``(pid, camera)`` from a file name of ``layout`` (camera 0-based), or None if it is not
    one of the layout's names."""
    if layout not in _PATTERNS:
        raise ValueError(f"layout must be one of {sorted(_PATTERNS)}, got {layout!r}")
    match = _PATTERNS[layout].match(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)) - 1


class ReIDFolder(Dataset):
    """One split (``train``, ``query`` or ``gallery``) of a VeRi-776 or Market-1501 folder.

    Items are ``(image, label)``: the training label (``0..N-1``) on ``train``, the identity on
    ``query``/``gallery``. Without a transform the image is a PIL RGB image.
    """

    def __init__(self, root: str | Path, layout: str, split: str,
                 transform: Callable[[Image.Image], Any] | None = None) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
        if split not in LAYOUTS[layout]:
            raise ValueError(f"split must be one of {sorted(LAYOUTS[layout])}, got {split!r}")
        folder = Path(root) / LAYOUTS[layout][split]
        if not folder.is_dir():
            raise ValueError(f"root: {folder} is not a folder (is {root} a {layout} copy?)")
        items = []
        for path in sorted(folder.iterdir()):
            parsed = parse_name(layout, path.name) if path.suffix.lower() in _EXTENSIONS else None
            if parsed is None:
                continue
            pid, camera = parsed
            if pid == -1 or (pid == 0 and layout == "market1501" and split != "gallery"):
                continue  # junk everywhere; distractors only as gallery negatives
            items.append(ReIDItem(path, pid, camera))
        if not items:
            raise ValueError(f"root: no {layout} images in {folder}")
        self.root, self.layout, self.split, self.transform = Path(root), layout, split, transform
        self.items = items
        train_pids = sorted({i.pid for i in items}) if split == "train" else []
        self._relabel = {pid: n for n, pid in enumerate(train_pids)}

    def __len__(self) -> int:
        return len(self.items)

    @property
    def pids(self) -> list[int]:
        """The identity of every image."""
        return [item.pid for item in self.items]

    @property
    def camids(self) -> list[int]:
        """The camera of every image (0-based)."""
        return [item.camera for item in self.items]

    @property
    def targets(self) -> list[int]:
        """The label of every image (training labels on ``train``)."""
        return [self._relabel.get(pid, pid) for pid in self.pids]

    @property
    def class_names(self) -> tuple[str, ...]:
        """Training identities as names, index = training label (empty off ``train``)."""
        return tuple(f"id {pid:04d}" for pid in self._relabel)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        item = self.items[index]
        image = Image.open(item.path).convert("RGB")
        label = self._relabel.get(item.pid, item.pid)
        return (self.transform(image) if self.transform else image), label

    def __repr__(self) -> str:
        return f"ReIDFolder({self.layout!r}, {self.split!r}, images={len(self)})"
