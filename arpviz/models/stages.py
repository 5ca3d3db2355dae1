"""How one MSGN stage downsamples: its settings, a user's override of them, and the pooling call.

Modes of a stage (:data:`STAGE_MODES`):

- ``"stride"``: the ResNet's own stride 2;
- ``"rp"``: Region Pooling (a fixed crop of ``crop`` or the DSR);
- ``"arp"``: Adaptive Region Pooling, Eq. 9 (the paper);
- ``"arpfg"``, ``"arpfg_peak"``: ARP-FG, the foreground-spread variant **beyond the paper**
  (:mod:`arpviz.foreground`), on every above-mean cell or on the peak's connected region;
- ``"oracle"``: ARP-FG's rule on the object's ground-truth mask instead of the features (an upper
  bound no real network has; needs masks);
- ``"oracle_fixed"``: a fixed crop of ``crop`` (or the DSR) placed by the object's mask, RP's
  window search run on the mask (the control that separates the oracle's placement from its
  size and its adaptivity; beyond the paper; needs masks);
- ``"zoom"``: the learnt zoom crop, **beyond the paper** (:mod:`arpviz.zoom`): the padded box of
  the confidence map's peak region, resampled to the DSR's output;
- ``"stn"``: the spatial transformer of Section 4.3 (:mod:`arpviz.models.stn`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from arpviz.foreground import FG_K, check_min_rate, foreground_confidence, foreground_region_pool
from arpviz.pooling import (
    RegionPoolResult,
    adaptive_region_pool,
    keypoint_confidence,
    output_size,
    region_pool,
    resample_boxes,
)
from arpviz.validation import check_k, check_rate_pair, check_tau
from arpviz.zoom import zoom_region_pool

__all__ = [
    "ADAPTIVE_MODES",
    "FIXED_CROP_MODES",
    "MASK_MODES",
    "MODE_LABELS",
    "PAPER_K",
    "POOLED_MODES",
    "STAGE_MODES",
    "STEERABLE_MODES",
    "StageMode",
    "StageOverride",
    "StageSettings",
    "apply_override",
    "check_forced",
    "config_settings",
    "crop_text",
    "forced_pool",
    "mode_label",
    "pool_stage",
    "settings_for",
    "stage_confidence",
    "stage_label",
]

StageMode = Literal["stride", "rp", "arp", "arpfg", "arpfg_peak", "zoom", "oracle",
                    "oracle_fixed", "stn"]
STAGE_MODES: tuple[str, ...] = ("stride", "rp", "arp", "arpfg", "arpfg_peak", "zoom", "oracle",
                                "oracle_fixed", "stn")
# modes whose crop comes from a confidence map (or a mask) with no parameters
POOLED_MODES: tuple[str, ...] = ("rp", "arp", "arpfg", "arpfg_peak", "zoom", "oracle",
                                 "oracle_fixed")
# modes with an adaptive rate and a trade-off coefficient k
ADAPTIVE_MODES: tuple[str, ...] = ("arp", "arpfg", "arpfg_peak", "oracle")
# modes a user can switch a pooled stage to (the mask modes need a mask: only their own stages)
STEERABLE_MODES: tuple[str, ...] = ("rp", "arp", "arpfg", "arpfg_peak", "zoom")
#: modes that crop by the object's ground-truth mask (the model then needs ``mask=``)
MASK_MODES: tuple[str, ...] = ("oracle", "oracle_fixed")
#: modes with a fixed crop size (``crop``, or the DSR)
FIXED_CROP_MODES: tuple[str, ...] = ("rp", "oracle_fixed")
#: The paper's k for ARP: 1.0 in Conv3, 0.7 in Conv4 of MSGN's one local branch.
PAPER_K: dict[str, float] = {"conv3": 1.0, "conv4": 0.7}
# the foreground variant's modes (beyond the paper)
_FOREGROUND = ("arpfg", "arpfg_peak", "oracle")

MODE_LABELS: dict[str, str] = {
    "stride": "stride",
    "rp": "RP",
    "arp": "ARP",
    "arpfg": "ARP-FG",
    "arpfg_peak": "ARP-FG peak",
    "zoom": "learnt zoom",
    "oracle": "oracle (mask)",
    "oracle_fixed": "mask-placed fixed crop",
    "stn": "STN",
}


def mode_label(mode: str) -> str:
    """The name a user reads for ``mode`` (``"arp"`` -> ``"ARP"``, ``"arpfg"`` -> ``"ARP-FG"``)."""
    return MODE_LABELS.get(mode, mode)


def crop_text(crop: tuple[float, float]) -> str:
    """A fixed crop's rate as people read it: ``0.7``, or ``0.33 x 0.61`` (height x width)."""
    height, width = crop
    return f"{height:g}" if height == width else f"{height:.2f} x {width:.2f}"


def stage_label(name: str, mode: str | None = None) -> str:
    """The one name people read for a stage, everywhere: ``conv3`` -> ``Conv3``,
    ``conv4.local0`` -> ``Conv4 local 0``, ``conv4.global`` -> ``Conv4 global``, ``conv4.main``
    -> ``Conv4``; with ``mode``, its label in brackets: ``Conv4 local 0 (ARP)``."""
    if name == "conv3":
        text = "Conv3"
    elif name == "conv4.main":
        text = "Conv4"
    elif name.startswith("conv4.local") and name[len("conv4.local"):].isdigit():
        text = f"Conv4 local {name[len('conv4.local'):]}"
    elif name.startswith("conv4."):
        text = f"Conv4 {name.split('.', 1)[1]}"
    else:
        text = name
    return text if mode is None else f"{text} ({mode_label(mode)})"


@dataclass(frozen=True)
class StageSettings:
    """How one stage downsamples.

    Attributes:
        mode: one of :data:`STAGE_MODES`.
        k: the trade-off coefficient of an adaptive mode (:data:`ADAPTIVE_MODES`), else ``None``.
        dsr: ``(dsr_h, dsr_w)``, the output size's rate; ``None`` for a strided stage.
        tau: the confidence temperature of a pooled stage (beyond the paper; 1 is the paper).
        min_rate: the lower rate bound of the foreground modes (beyond the paper), else ``None``.
        crop: the crop rate ``(h, w)`` of a fixed-crop mode (:data:`FIXED_CROP_MODES`) where it
            differs from ``dsr`` (the fixed-size controls), else ``None``.
    """

    mode: StageMode
    k: float | None = None
    dsr: tuple[float, float] | None = None
    tau: float = 1.0
    min_rate: float | None = None
    crop: tuple[float, float] | None = None


@dataclass(frozen=True)
class StageOverride:
    """A change to one pooled stage for :meth:`MSGN.explain` / :meth:`MSGN.explain_from`.

    Attributes:
        mode: one of :data:`STEERABLE_MODES` to switch the stage's pooling (``"rp"``,
            ``"arp"``, or, beyond the paper, ARP-FG's ``"arpfg"`` / ``"arpfg_peak"`` and the
            learnt zoom ``"zoom"``); ``None`` keeps it. Switching to an adaptive mode takes
            ``k`` from here, else from the stage when it already runs a rule of the same
            family (ARP, or ARP-FG and the oracle), else the family's default: the config's
            ``conv3_k``/``conv4_k`` for ARP, :data:`arpviz.foreground.FG_K` for ARP-FG.
        k: the trade-off coefficient (adaptive modes only).
        dsr: target downsampling rate (a number or ``(h, w)``) in ``(0, 1]``; changes the
            stage's output size.
        tau: confidence temperature, ``C = sigmoid(tau * s)``. **Beyond the paper** (1 is the
            paper; ``None`` keeps the stage's).
    """

    mode: Literal["rp", "arp", "arpfg", "arpfg_peak", "zoom"] | None = None
    k: float | None = None
    dsr: tuple[float, float] | float | None = None
    tau: float | None = None

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in STEERABLE_MODES:
            raise ValueError(f"mode must be one of {STEERABLE_MODES} or None, got {self.mode!r}")
        if self.k is not None:
            object.__setattr__(self, "k", check_k(self.k))
        if self.dsr is not None:
            object.__setattr__(self, "dsr", check_rate_pair(self.dsr, "dsr"))
        if self.tau is not None:
            object.__setattr__(self, "tau", check_tau(self.tau))


def settings_for(
    trained: StageSettings, mode: str | None = None, k: float | None = None,
    dsr: tuple[float, float] | float | None = None, tau: float | None = None, *,
    default_k: float, min_rate: float, name: str = "stage",
) -> StageSettings:
    """What a pooled stage runs when a user sets ``mode``, ``k``, ``dsr`` and ``tau`` on top of
    its ``trained`` settings (``None``: keep): the one rule, used by the model's overrides, the
    app's controls, the live session and the k sweep.

    - ``mode`` (one of :data:`STEERABLE_MODES`) switches the stage; ``None`` keeps its mode;
    - an adaptive mode's ``k`` is the one given, else the stage's own when it already runs a
      rule of the same family (ARP, or ARP-FG and the oracle), else the family's default:
      ``default_k`` (the config's ``conv3_k``/``conv4_k``) for ARP, :data:`FG_K` for ARP-FG;
      ``k`` for a mode without one is a ``ValueError``;
    - ``dsr`` and ``tau`` replace the stage's; the foreground modes keep the stage's
      ``min_rate`` (else ``min_rate``); a fixed crop (:data:`FIXED_CROP_MODES`) is kept only
      while the stage keeps its mode.

    Raises:
        ValueError: a stage that does not pool (stride, STN), a mode that cannot be steered to,
            ``k`` without meaning, values out of range (each check names the value).
    """
    if trained.mode not in POOLED_MODES:
        raise ValueError(f"stage {name!r} downsamples by {trained.mode!r}; overrides apply to "
                         f"the pooled modes {POOLED_MODES}")
    if mode is not None and mode not in STEERABLE_MODES:
        raise ValueError(f"mode must be one of {STEERABLE_MODES} or None, got {mode!r}")
    target = mode or trained.mode
    if target in ADAPTIVE_MODES:
        same_family = (target in _FOREGROUND) == (trained.mode in _FOREGROUND)
        family_k = FG_K if target in _FOREGROUND else default_k
        own_k = trained.k if trained.k is not None and same_family else family_k
        k = check_k(k) if k is not None else own_k
    elif k is not None:
        raise ValueError(f"overrides[{name!r}]: k has no meaning for mode {target!r}")
    dsr_pair = check_rate_pair(dsr, "dsr") if dsr is not None else trained.dsr
    tau = check_tau(tau) if tau is not None else trained.tau
    floor = (trained.min_rate if trained.min_rate is not None else min_rate) \
        if target in _FOREGROUND else None
    crop = trained.crop if target == trained.mode and target in FIXED_CROP_MODES else None
    return StageSettings(mode=target, k=k, dsr=dsr_pair, tau=tau, min_rate=floor, crop=crop)


def apply_override(
    name: str, base: StageSettings, override: StageOverride, default_k: float,
    min_rate: float,
) -> StageSettings:
    """``base`` with ``override`` applied (stage ``name``; ``default_k`` and ``min_rate`` from
    the config for a switch into an adaptive or foreground mode): :func:`settings_for`."""
    if not isinstance(override, StageOverride):
        raise TypeError(
            f"overrides[{name!r}] must be a StageOverride, got {type(override).__name__}"
        )
    return settings_for(base, override.mode, override.k, override.dsr, override.tau,
                        default_k=default_k, min_rate=min_rate, name=name)


def config_settings(
    mode: StageMode, k: float, dsr: tuple[float, float], tau: float, min_rate: float,
    crop: tuple[float, float] | None = None,
) -> StageSettings:
    """A stage's settings as a config describes them (``k`` only for adaptive modes)."""
    if mode == "stride":
        return StageSettings("stride")
    return StageSettings(
        mode,
        k if mode in ADAPTIVE_MODES else None,
        dsr,
        tau if mode in POOLED_MODES else 1.0,
        min_rate if mode in _FOREGROUND else None,
        crop if mode in FIXED_CROP_MODES else None,
    )


def pool_stage(
    x: Tensor, settings: StageSettings, kernel: str, sigma: float, suppress: Tensor | None,
    guide: Tensor | None = None,
) -> RegionPoolResult:
    """Pool ``x`` by a pooled stage's ``settings`` (the operators keep their search in float32
    under autocast). ``guide`` (``Tensor[B, H, W]``, the object's mask on ``x``'s map) is needed
    by the mask modes only (:data:`MASK_MODES`)."""
    mode = settings.mode
    if mode in MASK_MODES and guide is None:
        raise ValueError(f"mode {mode!r} crops by the object's ground-truth mask: pass mask= "
                         "(Tensor[B, 1, H, W] of the input images) to the model")
    if mode == "arp":
        return adaptive_region_pool(x, settings.dsr, settings.k, kernel=kernel, sigma=sigma,
                                    suppress=suppress, tau=settings.tau)
    if mode in FIXED_CROP_MODES:
        return region_pool(x, settings.dsr, kernel=kernel, sigma=sigma, suppress=suppress,
                           tau=settings.tau, crop=settings.crop,
                           guide=guide if mode == "oracle_fixed" else None)
    if mode == "zoom":
        return zoom_region_pool(x, settings.dsr, suppress=suppress, tau=settings.tau)
    return foreground_region_pool(
        x, settings.dsr, settings.k, min_rate=check_min_rate(settings.min_rate),
        region="peak" if mode == "arpfg_peak" else "all",
        guide=guide if mode == "oracle" else None,
        kernel=kernel, sigma=sigma, suppress=suppress, tau=settings.tau,
    )


def stage_confidence(x: Tensor, settings: StageSettings, guide: Tensor | None = None) -> Tensor:
    """The confidence map a pooled stage of ``settings`` computes on ``x`` (``Tensor[B, H, W]``)."""
    if settings.mode in MASK_MODES and guide is not None:
        return guide.detach().float()
    if settings.mode == "zoom":
        return foreground_confidence(x, settings.tau)
    if settings.mode in ("arpfg", "arpfg_peak"):
        region = "peak" if settings.mode == "arpfg_peak" else "all"
        return foreground_confidence(x, settings.tau, region)
    return keypoint_confidence(x, settings.tau)


def forced_pool(
    x: Tensor, boxes: Tensor, settings: StageSettings, dsr: tuple[float, float],
    guide: Tensor | None = None,
) -> RegionPoolResult:
    """Crop the given ``boxes [B, 4]`` of ``x`` and resample them as the stage would (step 9);
    ``confidence`` is the stage's usual map, ``rates`` the boxes' extents over the map."""
    height, width = x.shape[2], x.shape[3]
    confidence = stage_confidence(x, settings, guide)
    rates = torch.stack([(boxes[:, 3] - boxes[:, 1]) / height,
                         (boxes[:, 2] - boxes[:, 0]) / width], dim=1)
    features = resample_boxes(x, boxes, output_size(height, width, dsr))
    return RegionPoolResult(features=features, confidence=confidence, boxes=boxes, rates=rates)


def check_forced(name: str, boxes: object, x: Tensor) -> Tensor:
    """``boxes`` as float32 ``[B, 4]`` inside ``x``'s map, else a ValueError/TypeError."""
    if not isinstance(boxes, Tensor):
        raise TypeError(f"boxes[{name!r}] must be a Tensor[B, 4], got {type(boxes).__name__}")
    if boxes.shape != (x.shape[0], 4):
        raise ValueError(f"boxes[{name!r}] must have shape [{x.shape[0]}, 4], "
                         f"got {tuple(boxes.shape)}")
    boxes = boxes.detach().to(device=x.device, dtype=torch.float32)
    x1, y1, x2, y2 = boxes.unbind(1)
    tol = 1e-3
    inside = ((x1 >= -tol) & (y1 >= -tol) & (x2 <= x.shape[3] + tol) & (y2 <= x.shape[2] + tol)
              & (x2 > x1) & (y2 > y1))
    if not bool(inside.all()):
        raise ValueError(f"boxes[{name!r}] must be non-empty (x1, y1, x2, y2) boxes inside the "
                         f"stage's {x.shape[2]} x {x.shape[3]} input map")
    return boxes
