"""Region Pooling (RP) and Adaptive Region Pooling (ARP).

The operator follows the paper's Eq. 1 to 9 (restated in docs/method.md, steps 1 to 9):

1. each channel is standardised over its own ``H x W`` (InstanceNorm, no affine, eps 1e-5);
2. the significance of a location is the channel mean of the standardised feature;
3. the keypoint confidence map is ``C = sigmoid(significance)`` (``sigmoid(tau * significance)``
   with the confidence temperature ``tau``, an extension beyond the paper; ``tau = 1`` is the
   paper and the default);
4. the marginals ``D_v`` (rows) and ``D_h`` (columns) of ``C`` are normalised to sum to 1;
5. ARP's adaptive rate is ``clamp(k * sqrt(12) * std(D) / size, dsr, 1)`` per axis, RP's is ``dsr``;
6. a window of ``round(size * rate)`` cells is placed at the position with the highest
   Gaussian-weighted (or box-weighted) sum of ``C`` (first in row-major order on ties);
7. a continuous box of ``size * rate`` cells is centred on that window and shifted inside the map,
   flush with every border the window touches;
8. the box is resampled bilinearly (cell-centre aligned) to ``round(size * dsr)``.

Steps 1 to 7 run without autograd; gradients reach the input through the resampling: one
bilinear sample at each output cell's centre, computed as two batched matrix products with
per-sample interpolation matrices (the crop is axis-aligned, so bilinear resampling is
separable). Tests check it against ``F.affine_grid`` + ``F.grid_sample`` and
``torchvision.ops.roi_align(aligned=True, sampling_ratio=1)``. The resampling (step 8) lives in
:mod:`arpviz.resample` (:func:`resample_boxes`, :func:`interpolation_matrix`, re-exported here);
the checks of the tensor arguments that every operator shares, in :mod:`arpviz.tensor_checks`.
This module holds steps 1 to 7 and puts them together (:func:`region_pool`,
:func:`adaptive_region_pool` and their modules).

Everything is batched: no Python loop over samples and no host-device synchronisation, so a
CUDA forward never blocks and ``torch.compile(..., fullgraph=True)`` traces it whole.

Box convention: ``(x1, y1, x2, y2)`` in pixel-edge coordinates of the map, cell ``(j, k)`` covers
``[k, k + 1] x [j, j + 1]``, so ``0 <= x1 < x2 <= W`` and ``0 <= y1 < y2 <= H``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from arpviz.resample import _resample, interpolation_matrix, resample_boxes
from arpviz.tensor_checks import (
    _check_finite_map,
    _check_guide,
    _check_input,
    _check_map,
    _check_number,
    _check_pairs,
    _check_suppress,
    _empty_result,
    _no_autocast,
)
from arpviz.validation import check_k, check_kernel, check_rate_pair, check_tau

__all__ = [
    "AdaptiveRegionPool",
    "Kernel",
    "RegionPool",
    "RegionPoolResult",
    "adaptive_rates",
    "adaptive_region_pool",
    "interpolation_matrix",
    "keypoint_confidence",
    "marginals",
    "output_size",
    "region_pool",
    "resample_boxes",
    "select_boxes",
    "significance",
]

Kernel = Literal["gaussian", "box"]
_EPS = 1e-5
_SQRT12 = math.sqrt(12.0)


@dataclass(frozen=True)
class RegionPoolResult:
    """What one RP/ARP call produced.

    Attributes:
        features: ``Tensor[B, C, round(H * dsr_h), round(W * dsr_w)]``, the resampled crop.
        confidence: ``Tensor[B, H, W]``, the keypoint confidence map (float32).
        boxes: ``Tensor[B, 4]``, the crop boxes ``(x1, y1, x2, y2)`` in the input map's
            pixel-edge coordinates (float32).
        rates: ``Tensor[B, 2]``, the downsampling rates ``(rate_h, rate_w)`` actually used.
    """

    features: Tensor
    confidence: Tensor
    boxes: Tensor
    rates: Tensor


def output_size(height: int, width: int, dsr: tuple[float, float]) -> tuple[int, int]:
    """The resampled size ``(round(H * dsr_h), round(W * dsr_w))``, at least 1 x 1."""
    return max(1, round(height * dsr[0])), max(1, round(width * dsr[1]))


# ----------------------------------------------------------------------------- steps 1 to 7


@_no_autocast
def significance(x: Tensor) -> Tensor:
    """Significance of every location, Eq. 1 and 2.

    Args:
        x: ``Tensor[B, C, H, W]``, any floating dtype.

    Returns:
        ``Tensor[B, H, W]`` in float32: the channel mean of the per-channel standardised feature
        (biased variance, eps 1e-5). Every standardised channel averages 0 over the map, so the
        significance does too. A constant channel standardises to 0; a constant or all-zero
        input gives 0 everywhere, never NaN.
    """
    x = _check_input(x)
    with torch.no_grad():
        batch, channels, height, width = x.shape
        xf = x.detach().float()
        # [B, C, HW] with the positions contiguous, or [B, HW, C] for a channels_last input:
        # either way a view, never a copy of the feature map
        last = xf.is_contiguous(memory_format=torch.channels_last) and not xf.is_contiguous()
        flat = xf.permute(0, 2, 3, 1).reshape(batch, height * width, channels) if last \
            else xf.reshape(batch, channels, height * width)
        pos = 1 if last else 2
        # two-pass variance (exact, unlike E[x^2] - E[x]^2); several times faster on CPU than
        # torch.var_mean
        mean = flat.mean(pos, keepdim=True)
        var = torch.linalg.vector_norm(flat - mean, dim=pos).square() / (height * width)
        weights = torch.rsqrt(var + _EPS) / channels  # [B, C]
        # mean_c((x - mu_c) / sigma_c) as one batched product, without the standardised tensor
        if last:
            product = torch.bmm(flat, weights[:, :, None])  # [B, HW, 1]
        else:
            product = torch.bmm(weights[:, None, :], flat)  # [B, 1, HW]
        offset = (mean.reshape(batch, channels) * weights).sum(1)  # [B]
        return product.reshape(batch, height, width) - offset[:, None, None]


def keypoint_confidence(x: Tensor, tau: float = 1.0) -> Tensor:
    """Keypoint confidence map of Eq. 1 to 3: ``sigmoid(tau * significance(x))``.

    Args:
        x: ``Tensor[B, C, H, W]``, any floating dtype.
        tau: confidence temperature, ``C = sigmoid(tau * s)``. **Beyond the paper** (an
            exploration aid): ``1`` is the paper and the default.

    Returns:
        ``Tensor[B, H, W]`` in float32 (:func:`significance`). A constant or all-zero input
        gives ``C = 0.5`` everywhere, never NaN.
    """
    tau = check_tau(tau)
    s = significance(x)
    return torch.sigmoid(s * tau if tau != 1.0 else s)


def marginals(confidence: Tensor) -> tuple[Tensor, Tensor]:
    """Normalised marginals of Eq. 5.

    Args:
        confidence: ``Tensor[B, H, W]``, non-negative.

    Returns:
        ``(D_v: Tensor[B, H], D_h: Tensor[B, W])``, each summing to 1 (uniform where the map
        sums to 0).
    """
    return _marginals(_check_map(confidence))


def _marginals(confidence: Tensor) -> tuple[Tensor, Tensor]:
    total = confidence.sum(dim=(1, 2), keepdim=True)
    uniform = torch.full_like(confidence, 1.0 / (confidence.shape[1] * confidence.shape[2]))
    dist = torch.where(total > 0, confidence / total.clamp_min(1e-30), uniform)
    return dist.sum(2), dist.sum(1)


def _std_over_index(dist: Tensor) -> Tensor:
    """Standard deviation of distributions ``Tensor[B, N]`` over the index 0..N-1."""
    idx = torch.arange(dist.shape[-1], device=dist.device, dtype=dist.dtype)
    mean = (dist * idx).sum(-1, keepdim=True)
    var = (dist * (idx - mean) ** 2).sum(-1)
    return var.clamp_min(0).sqrt()


def adaptive_rates(
    confidence: Tensor, dsr: tuple[float, float], k: float, *,
    min_rate: tuple[float, float] | None = None,
) -> Tensor:
    """Adaptive downsampling rates of Eq. 9.

    Args:
        confidence: ``Tensor[B, H, W]``, non-negative.
        dsr: ``(dsr_h, dsr_w)``, the lower bounds (the paper).
        k: the trade-off coefficient, ``> 0``.
        min_rate: other lower bounds ``(h, w)`` in place of ``dsr`` (the foreground variant of
            :mod:`arpviz.foreground`, which may crop less than the DSR and zoom).

    Returns:
        ``Tensor[B, 2]`` as ``(rate_h, rate_w)``: ``min(max(k * sqrt(12) * std / size, lower),
        1)`` with ``lower = min_rate or dsr``. ``sqrt(12) * std`` of a marginal is the extent of
        a uniform distribution with that spread, in cells.
    """
    _check_map(confidence)
    dsr = check_rate_pair(dsr, "dsr")
    k = check_k(_check_number(k, "k"))
    lower = dsr if min_rate is None else check_rate_pair(min_rate, "min_rate")
    return _adaptive_rates(confidence, lower, k)


@_no_autocast
def _adaptive_rates(confidence: Tensor, lower: tuple[float, float], k: float) -> Tensor:
    d_v, d_h = _marginals(confidence.float())
    height, width = confidence.shape[1], confidence.shape[2]
    rate_h = (k * _SQRT12 / height) * _std_over_index(d_v)
    rate_w = (k * _SQRT12 / width) * _std_over_index(d_h)
    # Python scalars as bounds: no host-to-device copy, so no synchronisation on CUDA
    return torch.stack([rate_h.clamp(lower[0], 1.0), rate_w.clamp(lower[1], 1.0)], dim=1)


def _window_matrix(size: int, window: Tensor, kernel: Kernel, sigma: float) -> Tensor:
    """``Tensor[B, size, size]``: row ``p`` holds the weights of the window starting at ``p``.

    ``window`` is ``Tensor[B]`` (float, integral values in ``[1, size]``). The kernel is a 1-D
    Gaussian of standard deviation ``window * sigma`` centred on the window, or ones (box).
    """
    pos = torch.arange(size, device=window.device, dtype=window.dtype)
    offset = pos[None, None, :] - pos[None, :, None]  # [1, start, cell]: cell - start
    length = window[:, None, None]
    inside = (offset >= 0) & (offset < length)
    if kernel == "gaussian":
        centre = (length - 1) / 2
        spread = length * sigma
        weights = torch.exp(-0.5 * ((offset - centre) / spread) ** 2)
    else:
        weights = torch.ones_like(offset.expand_as(inside), dtype=window.dtype)
    return torch.where(inside, weights, torch.zeros((), dtype=window.dtype, device=window.device))


def _suppression_mask(suppress: Tensor, height: int, width: int) -> Tensor:
    """``Tensor[B, H, W]`` bool: cells whose centre lies inside any of the boxes ``[B, N, 4]``."""
    ys = torch.arange(height, device=suppress.device, dtype=torch.float32) + 0.5
    xs = torch.arange(width, device=suppress.device, dtype=torch.float32) + 0.5
    boxes = suppress.float()
    x1, y1, x2, y2 = (boxes[..., i, None, None] for i in range(4))  # [B, N, 1, 1]
    in_x = (xs[None, None, None, :] >= x1) & (xs[None, None, None, :] < x2)
    in_y = (ys[None, None, :, None] >= y1) & (ys[None, None, :, None] < y2)
    return (in_x & in_y).any(dim=1)


def select_boxes(
    confidence: Tensor,
    rates: Tensor,
    *,
    kernel: Kernel = "gaussian",
    sigma: float = 0.25,
    suppress: Tensor | None = None,
) -> Tensor:
    """Choose the crop box of Eq. 4 for given rates (the arguments checked).

    Args:
        confidence: ``Tensor[B, H, W]``.
        rates: ``Tensor[B, 2]`` as ``(rate_h, rate_w)`` in ``(0, 1]``.
        kernel: ``"gaussian"`` (default) or ``"box"`` weighting inside the window.
        sigma: the Gaussian's standard deviation as a fraction of the window side.
        suppress: optional ``Tensor[B, N, 4]`` boxes (pixel-edge ``x1, y1, x2, y2``); cells whose
            centre lies inside one count as zero confidence in the window search only.

    Returns:
        ``Tensor[B, 4]`` float32 boxes ``(x1, y1, x2, y2)`` in pixel-edge coordinates: a box of
        ``H * rate_h x W * rate_w`` centred on the best window of ``round(H * rate_h) x
        round(W * rate_w)`` cells, shifted to lie inside the map, and flush with every border
        the window touches (see :func:`_place`).
    """
    batch = _check_map(confidence).shape[0]
    _check_pairs(rates, batch, 2, "rates")
    sigma = check_kernel(kernel, _check_number(sigma, "sigma"))
    return _select_boxes(confidence, rates, kernel, sigma, _check_suppress(suppress, batch))


@_no_autocast
def _select_boxes(confidence: Tensor, rates: Tensor, kernel: Kernel, sigma: float,
                  suppress: Tensor | None) -> Tensor:
    conf = confidence.detach().float()
    batch, height, width = conf.shape
    rates = rates.detach().float()
    if suppress is not None:
        conf = conf.masked_fill(_suppression_mask(suppress, height, width), 0.0)
    ext_h, ext_w = rates[:, 0] * height, rates[:, 1] * width
    win_h = ext_h.round().clamp(1, height)
    win_w = ext_w.round().clamp(1, width)
    rows = _window_matrix(height, win_h, kernel, sigma)  # [B, y0, y]
    cols = _window_matrix(width, win_w, kernel, sigma)  # [B, x0, x]
    scores = rows @ conf @ cols.transpose(1, 2)  # [B, y0, x0]
    y0 = torch.arange(height, device=conf.device, dtype=torch.float32)
    x0 = torch.arange(width, device=conf.device, dtype=torch.float32)
    valid = ((y0[None, :, None] + win_h[:, None, None]) <= height) & (
        (x0[None, None, :] + win_w[:, None, None]) <= width
    )
    scores = scores.masked_fill(~valid, float("-inf"))
    best = scores.flatten(1).argmax(dim=1)  # first maximum in row-major order
    best_y = torch.div(best, width, rounding_mode="floor").float()
    best_x = (best % width).float()
    # confidence along the window's four edges (inside the window), for step 8's placement
    ys, xs = y0[None, :], x0[None, :]
    in_rows = ((ys >= best_y[:, None]) & (ys < best_y[:, None] + win_h[:, None])).float()
    in_cols = ((xs >= best_x[:, None]) & (xs < best_x[:, None] + win_w[:, None])).float()
    row_at = (best_y.long(), (best_y + win_h - 1).long())
    col_at = (best_x.long(), (best_x + win_w - 1).long())
    first_row, last_row = (conf.gather(1, r[:, None, None].expand(batch, 1, width))[:, 0]
                           for r in row_at)
    first_col, last_col = (conf.gather(2, c[:, None, None].expand(batch, height, 1))[..., 0]
                           for c in col_at)
    top = _place(best_y, win_h, ext_h, height,
                 (first_row * in_cols).sum(1), (last_row * in_cols).sum(1))
    left = _place(best_x, win_w, ext_w, width,
                  (first_col * in_rows).sum(1), (last_col * in_rows).sum(1))
    return torch.stack([left, top, left + ext_w, top + ext_h], dim=1)


def _place(
    start: Tensor, window: Tensor, extent: Tensor, size: int, first: Tensor, last: Tensor
) -> Tensor:
    """Where a box of ``extent`` cells starts along one axis, for the window ``[start, start +
    window)`` (docs/method.md, step 8); all ``Tensor[B]``.

    The box is up to half a cell shorter or longer than the rounded window. Centred on the
    window, a shorter box would cut up to a quarter cell from both of the window's edges, and
    what the window found at an edge (a part at the map's border, say) would fall outside it.
    So the box keeps flush with one edge of the window:

    - where it is shorter than the window, the edge whose cells hold more confidence
      (``first``, ``last``: the confidence summed over the window's first and last row or
      column, inside the window), so the part cut off is the less confident one;
    - on a tie, or where the box is longer, a border of the map that the window touches
      (docs/method.md, step 8), else it stays centred; always inside ``[0, size]``.
    """
    centred = torch.minimum((start + window / 2 - extent / 2).clamp_min(0), size - extent)
    at_first = start == 0
    at_last = start + window >= size
    decided = (extent < window) & (first != last)
    to_first = torch.where(decided, first > last, at_first & ~at_last)
    to_last = torch.where(decided, last > first, at_last & ~at_first)
    end_aligned = (start + window).clamp_max(size) - extent
    placed = torch.where(to_first, start, torch.where(to_last, end_aligned, centred))
    return placed.clamp(torch.zeros_like(extent), size - extent)




def _pool(
    x: Tensor,
    dsr: object,
    k: float | None,
    kernel: object,
    sigma: object,
    suppress: object,
    confidence_of: Callable[[Tensor], Tensor],
    *,
    crop: object = None,
    min_rate: float | None = None,
) -> RegionPoolResult:
    """The steps every mode shares: bounds, rates (fixed ``crop`` or ``dsr`` when ``k`` is
    None, else Eq. 9 with the lower bound ``min_rate`` or ``dsr``), window search, resampling.
    ``confidence_of(x)`` gives the map the rates and the search use."""
    x = _check_input(x)
    dsr_pair = check_rate_pair(dsr, "dsr")
    crop_pair = dsr_pair if crop is None else check_rate_pair(crop, "crop")
    sigma_f = check_kernel(kernel, sigma)
    boxes_to_suppress = _check_suppress(suppress, x.shape[0])
    height, width = x.shape[2], x.shape[3]
    out_size = output_size(height, width, dsr_pair)
    # an axis that keeps its size (a 1-cell map, say) is not cropped: its rate is 1
    kept = tuple(out == size for out, size in zip(out_size, (height, width), strict=True))
    fixed = tuple(1.0 if keep else r for keep, r in zip(kept, crop_pair, strict=True))
    lower = tuple(1.0 if keep else r for keep, r in zip(kept, dsr_pair, strict=True))
    floor = None if min_rate is None else tuple(1.0 if keep else min_rate for keep in kept)
    if x.shape[0] == 0:  # an empty batch: an empty result of the right shapes
        return RegionPoolResult(*_empty_result(x, out_size))
    confidence = confidence_of(x)
    _check_finite_map(confidence)
    with torch.no_grad():
        if k is None:  # torch.full fills on the device: no host copy
            rates = torch.stack([confidence.new_full((x.shape[0],), r) for r in fixed], dim=1)
        else:
            rates = _adaptive_rates(confidence, lower if floor is None else floor, k)
        boxes = _select_boxes(confidence, rates, kernel, sigma_f, boxes_to_suppress)
    features = _resample(x, boxes, out_size)
    return RegionPoolResult(features=features, confidence=confidence, boxes=boxes, rates=rates)


def _sigmoid_confidence(tau: object) -> Callable[[Tensor], Tensor]:
    tau_f = check_tau(tau)
    return lambda x: keypoint_confidence(x, tau_f)


def region_pool(
    x: Tensor,
    dsr: tuple[float, float] | float = (0.5, 0.5),
    *,
    kernel: Kernel = "gaussian",
    sigma: float = 0.25,
    suppress: Tensor | None = None,
    tau: float = 1.0,
    crop: tuple[float, float] | float | None = None,
    guide: Tensor | None = None,
) -> RegionPoolResult:
    """Region Pooling: crop the most significant ``dsr``-sized region and resample it.

    Args:
        x: ``Tensor[B, C, H, W]`` feature map (float32, float16 or bfloat16; CPU or CUDA).
        dsr: target downsampling rate ``(dsr_h, dsr_w)`` (or one number for both) in ``(0, 1]``.
        kernel: window weighting for the region search, ``"gaussian"`` or ``"box"``.
        sigma: Gaussian standard deviation as a fraction of the window side (default 1/4).
        suppress: optional ``Tensor[B, N, 4]`` boxes excluded from the window search.
        tau: confidence temperature of :func:`keypoint_confidence` (beyond the paper; 1 is the
            paper).
        crop: the crop's fixed rate ``(h, w)`` in ``(0, 1]`` when it differs from ``dsr``
            (``None``: ``dsr``, the paper's RP). A crop of 0.7 resampled to a DSR of 0.5 is the
            fixed-size control that separates ARP's crop size from its adaptivity.
        guide: optional ``Tensor[B, H, W]`` (non-negative, floating) that places the window
            instead of the features' confidence (beyond the paper: with the object's mask, a
            *mask-placed* fixed crop, the control that separates where the oracle's crop sits
            from its size and its adaptivity); ``tau`` then has no effect.

    Returns:
        :class:`RegionPoolResult` with ``features`` of shape
        ``[B, C, round(H * dsr_h), round(W * dsr_w)]`` and ``rates`` equal to ``crop`` (or
        ``dsr``); ``confidence`` is the map that placed the window.

    Raises:
        TypeError, ValueError: naming the argument that is wrong.
    """
    if guide is None:
        return _pool(x, dsr, None, kernel, sigma, suppress, _sigmoid_confidence(tau), crop=crop)
    check_tau(tau)
    mask = _check_guide(guide, _check_input(x))
    return _pool(x, dsr, None, kernel, sigma, suppress, lambda _: mask, crop=crop)


def adaptive_region_pool(
    x: Tensor,
    dsr: tuple[float, float] | float = (0.5, 0.5),
    k: float = 1.0,
    *,
    kernel: Kernel = "gaussian",
    sigma: float = 0.25,
    suppress: Tensor | None = None,
    tau: float = 1.0,
) -> RegionPoolResult:
    """Adaptive Region Pooling (Eq. 9): like :func:`region_pool` with a per-sample crop size.

    The crop of each sample is ``H * rate_h x W * rate_w`` cells with
    ``rate = min(max(k * sqrt(12) * std(D) / size, dsr), 1)`` per axis, and is resampled to
    ``round(H * dsr_h) x round(W * dsr_w)``.

    Args:
        x: ``Tensor[B, C, H, W]`` feature map.
        dsr: target downsampling rate in ``(0, 1]``; also the lower bound of the adaptive rate.
        k: trade-off coefficient ``> 0`` (1: the crop covers about the whole object).
        kernel, sigma, suppress, tau: as in :func:`region_pool`.

    Returns:
        :class:`RegionPoolResult`.

    Raises:
        TypeError, ValueError: naming the argument that is wrong.
    """
    return _pool(x, dsr, check_k(k), kernel, sigma, suppress, _sigmoid_confidence(tau))


class RegionPool(nn.Module):
    """Module form of :func:`region_pool`; no parameters, no buffers, an empty ``state_dict``.

    ``forward`` returns the resampled features; ``forward_result`` the whole
    :class:`RegionPoolResult`.
    """

    def __init__(
        self,
        dsr: tuple[float, float] | float = (0.5, 0.5),
        *,
        kernel: Kernel = "gaussian",
        sigma: float = 0.25,
        tau: float = 1.0,
        crop: tuple[float, float] | float | None = None,
    ) -> None:
        super().__init__()
        self.dsr = check_rate_pair(dsr, "dsr")
        self.sigma = check_kernel(kernel, sigma)
        self.kernel: Kernel = kernel
        self.tau = check_tau(tau)
        self.crop = None if crop is None else check_rate_pair(crop, "crop")

    def forward_result(self, x: Tensor, suppress: Tensor | None = None) -> RegionPoolResult:
        """Run RP and return everything it computed."""
        return region_pool(x, self.dsr, kernel=self.kernel, sigma=self.sigma, suppress=suppress,
                           tau=self.tau, crop=self.crop)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_result(x).features

    def extra_repr(self) -> str:
        crop = "" if self.crop is None else f", crop={self.crop}"
        return (f"dsr={self.dsr}{crop}, kernel={self.kernel!r}, sigma={self.sigma}, "
                f"tau={self.tau}")


class AdaptiveRegionPool(nn.Module):
    """Module form of :func:`adaptive_region_pool`; no parameters, an empty ``state_dict``.

    ``forward`` returns the resampled features; ``forward_result`` the whole
    :class:`RegionPoolResult`.
    """

    def __init__(
        self,
        dsr: tuple[float, float] | float = (0.5, 0.5),
        k: float = 1.0,
        *,
        kernel: Kernel = "gaussian",
        sigma: float = 0.25,
        tau: float = 1.0,
    ) -> None:
        super().__init__()
        self.dsr = check_rate_pair(dsr, "dsr")
        self.k = check_k(k)
        self.sigma = check_kernel(kernel, sigma)
        self.kernel: Kernel = kernel
        self.tau = check_tau(tau)

    def forward_result(self, x: Tensor, suppress: Tensor | None = None) -> RegionPoolResult:
        """Run ARP and return everything it computed."""
        return adaptive_region_pool(
            x, self.dsr, self.k, kernel=self.kernel, sigma=self.sigma, suppress=suppress,
            tau=self.tau,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_result(x).features

    def extra_repr(self) -> str:
        return (f"dsr={self.dsr}, k={self.k}, kernel={self.kernel!r}, sigma={self.sigma}, "
                f"tau={self.tau}")

