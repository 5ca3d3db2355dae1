"""Box geometry of the analysis, on numpy arrays of ``(x1, y1, x2, y2)`` boxes in pixels."""

from __future__ import annotations

import numpy as np

__all__ = ["box_precision", "inside_share", "keypoints_inside", "on_off_means", "to_map"]


def inside_share(lo: np.ndarray, hi: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Length of ``[lo, hi] & [a, b]`` over ``b - a`` (per row)."""
    return np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0, None) / np.maximum(b - a, 1e-12)


def box_precision(crops: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Share of each crop's area ``[B, 4]`` that lies on the object box ``[B, 4]``."""
    w = np.clip(np.minimum(crops[:, 2], objects[:, 2]) - np.maximum(crops[:, 0], objects[:, 0]),
                0, None)
    h = np.clip(np.minimum(crops[:, 3], objects[:, 3]) - np.maximum(crops[:, 1], objects[:, 1]),
                0, None)
    area = (crops[:, 2] - crops[:, 0]) * (crops[:, 3] - crops[:, 1])
    return w * h / np.maximum(area, 1e-12)


def keypoints_inside(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Share of each image's keypoints ``[B, P, 2]`` inside its box ``[B, 4]``."""
    x, y = points[..., 0], points[..., 1]
    inside = ((x >= boxes[:, None, 0]) & (x <= boxes[:, None, 2])
              & (y >= boxes[:, None, 1]) & (y <= boxes[:, None, 3]))
    return inside.mean(axis=1)


def to_map(boxes: np.ndarray, frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Image-pixel boxes ``[B, 4]`` in the coordinates of a map of ``size`` spanning ``frame``."""
    height, width = size
    sx = width / np.maximum(frame[:, 2] - frame[:, 0], 1e-12)
    sy = height / np.maximum(frame[:, 3] - frame[:, 1], 1e-12)
    return np.stack([(boxes[:, 0] - frame[:, 0]) * sx, (boxes[:, 1] - frame[:, 1]) * sy,
                     (boxes[:, 2] - frame[:, 0]) * sx, (boxes[:, 3] - frame[:, 1]) * sy], axis=1)


def on_off_means(confidence: np.ndarray, objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean confidence ``[B, H, W]`` over cells whose centre is on / off the object box
    (``[B, 4]`` in map coordinates); NaN where either set is empty."""
    _, height, width = confidence.shape
    ys = np.arange(height) + 0.5
    xs = np.arange(width) + 0.5
    in_x = (xs[None, :] >= objects[:, 0:1]) & (xs[None, :] < objects[:, 2:3])  # [B, W]
    in_y = (ys[None, :] >= objects[:, 1:2]) & (ys[None, :] < objects[:, 3:4])  # [B, H]
    mask = in_y[:, :, None] & in_x[:, None, :]
    on = mask.sum(axis=(1, 2))
    off = mask[0].size - on
    total = confidence.sum(axis=(1, 2))
    on_sum = (confidence * mask).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        obj = np.where(on > 0, on_sum / np.maximum(on, 1), np.nan)
        bg = np.where(off > 0, (total - on_sum) / np.maximum(off, 1), np.nan)
    return obj, bg
