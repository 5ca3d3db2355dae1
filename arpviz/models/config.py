"""The configuration of an MSGN model: a frozen dataclass that round-trips through JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from arpviz.foreground import DEFAULT_MIN_RATE, check_min_rate
from arpviz.models.stages import FIXED_CROP_MODES, PAPER_K
from arpviz.validation import check_k, check_kernel, check_rate_pair, check_tau

__all__ = [
    "BACKBONES",
    "CONV3_MODES",
    "CONV4_MODES",
    "LOCAL_BRANCHES",
    "MSGNConfig",
    "default_embedding_dim",
]

Backbone = Literal["resnet50", "resnet101", "resnext101_32x8d", "tiny", "resnet18", "resnet34"]
Conv3Mode = Literal["stride", "rp", "arp", "arpfg", "arpfg_peak", "zoom"]
Conv4Mode = Literal["stride", "rp", "arp", "arpfg", "arpfg_peak", "zoom", "oracle",
                    "oracle_fixed", "stn"]

BACKBONES: tuple[str, ...] = (
    "resnet50", "resnet101", "resnext101_32x8d", "tiny", "resnet18", "resnet34"
)
CONV3_MODES: tuple[str, ...] = ("stride", "rp", "arp", "arpfg", "arpfg_peak", "zoom")
CONV4_MODES: tuple[str, ...] = ("stride", "rp", "arp", "arpfg", "arpfg_peak", "zoom", "oracle",
                                "oracle_fixed", "stn")
LOCAL_BRANCHES: tuple[int, ...] = (0, 1, 2, 4)


def default_embedding_dim(backbone: str) -> int:
    """512 for the ResNets, 128 for ``tiny``."""
    return 128 if backbone == "tiny" else 512


def _check_choice(name: str, value: object, choices: tuple[Any, ...]) -> None:
    if value not in choices or isinstance(value, bool):
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")


def _check_named_k(name: str, value: object) -> float:
    try:
        return check_k(value)
    except (TypeError, ValueError) as error:  # re-raise naming the field, not just "k"
        raise type(error)(f"{name}: {error}") from None


@dataclass(frozen=True)
class MSGNConfig:
    """What an :class:`~arpviz.models.MSGN` is built from.

    Attributes:
        backbone: ``"resnet50"``, ``"resnet101"``, ``"resnext101_32x8d"``, ``"tiny"`` (a
            narrow ResNet of torchvision ``BasicBlock``s, widths 32-64-128-256, one block per
            stage, for CPU training at 128 px), or the ``BasicBlock`` ResNets ``"resnet18"`` and
            ``"resnet34"`` (for ImageNet conversion, :mod:`arpviz.convert`).
        num_classes: classifier outputs, ``>= 1``.
        local_branches: 0 (the baseline: one branch, no global/local split), 1, 2 or 4.
        conv3: downsampling of the shared Conv3 (``layer2``): ``"stride"``, ``"rp"``, ``"arp"``,
            or, beyond the paper, ARP-FG's ``"arpfg"`` / ``"arpfg_peak"``
            (:mod:`arpviz.foreground`) and the learnt zoom ``"zoom"`` (:mod:`arpviz.zoom`).
        conv3_k: ``k`` of an adaptive Conv3 (paper: 1.0).
        conv4: downsampling of Conv4 (``layer3``) of every local branch, or of the single
            branch when ``local_branches == 0``: ``"stride"``, ``"rp"``, ``"arp"``,
            ``"arpfg"``, ``"arpfg_peak"``, ``"zoom"``, ``"oracle"`` (ARP-FG on the object's
            ground-truth mask; the model then needs masks), ``"oracle_fixed"`` (a fixed crop of
            ``conv4_crop`` placed by the mask; needs masks too) or ``"stn"`` (see
            :mod:`arpviz.models.stages`).
        conv4_k: ``k`` of an adaptive Conv4 (default 0.7, the paper's choice with one local
            branch; the paper uses 0.5 with 2 or 4 local branches, and 0.9 for "baseline w/
            ARP").
        dsr: ``(dsr_h, dsr_w)`` of every RP/ARP/STN stage, in ``(0, 1]``.
        embedding_dim: width of the embedding layer; ``None`` picks 512 (ResNets) or 128
            (``tiny``) and is stored resolved; ``0`` means no embedding layer: the classifier
            sits straight on the pooled features, as torchvision's ``fc`` does (a converted
            ImageNet network, :mod:`arpviz.convert`).
        kernel: window weighting of the region search, ``"gaussian"`` or ``"box"``.
        sigma: the Gaussian's standard deviation as a fraction of the window side.
        stn_bounded: with ``conv4="stn"``, keep the spatial transformer's box inside the map and
            its scale in ``[dsr, 1]`` (:class:`~arpviz.models.stn.SpatialTransformer`'s
            ``bounded``); ``False`` is the unconstrained affine of Section 4.3.
        tau: confidence temperature of every RP/ARP stage, ``C = sigmoid(tau * s)``
            (:func:`arpviz.pooling.keypoint_confidence`). **Beyond the paper**: ``1.0`` is the
            paper and the default; :meth:`to_dict` omits it at 1.0 (absent means 1.0).
        min_rate: the lower rate bound of the ARP-FG and oracle stages (beyond the paper;
            default 0.125; below the DSR the crop is zoomed); :meth:`to_dict` writes it only
            for a config with such a stage.
        conv4_crop: with ``conv4="rp"`` or ``"oracle_fixed"``, the crop's rate when it differs
            from the DSR, one number or ``(h, w)`` (the fixed-size controls: a 0.7 crop
            resampled to the DSR's output, as ARP's crop at ``k = 0.7``; a mask-placed crop of
            the oracle's mean size); ``None`` (the default, omitted by :meth:`to_dict`) is the
            DSR. Stored as ``(h, w)``; :meth:`to_dict` writes one number when both are equal.

    Invalid values raise ``TypeError`` or ``ValueError`` naming the field.
    """

    backbone: Backbone = "resnet50"
    num_classes: int = 200
    local_branches: int = 1
    conv3: Conv3Mode = "arp"
    conv3_k: float = PAPER_K["conv3"]
    conv4: Conv4Mode = "arp"
    conv4_k: float = PAPER_K["conv4"]
    dsr: tuple[float, float] = (0.5, 0.5)
    embedding_dim: int | None = None
    kernel: Literal["gaussian", "box"] = "gaussian"
    sigma: float = 0.25
    stn_bounded: bool = False
    tau: float = 1.0
    min_rate: float = DEFAULT_MIN_RATE
    conv4_crop: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _check_choice("backbone", self.backbone, BACKBONES)
        _check_positive_int("num_classes", self.num_classes)
        if not isinstance(self.local_branches, int) or isinstance(self.local_branches, bool):
            raise TypeError(f"local_branches must be an int, got {self.local_branches!r}")
        _check_choice("local_branches", self.local_branches, LOCAL_BRANCHES)
        _check_choice("conv3", self.conv3, CONV3_MODES)
        _check_choice("conv4", self.conv4, CONV4_MODES)
        object.__setattr__(self, "conv3_k", _check_named_k("conv3_k", self.conv3_k))
        object.__setattr__(self, "conv4_k", _check_named_k("conv4_k", self.conv4_k))
        object.__setattr__(self, "dsr", check_rate_pair(self.dsr, "dsr"))
        if self.embedding_dim is None:
            object.__setattr__(self, "embedding_dim", default_embedding_dim(self.backbone))
        if not (type(self.embedding_dim) is int and self.embedding_dim == 0):  # 0: none
            _check_positive_int("embedding_dim", self.embedding_dim)
        object.__setattr__(self, "sigma", check_kernel(self.kernel, self.sigma))
        if not isinstance(self.stn_bounded, bool):
            raise TypeError(f"stn_bounded must be a bool, got {self.stn_bounded!r}")
        if self.stn_bounded and self.conv4 != "stn":
            raise ValueError(f"stn_bounded needs conv4='stn', got conv4={self.conv4!r}")
        object.__setattr__(self, "tau", check_tau(self.tau))  # the message names tau
        object.__setattr__(self, "min_rate", check_min_rate(self.min_rate))
        if self.conv4_crop is not None:
            object.__setattr__(self, "conv4_crop", check_rate_pair(self.conv4_crop, "conv4_crop"))
            if self.conv4 not in FIXED_CROP_MODES:
                raise ValueError(f"conv4_crop needs conv4 in {FIXED_CROP_MODES}, "
                                 f"got conv4={self.conv4!r}")

    @property
    def num_branches(self) -> int:
        """Branches after Conv3: 1 for the baseline, else ``1 + local_branches``."""
        return 1 if self.local_branches == 0 else 1 + self.local_branches

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (``dsr`` as a list); :meth:`from_dict` inverts it."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["dsr"] = list(self.dsr)
        if not self.stn_bounded:  # absent means False: files stay readable by older arpviz
            del out["stn_bounded"]
        if self.tau == 1.0:  # the paper's confidence; absent means 1.0 (older files)
            del out["tau"]
        if not {self.conv3, self.conv4} & {"arpfg", "arpfg_peak", "oracle"}:
            del out["min_rate"]  # unused: files stay readable by older arpviz
        if self.conv4_crop is None:
            del out["conv4_crop"]
        else:  # one number when square (as older files wrote it)
            h, w = self.conv4_crop
            out["conv4_crop"] = h if h == w else [h, w]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MSGNConfig:
        """Build from :meth:`to_dict`'s output; missing fields take their defaults.

        Raises:
            TypeError: ``data`` is not a mapping, or a field has the wrong type.
            ValueError: an unknown field, or a field with a wrong value (named in the message).
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"MSGNConfig.from_dict needs a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MSGNConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MSGNConfig:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))
