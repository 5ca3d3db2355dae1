"""The learnt zoom crop, **beyond the paper**: the padded box of the confidence map's peak region.

The paper's ARP cannot make its crop follow the object (docs/method.md): its rate comes from the
spread of a map whose background never drops below a floor. ARP-FG removes the floor but, on
learnt maps, most above-mean cells lie on clutter. Yet the *peak* of a trained network's map
lies on the object in most images. The learnt zoom crops around it:

1. the confidence is ARP-FG's, ``C = relu(tau * s)`` (the significance above the map's mean);
2. the *peak region* is the 8-connected set of cells with ``C >= threshold * max(C)`` that holds
   the map's maximum (default ``threshold`` 0.5: cells at least half as confident as the peak);
3. the crop is that region's bounding box, padded by ``pad`` cells on every side (default 1) and
   clipped to the map, resampled bilinearly to the DSR's output size: a zoom wherever the box is
   smaller than the DSR's window, a squeeze where it is larger.

No mask is used and there are no parameters; like ARP the box is not differentiable, so the
network learns it end to end only through what its features make of the crop. Published
cousins crop the same way from a trained network's activations: *Multi-branch and Multi-scale
Attention Learning for Fine-Grained Visual Categorization* (MMAL-Net's object localisation) and
*See Better Before Looking Closer: Weakly Supervised Data Augmentation Network for Fine-Grained
Visual Classification* (WS-DAN's attention cropping).

A map that is 0 everywhere (a constant input) has no peak: the crop is then the whole map.
Boxes are ``(x1, y1, x2, y2)`` pixel edges of the map, as in :mod:`arpviz.pooling`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from arpviz.foreground import foreground_confidence, peak_component
from arpviz.pooling import RegionPoolResult, _suppression_mask, output_size
from arpviz.resample import _resample
from arpviz.tensor_checks import (
    _check_finite_map,
    _check_input,
    _check_map,
    _check_number,
    _check_suppress,
    _empty_result,
)
from arpviz.validation import check_rate_pair, check_tau

__all__ = [
    "ZOOM_PAD",
    "ZOOM_THRESHOLD",
    "ZoomRegionPool",
    "check_pad",
    "check_threshold",
    "peak_region_boxes",
    "zoom_region_pool",
]

#: The peak region keeps cells at least this share of the map's maximum.
ZOOM_THRESHOLD = 0.5
#: Cells added on every side of the peak region's bounding box.
ZOOM_PAD = 1


def check_threshold(value: object, name: str = "threshold") -> float:
    """A share of the map's maximum: a number in ``(0, 1]``."""
    number = _check_number(value, name)
    if not 0.0 < number <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return number


def check_pad(value: object, name: str = "pad") -> int:
    """Cells of padding: an int ``>= 0``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def _extent(present: Tensor, pad: int) -> tuple[Tensor, Tensor]:
    """First and one-past-last index of ``present`` ``[B, N]`` (bool), padded and clipped to
    ``[0, N]``; ``(0, N)`` where nothing is present. Float32 ``Tensor[B]`` each."""
    size = present.shape[1]
    idx = torch.arange(size, device=present.device, dtype=torch.float32)[None, :]
    first = torch.where(present, idx, torch.full_like(idx, float(size))).amin(1)
    last = torch.where(present, idx, torch.full_like(idx, -1.0)).amax(1)
    empty = last < 0
    start = torch.where(empty, torch.zeros_like(first), (first - pad).clamp_min(0.0))
    end = torch.where(empty, torch.full_like(last, float(size)),
                      (last + 1 + pad).clamp_max(float(size)))
    return start, end


def peak_region_boxes(
    confidence: Tensor, threshold: float = ZOOM_THRESHOLD, pad: int = ZOOM_PAD
) -> Tensor:
    """The padded bounding box of each map's peak region.

    Args:
        confidence: ``Tensor[B, H, W]``, non-negative.
        threshold: the region keeps cells ``>= threshold * max`` in ``(0, 1]``.
        pad: cells added on every side, ``>= 0`` (the box is clipped to the map).

    Returns:
        ``Tensor[B, 4]`` float32 boxes ``(x1, y1, x2, y2)`` on cell edges; the whole map where a
        map is 0 everywhere. Batched, no host synchronisation.
    """
    conf = _check_map(confidence).detach().float()
    threshold = check_threshold(threshold)
    pad = check_pad(pad)
    top = conf.flatten(1).amax(1)[:, None, None]
    kept = torch.where((conf >= threshold * top) & (conf > 0), conf, torch.zeros_like(conf))
    region = peak_component(kept) > 0
    y1, y2 = _extent(region.any(dim=2), pad)
    x1, x2 = _extent(region.any(dim=1), pad)
    return torch.stack([x1, y1, x2, y2], dim=1)


def zoom_region_pool(
    x: Tensor,
    dsr: tuple[float, float] | float = (0.5, 0.5),
    *,
    threshold: float = ZOOM_THRESHOLD,
    pad: int = ZOOM_PAD,
    suppress: Tensor | None = None,
    tau: float = 1.0,
) -> RegionPoolResult:
    """The learnt zoom crop (beyond the paper): crop the padded peak region, resample to the DSR.

    Args:
        x: ``Tensor[B, C, H, W]`` feature map (float32, float16 or bfloat16; CPU or CUDA).
        dsr: the output's rate in ``(0, 1]``: ``round(H * dsr_h) x round(W * dsr_w)``; it does
            not bound the crop (a small region is zoomed).
        threshold, pad: as in :func:`peak_region_boxes`.
        suppress: optional ``Tensor[B, N, 4]`` boxes whose cells count as 0 before the peak is
            found (a second local branch looks elsewhere).
        tau: scales the map (beyond the paper); the box does not depend on it.

    Returns:
        :class:`~arpviz.pooling.RegionPoolResult`; ``confidence`` is ``relu(tau * s)`` (the
        whole map, before the region is cut from it), ``rates`` the box's extent over the map.
        An axis whose output keeps the map's size (a 1-cell map, say) is not cropped.

    Raises:
        TypeError, ValueError: naming the argument that is wrong.
    """
    x = _check_input(x)
    dsr_pair = check_rate_pair(dsr, "dsr")
    threshold = check_threshold(threshold)
    pad = check_pad(pad)
    tau = check_tau(tau)
    batch, _, height, width = x.shape
    to_suppress = _check_suppress(suppress, batch)
    out_size = output_size(height, width, dsr_pair)
    if batch == 0:  # an empty batch: an empty result of the right shapes
        return RegionPoolResult(*_empty_result(x, out_size))
    confidence = foreground_confidence(x, tau)
    _check_finite_map(confidence)
    with torch.no_grad():
        search = confidence
        if to_suppress is not None:
            search = search.masked_fill(_suppression_mask(to_suppress, height, width), 0.0)
        boxes = peak_region_boxes(search, threshold, pad)
        if out_size[0] == height:
            boxes[:, 1], boxes[:, 3] = 0.0, float(height)
        if out_size[1] == width:
            boxes[:, 0], boxes[:, 2] = 0.0, float(width)
        rates = torch.stack([(boxes[:, 3] - boxes[:, 1]) / height,
                             (boxes[:, 2] - boxes[:, 0]) / width], dim=1)
    features = _resample(x, boxes, out_size)
    return RegionPoolResult(features=features, confidence=confidence, boxes=boxes, rates=rates)


class ZoomRegionPool(nn.Module):
    """Module form of :func:`zoom_region_pool`; no parameters, an empty ``state_dict``.

    ``forward(x)`` returns the resampled features; ``forward_result(x, suppress)`` the whole
    :class:`~arpviz.pooling.RegionPoolResult`.
    """

    def __init__(
        self,
        dsr: tuple[float, float] | float = (0.5, 0.5),
        *,
        threshold: float = ZOOM_THRESHOLD,
        pad: int = ZOOM_PAD,
        tau: float = 1.0,
    ) -> None:
        super().__init__()
        self.dsr = check_rate_pair(dsr, "dsr")
        self.threshold = check_threshold(threshold)
        self.pad = check_pad(pad)
        self.tau = check_tau(tau)

    def forward_result(self, x: Tensor, suppress: Tensor | None = None) -> RegionPoolResult:
        """Run the learnt zoom and return everything it computed."""
        return zoom_region_pool(x, self.dsr, threshold=self.threshold, pad=self.pad,
                                suppress=suppress, tau=self.tau)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_result(x).features

    def extra_repr(self) -> str:
        return f"dsr={self.dsr}, threshold={self.threshold}, pad={self.pad}, tau={self.tau}"
