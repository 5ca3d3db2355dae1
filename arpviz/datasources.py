"""Data sets by name, as the trainer, the evaluator and the app need them.

A checkpoint records its data set as a JSON dict (``{"name": "synthbirds", "config": {...}}``,
or ``{"name": "cub" | "folder", "root": ...}``) plus the input size; the functions here turn that
record back into data sets with the right transforms, and give the probe images back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from arpviz.data.cub import CUB200
from arpviz.data.folder import ImageFolderDataset
from arpviz.data.reid_folders import ReIDFolder
from arpviz.data.synthbirds import SynthBirds, SynthBirdsConfig, transform_with_mask
from arpviz.data.synthreid import SynthReID, SynthReIDConfig
from arpviz.data.transforms import default_resize, eval_transform, train_transform

__all__ = [
    "DATASETS",
    "REID_DATASETS",
    "DataSources",
    "RenderedSynthBirds",
    "build",
    "build_reid",
    "is_reid",
    "probe_batch",
    "reid_labels",
    "synth_config",
]

DATASETS = ("synthbirds", "cub", "folder")
REID_DATASETS = ("synthreid", "veri776", "market1501")


@dataclass(frozen=True)
class DataSources:
    """Train and evaluation data sets with their class names and JSON record.

    Re-ID data sets (:data:`REID_DATASETS`, :func:`build_reid`) also set ``query`` and
    ``gallery`` (``val`` is the query split there).
    """

    train: Dataset
    val: Dataset
    class_names: tuple[str, ...]
    record: dict[str, Any]
    query: Dataset | None = None
    gallery: Dataset | None = None


def synth_config(record: Mapping[str, Any], image_size: int) -> SynthBirdsConfig:
    """The SynthBirds config of a record, rendered at the resize size (then cropped)."""
    config = SynthBirdsConfig.from_dict(dict(record.get("config", {})))
    return config.replace(image_size=default_resize(image_size))


class RenderedSynthBirds(Dataset):
    """A SynthBirds split kept in memory (``uint8 [N, 3, H, W]``) once rendered, then transformed.

    Rendering is the slow part of SynthBirds; each image is rendered on its first access, so
    every epoch after the first costs only the transforms. Memory: ``N * 3 * H * W`` bytes (4000
    images at 146 px: 256 MB), plus ``N * H * W`` with ``masks`` (items are then ``(image,
    label, mask)`` as :class:`~arpviz.data.synthbirds.SynthBirds` gives them). With DataLoader
    workers, each worker keeps its own cache.
    """

    def __init__(self, source: SynthBirds, transform: Any = None, *, masks: bool = False) -> None:
        self.source = source
        self.transform = transform
        self.masks = bool(masks)
        self._images: torch.Tensor | None = None
        self._masks: torch.Tensor | None = None
        self.class_names = source.class_names

    def __len__(self) -> int:
        return len(self.source)

    def _image(self, index: int) -> torch.Tensor:
        if self._images is None:
            size = self.source.config.image_size
            self._images = torch.empty(len(self.source), 3, size, size, dtype=torch.uint8)
            if self.masks:
                self._masks = torch.empty(len(self.source), size, size, dtype=torch.uint8)
            self._done = torch.zeros(len(self.source), dtype=torch.bool)
        if not self._done[index]:
            sample = self.source.render(index)
            self._images[index] = torch.from_numpy(sample.image).permute(2, 0, 1)
            if self._masks is not None:
                self._masks[index] = torch.from_numpy(sample.mask)
            self._done[index] = True
        return self._images[index]

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        image = self._image(index)
        label = self.source.label(index)
        if self._masks is not None:
            x, mask = transform_with_mask(self.transform, image, self._masks[index])
            return x, label, mask
        return (self.transform(image) if self.transform else image), label


def build(
    record: Mapping[str, Any], image_size: int, *, eval_split: str = "val", cache: bool = False,
    masks: bool = False,
) -> DataSources:
    """Build the data sets a record names.

    Args:
        record: ``{"name": "synthbirds", "config": {...}}`` or ``{"name": "cub", "root": ...}``
            or ``{"name": "folder", "root": ..., "val_root": ...}``, or a re-ID record
            (:func:`build_reid`).
        image_size: the network's input side (448 for CUB, 128 for the bundled SynthBirds).
        eval_split: ``"val"`` or ``"test"`` (SynthBirds), ignored by CUB (its test split).
        cache: render SynthBirds once into memory (:class:`RenderedSynthBirds`).
        masks: items are ``(image, label, mask)`` with the object's ground-truth mask (for a
            model with an ``"oracle"`` stage); only SynthBirds renders masks.
    """
    name = record.get("name") if isinstance(record, Mapping) else None
    if masks and name != "synthbirds":
        raise ValueError(f"masks: only SynthBirds renders ground-truth masks, not {name!r} "
                         "(an 'oracle' stage needs them)")
    if is_reid(record):
        return build_reid(record, image_size, cache=cache)
    if name not in DATASETS:
        raise ValueError(f"dataset name must be one of {DATASETS}, got {name!r}")
    resize = default_resize(image_size)
    train_tf = train_transform(image_size, resize=resize)
    eval_tf = eval_transform(image_size, resize=resize)
    if name == "synthbirds":
        config = synth_config(record, image_size)
        train = SynthBirds(config, "train", transform=train_tf, masks=masks)
        val = SynthBirds(config, eval_split, transform=eval_tf, masks=masks)
        if cache:
            train = RenderedSynthBirds(SynthBirds(config, "train"), train_tf, masks=masks)
            val = RenderedSynthBirds(SynthBirds(config, eval_split), eval_tf, masks=masks)
        names = train.class_names
        rec = {"name": name, "config": config.to_dict()}
    elif name == "cub":
        root = record.get("root")
        if not root:
            raise ValueError("dataset 'cub' needs root (the CUB_200_2011 folder)")
        train = CUB200(root, "train", transform=train_tf)
        val = CUB200(root, "test", transform=eval_tf)
        names = tuple(train.class_names)
        rec = {"name": name, "root": str(root)}
    else:
        root, val_root = record.get("root"), record.get("val_root")
        if not root or not val_root:
            raise ValueError("dataset 'folder' needs root and val_root")
        train = ImageFolderDataset(root, transform=train_tf)
        val = ImageFolderDataset(val_root, transform=eval_tf)
        names = tuple(train.classes)
        rec = {"name": name, "root": str(root), "val_root": str(val_root)}
    return DataSources(train, val, names, rec)


def probe_batch(
    dataset: Dataset, indices: list[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Stack the probe images ``[P, 3, H, W]``, labels ``[P]`` and, where the data set gives
    masks, the masks ``[P, 1, H, W]`` (else ``None``) of an evaluation data set."""
    items = [dataset[i] for i in indices]
    images = torch.stack([item[0] for item in items])
    labels = torch.tensor([int(item[1]) for item in items])
    masks = torch.stack([item[2] for item in items]) if items and len(items[0]) > 2 else None
    return images, labels, masks


# ----------------------------------------------------------------------------- re-ID


def is_reid(record: Mapping[str, Any]) -> bool:
    """Whether a data-set record (``{"name": ...}``) names a re-ID data set."""
    return isinstance(record, Mapping) and record.get("name") in REID_DATASETS


def build_reid(record: Mapping[str, Any], image_size: int, *, cache: bool = False):
    """The :class:`~arpviz.datasources.DataSources` of a re-ID record.

    ``record``: ``{"name": "synthreid", "config": {...}}`` or ``{"name": "veri776" |
    "market1501", "root": ...}``. ``val`` is the query split (the probe images come from it);
    ``query`` and ``gallery`` are set. Transforms: resize to ``image_size`` square (no crop),
    random flip in training. ``cache`` keeps rendered SynthReID images in memory.
    """
    name = record.get("name")
    if name not in REID_DATASETS:
        raise ValueError(f"dataset name must be one of {REID_DATASETS}, got {name!r}")
    train_tf = train_transform(image_size, resize=image_size)
    eval_tf = eval_transform(image_size, resize=image_size)
    if name == "synthreid":
        config = SynthReIDConfig.from_dict(dict(record.get("config", {})))
        config = config.replace(image_size=image_size)
        splits = {s: SynthReID(config, s) for s in ("train", "query", "gallery")}
        tfs = {"train": train_tf, "query": eval_tf, "gallery": eval_tf}
        if cache:
            sets = {s: RenderedSynthBirds(d, tfs[s]) for s, d in splits.items()}
        else:
            sets = {s: SynthReID(config, s, tfs[s]) for s in splits}
        rec = {"name": name, "config": config.to_dict()}
        names = splits["train"].class_names
    else:
        root = record.get("root")
        if not root:
            raise ValueError(f"dataset {name!r} needs root (the data set's folder)")
        sets = {s: ReIDFolder(root, name, s, train_tf if s == "train" else eval_tf)
                for s in ("train", "query", "gallery")}
        rec = {"name": name, "root": str(root)}
        names = sets["train"].class_names
    return DataSources(sets["train"], sets["query"], tuple(names), rec,
                       query=sets["query"], gallery=sets["gallery"])


def reid_labels(dataset: Dataset) -> tuple[list[int], list[int]]:
    """``(labels, cameras)`` of every item of a re-ID data set, without loading images.

    Looks through :class:`~torch.utils.data.Subset` and the render cache; ``labels`` are the
    data set's ``targets`` (training labels on train, identities on query/gallery).
    """
    if isinstance(dataset, Subset):
        labels, cams = reid_labels(dataset.dataset)
        return [labels[i] for i in dataset.indices], [cams[i] for i in dataset.indices]
    source = getattr(dataset, "source", dataset)
    if not hasattr(source, "targets") or not hasattr(source, "camids"):
        raise TypeError(f"dataset must be a re-ID data set, got {type(dataset).__name__}")
    return list(source.targets), list(source.camids)
