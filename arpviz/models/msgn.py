"""The Multiple Scale and Granularity Network (MSGN, Figure 3 of the paper).

Layout (torchvision stage names; the paper's Conv3 is ``layer2``, Conv4 ``layer3``, Conv5
``layer4``)::

    stem (conv1, bn1, relu, maxpool) -> layer1 -> [Conv3 pool] -> layer2     (shared)
      -> branch "global":  layer3 stride 2 -> layer4 stride 2 -> GAP
      -> branch "local<i>": [Conv4 pool] -> layer3 -> layer4 stride 1 -> GAP  (i < local_branches)
    concat -> embedding (Linear, BatchNorm1d, ReLU) -> classifier (Linear)

With ``embedding_dim == 0`` the embedding is the identity and the classifier sits on the
concatenated features (a converted torchvision ImageNet ResNet: ``classifier`` is its ``fc``).

With ``local_branches == 0`` there is one branch, ``"main"``: the baseline ResNet, whose layer3
downsamples by ``config.conv4`` and whose layer4 has stride 2.

A pooled stage (RP, ARP or STN) crops and resamples the stage's input to ``round(H * dsr)`` and
runs the stage's first block at stride 1 (its 3x3 conv and its downsample 1x1 conv). A local
branch with ``conv4 == "stride"`` keeps layer3's stride 2. Local branch ``i`` searches its window
with the boxes of the RP/ARP local branches ``0..i-1`` suppressed.

Stage names (keys of :class:`MSGNExplanation` and of overrides): ``"conv3"`` and
``"conv4.<branch>"`` (``conv4.global``, ``conv4.local0``, ... or ``conv4.main``).

Forced boxes (``explain(x, boxes={stage: Tensor[B, 4]})``, for analysis): a pooled stage crops
the given boxes (in its input map's coordinates) instead of the ones it would choose, and
everything after it runs on that crop; see :meth:`MSGN.explain_from`.

Box conventions: ``RegionPoolResult.boxes`` are ``(x1, y1, x2, y2)`` pixel-edge coordinates of
the stage's input map. ``MSGNExplanation.image_boxes`` are the same boxes in input-image pixels:
a map of ``h x w`` spans its *frame* (the whole image for Conv3's input; Conv3's image box for
Conv4's input when Conv3 is pooled), so a map coordinate ``u`` becomes
``frame_x1 + u * frame_width / w`` (for a strided map the frame is the whole image, i.e. the
stage's effective stride ``W / w``). A Conv4 box therefore lies inside its Conv3 box.
"""

from __future__ import annotations

import copy
import logging
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from arpviz.models.backbones import build_backbone, remove_stride, stage_out_channels
from arpviz.models.config import MSGNConfig
from arpviz.models.stn import SpatialTransformer
from arpviz.pooling import (
    RegionPoolResult,
    adaptive_region_pool,
    keypoint_confidence,
    output_size,
    region_pool,
    resample_boxes,
)
from arpviz.validation import check_k, check_rate_pair, check_tau

__all__ = [
    "MSGN",
    "MSGNBranch",
    "MSGNExplanation",
    "StageCache",
    "StageOverride",
    "StageSettings",
    "compose_boxes",
]

logger = logging.getLogger(__name__)

StageMode = Literal["stride", "rp", "arp", "stn"]
_POOLED = ("rp", "arp")
_MIN_IMAGE_SIDE = 32


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class StageSettings:
    """How one stage downsamples: ``mode``, ARP's ``k`` (else ``None``), ``dsr`` and ``tau``.

    ``dsr`` is ``None`` for a strided stage (stride 2). ``tau`` is the confidence temperature of
    an RP/ARP stage (beyond the paper; 1 is the paper; unused by stride and STN stages).
    """

    mode: StageMode
    k: float | None = None
    dsr: tuple[float, float] | None = None
    tau: float = 1.0


@dataclass(frozen=True)
class StageOverride:
    """A change to one RP/ARP stage for :meth:`MSGN.explain` / :meth:`MSGN.explain_from`.

    Attributes:
        mode: ``"arp"`` or ``"rp"`` to switch the stage's pooling; ``None`` keeps it. Switching
            RP to ARP takes ``k`` from here or else from the config (``conv3_k``/``conv4_k``).
        k: ARP's trade-off coefficient (ARP stages only).
        dsr: target downsampling rate (a number or ``(h, w)``) in ``(0, 1]``; changes the
            stage's output size.
        tau: confidence temperature, ``C = sigmoid(tau * s)``. **Beyond the paper** (1 is the
            paper; ``None`` keeps the config's ``tau``).
    """

    mode: Literal["arp", "rp"] | None = None
    k: float | None = None
    dsr: tuple[float, float] | float | None = None
    tau: float | None = None

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in _POOLED:
            raise ValueError(f"mode must be one of {_POOLED} or None, got {self.mode!r}")
        if self.k is not None:
            object.__setattr__(self, "k", check_k(self.k))
        if self.dsr is not None:
            object.__setattr__(self, "dsr", check_rate_pair(self.dsr, "dsr"))
        if self.tau is not None:
            object.__setattr__(self, "tau", check_tau(self.tau))


def _apply_override(
    name: str, base: StageSettings, override: StageOverride, default_k: float
) -> StageSettings:
    if not isinstance(override, StageOverride):
        raise TypeError(
            f"overrides[{name!r}] must be a StageOverride, got {type(override).__name__}"
        )
    if base.mode not in _POOLED:
        raise ValueError(
            f"stage {name!r} downsamples by {base.mode!r}; overrides apply to 'rp'/'arp' stages"
        )
    mode = override.mode or base.mode
    if mode == "rp":
        if override.k is not None:
            raise ValueError(f"overrides[{name!r}]: k has no meaning for mode 'rp'")
        k = None
    else:
        k = override.k if override.k is not None else (base.k if base.k is not None else default_k)
    dsr = override.dsr if override.dsr is not None else base.dsr
    tau = override.tau if override.tau is not None else base.tau
    return StageSettings(mode=mode, k=k, dsr=dsr, tau=tau)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MSGNExplanation:
    """Everything one MSGN pass computed, for display.

    Attributes:
        image_size: ``(H, W)`` of the input images.
        settings: every stage's :class:`StageSettings` as used (overrides applied).
        stages: the :class:`RegionPoolResult` of every pooled stage (RP, ARP, STN), keyed by
            stage name (``"conv3"``, ``"conv4.local0"``, ...); boxes in that stage's input map.
        image_boxes: ``Tensor[B, 4]`` float32 per pooled stage: the boxes in input-image pixel
            coordinates ``(x1, y1, x2, y2)`` (see the module docstring).
        map_sizes: ``(h, w)`` of every stage's input map, keyed by stage name.
        branch_features: ``Tensor[B, C]`` pooled features per branch (``"global"``, ...).
        features: ``Tensor[B, num_branches * C]``, their concatenation.
        embedding: ``Tensor[B, embedding_dim]`` (``features`` itself when ``embedding_dim``
            is 0).
        logits: ``Tensor[B, num_classes]``, equal to :meth:`MSGN.forward`'s.
    """

    image_size: tuple[int, int]
    settings: Mapping[str, StageSettings]
    stages: Mapping[str, RegionPoolResult]
    image_boxes: Mapping[str, Tensor]
    map_sizes: Mapping[str, tuple[int, int]]
    branch_features: Mapping[str, Tensor]
    features: Tensor
    embedding: Tensor
    logits: Tensor


class StageCache:
    """Cached intermediate results of one image batch for :meth:`MSGN.explain_from`.

    Made by :meth:`MSGN.prepare`. Holds ``conv3_input`` (the stem + layer1 output, ``Tensor[B,
    C, H/4, W/4]`` for the ResNets) and, filled lazily, a bounded LRU of Conv3 outputs (keyed by
    Conv3's settings) and branch results (keyed by Conv3's settings and the settings of the
    branch and of the local branches before it). It assumes the model's weights and mode do not
    change while it is used; :meth:`clear` drops everything but ``conv3_input``.
    """

    def __init__(
        self, model: MSGN, image_size: tuple[int, int], conv3_input: Tensor, max_entries: int
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries!r}")
        self._model = weakref.ref(model)
        self.training = model.training
        self.image_size = image_size
        self.conv3_input = conv3_input
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, tuple[Tensor, RegionPoolResult | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every cached stage output."""
        self._entries.clear()

    def _check_owner(self, model: MSGN) -> None:
        if self._model() is not model:
            raise ValueError("this StageCache was prepared by another model")
        if model.training != self.training:
            raise ValueError("the model's train/eval mode changed since prepare(); prepare again")

    def _get(self, key: tuple) -> tuple[Tensor, RegionPoolResult | None] | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def _put(self, key: tuple, value: tuple[Tensor, RegionPoolResult | None]) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def compose_boxes(boxes: Tensor, map_size: tuple[int, int], frame: Tensor) -> Tensor:
    """Boxes of a map in the coordinates its frame lives in.

    Args:
        boxes: ``Tensor[B, 4]`` pixel-edge ``(x1, y1, x2, y2)`` in a map of ``map_size = (h, w)``.
        map_size: the map's ``(h, w)``.
        frame: ``Tensor[B, 4]``, the region ``(x1, y1, x2, y2)`` the whole map spans in the outer
            coordinates.

    Returns:
        ``Tensor[B, 4]`` float32: ``frame_x1 + x * frame_w / w`` (likewise for y).
    """
    height, width = map_size
    frame = frame.float()
    boxes = boxes.float()
    sx = (frame[:, 2] - frame[:, 0]) / width
    sy = (frame[:, 3] - frame[:, 1]) / height
    return torch.stack(
        [
            frame[:, 0] + boxes[:, 0] * sx,
            frame[:, 1] + boxes[:, 1] * sy,
            frame[:, 0] + boxes[:, 2] * sx,
            frame[:, 1] + boxes[:, 3] * sy,
        ],
        dim=1,
    )


def _check_images(x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"x must have shape [B, 3, H, W], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if min(x.shape[2], x.shape[3]) < _MIN_IMAGE_SIDE:
        raise ValueError(f"x must be at least {_MIN_IMAGE_SIDE} x {_MIN_IMAGE_SIDE} pixels, "
                         f"got {tuple(x.shape[2:])}")
    return x


def _pool(
    x: Tensor, settings: StageSettings, kernel: str, sigma: float, suppress: Tensor | None
) -> RegionPoolResult:
    """RP/ARP of ``x`` per ``settings`` (the operator keeps its search in float32 under
    autocast)."""
    if settings.mode == "arp":
        return adaptive_region_pool(x, settings.dsr, settings.k, kernel=kernel, sigma=sigma,
                                    suppress=suppress, tau=settings.tau)
    return region_pool(x, settings.dsr, kernel=kernel, sigma=sigma, suppress=suppress,
                       tau=settings.tau)


def _check_forced(name: str, boxes: object, x: Tensor) -> Tensor:
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


def _forced_pool(
    x: Tensor, boxes: Tensor, dsr: tuple[float, float], tau: float
) -> RegionPoolResult:
    """Crop the given ``boxes [B, 4]`` of ``x`` and resample them as RP/ARP would (step 8)."""
    height, width = x.shape[2], x.shape[3]
    confidence = keypoint_confidence(x, tau)
    rates = torch.stack([(boxes[:, 3] - boxes[:, 1]) / height,
                         (boxes[:, 2] - boxes[:, 0]) / width], dim=1)
    features = resample_boxes(x, boxes, output_size(height, width, dsr))
    return RegionPoolResult(features=features, confidence=confidence, boxes=boxes, rates=rates)


# ----------------------------------------------------------------------------- modules


class MSGNBranch(nn.Module):
    """One high-level extractor: Conv4 (``layer3``) with its downsampling, Conv5 (``layer4``).

    ``mode`` says how ``layer3`` downsamples; ``stn`` is the spatial transformer when ``mode ==
    "stn"`` (else ``None``). RP/ARP have no parameters and are applied by :class:`MSGN` with the
    stage's (possibly overridden) settings.
    """

    def __init__(
        self,
        layer3: nn.Sequential,
        layer4: nn.Sequential,
        mode: StageMode,
        stn: SpatialTransformer | None = None,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.stn = stn
        self.layer3 = layer3
        self.layer4 = layer4

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class MSGN(nn.Module):
    """MSGN with RP/ARP/STN downsampling (see the module docstring for the layout).

    ``forward(x: Tensor[B, 3, H, W]) -> Tensor[B, num_classes]`` (logits); images must be at
    least 32 x 32. All branch copies of ``layer3``/``layer4`` start from the same weights.
    """

    def __init__(self, config: MSGNConfig) -> None:
        super().__init__()
        if not isinstance(config, MSGNConfig):
            raise TypeError(f"config must be an MSGNConfig, got {type(config).__name__}")
        self.config = config
        base = build_backbone(config.backbone)
        self.stem = nn.Sequential(
            OrderedDict(conv1=base.conv1, bn1=base.bn1, relu=base.relu, maxpool=base.maxpool)
        )
        self.layer1 = base.layer1
        self.layer2 = remove_stride(base.layer2) if config.conv3 != "stride" else base.layer2
        conv4_channels = stage_out_channels(base.layer2)
        width = stage_out_channels(base.layer4)

        if config.local_branches == 0:
            layout = [("main", config.conv4, 2)]
        else:
            layout = [("global", "stride", 2)]
            layout += [(f"local{i}", config.conv4, 1) for i in range(config.local_branches)]
        branches: dict[str, MSGNBranch] = {}
        for name, mode, last_stride in layout:
            shared = name in ("global", "main")
            layer3 = base.layer3 if shared else copy.deepcopy(base.layer3)
            layer4 = base.layer4 if shared else copy.deepcopy(base.layer4)
            if mode != "stride":
                remove_stride(layer3)
            if last_stride == 1:
                remove_stride(layer4)
            stn = (SpatialTransformer(conv4_channels, config.dsr, bounded=config.stn_bounded)
                   if mode == "stn" else None)
            branches[name] = MSGNBranch(layer3, layer4, mode, stn)
        self.branches = nn.ModuleDict(branches)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = width * len(branches)
        if config.embedding_dim == 0:  # no embedding layer: the classifier is torchvision's fc
            self.embedding: nn.Module = nn.Identity()
            head_in = self.feature_dim
        else:
            self.embedding = nn.Sequential(
                nn.Linear(self.feature_dim, config.embedding_dim),
                nn.BatchNorm1d(config.embedding_dim),
                nn.ReLU(inplace=True),
            )
            head_in = config.embedding_dim
        self.classifier = nn.Linear(head_in, config.num_classes)

    # ------------------------------------------------------------------ settings

    @property
    def stage_names(self) -> tuple[str, ...]:
        """``("conv3", "conv4.<branch>", ...)`` in execution order."""
        return ("conv3", *(f"conv4.{name}" for name in self.branches))

    def stage_settings(
        self, overrides: Mapping[str, StageOverride] | None = None
    ) -> dict[str, StageSettings]:
        """Every stage's settings from the config, with ``overrides`` applied.

        Raises:
            ValueError: an unknown stage name, or an override of a strided/STN stage.
            TypeError: an override that is not a :class:`StageOverride`.
        """
        cfg = self.config
        settings = {"conv3": self._config_settings(cfg.conv3, cfg.conv3_k)}
        for name, branch in self.branches.items():
            settings[f"conv4.{name}"] = self._config_settings(branch.mode, cfg.conv4_k)
        if overrides:
            if not isinstance(overrides, Mapping):
                raise TypeError(f"overrides must be a mapping, got {type(overrides).__name__}")
            for name, override in overrides.items():
                if name not in settings:
                    raise ValueError(
                        f"unknown stage {name!r} in overrides; stages: {list(settings)}"
                    )
                default_k = cfg.conv3_k if name == "conv3" else cfg.conv4_k
                settings[name] = _apply_override(name, settings[name], override, default_k)
        return settings

    def _config_settings(self, mode: StageMode, k: float) -> StageSettings:
        if mode == "stride":
            return StageSettings("stride")
        tau = self.config.tau if mode in _POOLED else 1.0
        return StageSettings(mode, k if mode == "arp" else None, self.config.dsr, tau)

    # ------------------------------------------------------------------ computation

    def _conv3_input(self, x: Tensor) -> Tensor:
        return self.layer1(self.stem(x))

    def _conv3(
        self, h: Tensor, settings: StageSettings, forced: Tensor | None = None
    ) -> tuple[Tensor, RegionPoolResult | None]:
        result = None
        if forced is not None:
            result = _forced_pool(h, forced, settings.dsr, settings.tau)
        elif settings.mode != "stride":
            result = _pool(h, settings, self.config.kernel, self.config.sigma, None)
        if result is not None:
            h = result.features
        return self.layer2(h), result

    def _branch(
        self, branch: MSGNBranch, h: Tensor, settings: StageSettings, suppress: Tensor | None,
        forced: Tensor | None = None,
    ) -> tuple[Tensor, RegionPoolResult | None]:
        result = None
        if forced is not None:
            result = _forced_pool(h, forced, settings.dsr or self.config.dsr, settings.tau)
        elif settings.mode == "stn":
            result = branch.stn.forward_result(h)
        elif settings.mode != "stride":
            result = _pool(h, settings, self.config.kernel, self.config.sigma, suppress)
        if result is not None:
            h = result.features
        h = branch.layer4(branch.layer3(h))
        return torch.flatten(self.avgpool(h), 1), result

    def _execute(
        self, h1: Tensor, settings: Mapping[str, StageSettings], cache: StageCache | None,
        forced: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, RegionPoolResult | None, dict[str, tuple[Tensor, RegionPoolResult | None]]]:
        """Conv3 and every branch; returns ``(conv4 input, conv3 result, branch outputs)``.

        ``forced`` maps stage names to boxes those stages crop instead of their own; a forced
        stage and everything that depends on it bypass ``cache``.
        """
        forced = forced or {}
        c3 = settings["conv3"]
        key: tuple = ("conv3", c3)
        conv3_forced = "conv3" in forced
        use_cache = cache is not None and not conv3_forced
        entry = cache._get(key) if use_cache else None
        if entry is None:
            forced_boxes = _check_forced("conv3", forced["conv3"], h1) if conv3_forced else None
            entry = self._conv3(h1, c3, forced_boxes)
            if use_cache:
                logger.debug("computed conv3 with %s", c3)
                cache._put(key, entry)
        h2, conv3_result = entry
        chain_forced = conv3_forced  # a forced stage upstream: results differ from the cache's

        outputs: dict[str, tuple[Tensor, RegionPoolResult | None]] = {}
        chain: list[StageSettings] = []  # settings of the local branches so far
        previous: list[Tensor] = []  # their RP/ARP boxes, for suppression
        for name, branch in self.branches.items():
            s = settings[f"conv4.{name}"]
            local = name.startswith("local")
            if local:
                chain.append(s)
                key = (name, c3, tuple(chain))
            else:
                key = (name, c3, s)
            stage_forced = forced.get(f"conv4.{name}")
            use_cache = cache is not None and stage_forced is None and not (
                chain_forced and (local or conv3_forced))
            entry = cache._get(key) if use_cache else None
            if entry is None:
                suppress = None
                if local and previous and s.mode in _POOLED:
                    suppress = torch.stack(previous, dim=1)  # [B, N, 4]
                if stage_forced is not None:
                    stage_forced = _check_forced(f"conv4.{name}", stage_forced, h2)
                entry = self._branch(branch, h2, s, suppress, stage_forced)
                if use_cache:
                    logger.debug("computed conv4.%s with %s", name, s)
                    cache._put(key, entry)
            if stage_forced is not None and local:
                chain_forced = True
            outputs[name] = entry
            if local and s.mode in _POOLED:
                previous.append(entry[1].boxes)
        return h2, conv3_result, outputs

    def forward_features(self, x: Tensor) -> Tensor:
        """``Tensor[B, 3, H, W] -> Tensor[B, num_branches * C]``: concatenated GAP features."""
        x = _check_images(x)
        _, _, outputs = self._execute(self._conv3_input(x), self.stage_settings(), None)
        return torch.cat([feature for feature, _ in outputs.values()], dim=1)

    def forward_head(self, features: Tensor) -> Tensor:
        """``Tensor[B, num_branches * C] -> Tensor[B, num_classes]`` (embedding, classifier)."""
        return self.classifier(self.embedding(features))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    # ------------------------------------------------------------------ explanation

    def prepare(self, x: Tensor, *, max_entries: int = 16) -> StageCache:
        """Run the stem and layer1 once and return a :class:`StageCache` for ``explain_from``.

        ``max_entries`` bounds the cached Conv3 outputs and branch results (LRU).
        """
        x = _check_images(x)
        size = (x.shape[2], x.shape[3])
        return StageCache(self, size, self._conv3_input(x), max_entries)

    def explain_from(
        self, cache: StageCache, overrides: Mapping[str, StageOverride] | None = None,
        *, boxes: Mapping[str, Tensor] | None = None,
    ) -> MSGNExplanation:
        """Explain from cached stages, recomputing only stages at or after the first change.

        A Conv3 result is reused when Conv3's settings are unchanged; a branch's when Conv3's,
        its own and (for local branches) the earlier local branches' settings are unchanged.
        The embedding and classifier always run.

        ``boxes`` (for analysis: what if the stage had cropped elsewhere?) maps pooled stage
        names (RP, ARP or STN) to ``Tensor[B, 4]`` boxes ``(x1, y1, x2, y2)`` in that stage's
        input map (as :attr:`RegionPoolResult.boxes`); the stage crops and resamples them to its
        usual output size instead of choosing its own (its ``rates`` are then the boxes' extents
        over the map, its ``confidence`` the usual map). Stages that depend on a forced stage are
        recomputed, never taken from or put in the cache.

        Raises:
            ValueError: a box stage that is unknown, strided, or boxes of the wrong shape or
                outside the map.
        """
        if not isinstance(cache, StageCache):
            raise TypeError(f"cache must be a StageCache, got {type(cache).__name__}")
        cache._check_owner(self)
        settings = self.stage_settings(overrides)
        if boxes:
            if not isinstance(boxes, Mapping):
                raise TypeError(f"boxes must be a mapping, got {type(boxes).__name__}")
            for name in boxes:
                if name not in settings or settings[name].mode == "stride":
                    pooled = [n for n, st in settings.items() if st.mode != "stride"]
                    raise ValueError(f"boxes: stage {name!r} is not a pooled stage of this "
                                     f"model; pooled stages: {pooled}")
        h1 = cache.conv3_input
        h2, conv3_result, outputs = self._execute(h1, settings, cache, boxes)

        height, width = cache.image_size
        batch = h1.shape[0]
        image = torch.tensor([0.0, 0.0, width, height], device=h1.device).expand(batch, 4)
        map_sizes = {"conv3": (h1.shape[2], h1.shape[3])}
        stages: dict[str, RegionPoolResult] = {}
        image_boxes: dict[str, Tensor] = {}
        frame = image  # what the Conv4 input map spans in the image
        if conv3_result is not None:
            stages["conv3"] = conv3_result
            frame = compose_boxes(conv3_result.boxes, map_sizes["conv3"], image)
            image_boxes["conv3"] = frame
        conv4_size = (h2.shape[2], h2.shape[3])
        for name, (_, result) in outputs.items():
            stage = f"conv4.{name}"
            map_sizes[stage] = conv4_size
            if result is not None:
                stages[stage] = result
                image_boxes[stage] = compose_boxes(result.boxes, conv4_size, frame)

        branch_features = {name: feature for name, (feature, _) in outputs.items()}
        features = torch.cat(list(branch_features.values()), dim=1)
        embedding = self.embedding(features)
        logits = self.classifier(embedding)
        return MSGNExplanation(
            image_size=(height, width),
            settings=settings,
            stages=stages,
            image_boxes=image_boxes,
            map_sizes=map_sizes,
            branch_features=branch_features,
            features=features,
            embedding=embedding,
            logits=logits,
        )

    def explain(
        self, x: Tensor, overrides: Mapping[str, StageOverride] | None = None,
        *, boxes: Mapping[str, Tensor] | None = None,
    ) -> MSGNExplanation:
        """Run MSGN on ``x: Tensor[B, 3, H, W]`` and return every stage's result.

        ``overrides`` maps stage names to :class:`StageOverride`; ``boxes`` forces stages' crop
        boxes (see :meth:`explain_from`). Equivalent to ``explain_from(prepare(x), overrides,
        boxes=boxes)``. Gradient mode is the caller's (wrap in ``torch.no_grad()`` for display).
        """
        return self.explain_from(self.prepare(x), overrides, boxes=boxes)
