"""A data set from a folder of class folders: ``root/<class>/**/<image>``.

Classes are the sub-folders of ``root`` in sorted order (hidden ones skipped); images are the
files below each, at any depth, whose extension is a supported image format. Images are read
with ``arpviz.images.load_image``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from arpviz.images import DEFAULT_MAX_PIXELS, load_image, to_tensor

__all__ = ["IMG_EXTENSIONS", "ImageFolderDataset"]

IMG_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".webp",
    ".tif",
    ".tiff",
    ".gif",
)


class ImageFolderDataset(Dataset):
    """``root/<class>/**/<image>`` as ``(image, label)``; labels follow sorted class names.

    Without a transform the image is a float32 tensor [3, H, W] in [0, 1]; with one, the
    transform receives a PIL RGB image. ``samples`` lists (path, label) in a stable order.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        extensions: Iterable[str] = IMG_EXTENSIONS,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {transform!r}")
        if isinstance(extensions, str):
            raise TypeError("extensions must be a collection of suffixes, not one string")
        exts = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
        if not exts:
            raise ValueError("extensions must not be empty")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder root {str(self.root)!r} is not a directory")
        self.transform = transform
        self.max_pixels = max_pixels
        self.classes: tuple[str, ...] = tuple(
            sorted(
                entry.name
                for entry in os.scandir(self.root)
                if entry.is_dir() and not entry.name.startswith(".")
            )
        )
        if not self.classes:
            raise FileNotFoundError(f"image folder root {str(self.root)!r} has no class folders")
        self.class_to_idx: dict[str, int] = {c: i for i, c in enumerate(self.classes)}
        samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            for dirpath, dirnames, filenames in os.walk(self.root / name, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for filename in sorted(filenames):
                    if filename.startswith(".") or not filename.lower().endswith(exts):
                        continue
                    samples.append((Path(dirpath) / filename, label))
        if not samples:
            raise FileNotFoundError(
                f"image folder root {str(self.root)!r} has no images with extensions {exts}"
            )
        self.samples: tuple[tuple[Path, int], ...] = tuple(samples)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class folder names, index = label."""
        return self.classes

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def targets(self) -> list[int]:
        """The label of every sample, in order."""
        return [label for _, label in self.samples]

    def load(self, index: int) -> Image.Image:
        """The RGB image of sample ``index`` (untransformed)."""
        return load_image(self.samples[index][0], max_pixels=self.max_pixels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | Any, int]:
        image = self.load(index)
        label = self.samples[index][1]
        if self.transform is None:
            return to_tensor(image, mean=None, std=None), label
        return self.transform(image), label

    def __repr__(self) -> str:
        return (
            f"ImageFolderDataset(root={str(self.root)!r}, size={len(self)}, "
            f"num_classes={self.num_classes})"
        )
