"""ARP-FG, foreground spread: a variant of ARP **beyond the paper** whose crop follows the object.

Why the paper's ARP cannot (docs/method.md, "Why ARP's crop cannot follow the object"): every
standardised channel averages 0 over the map, so the significance ``s`` of Eq. 2 does too, and
``sigmoid(s)`` puts a floor near 0.5 under the background. Summed over many background cells that
floor dominates the marginals of Eq. 5, so their spread (Eq. 9) stays near that of a uniform
distribution, which an object can only narrow: the rate *falls* as the object grows.

ARP-FG keeps everything else of ARP and changes two things:

1. **confidence without the floor**: ``C = relu(s)``, only the significance above the map's mean
   counts (as SCDA keeps the locations whose channel sum exceeds its mean). On perfect features
   (every channel the object's mask) ``C`` is uniform on the object and 0 elsewhere, so
   ``sqrt(12) * std`` of its marginals is the object's extent and, with ``k = 1``, the rate is the
   object's side;
2. **a lower bound of its own**: ``rate = min(max(k * sqrt(12) * std(D) / size, min_rate), 1)``
   with ``min_rate`` (default 0.125) instead of the DSR, so a small object gets a small crop,
   resampled to the DSR's output size: a zoom when the rate is below the DSR.

``k = 1`` spans a uniform object exactly; a real object is denser in its middle than at its
ends, and on SynthBirds' masks ``sqrt(12) * std`` of the marginal is about 0.75 of the bird's box
side, so the project's ARP-FG runs and the ideal-map analysis use ``k = 1.5`` (:data:`FG_K`): the
crop spans the bird with a little context.

Options: ``region="peak"`` keeps only the 8-connected region of ``C > 0`` that holds the map's
maximum (clutter elsewhere in the map then no longer widens the spread); ``guide`` replaces the
confidence by a given map, e.g. the object's ground-truth mask: the *oracle* of the ablation,
what no real network has, which says what an adaptive crop could give if the map were right.

Like ARP it has no parameters; the box is not differentiable and gradients reach the input
through the bilinear resampling only. Boxes are ``(x1, y1, x2, y2)`` pixel edges of the map.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from arpviz.pooling import AdaptiveRegionPool, Kernel, RegionPoolResult, _pool, significance
from arpviz.tensor_checks import _check_guide, _check_input
from arpviz.validation import check_k, check_rate_pair, check_tau

__all__ = [
    "DEFAULT_MIN_RATE",
    "FG_K",
    "FG_REGIONS",
    "ForegroundRegionPool",
    "check_min_rate",
    "foreground_confidence",
    "foreground_region_pool",
    "peak_component",
]

Region = Literal["all", "peak"]
FG_REGIONS: tuple[str, ...] = ("all", "peak")
DEFAULT_MIN_RATE = 0.125
#: ARP-FG's k in the project's runs, the app's switch to ARP-FG and the ideal-map analysis.
FG_K = 1.5


def check_min_rate(value: object, name: str = "min_rate") -> float:
    """A lower rate bound: a number in ``(0, 1]``."""
    if isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be one number, got {value!r}")
    return check_rate_pair(value, name)[0]


def _check_region(region: object) -> Region:
    if region not in FG_REGIONS:
        raise ValueError(f"region must be one of {FG_REGIONS}, got {region!r}")
    return region  # type: ignore[return-value]


def peak_component(confidence: Tensor) -> Tensor:
    """``confidence`` kept only on the 8-connected region of positive cells holding its maximum.

    Args:
        confidence: ``Tensor[B, H, W]``, non-negative.

    Returns:
        ``Tensor[B, H, W]`` (float32): the input on the cells reachable from each map's first
        maximum through positive cells within ``H + W`` steps (batched dilation with
        ``max_pool2d``, no host synchronisation), 0 elsewhere. A map that is 0 everywhere stays 0.
    """
    conf = confidence.detach().float()
    if conf.dim() != 3:
        raise ValueError(f"confidence must be 3-D [B, H, W], got shape {tuple(conf.shape)}")
    batch, height, width = conf.shape
    positive = (conf > 0).float()[:, None]
    peak = conf.flatten(1).argmax(dim=1)
    reach = torch.zeros(batch, height * width, device=conf.device)
    reach = reach.scatter(1, peak[:, None], 1.0).view(batch, 1, height, width) * positive
    for _ in range(height + width):
        reach = F.max_pool2d(reach, 3, stride=1, padding=1) * positive
    return conf * reach[:, 0]


def foreground_confidence(x: Tensor, tau: float = 1.0, region: Region = "all") -> Tensor:
    """ARP-FG's confidence: ``relu(tau * s)`` with ``s`` the significance of Eq. 1 and 2.

    Args:
        x: ``Tensor[B, C, H, W]``.
        tau: scales the map (beyond the paper, as ARP's temperature); the rates and boxes do not
            depend on it (the spread and the window search are scale-free).
        region: ``"all"`` (every cell above the map's mean) or ``"peak"``
            (:func:`peak_component`).

    Returns:
        ``Tensor[B, H, W]`` float32, ``>= 0``; 0 everywhere for a constant input.
    """
    tau = check_tau(tau)
    region = _check_region(region)
    conf = torch.relu(significance(x) * tau)
    return peak_component(conf) if region == "peak" else conf


def foreground_region_pool(
    x: Tensor,
    dsr: tuple[float, float] | float = (0.5, 0.5),
    k: float = 1.0,
    *,
    min_rate: float = DEFAULT_MIN_RATE,
    region: Region = "all",
    guide: Tensor | None = None,
    kernel: Kernel = "gaussian",
    sigma: float = 0.25,
    suppress: Tensor | None = None,
    tau: float = 1.0,
) -> RegionPoolResult:
    """ARP-FG (beyond the paper): ARP on a confidence without the floor, bounded by ``min_rate``.

    Args:
        x: ``Tensor[B, C, H, W]`` feature map (float32, float16 or bfloat16; CPU or CUDA).
        dsr: target downsampling rate in ``(0, 1]``: the output is ``round(H * dsr_h) x
            round(W * dsr_w)`` (not the lower bound of the rate, unlike ARP).
        k: trade-off coefficient ``> 0`` (1: the crop spans the foreground's extent).
        min_rate: the rate's lower bound in ``(0, 1]`` (default 0.125); a rate below ``dsr``
            is a zoom (the crop is upsampled to the output size).
        region: ``"all"`` or ``"peak"`` (:func:`foreground_confidence`).
        guide: optional ``Tensor[B, H, W]`` (non-negative, floating) used as the confidence
            instead of the features' (the oracle: an object mask on this map).
        kernel, sigma, suppress: as in :func:`arpviz.pooling.region_pool`.
        tau: as in :func:`foreground_confidence` (no effect on rates and boxes).

    Returns:
        :class:`~arpviz.pooling.RegionPoolResult`; ``confidence`` is the map the rates came from.

    Raises:
        TypeError, ValueError: naming the argument that is wrong.
    """
    k = check_k(k)
    floor = check_min_rate(min_rate)
    region = _check_region(region)
    tau = check_tau(tau)
    confidence_of: Callable[[Tensor], Tensor]
    if guide is None:
        def confidence_of(inp: Tensor) -> Tensor:
            return foreground_confidence(inp, tau, region)
    else:
        mask = _check_guide(guide, _check_input(x))

        def confidence_of(inp: Tensor) -> Tensor:
            return peak_component(mask) if region == "peak" else mask
    return _pool(x, dsr, k, kernel, sigma, suppress, confidence_of, min_rate=floor)


class ForegroundRegionPool(AdaptiveRegionPool):
    """Module form of :func:`foreground_region_pool`; no parameters, an empty ``state_dict``.

    The settings of :class:`~arpviz.pooling.AdaptiveRegionPool` plus ARP-FG's ``min_rate`` and
    ``region``. ``forward(x)`` returns the resampled features; ``forward_result(x, suppress,
    guide)`` the whole :class:`~arpviz.pooling.RegionPoolResult`.
    """

    def __init__(
        self,
        dsr: tuple[float, float] | float = (0.5, 0.5),
        k: float = 1.0,
        *,
        min_rate: float = DEFAULT_MIN_RATE,
        region: Region = "all",
        kernel: Kernel = "gaussian",
        sigma: float = 0.25,
        tau: float = 1.0,
    ) -> None:
        super().__init__(dsr, k, kernel=kernel, sigma=sigma, tau=tau)
        self.min_rate = check_min_rate(min_rate)
        self.region: Region = _check_region(region)

    def forward_result(
        self, x: Tensor, suppress: Tensor | None = None, guide: Tensor | None = None
    ) -> RegionPoolResult:
        """Run ARP-FG and return everything it computed."""
        return foreground_region_pool(
            x, self.dsr, self.k, min_rate=self.min_rate, region=self.region, guide=guide,
            kernel=self.kernel, sigma=self.sigma, suppress=suppress, tau=self.tau,
        )

    def extra_repr(self) -> str:
        return (f"dsr={self.dsr}, k={self.k}, min_rate={self.min_rate}, region={self.region!r}, "
                f"kernel={self.kernel!r}, sigma={self.sigma}, tau={self.tau}")
