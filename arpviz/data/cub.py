"""CUB-200-2011 from its standard layout on disk (no download).

Expected under ``root`` (or under ``root/CUB_200_2011``, as the archive unpacks)::

    images.txt              <image_id> <relative/path.jpg>
    train_test_split.txt    <image_id> <1 = train, 0 = test>
    image_class_labels.txt  <image_id> <class_id, 1-based>
    classes.txt             <class_id> <001.Black_footed_Albatross>
    bounding_boxes.txt      <image_id> <x> <y> <width> <height>
    images/<relative/path.jpg>
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from arpviz.images import DEFAULT_MAX_PIXELS, load_image, to_tensor

__all__ = ["CUB200", "CUBSample", "find_cub_root"]

METADATA_FILES: tuple[str, ...] = (
    "images.txt",
    "train_test_split.txt",
    "image_class_labels.txt",
    "classes.txt",
    "bounding_boxes.txt",
)
SPLITS: tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class CUBSample:
    """One entry of the index: where the image is and its ground truth.

    ``box`` is (x1, y1, x2, y2) in pixels of the original image (pixel-edge coordinates,
    from CUB's x, y, width, height).
    """

    image_id: int
    path: Path
    label: int
    box: tuple[float, float, float, float]


def find_cub_root(root: str | os.PathLike) -> Path:
    """The folder holding ``images.txt``: ``root`` itself or ``root/CUB_200_2011``."""
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"CUB root {str(base)!r} is not a directory")
    for candidate in (base, base / "CUB_200_2011"):
        if (candidate / "images.txt").is_file():
            return candidate
    raise FileNotFoundError(
        f"CUB root {str(base)!r} has no images.txt (looked in it and in its CUB_200_2011/)"
    )


def _read_table(path: Path, fields: int) -> dict[int, list[str]]:
    """Rows of a CUB metadata file keyed by their first (integer) column."""
    if not path.is_file():
        raise FileNotFoundError(f"CUB metadata file {path.name!r} is missing: {str(path)!r}")
    rows: dict[int, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            parts = text.split(maxsplit=fields - 1)
            if len(parts) != fields:
                raise ValueError(
                    f"{path.name} line {number}: expected {fields} fields, got {text!r}"
                )
            try:
                key = int(parts[0])
            except ValueError:
                raise ValueError(
                    f"{path.name} line {number}: the first field must be an integer id, "
                    f"got {parts[0]!r}"
                ) from None
            if key in rows:
                raise ValueError(f"{path.name} line {number}: duplicate id {key}")
            rows[key] = parts[1:]
    return rows


def _number(value: str, file: str, key: int, kind: type = float) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{file}: id {key}: {value!r} is not a valid number") from None


class CUB200(Dataset):
    """CUB-200-2011 ``train`` or ``test`` split as ``(image, label)`` with 0-based labels.

    Without a transform the image is a float32 tensor [3, H, W] in [0, 1]; with one, the
    transform receives a PIL RGB image. Images are read with ``arpviz.images.load_image``.
    Metadata is checked when the data set is built; image files when they are read.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {transform!r}")
        self.root = find_cub_root(root)
        self.split = split
        self.transform = transform
        self.max_pixels = max_pixels
        tables = {name: _read_table(self.root / name, 2) for name in METADATA_FILES[:4]}
        boxes = _read_table(self.root / "bounding_boxes.txt", 5)
        images = tables["images.txt"]
        splits = tables["train_test_split.txt"]
        labels = tables["image_class_labels.txt"]
        classes = tables["classes.txt"]

        class_ids = sorted(classes)
        if class_ids != list(range(1, len(class_ids) + 1)):
            raise ValueError("classes.txt: class ids must be 1, 2, ..., N without gaps")
        self.classes: tuple[str, ...] = tuple(classes[i][0] for i in class_ids)
        self.class_names: tuple[str, ...] = tuple(_pretty(c) for c in self.classes)

        image_dir = (self.root / "images").resolve()
        want = 1 if split == "train" else 0
        samples: list[CUBSample] = []
        per_image = {
            "train_test_split.txt": splits,
            "image_class_labels.txt": labels,
            "bounding_boxes.txt": boxes,
        }
        for image_id in sorted(images):
            for name, table in per_image.items():
                if image_id not in table:
                    raise ValueError(f"{name} has no entry for image id {image_id}")
            flag = _number(splits[image_id][0], "train_test_split.txt", image_id, int)
            if flag not in (0, 1):
                raise ValueError(f"train_test_split.txt: id {image_id}: flag must be 0 or 1")
            if flag != want:
                continue
            label = _number(labels[image_id][0], "image_class_labels.txt", image_id, int)
            if not 1 <= label <= len(self.classes):
                raise ValueError(
                    f"image_class_labels.txt: id {image_id}: class {label} is not in classes.txt"
                )
            x, y, w, h = (_number(v, "bounding_boxes.txt", image_id) for v in boxes[image_id])
            if w < 0 or h < 0:
                raise ValueError(f"bounding_boxes.txt: id {image_id}: negative width or height")
            rel = images[image_id][0]
            path = (image_dir / rel).resolve()
            if image_dir not in path.parents:
                raise ValueError(f"images.txt: id {image_id}: path {rel!r} leaves images/")
            samples.append(CUBSample(image_id, path, label - 1, (x, y, x + w, y + h)))
        self.samples: tuple[CUBSample, ...] = tuple(samples)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_classes(self) -> int:
        """Number of classes (200 for the full data set)."""
        return len(self.classes)

    @property
    def targets(self) -> list[int]:
        """The 0-based label of every sample, in order."""
        return [s.label for s in self.samples]

    def box(self, index: int) -> tuple[float, float, float, float]:
        """The bounding box (x1, y1, x2, y2) of sample ``index`` in original pixels."""
        return self.samples[index].box

    def load(self, index: int) -> Image.Image:
        """The RGB image of sample ``index`` (untransformed)."""
        path = self.samples[index].path
        if not path.is_file():
            raise FileNotFoundError(f"CUB image file is missing: {str(path)!r}")
        return load_image(path, max_pixels=self.max_pixels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | Any, int]:
        image = self.load(index)
        label = self.samples[index].label
        if self.transform is None:
            return to_tensor(image, mean=None, std=None), label
        return self.transform(image), label

    def __repr__(self) -> str:
        return (
            f"CUB200(root={str(self.root)!r}, split={self.split!r}, size={len(self)}, "
            f"num_classes={self.num_classes})"
        )


def _pretty(raw: str) -> str:
    """'001.Black_footed_Albatross' -> 'Black footed Albatross'."""
    name = raw.split(".", 1)[1] if "." in raw and raw.split(".", 1)[0].isdigit() else raw
    return name.replace("_", " ")
