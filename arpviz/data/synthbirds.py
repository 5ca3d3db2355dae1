"""SynthBirds: a procedural fine-grained bird data set that needs no download.

Every image shows one bird-like object (body, head, beak, eye, wing, tail, crown) at a random
position, scale, rotation and facing, on a cluttered background. The classes differ only in
small parts (beak colour and shape, eye ring, wing bars, crown stripe); everything else (body
colour, pose, size, background, distractors, lighting) is drawn at random independently of the
label. Image ``i`` of split ``s`` is rendered from its own generator seeded by
``SeedSequence([seed, split_id, i])``, so any image can be rendered on its own, in any order,
in any worker, and always comes out the same.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from arpviz.data.synthscene import (
    SHIFT,
    SHIFT_SCALE,
    background,
    distractors,
    ellipse,
    hsv,
    mix,
    noise_side,
    noise_tile,
    segment,
)
from arpviz.validation import DictConfig

__all__ = [
    "PART_NAMES",
    "SPLITS",
    "ClassCues",
    "SynthBirds",
    "SynthBirdsConfig",
    "SynthSample",
    "benchmark",
    "class_cues",
    "class_names",
    "draw_scene",
    "image_rng",
    "render_bird",
    "transform_with_mask",
]

SPLITS: tuple[str, ...] = ("train", "val", "test")
PART_NAMES: tuple[str, ...] = ("body", "head", "beak", "eye", "wing", "tail", "crown")

BEAK_COLOURS: tuple[str, ...] = ("yellow", "red", "black", "blue")
BEAK_SHAPES: tuple[str, ...] = ("conical", "slender", "hooked")
WING_BARS: tuple[int, ...] = (0, 1, 2)
CROWNS: tuple[str, ...] = ("plain", "pale", "dark")

# Beak colours at subtlety 0 (far apart) and at subtlety 1 (close together), RGB.
_BEAK_DISTINCT = np.array(
    [[240, 200, 30], [205, 35, 35], [30, 30, 30], [70, 110, 200]], dtype=np.float64
)
_BEAK_SUBTLE = np.array(
    [[212, 162, 66], [204, 130, 66], [176, 128, 80], [190, 150, 104]], dtype=np.float64
)
# (length, half-width, hook) in head radii, at subtlety 0.
_BEAK_GEOMETRY = np.array([[0.85, 0.45, 0.0], [1.55, 0.22, 0.0], [1.05, 0.38, 0.4]])
_BEAK_MEAN = _BEAK_GEOMETRY.mean(axis=0)
_PALE = np.array([245.0, 240.0, 225.0])
_DARK = np.array([22.0, 20.0, 20.0])
_CROWN_COLOURS = {"pale": np.array([250.0, 236.0, 150.0]), "dark": np.array([25.0, 22.0, 22.0])}

_NUISANCE_DRAWS = 40  # uniform draws reserved for the per-image bird nuisance
_CROWN_ANGLE = math.radians(-100.0)  # where the crown keypoint and stripe sit on the head

Box = tuple[float, float, float, float]


# --------------------------------------------------------------------------- configuration


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return int(value)


def _check_float(name: str, value: object, low: float, high: float) -> float:
    if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or not (low <= value <= high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SynthBirdsConfig(DictConfig):
    """Everything that defines a SynthBirds data set; round-trips through a plain dict.

    ``scale_min``/``scale_max`` bound the bird's longer box side as a fraction of the image
    side; ``clutter`` is the mean number of distractor shapes; ``subtlety`` in [0, 1] pulls the
    class cues (beak colours and shapes, contrast of ring, bars and crown) towards each other;
    ``part_size`` multiplies the size of the cue parts; ``margin`` is the fraction of the side
    kept free on every border (1/16 keeps the bird inside the 7/8 centre crop).
    """

    num_classes: int = 24
    image_size: int = 128
    train_size: int = 6000
    val_size: int = 1500
    test_size: int = 1500
    scale_min: float = 0.25
    scale_max: float = 0.55
    clutter: int = 12
    subtlety: float = 0.5
    part_size: float = 1.0
    max_rotation: float = 15.0
    noise_std: float = 4.0
    margin: float = 0.0625
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("num_classes", self.num_classes, 2, _N_COMBOS)
        _check_int("image_size", self.image_size, 16, 4096)
        for name in ("train_size", "val_size", "test_size"):
            _check_int(name, getattr(self, name), 0)
        _check_float("margin", self.margin, 0.0, 0.25)
        room = 1.0 - 2.0 * self.margin
        _check_float("scale_min", self.scale_min, 0.05, room)
        _check_float("scale_max", self.scale_max, 0.05, room)
        if self.scale_min > self.scale_max:
            raise ValueError(
                f"scale_min must be <= scale_max, got {self.scale_min!r} > {self.scale_max!r}"
            )
        _check_int("clutter", self.clutter, 0, 1000)
        _check_float("subtlety", self.subtlety, 0.0, 1.0)
        _check_float("part_size", self.part_size, 0.25, 3.0)
        _check_float("max_rotation", self.max_rotation, 0.0, 180.0)
        _check_float("noise_std", self.noise_std, 0.0, 100.0)
        _check_int("seed", self.seed, 0)

    def split_size(self, split: str) -> int:
        """Number of images in ``split`` ("train", "val" or "test")."""
        _split_id(split)
        return int(getattr(self, f"{split}_size"))


def _split_id(split: object) -> int:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return SPLITS.index(split)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- classes


@dataclass(frozen=True)
class ClassCues:
    """The part attributes that define one class."""

    beak_colour: str
    beak_shape: str
    eye_ring: bool
    wing_bars: int
    crown: str

    @property
    def name(self) -> str:
        """A descriptive name, e.g. "red slender beak, eye ring, 2 wing bars, dark crown"."""
        ring = "eye ring" if self.eye_ring else "bare eye"
        if self.wing_bars == 0:
            bars = "plain wing"
        else:
            bars = f"{self.wing_bars} wing bar" + ("s" if self.wing_bars > 1 else "")
        crown = "plain crown" if self.crown == "plain" else f"{self.crown} crown stripe"
        return f"{self.beak_colour} {self.beak_shape} beak, {ring}, {bars}, {crown}"


def _all_combos() -> tuple[ClassCues, ...]:
    combos = [
        ClassCues(c, s, r, b, k)
        for c, s, r, b, k in itertools.product(
            BEAK_COLOURS, BEAK_SHAPES, (False, True), WING_BARS, CROWNS
        )
    ]
    # A fixed, version-proof order: sort by a hash of the name, so the first K are a spread-out
    # subset and a larger num_classes extends a smaller one.
    return tuple(sorted(combos, key=lambda c: hashlib.blake2b(c.name.encode()).hexdigest()))


_COMBOS = _all_combos()
_N_COMBOS = len(_COMBOS)


def class_cues(num_classes: int) -> tuple[ClassCues, ...]:
    """The part attributes of each of the first ``num_classes`` classes (at most 216)."""
    _check_int("num_classes", num_classes, 2, _N_COMBOS)
    return _COMBOS[:num_classes]


def class_names(num_classes: int) -> tuple[str, ...]:
    """Descriptive class names, index = label."""
    return tuple(c.name for c in class_cues(num_classes))


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True, eq=False)
class SynthSample:
    """One rendered image with its ground truth.

    ``image`` is HxWx3 uint8 RGB; ``box`` is (x1, y1, x2, y2) in pixels with pixel-edge
    coordinates (pixel ``j`` spans [j, j + 1)), whole numbers enclosing the bird's polygons
    plus one pixel for the anti-aliased fringe, clipped to the image;
    ``keypoints`` maps each name of ``PART_NAMES`` to an (x, y) point in the same coordinates;
    ``mask`` is the bird's ground-truth mask, HxW uint8 (255 inside its polygons, anti-aliased
    at the edges like the image; ``None`` only where a sample was built without one).
    """

    image: np.ndarray
    label: int
    box: Box
    keypoints: dict[str, tuple[float, float]]
    mask: np.ndarray | None = None


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that renders image ``index`` of ``split`` for ``seed``."""
    _check_int("seed", seed, 0)
    _check_int("index", index, 0)
    return np.random.default_rng(np.random.SeedSequence([seed, _split_id(split), index]))


# --------------------------------------------------------------------------- colours and scene

def _beak_palette(subtlety: float) -> np.ndarray:
    return mix(_BEAK_DISTINCT, _BEAK_SUBTLE, subtlety)


@functools.lru_cache(maxsize=16)
def _cue_colour_pool(subtlety: float) -> list[list[float]]:
    """Beak palette, pale and dark, as RGB in [0, 1]."""
    pool = np.concatenate([_beak_palette(subtlety), [_PALE, _DARK]], axis=0) / 255.0
    return pool.tolist()


def draw_scene(rng: np.random.Generator, config: SynthBirdsConfig, gain: float) -> np.ndarray:
    """The background with its distractors (uint8 ``[size, size, 3]``), before the bird: the
    first draws of an image's generator, independent of the label."""
    img = background(rng, config.image_size, gain)
    distractors(rng, img, config.clutter, _cue_colour_pool(config.subtlety), gain)
    return img


# --------------------------------------------------------------------------- the bird


def _bird_parts(
    rng: np.random.Generator, cues: ClassCues, cfg: SynthBirdsConfig
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """Polygons of one bird in its own frame (facing +x, y down, about 2 units long).

    Returns the parts in drawing order as (points, colour), the class-independent points
    that define the bird's nominal extent, and the keypoints (rows in ``PART_NAMES`` order).
    Every nuisance draw happens before the first class-dependent draw, so the label changes
    nothing but the cue parts.
    """
    # ---- nuisance: shape and colours, independent of the label (one block of draws)
    draws = iter(rng.random(_NUISANCE_DRAWS).tolist())

    def u(lo: float = 0.0, hi: float = 1.0) -> float:
        return lo + (hi - lo) * next(draws)

    def body_like() -> np.ndarray:
        return hsv(u(), u(0.15, 0.75), u(0.35, 0.8))

    body_a, body_b = 0.55 * u(0.9, 1.1), 0.33 * u(0.88, 1.12)
    hx, hy, rh = 0.5 + u(-0.05, 0.05), -0.3 + u(-0.06, 0.06), 0.21 * u(0.9, 1.1)
    tail_len, tail_y, tail_w = u(0.35, 0.55), u(-0.15, 0.15), u(0.05, 0.14)
    wx, wy = -0.1 + u(-0.04, 0.04), -0.02 + u(-0.04, 0.04)
    wa, wb, wang = 0.38 * u(0.92, 1.08), 0.16 * u(0.9, 1.1), math.radians(u(-14.0, -2.0))
    beak_angle = math.radians(u(-12.0, 8.0))
    has_belly, has_legs, leg_len = u() < 0.5, u() < 0.7, u(0.18, 0.3)
    body = body_like()
    head = body * u(0.9, 1.1) if u() < 0.7 else body_like()
    wing = body * u(0.6, 0.9) if u() < 0.75 else body_like()
    tail = wing * u(0.8, 1.0)
    belly = mix(body, np.full(3, 245.0), u(0.3, 0.6))
    legs = hsv(u(0.0, 0.12), u(0.1, 0.5), u(0.2, 0.5))

    # ---- class cues (plus a little per-image jitter)
    sub, ps = cfg.subtlety, cfg.part_size
    jitter = rng.random(4).tolist()
    beak_colour = _beak_palette(sub)[BEAK_COLOURS.index(cues.beak_colour)]
    beak_colour = beak_colour + (np.array(jitter[:3]) - 0.5) * (14.0 + 14.0 * sub)
    geom = mix(_BEAK_GEOMETRY[BEAK_SHAPES.index(cues.beak_shape)], _BEAK_MEAN, 0.6 * sub)
    beak_len, beak_w, hook = (geom * (ps * rh * (0.93 + 0.14 * jitter[3]))).tolist()

    parts: list[tuple[np.ndarray, np.ndarray]] = []
    tip_x = -0.4 - tail_len
    tail_pts = np.array(
        [[-0.42, -0.08], [tip_x, tail_y - tail_w], [tip_x, tail_y + tail_w], [-0.42, 0.1]]
    )
    parts.append((tail_pts, tail))
    leg_pts = []
    if has_legs:
        for lx in (0.08, -0.1):
            seg = segment(np.array([lx, 0.2]), np.array([lx - 0.04, 0.28 + leg_len]), 0.022)
            leg_pts.append(seg)
            parts.append((seg, legs))
    body_pts = ellipse(0.0, 0.0, body_a, body_b)
    parts.append((body_pts, body))
    if has_belly:
        parts.append((ellipse(0.12, 0.14, 0.3, 0.12, math.radians(-8.0)), belly))
    wing_pts = ellipse(wx, wy, wa, wb, wang)
    parts.append((wing_pts, wing))
    # wing bars: thin ellipses across the wing
    cw, sw = math.cos(wang), math.sin(wang)
    bar_colour = mix(_PALE, wing, 0.55 * sub)
    for t in {0: (), 1: (0.15,), 2: (0.35, -0.05)}[cues.wing_bars]:
        half_len = 0.85 * wb * math.sqrt(1.0 - t * t)
        bar = ellipse(wx + cw * t * wa, wy + sw * t * wa, 0.03 * ps, half_len, wang)
        parts.append((bar, bar_colour))
    # beak (drawn before the head, which hides its base)
    d = np.array([math.cos(beak_angle), math.sin(beak_angle)])
    n = np.array([-d[1], d[0]])
    base = np.array([hx, hy]) + 0.8 * rh * d
    tip = base + beak_len * d + hook * n
    beak_pts = np.stack(
        [
            base - beak_w * n,
            base + 0.65 * beak_len * d + (0.3 * hook - 0.45 * beak_w) * n,
            tip,
            base + 0.55 * beak_len * d + (0.5 * hook + 0.35 * beak_w) * n,
            base + beak_w * n,
        ]
    )
    parts.append((beak_pts, beak_colour))
    head_pts = ellipse(hx, hy, rh, rh)
    parts.append((head_pts, head))
    # crown stripe along the top of the head
    cphi, sphi = math.cos(_CROWN_ANGLE), math.sin(_CROWN_ANGLE)
    if cues.crown != "plain":
        colour = mix(_CROWN_COLOURS[cues.crown], head, 0.5 * sub)
        cx, cy = hx + 0.74 * rh * cphi, hy + 0.74 * rh * sphi
        stripe = ellipse(cx, cy, 0.62 * rh, 0.2 * rh * ps, _CROWN_ANGLE + math.pi / 2)
        parts.append((stripe, colour))
    # eye with optional ring
    ex, ey = hx + 0.38 * rh, hy - 0.18 * rh
    eye_r = 0.24 * rh
    if cues.eye_ring:
        ring_r = eye_r * (1.0 + 0.75 * ps)
        parts.append((ellipse(ex, ey, ring_r, ring_r), mix(_PALE, head, 0.55 * sub)))
    parts.append((ellipse(ex, ey, eye_r, eye_r), _DARK))

    # nominal extent: every nuisance part plus the longest beak this config can draw
    longest = float(mix(_BEAK_GEOMETRY[:, 0], _BEAK_MEAN[0], 0.6 * sub).max()) * ps * rh * 1.07
    nominal_tip = base + longest * d
    extent = np.concatenate(
        [tail_pts, body_pts, wing_pts, head_pts, nominal_tip[None], *leg_pts], axis=0
    )
    keypoints = np.array(  # PART_NAMES order: body, head, beak, eye, wing, tail, crown
        [
            [0.0, 0.0],
            [hx, hy],
            tip,
            [ex, ey],
            [wx, wy],
            [tip_x, tail_y],
            [hx + rh * cphi, hy + rh * sphi],
        ]
    )
    return parts, extent, keypoints


def render_bird(
    config: SynthBirdsConfig,
    label: int,
    rng: np.random.Generator,
    parts_rng: np.random.Generator | None = None,
) -> SynthSample:
    """Render one image of class ``label`` with the random draws of ``rng``.

    The same generator state with another label gives the same image except for the class
    cue parts. ``SynthBirds.render`` calls this with ``image_rng(seed, split, index)``.
    ``parts_rng`` (default: ``rng``) draws the bird's own look (shape, colours, cue jitter)
    apart from the scene and pose, so one individual can be drawn in many scenes (SynthReID).
    """
    if not isinstance(config, SynthBirdsConfig):
        raise TypeError(f"config must be a SynthBirdsConfig, got {type(config).__name__}")
    label = _check_int("label", label, 0, config.num_classes - 1)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    if parts_rng is not None and not isinstance(parts_rng, np.random.Generator):
        raise TypeError(f"parts_rng must be a numpy Generator, got {type(parts_rng).__name__}")
    size = config.image_size
    gain = rng.uniform(0.85, 1.15)  # global lighting, applied to every colour drawn
    img = draw_scene(rng, config, gain)
    # pose and noise, drawn before the parts so they are independent of the label too
    scale_frac, rot, flip, place_x, place_y, noise_x, noise_y = rng.random(7).tolist()
    scale_frac = config.scale_min + (config.scale_max - config.scale_min) * scale_frac
    theta = math.radians((2.0 * rot - 1.0) * config.max_rotation)
    mirror = -1.0 if flip < 0.5 else 1.0
    parts, extent, keypoints = _bird_parts(
        rng if parts_rng is None else parts_rng, _COMBOS[label], config
    )

    ct, st = math.cos(theta), math.sin(theta)
    linear = np.array([[mirror * ct, -st], [mirror * st, ct]])  # rotation @ diag(mirror, 1)
    ext = extent @ linear.T
    lo, hi = ext.min(axis=0), ext.max(axis=0)
    s = scale_frac * size / float((hi - lo).max())
    t_lo = config.margin * size - s * lo
    t_hi = (1.0 - config.margin) * size - s * hi
    offset = t_lo + np.array([place_x, place_y]) * np.maximum(t_hi - t_lo, 0.0)
    mat = (s * linear).T

    # transform every polygon and keypoint at once, then draw slice by slice
    counts = [len(p) for p, _ in parts]
    pts = np.concatenate([p for p, _ in parts] + [keypoints], axis=0) @ mat + offset
    n_drawn = sum(counts)
    fixed = np.rint((pts[:n_drawn] - 0.5) * SHIFT_SCALE).astype(np.int32)
    colours = np.clip(np.rint(np.stack([c for _, c in parts]) * gain), 0, 255).astype(int)
    start = 0
    mask = np.zeros(img.shape[:2], dtype=np.uint8)
    for count, colour in zip(counts, colours.tolist(), strict=True):
        cv2.fillPoly(img, [fixed[start : start + count]], colour, cv2.LINE_AA, SHIFT)
        cv2.fillPoly(mask, [fixed[start : start + count]], 255, cv2.LINE_AA, SHIFT)
        start += count
    # whole pixels around the polygons, plus one for cv2's anti-aliased fringe
    x1, y1 = (np.floor(pts[:n_drawn].min(axis=0)) - 1).tolist()
    x2, y2 = (np.ceil(pts[:n_drawn].max(axis=0)) + 1).tolist()
    box = (float(max(x1, 0)), float(max(y1, 0)), float(min(x2, size)), float(min(y2, size)))
    kp_list = pts[n_drawn:].tolist()
    kps = {name: (float(x), float(y)) for name, (x, y) in zip(PART_NAMES, kp_list, strict=True)}

    if config.noise_std > 0:
        side = noise_side(size)
        x0, y0 = int(noise_x * (side - size + 1)), int(noise_y * (side - size + 1))
        noise = noise_tile(side, float(config.noise_std))[y0 : y0 + size, x0 : x0 + size]
        img = cv2.add(img, noise, dtype=cv2.CV_8U)
    return SynthSample(image=img, label=label, box=box, keypoints=kps, mask=mask)


# --------------------------------------------------------------------------- the data set


def transform_with_mask(
    transform: Callable[..., Any] | None, image: torch.Tensor, mask: np.ndarray | torch.Tensor
) -> tuple[Any, torch.Tensor]:
    """``(image, mask)`` through one call of a torchvision v2 ``transform`` (same crop and flip).

    ``image`` is uint8 ``[3, H, W]``, ``mask`` uint8 ``[H, W]`` or ``[1, H, W]``. Without a
    transform the image becomes float32 in [0, 1]. The mask comes back as a plain uint8
    ``Tensor[1, h, w]`` (0..255); geometric steps move it with the image, colour steps leave it.
    """
    mask_t = torch.as_tensor(mask)
    mask_t = tv_tensors.Mask(mask_t[None] if mask_t.dim() == 2 else mask_t)
    if transform is None:
        return image.float().div(255.0).contiguous(), mask_t.as_subclass(torch.Tensor)
    out, out_mask = transform(tv_tensors.Image(image), mask_t)
    return out, torch.as_tensor(out_mask).as_subclass(torch.Tensor)



class SynthBirds(Dataset):
    """A split of SynthBirds as a map-style data set of ``(image, label)``.

    Without a transform the image is a float32 tensor [3, H, W] in [0, 1]; with one, the
    transform receives a PIL RGB image. Labels are ``index % num_classes`` (balanced).
    With ``masks=True`` items are ``(image, label, mask)``: the bird's mask as a
    ``torchvision.tv_tensors.Mask`` (uint8 [1, H, W], 0..255) that goes through the transform
    together with the image (same crop and flip), or a uint8 tensor without a transform.
    """

    def __init__(
        self,
        config: SynthBirdsConfig | None = None,
        split: str = "train",
        transform: Callable[..., Any] | None = None,
        *,
        masks: bool = False,
    ) -> None:
        if config is None:
            config = SynthBirdsConfig()
        if not isinstance(config, SynthBirdsConfig):
            raise TypeError(f"config must be a SynthBirdsConfig, got {type(config).__name__}")
        _split_id(split)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {transform!r}")
        self.config = config
        self.split = split
        self.transform = transform
        self.masks = bool(masks)
        self._len = config.split_size(split)

    def __len__(self) -> int:
        return self._len

    def _index(self, index: int) -> int:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"index must be an int, got {index!r}")
        i = int(index)
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(f"index {index} out of range for {self._len} images")
        return i

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self.config.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        """Descriptive class names, index = label."""
        return class_names(self.config.num_classes)

    @property
    def classes(self) -> tuple[str, ...]:
        """Alias of ``class_names`` (torchvision naming)."""
        return self.class_names

    @property
    def targets(self) -> list[int]:
        """The label of every image, in order."""
        return [i % self.config.num_classes for i in range(self._len)]

    def label(self, index: int) -> int:
        """The label of image ``index`` without rendering it."""
        return self._index(index) % self.config.num_classes

    def render(self, index: int) -> SynthSample:
        """Render image ``index`` with its ground truth (box and keypoints)."""
        i = self._index(index)
        rng = image_rng(self.config.seed, self.split, i)
        return render_bird(self.config, i % self.config.num_classes, rng)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        sample = self.render(index)
        if self.masks:
            image = torch.from_numpy(sample.image).permute(2, 0, 1)
            x, mask = transform_with_mask(self.transform, image, sample.mask)
            return x, sample.label, mask
        if self.transform is None:
            x = torch.from_numpy(sample.image).permute(2, 0, 1).float().div_(255.0)
            return x.contiguous(), sample.label
        return self.transform(Image.fromarray(sample.image)), sample.label

    def __repr__(self) -> str:
        return (
            f"SynthBirds(split={self.split!r}, size={self._len}, "
            f"num_classes={self.num_classes}, image_size={self.config.image_size})"
        )


def benchmark(n: int = 1000, image_size: int = 128, repeats: int = 3) -> float:
    """Single-threaded rendering speed in images per second (best of ``repeats`` runs).

    Timed with the process CPU clock, so other work on a shared machine does not skew it.
    """
    _check_int("n", n, 1)
    _check_int("repeats", repeats, 1)
    import time

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        ds = SynthBirds(SynthBirdsConfig(image_size=image_size, train_size=n), "train")
        best = math.inf
        for _ in range(repeats):
            start = time.process_time()
            for i in range(n):
                ds.render(i)
            best = min(best, time.process_time() - start)
    finally:
        cv2.setNumThreads(threads)
    return n / best
