"""Data sets and transforms: procedural SynthBirds, CUB-200-2011 and plain image folders."""

from arpviz.data.cub import CUB200, CUBSample, find_cub_root
from arpviz.data.folder import IMG_EXTENSIONS, ImageFolderDataset
from arpviz.data.synthbirds import (
    PART_NAMES,
    ClassCues,
    SynthBirds,
    SynthBirdsConfig,
    SynthSample,
    class_cues,
    class_names,
    image_rng,
    render_bird,
)
from arpviz.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    default_resize,
    eval_transform,
    train_transform,
)

__all__ = [
    "CUB200",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMG_EXTENSIONS",
    "PART_NAMES",
    "CUBSample",
    "ClassCues",
    "ImageFolderDataset",
    "SynthBirds",
    "SynthBirdsConfig",
    "SynthSample",
    "class_cues",
    "class_names",
    "default_resize",
    "eval_transform",
    "find_cub_root",
    "image_rng",
    "render_bird",
    "train_transform",
]
