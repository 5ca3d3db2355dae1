"""Appendix A in two dimensions: one object on perfect features, cropped by the paper's ARP and
by ARP-FG (:func:`simulate_object_2d`; :func:`rate_against_size`, the rates as the object grows).

Perfect features: every channel of a map equal to one object's mask (plus optional distractor
blobs), cropped by the paper's ARP and by ARP-FG (beyond the paper, :mod:`arpviz.foreground`), both
by the operator's own code. It shows why the paper's rate cannot follow the object: each
standardised channel averages 0 over the map, so the significance does too, and an object covering
a share ``p`` of the map leaves the background at about ``-sqrt(p / (1 - p))``. The sigmoid turns
that into a confidence near 0.5 on every background cell; summed over the many of them it dominates
the marginals, whose spread then stays near that of the whole map: the rate stays near ``k`` and
*falls* as the object grows. ARP-FG's ``relu`` keeps only what lies above the map's mean, so its
rate is ``k`` times the object's extent. ``python -m arpviz.simulate`` prints the table for a
centred square (:mod:`arpviz.simulate`, the 1-D part of Appendix A, re-exports everything here).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from arpviz.foreground import (
    DEFAULT_MIN_RATE,
    FG_REGIONS,
    check_min_rate,
    foreground_region_pool,
)
from arpviz.pooling import RegionPoolResult, adaptive_rates, adaptive_region_pool
from arpviz.validation import check_k, check_tau

__all__ = [
    "CURVE_SIZES",
    "ObjectSimulation",
    "RateCurve",
    "rate_against_size",
    "simulate_object_2d",
]

#: Object sizes of :func:`rate_against_size`: the object's longer side, 0.1 to 0.9 of the map's.
CURVE_SIZES: tuple[float, ...] = tuple(round(0.1 + 0.05 * i, 2) for i in range(17))
_MAX_MAP = 256
_MAX_BLOBS = 64


@dataclass(frozen=True)
class ObjectSimulation:
    """One object on a perfect-feature map, and the crops of the paper's ARP and of ARP-FG.

    Every channel of the input holds ``features``; channels that are all equal standardise and
    average to that one channel, so one channel stands for any number of them. Boxes are
    ``(x1, y1, x2, y2)`` in pixel edges of the map, rates ``(rate_h, rate_w)``, as the operator
    returns them.

    Attributes:
        features: ``float32 [N, N]``: the object's mask plus the clutter.
        mask: ``float32 [N, N]``: 1 on the object's cells, 0 elsewhere.
        object_box: the object's cells as a box.
        arp_confidence: ``float32 [N, N]``: the paper's map, ``sigmoid(tau * s)``.
        arpfg_confidence: ``float32 [N, N]``: ARP-FG's map, ``relu(tau * s)`` (beyond the paper).
        arp_box, arpfg_box: each method's crop box.
        arp_rates, arpfg_rates: each method's rates.
        ideal_rates: the object's extent over the map's side per axis ``(h, w)``: what Eq. 9
            gives on the mask itself with ``k = 1`` (within a cell), a crop that spans the object.
        ideal_arp_rates: the paper's Eq. 5 to 9 (:func:`arpviz.pooling.adaptive_rates`) with
            ``k`` and ``dsr`` on the object's mask as the confidence map: what ARP would pick if
            Eq. 1 to 3 gave it an ideal map (``k`` times the extent, clamped to ``[dsr, 1]``).
        k, dsr, tau, min_rate, region, clutter: the settings that produced it.
    """

    features: np.ndarray
    mask: np.ndarray
    object_box: tuple[float, float, float, float]
    arp_confidence: np.ndarray
    arpfg_confidence: np.ndarray
    arp_box: tuple[float, float, float, float]
    arpfg_box: tuple[float, float, float, float]
    arp_rates: tuple[float, float]
    arpfg_rates: tuple[float, float]
    ideal_rates: tuple[float, float]
    ideal_arp_rates: tuple[float, float]
    k: float
    dsr: float
    tau: float
    min_rate: float
    region: str
    clutter: float

    @property
    def map_size(self) -> int:
        """The map's side ``N`` in cells."""
        return int(self.mask.shape[0])


@dataclass(frozen=True)
class RateCurve:
    """The rates of the paper's ARP and of ARP-FG against the object's size.

    Attributes:
        sizes: ``float64 [S]``, the object's longer side as a fraction of the map's side (the
            aspect, position and clutter held fixed).
        ideal: ``float64 [S, 2]``, the object's extent per axis ``(h, w)`` over the map's side,
            what a crop that spans the object takes (Eq. 9 on the mask itself, ``k = 1``).
        arp: ``float64 [S, 2]``, the paper's rates ``(rate_h, rate_w)``.
        arpfg: ``float64 [S, 2]``, ARP-FG's rates (beyond the paper).
        ideal_arp: ``float64 [S, 2]``, the paper's Eq. 5 to 9 on the object's mask as the map
            (:attr:`ObjectSimulation.ideal_arp_rates`): ``k`` times the extent, clamped to
            ``[dsr, 1]``.
        k, dsr, tau, min_rate: the settings; ``dsr`` is the paper's lower bound of the rate,
            ``min_rate`` ARP-FG's.
    """

    sizes: np.ndarray
    ideal: np.ndarray
    arp: np.ndarray
    arpfg: np.ndarray
    ideal_arp: np.ndarray
    k: float
    dsr: float
    tau: float
    min_rate: float


def _check_fraction(value: object, name: str, *, allow_zero: bool) -> float:
    """A number in ``[0, 1]`` (``allow_zero``) or ``(0, 1]``, named ``name`` in the error."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= 1):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(f"{name} must lie in {interval} (a fraction of the map's side), "
                         f"got {value!r}")
    return float(value)


def _check_int(value: object, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], got {value!r}")
    return value


def _object_cells(centre: float, extent: float, size: int) -> tuple[int, int]:
    """The object's cells ``[start, end)`` along one axis of ``size`` cells.

    ``round(extent * size)`` cells (at least one), placed as near to ``centre * size`` as the
    grid allows, cut at the map's border, always at least one of them on the map.
    """
    count = max(1, math.floor(extent * size + 0.5))
    start = math.floor(centre * size - count / 2 + 0.5)
    start = min(max(start, 1 - count), size - 1)
    return max(start, 0), min(start + count, size)


def _clutter(size: int, blobs: int, strength: float, seed: int) -> np.ndarray:
    """``blobs`` Gaussian distractors (peak ``strength`` times 0.5 to 1, standard deviation 3% to
    8% of the side, centres anywhere on the map), drawn from ``seed`` only: the same clutter
    whatever the object."""
    field = np.zeros((size, size))
    if blobs == 0 or strength == 0:
        return field
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.0, size, size=(blobs, 2))
    spreads = rng.uniform(0.03, 0.08, size=blobs) * size
    peaks = rng.uniform(0.5, 1.0, size=blobs) * strength
    cells = np.arange(size) + 0.5
    for (cy, cx), spread, peak in zip(centres, spreads, peaks, strict=True):
        along_y = np.exp(-0.5 * ((cells - cy) / spread) ** 2)
        along_x = np.exp(-0.5 * ((cells - cx) / spread) ** 2)
        field += peak * np.outer(along_y, along_x)
    return field


def _mask(
    width: float, height: float, cx: float, cy: float, size: int
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The object's mask ``float32 [N, N]`` and its cells ``(x1, y1, x2, y2)``."""
    x1, x2 = _object_cells(cx, width, size)
    y1, y2 = _object_cells(cy, height, size)
    mask = np.zeros((size, size), dtype=np.float32)
    mask[y1:y2, x1:x2] = 1.0
    return mask, (x1, y1, x2, y2)


def _crop_all(
    masks: np.ndarray, clutter: np.ndarray, k: float, dsr: float, tau: float, min_rate: float,
    region: str,
) -> tuple[np.ndarray, RegionPoolResult, RegionPoolResult, torch.Tensor]:
    """The features ``masks + clutter`` (``float32 [B, N, N]``, one channel each), the paper's
    ARP and ARP-FG on them, and Eq. 5 to 9 on the masks themselves, all by the operator's own
    code."""
    features = (masks + clutter[None]).astype(np.float32)
    x = torch.from_numpy(features)[:, None]
    arp = adaptive_region_pool(x, dsr, k, tau=tau)
    arpfg = foreground_region_pool(x, dsr, k, min_rate=min_rate, region=region, tau=tau)
    ideal = adaptive_rates(torch.from_numpy(np.ascontiguousarray(masks)).float(), (dsr, dsr), k)
    return features, arp, arpfg, ideal


def _check_settings(
    clutter: object, k: object, dsr: object, tau: object, map_size: object, blobs: object,
    seed: object, min_rate: object, region: object,
) -> tuple[float, float, float, float, int, int, int, float, str]:
    if not isinstance(clutter, (int, float)) or isinstance(clutter, bool):
        raise TypeError(f"clutter must be a number, got {clutter!r}")
    if not (clutter >= 0) or not math.isfinite(clutter):
        raise ValueError(f"clutter must be a finite number >= 0, got {clutter!r}")
    if region not in FG_REGIONS:
        raise ValueError(f"region must be one of {FG_REGIONS}, got {region!r}")
    return (
        float(clutter), check_k(k), check_min_rate(dsr, "dsr"), check_tau(tau),
        _check_int(map_size, "map_size", 4, _MAX_MAP), _check_int(blobs, "blobs", 0, _MAX_BLOBS),
        _check_int(seed, "seed", 0, 2**32 - 1), check_min_rate(min_rate), str(region),
    )


def _box(row: torch.Tensor) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in row)
    return x1, y1, x2, y2


def _pair(row: torch.Tensor) -> tuple[float, float]:
    return float(row[0]), float(row[1])


def simulate_object_2d(
    width: float,
    height: float,
    cx: float = 0.5,
    cy: float = 0.5,
    *,
    clutter: float = 0.0,
    k: float = 1.0,
    dsr: float = 0.5,
    tau: float = 1.0,
    map_size: int = 28,
    blobs: int = 5,
    seed: int = 0,
    min_rate: float = DEFAULT_MIN_RATE,
    region: str = "all",
) -> ObjectSimulation:
    """Appendix A in two dimensions: one object on perfect features, cropped by ARP and ARP-FG.

    The object is a ``width x height`` rectangle (fractions of the map's side) centred at
    ``(cx, cy)`` (fractions, 0 the left or top edge), drawn on the ``map_size x map_size`` grid as
    whole cells (``round(width * N)`` columns, at least one) and cut at the map's border. Every
    channel of the input is its mask (1 on it, 0 elsewhere) plus ``clutter``: ``blobs`` Gaussian
    distractors whose peaks are ``clutter`` times 0.5 to 1, placed from ``seed``.

    The crops come from :func:`arpviz.pooling.adaptive_region_pool` (the paper's ARP:
    ``sigmoid(tau * s)``, rate clamped to ``[dsr, 1]``) and
    :func:`arpviz.foreground.foreground_region_pool` (ARP-FG, beyond the paper: ``relu(tau * s)``,
    rate clamped to ``[min_rate, 1]``, ``dsr`` its output size only), both with ``k``.

    Args:
        width, height: the object's sides, in ``(0, 1]``.
        cx, cy: the object's centre, in ``[0, 1]``.
        clutter: the distractors' strength relative to the object, ``>= 0`` (0: none).
        k: the trade-off coefficient of Eq. 9, ``> 0``.
        dsr: the paper's downsampling rate in ``(0, 1]``, also ARP's lower bound of the rate.
        tau: the confidence temperature (beyond the paper; 1 is the paper), ``> 0``.
        map_size: the map's side ``N`` in cells, 4 to 256.
        blobs: how many distractors, 0 to 64.
        seed: seed of the distractors' places, sizes and strengths, ``>= 0``.
        min_rate: ARP-FG's lower bound of the rate, in ``(0, 1]``.
        region: ARP-FG's region, ``"all"`` (mode ``arpfg``) or ``"peak"`` (``arpfg_peak``).

    Raises:
        TypeError, ValueError: naming the argument that is wrong.
    """
    width = _check_fraction(width, "width", allow_zero=False)
    height = _check_fraction(height, "height", allow_zero=False)
    cx = _check_fraction(cx, "cx", allow_zero=True)
    cy = _check_fraction(cy, "cy", allow_zero=True)
    clutter, k, dsr, tau, size, blobs, seed, min_rate, region = _check_settings(
        clutter, k, dsr, tau, map_size, blobs, seed, min_rate, region)
    background = _clutter(size, blobs, clutter, seed)
    mask, (x1, y1, x2, y2) = _mask(width, height, cx, cy, size)
    features, arp, arpfg, ideal_arp = _crop_all(mask[None], background, k, dsr, tau, min_rate,
                                                region)
    return ObjectSimulation(
        features=features[0], mask=mask,
        object_box=(float(x1), float(y1), float(x2), float(y2)),
        arp_confidence=arp.confidence[0].numpy(), arpfg_confidence=arpfg.confidence[0].numpy(),
        arp_box=_box(arp.boxes[0]), arpfg_box=_box(arpfg.boxes[0]),
        arp_rates=_pair(arp.rates[0]), arpfg_rates=_pair(arpfg.rates[0]),
        ideal_rates=((y2 - y1) / size, (x2 - x1) / size), ideal_arp_rates=_pair(ideal_arp[0]),
        k=k, dsr=dsr, tau=tau, min_rate=min_rate, region=region, clutter=clutter,
    )


def rate_against_size(
    width: float = 1.0,
    height: float = 1.0,
    cx: float = 0.5,
    cy: float = 0.5,
    *,
    sizes: Sequence[float] = CURVE_SIZES,
    clutter: float = 0.0,
    k: float = 1.0,
    dsr: float = 0.5,
    tau: float = 1.0,
    map_size: int = 28,
    blobs: int = 5,
    seed: int = 0,
    min_rate: float = DEFAULT_MIN_RATE,
    region: str = "all",
) -> RateCurve:
    """The rates of the paper's ARP and of ARP-FG as the object of :func:`simulate_object_2d`
    grows: at each of ``sizes`` its longer side is that size and the shorter one keeps the
    aspect ``width : height``; its centre and the clutter stay as given.

    All sizes run as one batch through the operator's own code. Arguments as in
    :func:`simulate_object_2d`; ``sizes`` holds at least one number in ``(0, 1]``
    (default :data:`CURVE_SIZES`, 0.1 to 0.9).

    Raises:
        TypeError, ValueError: naming the argument that is wrong.
    """
    width = _check_fraction(width, "width", allow_zero=False)
    height = _check_fraction(height, "height", allow_zero=False)
    cx = _check_fraction(cx, "cx", allow_zero=True)
    cy = _check_fraction(cy, "cy", allow_zero=True)
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Iterable):
        raise TypeError(f"sizes must be a non-empty sequence of numbers, got {sizes!r}")
    sizes = [_check_fraction(s, "sizes", allow_zero=False) for s in sizes]
    if not sizes:
        raise ValueError("sizes must hold at least one size")
    clutter, k, dsr, tau, size, blobs, seed, min_rate, region = _check_settings(
        clutter, k, dsr, tau, map_size, blobs, seed, min_rate, region)
    background = _clutter(size, blobs, clutter, seed)
    longer = max(width, height)
    masks, extents = [], []
    for s in sizes:
        mask, (x1, y1, x2, y2) = _mask(s * width / longer, s * height / longer, cx, cy, size)
        masks.append(mask)
        extents.append(((y2 - y1) / size, (x2 - x1) / size))
    _, arp, arpfg, ideal_arp = _crop_all(np.stack(masks), background, k, dsr, tau, min_rate,
                                         region)
    return RateCurve(
        sizes=np.asarray(sizes, dtype=np.float64), ideal=np.asarray(extents, dtype=np.float64),
        arp=arp.rates.double().numpy(), arpfg=arpfg.rates.double().numpy(),
        ideal_arp=ideal_arp.double().numpy(), k=k, dsr=dsr, tau=tau, min_rate=min_rate,
    )
