"""The stages a user can steer, and what a setting of them makes the network run.

- :func:`stage_controls`: every stage of a model with its trained settings (read from the model
  in this one place) as :class:`StageControl`;
- :class:`Knob`: what a user set on one stage (mode, ``k``, DSR, ``tau``);
- :meth:`StageControl.settings`: the :class:`~arpviz.models.StageSettings` a knob makes the
  stage run, by the model layer's one rule (:func:`arpviz.models.stages.settings_for`);
- :func:`overrides_from`: the :class:`~arpviz.models.StageOverride` of every stage whose knob
  changes what it runs (so the trained setting gives ``{}``).

The app's slider ranges live here too (:data:`K_RANGE`, :data:`DSR_RANGE`, :data:`TAUS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from arpviz.models import MSGN, StageOverride, StageSettings
from arpviz.models.stages import ADAPTIVE_MODES, STEERABLE_MODES, settings_for, stage_label

__all__ = [
    "DSR_RANGE",
    "DSR_STEP",
    "K_RANGE",
    "K_STEP",
    "STEERABLE_MODES",
    "TAUS",
    "Knob",
    "StageControl",
    "overrides_from",
    "stage_controls",
]

#: Slider ranges for ``k`` and the DSR.
K_RANGE: tuple[float, float] = (0.1, 2.0)
K_STEP = 0.05
DSR_RANGE: tuple[float, float] = (0.25, 1.0)
DSR_STEP = 0.05
#: Confidence temperatures the app offers (beyond the paper; 1 is the paper).
TAUS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


@dataclass(frozen=True)
class Knob:
    """What a user set on one stage: the pooling ``mode`` (one of
    :data:`~arpviz.models.STEERABLE_MODES`; ``None``: the trained one), ``k`` of that mode
    (``None``: the mode's default, or no ``k`` for RP and the learnt zoom), the DSR (one number
    for height and width; ``None``: the trained one) and the confidence temperature ``tau``
    (beyond the paper; ``None``: the trained one)."""

    k: float | None = None
    dsr: float | None = None
    tau: float | None = None
    mode: str | None = None


@dataclass(frozen=True)
class StageControl:
    """One stage of a model as the pages show it.

    ``trained`` is what the stage runs as trained; ``config_k`` the config's ``k`` for a
    switch into ARP (``conv3_k`` or ``conv4_k``) and ``min_rate`` its lower bound for the
    foreground modes: with them :meth:`settings` applies the model's rule without a model.
    """

    name: str
    trained: StageSettings
    config_k: float
    min_rate: float

    # ------------------------------------------------------------------ the trained setting

    @property
    def label(self) -> str:
        """``Conv4 local 0``."""
        return stage_label(self.name)

    @property
    def mode(self) -> str:
        """The trained mode."""
        return self.trained.mode

    @property
    def k(self) -> float | None:
        """The trained ``k`` (``None`` for a mode without one)."""
        return self.trained.k

    @property
    def dsr(self) -> tuple[float, float] | None:
        """The trained DSR ``(h, w)`` (``None`` for a strided stage)."""
        return self.trained.dsr

    @property
    def tau(self) -> float:
        """The trained confidence temperature."""
        return self.trained.tau

    @property
    def crop(self) -> tuple[float, float] | None:
        """A trained fixed crop's rate where it differs from the DSR, else ``None``."""
        return self.trained.crop

    @property
    def trained_dsr(self) -> float | None:
        """The trained DSR as the one number a slider shows (the height's when they differ)."""
        return None if self.trained.dsr is None else float(self.trained.dsr[0])

    @property
    def steerable(self) -> bool:
        """RP, ARP, ARP-FG and learnt-zoom stages can be steered; strided, STN and mask
        stages cannot (the mask modes need the object's mask, which a photo lacks)."""
        return self.trained.mode in STEERABLE_MODES

    def display(self, mode: str | None = None) -> str:
        """``Conv4 local 0 (ARP)``: the stage with ``mode`` (default: its trained mode)."""
        return stage_label(self.name, mode or self.mode)

    # ------------------------------------------------------------------ a user's setting

    def settings(self, knob: Knob | None = None) -> StageSettings:
        """What the stage runs under ``knob`` (``None``: the trained settings).

        Raises:
            ValueError: a stage that cannot be steered, or a value out of range.
        """
        if knob is None:
            return self.trained
        dsr = None if knob.dsr is None else (float(knob.dsr), float(knob.dsr))
        return settings_for(self.trained, knob.mode, knob.k, dsr, knob.tau,
                            default_k=self.config_k, min_rate=self.min_rate, name=self.name)

    def default_k(self, mode: str) -> float | None:
        """The ``k`` this stage runs with in ``mode`` when the user sets none: its trained one
        in its trained mode, else that mode's default (``None`` for RP and the learnt zoom)."""
        if mode not in ADAPTIVE_MODES or not self.steerable:
            return None
        return self.settings(Knob(mode=mode)).k


def stage_controls(model: MSGN) -> tuple[StageControl, ...]:
    """Every stage of ``model`` with its trained settings, in execution order."""
    config = model.config
    return tuple(
        StageControl(name, settings,
                     config.conv3_k if name == "conv3" else config.conv4_k, config.min_rate)
        for name, settings in model.stage_settings().items()
    )


def overrides_from(
    controls: Iterable[StageControl], knobs: Mapping[str, Knob]
) -> dict[str, StageOverride]:
    """The overrides that make every steerable stage run what its knob says.

    A stage gets an override only where its knob changes what it runs (the trained setting
    gives ``{}``); the override then names the mode, its ``k``, the DSR and ``tau`` in full.
    Knobs of stages that cannot be steered are ignored.

    Raises:
        ValueError: a knob with a mode that cannot be steered to, or values out of range.
    """
    out: dict[str, StageOverride] = {}
    for control in controls:
        knob = knobs.get(control.name)
        if knob is None or not control.steerable:
            continue
        settings = control.settings(knob)
        if settings == control.trained:
            continue
        out[control.name] = StageOverride(
            mode=settings.mode if settings.mode != control.mode else None,  # type: ignore[arg-type]
            k=settings.k, dsr=settings.dsr, tau=settings.tau)
    return out
