"""A slow, loop-by-loop reference of RP/ARP that follows docs/method.md step by step (float64)."""

from __future__ import annotations

import math

import torch


def confidence(x: torch.Tensor) -> torch.Tensor:
    """Steps 1 to 3 for one sample ``[C, H, W]`` -> ``[H, W]``."""
    x = x.double()
    channels, height, width = x.shape
    out = torch.zeros(height, width, dtype=torch.float64)
    for j in range(height):
        for k in range(width):
            total = 0.0
            for c in range(channels):
                mu = x[c].mean()
                var = ((x[c] - mu) ** 2).mean()
                total += float((x[c, j, k] - mu) / math.sqrt(var + 1e-5))
            out[j, k] = 1.0 / (1.0 + math.exp(-total / channels))
    return out


def std_of(dist: list[float]) -> float:
    mean = sum(i * p for i, p in enumerate(dist))
    return math.sqrt(sum(p * (i - mean) ** 2 for i, p in enumerate(dist)))


def rates(conf: torch.Tensor, dsr: tuple[float, float], k: float | None) -> tuple[float, float]:
    """Steps 4 to 6 (``k=None``: RP); an axis whose output keeps its size is not cropped."""
    height, width = conf.shape
    pairs = zip((height, width), dsr, strict=True)
    dsr = tuple(1.0 if max(1, round(n * d)) == n else d for n, d in pairs)
    if k is None:
        return dsr
    total = float(conf.sum())
    d_v = [float(conf[j, :].sum()) / total for j in range(height)]
    d_h = [float(conf[:, i].sum()) / total for i in range(width)]
    rate_h = min(max(k * math.sqrt(12) * std_of(d_v) / height, dsr[0]), 1.0)
    rate_w = min(max(k * math.sqrt(12) * std_of(d_h) / width, dsr[1]), 1.0)
    return rate_h, rate_w


def kernel_1d(length: int, kind: str, sigma: float) -> list[float]:
    if kind == "box":
        return [1.0] * length
    centre = (length - 1) / 2
    return [math.exp(-0.5 * ((i - centre) / (length * sigma)) ** 2) for i in range(length)]


def window_scores(
    conf: torch.Tensor, win_h: int, win_w: int, kind: str = "gaussian", sigma: float = 0.25
) -> dict[tuple[int, int], float]:
    """Step 7's score of every window position that lies fully inside the map."""
    height, width = conf.shape
    g_h, g_w = kernel_1d(win_h, kind, sigma), kernel_1d(win_w, kind, sigma)
    scores = {}
    for y0 in range(height - win_h + 1):
        for x0 in range(width - win_w + 1):
            scores[(y0, x0)] = sum(
                g_h[a] * g_w[b] * float(conf[y0 + a, x0 + b])
                for a in range(win_h)
                for b in range(win_w)
            )
    return scores


def box(
    conf: torch.Tensor, rate: tuple[float, float], kind: str = "gaussian", sigma: float = 0.25
) -> tuple[tuple[float, float, float, float], dict, tuple[int, int]]:
    """Steps 7 and 8: the crop box, all window scores, and the window size."""
    height, width = conf.shape
    ext_h, ext_w = height * rate[0], width * rate[1]
    win_h = min(max(round(ext_h), 1), height)
    win_w = min(max(round(ext_w), 1), width)
    scores = window_scores(conf, win_h, win_w, kind, sigma)
    best = max(scores.values())
    y0, x0 = next(pos for pos in sorted(scores) if scores[pos] == best)  # row-major first
    rows, cols = slice(y0, y0 + win_h), slice(x0, x0 + win_w)
    y1 = place(y0, win_h, ext_h, height, float(conf[y0, cols].sum()),
               float(conf[y0 + win_h - 1, cols].sum()))
    x1 = place(x0, win_w, ext_w, width, float(conf[rows, x0].sum()),
               float(conf[rows, x0 + win_w - 1].sum()))
    return (x1, y1, x1 + ext_w, y1 + ext_h), scores, (win_h, win_w)


def place(start: int, window: int, extent: float, size: int, first: float, last: float) -> float:
    """Step 8 along one axis: a box shorter than the window keeps flush with the window's edge
    of more confidence (``first``/``last``); on a tie or a longer box, flush with a border that
    the window alone touches, else centred; always inside the map."""
    at_first, at_last = start == 0, start + window >= size
    if extent < window and first != last:
        pos = float(start) if first > last else min(start + window, size) - extent
    elif at_first and not at_last:
        pos = 0.0
    elif at_last and not at_first:
        pos = size - extent
    else:
        pos = start + window / 2 - extent / 2
    return min(max(pos, 0.0), size - extent)


def bilinear(x: torch.Tensor, bx: tuple[float, float, float, float], out_h: int, out_w: int):
    """Step 9 for one sample ``[C, H, W]``: sample each output cell's centre bilinearly."""
    x = x.double()
    channels, height, width = x.shape
    x1, y1, x2, y2 = bx
    out = torch.zeros(channels, out_h, out_w, dtype=torch.float64)
    for i in range(out_h):
        for j in range(out_w):
            # continuous position in pixel-edge coords, then to cell-centre index coords
            py = y1 + (i + 0.5) * (y2 - y1) / out_h - 0.5
            px = x1 + (j + 0.5) * (x2 - x1) / out_w - 0.5
            py = min(max(py, 0.0), height - 1)
            px = min(max(px, 0.0), width - 1)
            y_lo, x_lo = int(math.floor(py)), int(math.floor(px))
            y_hi, x_hi = min(y_lo + 1, height - 1), min(x_lo + 1, width - 1)
            wy, wx = py - y_lo, px - x_lo
            out[:, i, j] = (
                (1 - wy) * (1 - wx) * x[:, y_lo, x_lo]
                + (1 - wy) * wx * x[:, y_lo, x_hi]
                + wy * (1 - wx) * x[:, y_hi, x_lo]
                + wy * wx * x[:, y_hi, x_hi]
            )
    return out

