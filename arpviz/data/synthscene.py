"""The scene SynthBirds draws a bird into: background, distractor clutter, pixel noise, and the
polygon primitives (cv2, anti-aliased, sub-pixel) the bird is drawn with too."""

from __future__ import annotations

import colorsys
import functools
import math
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "SHIFT",
    "SHIFT_SCALE",
    "Colour",
    "background",
    "distractor_colours",
    "distractors",
    "ellipse",
    "fill",
    "hsv",
    "mix",
    "noise_side",
    "noise_tile",
    "segment",
]

_N_CIRCLE = 28
_ANGLES = np.linspace(0.0, 2.0 * math.pi, _N_CIRCLE, endpoint=False)
_CIRCLE = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1)
SHIFT = 4  # sub-pixel bits for cv2.fillPoly
SHIFT_SCALE = float(1 << SHIFT)

Colour = tuple[int, int, int]


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """RGB in [0, 255] of a hue (wrapped), saturation and value."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v)) * 255.0


def mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """``a`` moved the share ``t`` of the way to ``b``."""
    return a * (1.0 - t) + b * t


def ellipse(cx: float, cy: float, a: float, b: float, angle: float = 0.0) -> np.ndarray:
    """Polygon ``[N, 2]`` of an ellipse with half-axes ``a``, ``b`` turned by ``angle`` (rad)."""
    ca, sa = math.cos(angle), math.sin(angle)
    rot = np.array([[ca, -sa], [sa, ca]])
    return (_CIRCLE * (a, b)) @ rot.T + (cx, cy)


def segment(p: np.ndarray, q: np.ndarray, half_width: float) -> np.ndarray:
    """The rectangle ``[4, 2]`` around the segment ``p``-``q``, ``half_width`` to each side."""
    d = q - p
    n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9) * half_width
    return np.stack([p + n, q + n, q - n, p - n])


def fill(img: np.ndarray, pts: np.ndarray, colour: Colour) -> None:
    """Fill the polygon ``pts`` (pixel-edge coordinates) into ``img``, anti-aliased."""
    # Our points use pixel-edge coordinates; cv2 puts integer coordinates on pixel centres.
    fixed = np.rint((pts - 0.5) * SHIFT_SCALE).astype(np.int32)
    cv2.fillPoly(img, [fixed], colour, lineType=cv2.LINE_AA, shift=SHIFT)


def noise_side(size: int) -> int:
    """Side of the noise tile that images of ``size`` crop from."""
    return max(256, 2 * size)


@functools.lru_cache(maxsize=8)
def noise_tile(side: int, std: float) -> np.ndarray:
    """A fixed tile of Gaussian pixel noise (int16); images use random crops of it."""
    tile = np.random.default_rng(0x5EED).standard_normal((side, side, 3)) * std
    tile = np.rint(tile).astype(np.int16)
    tile.setflags(write=False)
    return tile


def background(rng: np.random.Generator, size: int, gain: float) -> np.ndarray:
    """A gradient with blotches and sometimes stripes or fine texture, uint8 HxWx3."""
    c1 = hsv(rng.random(), rng.uniform(0.05, 0.6), rng.uniform(0.3, 0.9))
    c2 = hsv(rng.random(), rng.uniform(0.05, 0.6), rng.uniform(0.3, 0.9))
    angle = rng.uniform(0.0, 2.0 * math.pi)
    cells = int(rng.integers(3, 9))
    ramp = np.linspace(0.0, 1.0, cells)
    t = ramp[None, :] * math.cos(angle) + ramp[:, None] * math.sin(angle)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    grid = c1 + t[..., None] * (c2 - c1)
    grid += (rng.random((cells, cells, 3)) - 0.5) * rng.uniform(20.0, 70.0)
    # two-stage upsampling: smooth (cubic) on a small grid, then cheap bilinear
    mid = min(size, 32)
    grid = cv2.resize(grid.astype(np.float32), (mid, mid), interpolation=cv2.INTER_CUBIC)
    img = cv2.resize(grid, (size, size), interpolation=cv2.INTER_LINEAR)
    kind = int(rng.integers(0, 3))
    texture = None
    if kind == 1:  # stripes
        period = rng.uniform(0.03, 0.15) * size
        b = rng.uniform(0.0, 2.0 * math.pi)
        axis = np.arange(size, dtype=np.float32) * np.float32(2.0 * math.pi / period)
        phase = np.add.outer(axis * np.float32(math.sin(b)), axis * np.float32(math.cos(b)))
        texture = np.sin(phase) * np.float32(rng.uniform(6.0, 22.0))
    elif kind == 2:  # fine texture
        cells = int(rng.integers(20, 44))  # a fixed number of draws at every image size
        fine = (rng.random((cells, cells), dtype=np.float32) - 0.5) * rng.uniform(15.0, 45.0)
        texture = cv2.resize(fine.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    if texture is not None:
        img = cv2.add(img, cv2.cvtColor(texture, cv2.COLOR_GRAY2RGB))
    return cv2.convertScaleAbs(cv2.max(img, 0.0), alpha=gain)


def distractor_colours(
    rng: np.random.Generator, n: int, pool: Sequence[Sequence[float]], gain: float
) -> list[Colour]:
    """``n`` colours drawn independently of the label, the cue colours ``pool`` (RGB in [0, 1])
    included on purpose."""
    rgb = []
    for kind, h, s, v, pick, j1, j2, j3 in rng.random((n, 8)).tolist():
        if kind < 0.55:  # any colour
            rgb.append(colorsys.hsv_to_rgb(h, 0.1 + 0.8 * s, 0.15 + 0.8 * v))
        elif kind < 0.8:  # a cue colour (beak palette, pale, dark) with jitter
            r, g, b = pool[min(int(pick * len(pool)), len(pool) - 1)]
            rgb.append((r + 0.12 * (j1 - 0.5), g + 0.12 * (j2 - 0.5), b + 0.12 * (j3 - 0.5)))
        else:  # a body-like colour
            rgb.append(colorsys.hsv_to_rgb(h, 0.15 + 0.6 * s, 0.35 + 0.45 * v))
    return np.clip(np.rint(np.array(rgb) * (255.0 * gain)), 0, 255).astype(int).tolist()


def distractors(
    rng: np.random.Generator,
    img: np.ndarray,
    clutter: int,
    pool: Sequence[Sequence[float]],
    gain: float,
) -> None:
    """Draw about ``clutter`` ellipses, rectangles, polygons, branches and rings into ``img``
    (colours from :func:`distractor_colours` with ``pool``)."""
    if clutter == 0:
        return
    size = img.shape[0]
    n = int(rng.integers(clutter // 2, clutter + (clutter + 1) // 2 + 1))
    colours = distractor_colours(rng, 2 * n, pool, gain)  # outer, then ring centres
    kinds = rng.integers(0, 5, n).tolist()
    geo = rng.random((n, 6)).tolist()
    polys = rng.random((n, 2, 6))
    sc = SHIFT_SCALE
    for i, (kind, (gx, gy, gr, ga, shape, gk)) in enumerate(zip(kinds, geo, strict=True)):
        colour = colours[i]
        cx, cy = (-0.05 + 1.1 * gx) * size, (-0.05 + 1.1 * gy) * size
        r = (0.03 + 0.17 * gr) * size
        angle = ga * 180.0
        centre = (round((cx - 0.5) * sc), round((cy - 0.5) * sc))
        if kind == 0:  # ellipse / leaf
            axes = (round(r * sc), round(r * (0.2 + 0.8 * shape) * sc))
            cv2.ellipse(img, centre, axes, angle, 0, 360, colour, -1, cv2.LINE_AA, SHIFT)
        elif kind == 1:  # rotated rectangle
            w, h = 2.0 * r, 2.0 * r * (0.15 + 0.85 * shape)
            fill(img, cv2.boxPoints(((cx, cy), (w, h), angle)), colour)
        elif kind == 2:  # irregular polygon
            k = 3 + int(gk * 4)
            ang = np.sort(polys[i, 0, :k]) * (2.0 * math.pi)
            rad = r * (0.4 + 0.6 * polys[i, 1, :k])
            fill(img, np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1), colour)
        elif kind == 3:  # branch: a long thin bar
            a = math.radians(angle)
            p = np.array([cx, cy])
            q = p + 2.5 * r * np.array([math.cos(a), math.sin(a)])
            fill(img, segment(p, q, max(0.6, r * (0.04 + 0.11 * shape))), colour)
        else:  # ring
            outer, inner = round(0.6 * r * sc), round(0.6 * r * (0.5 + 0.35 * shape) * sc)
            cv2.circle(img, centre, outer, colour, -1, cv2.LINE_AA, SHIFT)
            cv2.circle(img, centre, inner, colours[n + i], -1, cv2.LINE_AA, SHIFT)
