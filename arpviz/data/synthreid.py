"""SynthReID: a procedural bird re-identification data set with ground truth (no download).

Individuals are SynthBirds birds (:func:`~arpviz.data.synthbirds.render_bird`). Identities come
in *look-alike groups* of ``group_size``: the members of a group share every drawn feature of
the bird (body shape, body/head/wing colours, the cue jitter) and differ only in their small
cue parts (beak colour and shape, eye ring, wing bars, crown stripe), so telling two members
apart needs the details, as telling two cars of the same model and colour apart does.

Each identity is seen by ``cameras_per_id`` of ``num_cameras`` cameras, ``images_per_camera``
times each, every image with its own background, clutter, pose, facing, position and scale.
A camera changes the picture as a real one does: a colour cast and brightness of its own, its
own distance (range of bird sizes) and its own sharpness (blur).

Splits (as Market-1501 and VeRi-776): ``train`` holds the first ``train_ids`` identities;
``query`` and ``gallery`` hold the other ``test_ids``: for every (test identity, camera) the
first image is a query and the others go to the gallery, so each query's identity is in the
gallery under its own camera (excluded by the standard protocol) and under other cameras (the
true matches). Everything is deterministic from ``seed``: image ``(pid, camera, view)`` is
rendered from ``SeedSequence([seed, 0x5EE1D, pid, camera, view])`` and the look of a group from
``SeedSequence([seed, 0x6A0, group])``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from arpviz.data.synthbirds import (
    _N_COMBOS,
    SynthBirdsConfig,
    _check_float,
    _check_int,
    class_cues,
    render_bird,
)
from arpviz.validation import DictConfig

__all__ = ["REID_SPLITS", "SynthReID", "SynthReIDConfig", "SynthReIDSample", "camera_look"]

REID_SPLITS: tuple[str, ...] = ("train", "query", "gallery")
_VIEW_KEY = 0x5EE1D
_GROUP_KEY = 0x6A0
_CAMERA_KEY = 0xCA3

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class SynthReIDConfig(DictConfig):
    """Everything that defines a SynthReID data set; round-trips through a plain dict.

    ``train_ids``/``test_ids`` identities (disjoint), ``group_size`` identities per look-alike
    group, ``num_cameras`` cameras of which each identity visits ``cameras_per_id``,
    ``images_per_camera`` images per visit. ``subtlety``, ``part_size``, ``clutter`` and
    ``noise_std`` are SynthBirds' (how close the cue parts are, their size, the distractors);
    ``scale_min``/``scale_max`` bound the bird size over all cameras (each camera has a
    sub-range); ``cast`` is the strength of the cameras' colour casts (0: none).
    """

    train_ids: int = 64
    test_ids: int = 48
    group_size: int = 4
    num_cameras: int = 6
    cameras_per_id: int = 3
    images_per_camera: int = 4
    image_size: int = 128
    subtlety: float = 0.0
    part_size: float = 2.0
    scale_min: float = 0.4
    scale_max: float = 0.75
    clutter: int = 6
    noise_std: float = 4.0
    cast: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("train_ids", self.train_ids, 1)
        _check_int("test_ids", self.test_ids, 1)
        _check_int("group_size", self.group_size, 1, _N_COMBOS)
        _check_int("num_cameras", self.num_cameras, 2, 64)
        _check_int("cameras_per_id", self.cameras_per_id, 2, self.num_cameras)
        _check_int("images_per_camera", self.images_per_camera, 1, 1000)
        _check_int("image_size", self.image_size, 32, 4096)
        _check_float("cast", self.cast, 0.0, 0.5)
        _check_int("seed", self.seed, 0)
        self.bird_config()  # validates subtlety, part_size, scales, clutter, noise_std

    def bird_config(self, scale: tuple[float, float] | None = None) -> SynthBirdsConfig:
        """The SynthBirds config the birds are drawn with (``scale``: a camera's size range)."""
        low, high = (self.scale_min, self.scale_max) if scale is None else scale
        return SynthBirdsConfig(
            num_classes=_N_COMBOS, image_size=self.image_size, subtlety=self.subtlety,
            part_size=self.part_size, scale_min=low, scale_max=high, clutter=self.clutter,
            noise_std=self.noise_std, seed=self.seed,
        )


@dataclass(frozen=True)
class CameraLook:
    """What a camera does to a picture: per-channel ``gain``, ``offset``, bird ``scale`` range
    (fractions of the image side) and Gaussian ``blur`` sigma in pixels."""

    gain: tuple[float, float, float]
    offset: float
    scale: tuple[float, float]
    blur: float


def camera_look(config: SynthReIDConfig, camera: int) -> CameraLook:
    """The look of ``camera`` (0-based) under ``config``."""
    camera = _check_int("camera", camera, 0, config.num_cameras - 1)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, _CAMERA_KEY, camera]))
    gain = tuple(float(g) for g in 1.0 + config.cast * (2.0 * rng.random(3) - 1.0))
    offset = float(config.cast * 60.0 * (2.0 * rng.random() - 1.0))
    span = config.scale_max - config.scale_min
    centre = config.scale_min + span * (0.25 + 0.5 * rng.random())
    scale = (max(config.scale_min, centre - 0.3 * span), min(config.scale_max, centre + 0.3 * span))
    blur = float(rng.choice([0.0, 0.0, 0.6, 1.0]))
    return CameraLook(gain, offset, scale, blur)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class SynthReIDSample:
    """One rendered image with its ground truth.

    ``image`` HxWx3 uint8 RGB; ``pid`` the identity (global, 0-based); ``camera`` 0-based;
    ``label`` the training label (``pid`` for train, ``pid`` too for query/gallery); ``box`` and
    ``keypoints`` as :class:`~arpviz.data.synthbirds.SynthSample` (pixel-edge coordinates).
    """

    image: np.ndarray
    pid: int
    camera: int
    view: int
    box: Box
    keypoints: dict[str, tuple[float, float]]


def _identity_cameras(config: SynthReIDConfig, pid: int) -> list[int]:
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, _CAMERA_KEY, 1 << 20, pid]))
    return sorted(rng.choice(config.num_cameras, config.cameras_per_id, replace=False).tolist())


def _items(config: SynthReIDConfig, split: str) -> list[tuple[int, int, int]]:
    if split not in REID_SPLITS:
        raise ValueError(f"split must be one of {REID_SPLITS}, got {split!r}")
    if split == "train":
        pids = range(config.train_ids)
    else:
        pids = range(config.train_ids, config.train_ids + config.test_ids)
    views = {"train": range(config.images_per_camera), "query": range(1),
             "gallery": range(1, config.images_per_camera)}[split]
    return [(pid, cam, view) for pid in pids for cam in _identity_cameras(config, pid)
            for view in views]


class SynthReID(Dataset):
    """A split of SynthReID as a map-style data set of ``(image, label)``.

    ``label`` is the training label for ``train`` (``0..train_ids-1``) and the identity for
    ``query``/``gallery``; :attr:`pids` and :attr:`camids` hold every image's identity and
    camera. Without a transform the image is a float32 tensor ``[3, H, W]`` in [0, 1]; with one,
    the transform receives a PIL RGB image.
    """

    def __init__(
        self,
        config: SynthReIDConfig | None = None,
        split: str = "train",
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        config = SynthReIDConfig() if config is None else config
        if not isinstance(config, SynthReIDConfig):
            raise TypeError(f"config must be a SynthReIDConfig, got {type(config).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {transform!r}")
        self.config = config
        self.split = split
        self.transform = transform
        self._items = _items(config, split)
        self._looks = [camera_look(config, c) for c in range(config.num_cameras)]
        self._birds = [config.bird_config(look.scale) for look in self._looks]

    def __len__(self) -> int:
        return len(self._items)

    @property
    def pids(self) -> list[int]:
        """The identity of every image."""
        return [pid for pid, _, _ in self._items]

    @property
    def camids(self) -> list[int]:
        """The camera of every image."""
        return [cam for _, cam, _ in self._items]

    @property
    def targets(self) -> list[int]:
        """The label of every image, in order."""
        return self.pids

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the training identities, index = training label."""
        cues = class_cues(_N_COMBOS)
        return tuple(f"id {pid:04d} ({cues[pid % _N_COMBOS].name})"
                     for pid in range(self.config.train_ids))

    def label(self, index: int) -> int:
        """The label of image ``index`` without rendering it."""
        return self._items[self._index(index)][0]

    def _index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"index must be an int, got {index!r}")
        i = int(index) + (len(self) if index < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        return i

    def render(self, index: int) -> SynthReIDSample:
        """Render image ``index`` with its ground truth."""
        pid, camera, view = self._items[self._index(index)]
        cfg = self.config
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, _VIEW_KEY, pid, camera,
                                                            view]))
        group = pid // cfg.group_size
        parts_rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, _GROUP_KEY, group]))
        bird = render_bird(self._birds[camera], pid % _N_COMBOS, rng, parts_rng=parts_rng)
        look = self._looks[camera]
        image = bird.image.astype(np.float32) * np.float32(look.gain) + np.float32(look.offset)
        if look.blur > 0:
            image = cv2.GaussianBlur(image, (0, 0), look.blur)
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        return SynthReIDSample(image, pid, camera, view, bird.box, bird.keypoints)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        sample = self.render(index)
        if self.transform is None:
            x = torch.from_numpy(sample.image).permute(2, 0, 1).float().div_(255.0)
            return x.contiguous(), sample.pid
        return self.transform(Image.fromarray(sample.image)), sample.pid

    def __repr__(self) -> str:
        return (f"SynthReID(split={self.split!r}, images={len(self)}, "
                f"identities={len(set(self.pids))}, image_size={self.config.image_size})")
