"""Section 4.3's spatial transformer, as an alternative downsampling of Conv4.

A small localisation network predicts ``(sx, sy, tx, ty)``: the affine map
``[[sx, 0, tx], [0, sy, ty]]`` of :func:`torch.nn.functional.affine_grid` (normalised
coordinates, ``align_corners=False``). The output has ARP's size ``round(H * dsr)``. The
regressor starts at zero weight and bias ``(1, 1, 0, 0)``: the identity, which samples the whole
map (a plain bilinear resize).

``bounded=True`` keeps the sampled box inside the map and no smaller than ARP's lower bound: the
regressor's outputs ``(a_x, a_y, b_x, b_y)`` become ``s = dsr + (1 - dsr) * sigmoid(a)`` and
``t = (1 - s) * tanh(b)`` (per axis, ``dsr_w`` for x and ``dsr_h`` for y), so a box can neither
leave the map nor shrink to nothing. It starts centred at ``sigmoid(a) = 0.9`` (0.95 of the map
at DSR 0.5). The unconstrained form is Section 4.3's, and can diverge (docs/results.md).

The box of the sampled region, for visualisation, is in pixel-edge coordinates of the map
``(x1, y1, x2, y2)``: ``x = (tx +- |sx| + 1) * W / 2``, clipped to the map.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from arpviz.pooling import RegionPoolResult, keypoint_confidence, output_size
from arpviz.validation import check_rate_pair

__all__ = ["SpatialTransformer", "affine_boxes", "spatial_transform"]


def affine_boxes(params: Tensor, height: int, width: int) -> Tensor:
    """Boxes ``Tensor[B, 4]`` (float32, pixel-edge ``x1, y1, x2, y2``, clipped) of ``params``.

    ``params`` is ``Tensor[B, 4]`` as ``(sx, sy, tx, ty)``.
    """
    p = params.detach().float()
    sx, sy, tx, ty = p.unbind(1)
    x1 = ((tx - sx.abs() + 1) * (width / 2)).clamp(0, width)
    x2 = ((tx + sx.abs() + 1) * (width / 2)).clamp(0, width)
    y1 = ((ty - sy.abs() + 1) * (height / 2)).clamp(0, height)
    y2 = ((ty + sy.abs() + 1) * (height / 2)).clamp(0, height)
    return torch.stack([x1, y1, x2, y2], dim=1)


def spatial_transform(x: Tensor, params: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear sampling of ``x: Tensor[B, C, H, W]`` through ``params`` ``(sx, sy, tx, ty)``.

    Returns ``Tensor[B, C, size[0], size[1]]`` in ``x``'s dtype; the grid is built and sampled
    in float32 unless ``x`` is float64 (zeros outside the map), with autocast switched off.
    """
    if x.device.type != "meta" and torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):  # keep the grid in float32
            return spatial_transform(x, params, size)
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    p = params.to(work.dtype)
    zeros = torch.zeros_like(p[:, 0])
    theta = torch.stack(
        [torch.stack([p[:, 0], zeros, p[:, 2]], 1), torch.stack([zeros, p[:, 1], p[:, 3]], 1)], 1
    )  # [B, 2, 3]
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], size[0], size[1]], align_corners=False)
    out = F.grid_sample(work, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


class SpatialTransformer(nn.Module):
    """Spatial transformer downsampling: ``Tensor[B, C, H, W] -> Tensor[B, C, oh, ow]``.

    ``(oh, ow) = round(H * dsr_h), round(W * dsr_w)`` as for ARP. Localisation network: conv
    3x3 (``hidden`` channels), ReLU, adaptive average pool to ``grid x grid``, Linear to 4.
    """

    def __init__(
        self,
        in_channels: int,
        dsr: tuple[float, float] | float = (0.5, 0.5),
        *,
        hidden: int = 64,
        grid: int = 4,
        bounded: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(bounded, bool):
            raise TypeError(f"bounded must be a bool, got {type(bounded).__name__}")
        self.dsr = check_rate_pair(dsr, "dsr")
        self.bounded = bounded
        # lower bound of (sx, sy): the DSR of the width and the height; a non-persistent buffer
        self.register_buffer("scale_min", torch.tensor([self.dsr[1], self.dsr[0]]),
                             persistent=False)
        self.localisation = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(grid),
            nn.Flatten(1),
        )
        self.regressor = nn.Linear(hidden * grid * grid, 4)
        self.reset_to_identity()

    def reset_to_identity(self) -> None:
        """Zero the regressor's weight and set its bias to the identity ``(1, 1, 0, 0)``
        (bounded: ``(logit 0.9, logit 0.9, 0, 0)``, the nearest centred box it starts from)."""
        start = math.log(0.9 / 0.1) if self.bounded else 1.0
        with torch.no_grad():
            self.regressor.weight.zero_()
            self.regressor.bias.copy_(torch.tensor([start, start, 0.0, 0.0]))

    def affine_params(self, x: Tensor) -> Tensor:
        """``Tensor[B, 4]`` float32 ``(sx, sy, tx, ty)`` predicted from ``x``."""
        raw = self.regressor(self.localisation(x)).float()
        if not self.bounded:
            return raw
        low = self.scale_min.to(raw.device, raw.dtype)
        scale = low + (1 - low) * torch.sigmoid(raw[:, :2])
        shift = (1 - scale) * torch.tanh(raw[:, 2:])
        return torch.cat([scale, shift], dim=1)

    def forward_result(self, x: Tensor) -> RegionPoolResult:
        """Sample and return a :class:`RegionPoolResult`.

        ``boxes`` come from :func:`affine_boxes`, ``rates`` are the box extents over the map's
        (``(h, w)`` order), ``confidence`` is ARP's keypoint confidence of ``x`` (for display).
        """
        height, width = x.shape[2], x.shape[3]
        params = self.affine_params(x)
        features = spatial_transform(x, params, output_size(height, width, self.dsr))
        boxes = affine_boxes(params, height, width)
        rates = torch.stack(
            [(boxes[:, 3] - boxes[:, 1]) / height, (boxes[:, 2] - boxes[:, 0]) / width], dim=1
        )
        return RegionPoolResult(
            features=features, confidence=keypoint_confidence(x), boxes=boxes, rates=rates
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_result(x).features

    def extra_repr(self) -> str:
        return f"dsr={self.dsr}, bounded={self.bounded}"
