"""Appendix A in numbers: simulated 1-D keypoint distributions and the crops ARP picks on them.

:func:`analyse` runs the simulator and the operator (:mod:`arpviz.simulate`) for one
:class:`SimulationSettings`; :func:`summary_stats` and :func:`k_sweep` sum them up. The figures
of the Appendix A page are in :mod:`arpviz.explorer.figures.appendix`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from arpviz.simulate import Coverage, SimulatedDistributions, coverage, crop_intervals, simulate

__all__ = [
    "Analysis",
    "SimulationSettings",
    "analyse",
    "k_sweep",
    "summary_stats",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationSettings:
    """The simulator's knobs (see :func:`arpviz.simulate.simulate`) and ARP's ``dsr`` and ``k``."""

    count: int = 12
    length: int = 56
    seed: int = 0
    spread: tuple[float, float] = (0.03, 0.3)
    placement: tuple[float, float] = (0.1, 0.9)
    spikiness: float = 1.0
    background: float = 0.02
    dsr: float = 0.5
    k: float = 1.0

    def with_count(self, count: int, seed_offset: int = 0) -> SimulationSettings:
        """The same settings for ``count`` distributions (seed shifted by ``seed_offset``)."""
        return replace(self, count=count, seed=self.seed + seed_offset)


@dataclass(frozen=True)
class Analysis:
    """Simulated distributions, ARP's rates and crops on them, and how well the crops fit.

    Attributes:
        settings: what produced it.
        sim: the distributions (``sim.dist`` ``[N, L]``) and their true intervals.
        rates: ``[N]`` adaptive rates.
        intervals: ``[N, 2]`` crops ``(start, end)`` in cell-edge coordinates.
        coverage: mass inside, background share, crop and true lengths (each ``[N]``).
    """

    settings: SimulationSettings
    sim: SimulatedDistributions
    rates: np.ndarray
    intervals: np.ndarray
    coverage: Coverage


def _simulate(settings: SimulationSettings) -> SimulatedDistributions:
    return simulate(
        settings.count,
        settings.length,
        seed=settings.seed,
        spread=tuple(settings.spread),
        placement=tuple(settings.placement),
        spikiness=settings.spikiness,
        background=settings.background,
    )


def analyse(settings: SimulationSettings) -> Analysis:
    """Simulate ``settings.count`` distributions and crop each with ARP's ``dsr`` and ``k``."""
    sim = _simulate(settings)
    rates, intervals = crop_intervals(sim.dist, settings.dsr, settings.k)
    cov = coverage(sim.dist, intervals, sim.true_intervals)
    logger.debug("analysed %d distributions, mean mass %.3f", settings.count,
                 float(cov.mass_inside.mean()))
    return Analysis(settings, sim, rates, intervals, cov)


def summary_stats(analysis: Analysis) -> dict[str, float]:
    """Headline numbers of an analysis (means and medians, as plain floats)."""
    cov = analysis.coverage
    ratio = cov.crop_length / np.maximum(cov.true_length, 1e-12)
    corr = (
        float(np.corrcoef(cov.crop_length, cov.true_length)[0, 1])
        if len(cov.crop_length) > 1 and cov.crop_length.std() > 0 and cov.true_length.std() > 0
        else float("nan")
    )
    return {
        "count": float(len(cov.mass_inside)),
        "mean_mass_inside": float(cov.mass_inside.mean()),
        "median_mass_inside": float(np.median(cov.mass_inside)),
        "share_mass_over_90": float((cov.mass_inside >= 0.9).mean()),
        "mean_background_share": float(cov.background_share.mean()),
        "median_background_share": float(np.median(cov.background_share)),
        "mean_rate": float(analysis.rates.mean()),
        "median_length_ratio": float(np.median(ratio)),
        "length_correlation": corr,
    }


def k_sweep(settings: SimulationSettings, ks: Sequence[float]) -> dict[str, np.ndarray]:
    """Mean mass inside, background share and rate over ``settings.count`` distributions per k.

    The distributions are drawn once and cropped at every ``k``.
    """
    values = np.asarray(list(ks), dtype=np.float64)
    if values.size == 0 or not (values > 0).all():
        raise ValueError(f"ks must be a non-empty sequence of values > 0, got {ks!r}")
    sim = _simulate(settings)
    mass, background, rate = [], [], []
    for k in values:
        rates, intervals = crop_intervals(sim.dist, settings.dsr, float(k))
        cov = coverage(sim.dist, intervals, sim.true_intervals)
        mass.append(cov.mass_inside.mean())
        background.append(cov.background_share.mean())
        rate.append(rates.mean())
    return {
        "k": values,
        "mass_inside": np.asarray(mass),
        "background_share": np.asarray(background),
        "rate": np.asarray(rate),
    }
