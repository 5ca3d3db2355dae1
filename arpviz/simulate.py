"""Appendix A: the adaptive rate on simulated 1-D keypoint distributions.

The paper's rules: most keypoints lie in one consecutive interval of any length and position, and
the distribution inside it is random. A distribution here is a random significance per location
(uniform on [0, 1), raised to ``spikiness`` to make it sparser), multiplied by a Gaussian envelope
of random mean and standard deviation, plus a small uniform ``background``, normalised to sum 1.

Crops come from the operator's own code (:func:`arpviz.pooling.adaptive_rates` and
:func:`arpviz.pooling.select_boxes` on an ``L x 1`` confidence map), so what is measured here is
exactly what ARP does along one axis.

The *true interval* of a simulated distribution is its envelope's ``mean +- 2 std``, clipped to
``[0, L]``.

Why a floor: the confidence is ``sigmoid(s)`` of a standardised significance ``s`` whose mean over
the map is 0, so the background sits near ``sigmoid(0) = 0.5``, never near 0 (a trained network's
background is about 0.46 to 0.48, docs/adaptivity.md).
:func:`arpviz.analysis.measure_confidence_floor` measures it in a checkpoint, as the raw level
and as the ``background`` argument of :func:`simulate` that gives the same floor-to-peak ratio.
``simulate`` takes any ``background >= 0``.

Appendix A in two dimensions, one object on perfect features cropped by the paper's ARP and by
ARP-FG (:func:`simulate_object_2d`, :func:`rate_against_size`), is :mod:`arpviz.simulate2d`,
re-exported here; ``python -m arpviz.simulate`` prints its rate table for a centred square.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from arpviz.commands import command_parser
from arpviz.pooling import Kernel, adaptive_rates, select_boxes
from arpviz.simulate2d import (
    CURVE_SIZES,
    ObjectSimulation,
    RateCurve,
    rate_against_size,
    simulate_object_2d,
)
from arpviz.validation import check_count, check_k, check_kernel, check_rate_pair

__all__ = [
    "CURVE_SIZES",
    "Coverage",
    "ObjectSimulation",
    "RateCurve",
    "SimulatedDistributions",
    "coverage",
    "crop_intervals",
    "rate_against_size",
    "simulate",
    "simulate_object_2d",
    "uniform_distribution",
]


@dataclass(frozen=True)
class SimulatedDistributions:
    """A batch of simulated 1-D keypoint distributions.

    Attributes:
        dist: ``float64 [N, L]``, each row non-negative and summing to 1.
        centres: ``float64 [N]``, envelope means in pixel-edge coordinates (0..L).
        spreads: ``float64 [N]``, envelope standard deviations in cells.
        true_intervals: ``float64 [N, 2]``, ``(start, end)`` = ``centre -+ 2 spread`` clipped.
    """

    dist: np.ndarray
    centres: np.ndarray
    spreads: np.ndarray
    true_intervals: np.ndarray


@dataclass(frozen=True)
class Coverage:
    """How well crops fit distributions (all ``float64 [N]``).

    Attributes:
        mass_inside: share of the distribution's mass inside the crop.
        background_share: share of the crop's length outside the true interval.
        crop_length: crop length in cells.
        true_length: true interval length in cells.
    """

    mass_inside: np.ndarray
    background_share: np.ndarray
    crop_length: np.ndarray
    true_length: np.ndarray


def _check_range(value: tuple[float, float], name: str, low: float, high: float) -> None:
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not (low <= value[0] <= value[1] <= high)
    ):
        raise ValueError(f"{name} must be (a, b) with {low} <= a <= b <= {high}, got {value!r}")


def simulate(
    count: int,
    length: int = 56,
    *,
    seed: int = 0,
    spread: tuple[float, float] = (0.03, 0.3),
    placement: tuple[float, float] = (0.1, 0.9),
    spikiness: float = 1.0,
    background: float = 0.02,
) -> SimulatedDistributions:
    """Draw ``count`` random distributions of ``length`` cells by the paper's rules.

    Args:
        count: how many distributions, ``>= 1``.
        length: cells per distribution, ``>= 2``.
        seed: seed of the generator (same seed, same distributions).
        spread: range of the envelope's standard deviation as a fraction of ``length``.
        placement: range of the envelope's mean as a fraction of ``length``.
        spikiness: exponent on the uniform significance (1: uniform; larger: sparser peaks).
        background: uniform floor added before normalising, relative to the envelope's peak.
    """
    count = check_count(count, "count")
    if not isinstance(length, int) or length < 2:
        raise ValueError(f"length must be an int >= 2, got {length!r}")
    _check_range(spread, "spread", 1e-3, 10.0)
    _check_range(placement, "placement", 0.0, 1.0)
    if not spikiness > 0:
        raise ValueError(f"spikiness must be > 0, got {spikiness!r}")
    if not background >= 0:
        raise ValueError(f"background must be >= 0, got {background!r}")
    rng = np.random.default_rng(seed)
    centres = rng.uniform(*placement, size=count) * length
    spreads = rng.uniform(*spread, size=count) * length
    significance = rng.uniform(size=(count, length)) ** spikiness
    cells = np.arange(length) + 0.5
    envelope = np.exp(-0.5 * ((cells[None, :] - centres[:, None]) / spreads[:, None]) ** 2)
    dist = significance * envelope + background
    dist /= dist.sum(axis=1, keepdims=True)
    true = np.stack([centres - 2 * spreads, centres + 2 * spreads], axis=1).clip(0, length)
    return SimulatedDistributions(dist=dist, centres=centres, spreads=spreads, true_intervals=true)


def uniform_distribution(length: int, a: int, b: int) -> np.ndarray:
    """Eq. 6: the discrete uniform distribution on cells ``a < y <= b`` (1-based), ``[length]``."""
    if not (0 <= a < b <= length):
        raise ValueError(f"need 0 <= a < b <= length, got a={a}, b={b}, length={length}")
    dist = np.zeros(length)
    dist[a:b] = 1.0 / (b - a)
    return dist


def crop_intervals(
    dist: np.ndarray,
    dsr: float = 0.5,
    k: float = 1.0,
    *,
    kernel: Kernel = "gaussian",
    sigma: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """ARP's rate and cropped interval for each distribution, by the operator's code.

    Args:
        dist: ``[N, L]`` (or ``[L]``) non-negative confidences.
        dsr: lower bound of the rate, in ``(0, 1]``.
        k: trade-off coefficient, ``> 0``.

    Returns:
        ``(rates [N], intervals [N, 2])``, intervals as ``(start, end)`` in cell-edge coordinates.
    """
    values = np.atleast_2d(np.asarray(dist, dtype=np.float64))
    if values.ndim != 2 or (values < 0).any() or not np.isfinite(values).all():
        raise ValueError("dist must be a finite, non-negative [N, L] array")
    dsr_h, _ = check_rate_pair(dsr, "dsr")
    k = check_k(k)
    sigma = check_kernel(kernel, sigma)
    confidence = torch.from_numpy(values).float()[:, :, None]  # [N, L, 1]: W = 1
    rates = adaptive_rates(confidence, (dsr_h, 1.0), k)
    boxes = select_boxes(confidence, rates, kernel=kernel, sigma=sigma)
    return rates[:, 0].double().numpy(), boxes[:, [1, 3]].double().numpy()


def _overlap(start: np.ndarray, end: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0, None)


def coverage(
    dist: np.ndarray, intervals: np.ndarray, true_intervals: np.ndarray | None = None
) -> Coverage:
    """Mass inside each crop and the crop's background share.

    Args:
        dist: ``[N, L]`` distributions (normalised here).
        intervals: ``[N, 2]`` crops ``(start, end)`` in cell-edge coordinates.
        true_intervals: ``[N, 2]``; if omitted, background is measured against the smallest
            interval that holds all non-zero cells.
    """
    values = np.atleast_2d(np.asarray(dist, dtype=np.float64))
    values = values / values.sum(axis=1, keepdims=True)
    intervals = np.atleast_2d(intervals)
    length = values.shape[1]
    cells = np.arange(length, dtype=np.float64)
    start, end = intervals[:, :1], intervals[:, 1:]
    covered = _overlap(start, end, cells[None, :], cells[None, :] + 1)  # [N, L] in [0, 1]
    mass = (values * covered).sum(axis=1)
    if true_intervals is None:
        nonzero = values > 0
        first = nonzero.argmax(axis=1)
        last = length - nonzero[:, ::-1].argmax(axis=1)
        true_intervals = np.stack([first, last], axis=1).astype(np.float64)
    true_intervals = np.atleast_2d(true_intervals)
    crop_len = (end - start)[:, 0]
    inside_true = _overlap(start, end, true_intervals[:, :1], true_intervals[:, 1:])[:, 0]
    background = 1.0 - inside_true / np.maximum(crop_len, 1e-12)
    return Coverage(
        mass_inside=mass,
        background_share=background,
        crop_length=crop_len,
        true_length=true_intervals[:, 1] - true_intervals[:, 0],
    )


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m arpviz.simulate``: the rates of a centred square object on perfect features
    (the paper's ARP, ARP-FG beyond the paper, and the object's side), one row per size."""

    parser = command_parser(
        "python -m arpviz.simulate",
        description="Rates of a centred square object on perfect features (every channel the "
                    "object's mask): the paper's ARP, ARP-FG (beyond the paper) and the ideal, "
                    "one row per object size.",
        epilog="Details: docs/method.md.")
    parser.add_argument("--k", type=float, default=1.0,
                        help="trade-off coefficient (default: %(default)s)")
    parser.add_argument("--dsr", type=float, default=0.5,
                        help="the paper's DSR (default: %(default)s)")
    parser.add_argument("--tau", type=float, default=1.0,
                        help="confidence temperature, beyond the paper (default: %(default)s, "
                        "the paper)")
    parser.add_argument("--map-size", type=int, default=28, metavar="N",
                        help="map side in cells (default: %(default)s)")
    parser.add_argument("--clutter", type=float, default=0.0,
                        help="distractor strength (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        curve = rate_against_size(sizes=tuple(round(0.1 * i, 1) for i in range(1, 10)),
                                  clutter=args.clutter, k=args.k, dsr=args.dsr, tau=args.tau,
                                  map_size=args.map_size)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    print(f"k {curve.k:g}, DSR {curve.dsr:g}, tau {curve.tau:g}, ARP-FG min_rate "
          f"{curve.min_rate:g}, {args.map_size} x {args.map_size} map")
    print(f"{'object side':>11}  {'ARP (paper)':>11}  {'ARP-FG':>7}  {'extent':>6}  "
          f"{'ARP on the mask':>15}")
    rows = zip(curve.sizes, curve.arp, curve.arpfg, curve.ideal, curve.ideal_arp, strict=True)
    for s, arp, fg, ideal, on_mask in rows:
        print(f"{s:>11.2f}  {arp[0]:>11.3f}  {fg[0]:>7.3f}  {ideal[0]:>6.3f}  {on_mask[0]:>15.3f}")


if __name__ == "__main__":
    main()
