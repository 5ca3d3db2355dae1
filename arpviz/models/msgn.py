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

A pooled stage (RP, ARP, ARP-FG, oracle or STN; :mod:`arpviz.models.stages`) crops and resamples
the stage's input to ``round(H * dsr)`` and runs the stage's first block at stride 1 (its 3x3 conv
and its downsample 1x1 conv). A local branch with ``conv4 == "stride"`` keeps layer3's stride 2.
Local branch ``i`` searches its window with the boxes of the pooled local branches ``0..i-1``
suppressed.

Masks (``forward(x, mask=...)``, ``prepare(x, mask=...)``): the objects' ground-truth masks in
image pixels, needed only by a stage in the ``"oracle"`` mode, which crops by the mask's share of
every cell of its input map (:func:`~arpviz.models.explanation.mask_on_map` over the map's frame)
instead of the features' confidence.

Stage names (keys of :class:`MSGNExplanation` and of overrides): ``"conv3"`` and
``"conv4.<branch>"`` (``conv4.global``, ``conv4.local0``, ... or ``conv4.main``).

Forced boxes (``explain(x, boxes={stage: Tensor[B, 4]})``, for analysis): a pooled stage crops
the given boxes (in its input map's coordinates) instead of the ones it would choose, and
everything after it runs on that crop; see :meth:`MSGN.explain_from`.

Box conventions: see :mod:`arpviz.models.explanation` (boxes in a stage's input map, and in
image pixels through the map's frame).
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from arpviz.models.backbones import build_backbone, remove_stride, stage_out_channels
from arpviz.models.config import MSGNConfig
from arpviz.models.explanation import (
    MSGNExplanation,
    StageCache,
    check_mask,
    compose_boxes,
    mask_on_map,
)
from arpviz.models.stages import (
    MASK_MODES,
    POOLED_MODES,
    StageMode,
    StageOverride,
    StageSettings,
    apply_override,
    check_forced,
    config_settings,
    forced_pool,
    pool_stage,
)
from arpviz.models.stn import SpatialTransformer
from arpviz.pooling import RegionPoolResult

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

_MIN_IMAGE_SIDE = 32


def _image_frame(mask: Tensor) -> Tensor:
    """``Tensor[B, 4]``: the whole image ``(0, 0, W, H)`` of masks ``[B, 1, H, W]``."""
    return mask.new_tensor([0.0, 0.0, mask.shape[3], mask.shape[2]]).expand(mask.shape[0], 4)


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
        settings = {"conv3": config_settings(cfg.conv3, cfg.conv3_k, cfg.dsr, cfg.tau,
                                             cfg.min_rate)}
        for name, branch in self.branches.items():
            settings[f"conv4.{name}"] = config_settings(
                branch.mode, cfg.conv4_k, cfg.dsr, cfg.tau, cfg.min_rate, cfg.conv4_crop)
        if overrides:
            if not isinstance(overrides, Mapping):
                raise TypeError(f"overrides must be a mapping, got {type(overrides).__name__}")
            for name, override in overrides.items():
                if name not in settings:
                    raise ValueError(
                        f"unknown stage {name!r} in overrides; stages: {list(settings)}"
                    )
                default_k = cfg.conv3_k if name == "conv3" else cfg.conv4_k
                settings[name] = apply_override(name, settings[name], override, default_k,
                                                cfg.min_rate)
        return settings

    # ------------------------------------------------------------------ computation

    def _conv3_input(self, x: Tensor) -> Tensor:
        return self.layer1(self.stem(x))

    def _conv3(
        self, h: Tensor, settings: StageSettings, forced: Tensor | None = None,
        guide: Tensor | None = None,
    ) -> tuple[Tensor, RegionPoolResult | None]:
        result = None
        if forced is not None:
            result = forced_pool(h, forced, settings, settings.dsr, guide)
        elif settings.mode != "stride":
            result = pool_stage(h, settings, self.config.kernel, self.config.sigma, None, guide)
        if result is not None:
            h = result.features
        return self.layer2(h), result

    def _branch(
        self, branch: MSGNBranch, h: Tensor, settings: StageSettings, suppress: Tensor | None,
        forced: Tensor | None = None, guide: Tensor | None = None,
    ) -> tuple[Tensor, RegionPoolResult | None]:
        result = None
        if forced is not None:
            result = forced_pool(h, forced, settings, settings.dsr or self.config.dsr, guide)
        elif settings.mode == "stn":
            result = branch.stn.forward_result(h)
        elif settings.mode != "stride":
            result = pool_stage(h, settings, self.config.kernel, self.config.sigma, suppress,
                                guide)
        if result is not None:
            h = result.features
        h = branch.layer4(branch.layer3(h))
        return torch.flatten(self.avgpool(h), 1), result

    @staticmethod
    def _guide(
        mask: Tensor | None, settings: StageSettings, frame: Tensor | None, h: Tensor
    ) -> Tensor | None:
        """The mask on ``h``'s map for an oracle stage (``frame``: what the map spans in the
        image, ``None`` for the whole image), else ``None``."""
        if mask is None or settings.mode not in MASK_MODES:
            return None
        if frame is None:
            frame = _image_frame(mask)
        return mask_on_map(mask, frame, (h.shape[2], h.shape[3]))

    def _execute(
        self, h1: Tensor, settings: Mapping[str, StageSettings], cache: StageCache | None,
        forced: Mapping[str, Tensor] | None = None, mask: Tensor | None = None,
    ) -> tuple[Tensor, RegionPoolResult | None, dict[str, tuple[Tensor, RegionPoolResult | None]]]:
        """Conv3 and every branch; returns ``(conv4 input, conv3 result, branch outputs)``.

        ``forced`` maps stage names to boxes those stages crop instead of their own; a forced
        stage and everything that depends on it bypass ``cache``. ``mask`` (``[B, 1, H, W]``)
        feeds the oracle stages.
        """
        forced = forced or {}
        c3 = settings["conv3"]
        key: tuple = ("conv3", c3)
        conv3_forced = "conv3" in forced
        use_cache = cache is not None and not conv3_forced
        entry = cache.get(key) if use_cache else None
        if entry is None:
            forced_boxes = check_forced("conv3", forced["conv3"], h1) if conv3_forced else None
            entry = self._conv3(h1, c3, forced_boxes, self._guide(mask, c3, None, h1))
            if use_cache:
                logger.debug("computed conv3 with %s", c3)
                cache.put(key, entry)
        h2, conv3_result = entry
        chain_forced = conv3_forced  # a forced stage upstream: results differ from the cache's
        frame = None  # what the Conv4 input spans in the image (None: all of it)
        if mask is not None and conv3_result is not None:
            frame = compose_boxes(conv3_result.boxes, (h1.shape[2], h1.shape[3]),
                                  _image_frame(mask))

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
            entry = cache.get(key) if use_cache else None
            if entry is None:
                suppress = None
                if local and previous and s.mode in POOLED_MODES:
                    suppress = torch.stack(previous, dim=1)  # [B, N, 4]
                if stage_forced is not None:
                    stage_forced = check_forced(f"conv4.{name}", stage_forced, h2)
                entry = self._branch(branch, h2, s, suppress, stage_forced,
                                     self._guide(mask, s, frame, h2))
                if use_cache:
                    logger.debug("computed conv4.%s with %s", name, s)
                    cache.put(key, entry)
            if stage_forced is not None and local:
                chain_forced = True
            outputs[name] = entry
            if local and s.mode in POOLED_MODES:
                previous.append(entry[1].boxes)
        return h2, conv3_result, outputs

    def forward_features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``Tensor[B, 3, H, W] -> Tensor[B, num_branches * C]``: concatenated GAP features.

        ``mask`` (``Tensor[B, 1, H, W]`` or ``[B, H, W]`` in [0, 1], or uint8) is the objects'
        ground-truth masks, needed only by ``"oracle"`` stages.
        """
        x = _check_images(x)
        _, _, outputs = self._execute(self._conv3_input(x), self.stage_settings(), None,
                                      mask=check_mask(mask, x))
        return torch.cat([feature for feature, _ in outputs.values()], dim=1)

    def forward_head(self, features: Tensor) -> Tensor:
        """``Tensor[B, num_branches * C] -> Tensor[B, num_classes]`` (embedding, classifier)."""
        return self.classifier(self.embedding(features))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(x, mask))

    @property
    def needs_mask(self) -> bool:
        """Whether a stage crops by the object's mask (:data:`~arpviz.models.stages.MASK_MODES`)."""
        return any(s.mode in MASK_MODES for s in self.stage_settings().values())

    # ------------------------------------------------------------------ explanation

    def prepare(
        self, x: Tensor, *, max_entries: int = 16, mask: Tensor | None = None
    ) -> StageCache:
        """Run the stem and layer1 once and return a :class:`StageCache` for ``explain_from``.

        ``max_entries`` bounds the cached Conv3 outputs and branch results (LRU); ``mask``
        (as in :meth:`forward_features`) is kept for the oracle stages.
        """
        x = _check_images(x)
        size = (x.shape[2], x.shape[3])
        return StageCache(self, size, self._conv3_input(x), max_entries, check_mask(mask, x))

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
        cache.check_owner(self)
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
        h2, conv3_result, outputs = self._execute(h1, settings, cache, boxes, cache.mask)

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
        *, boxes: Mapping[str, Tensor] | None = None, mask: Tensor | None = None,
    ) -> MSGNExplanation:
        """Run MSGN on ``x: Tensor[B, 3, H, W]`` and return every stage's result.

        ``overrides`` maps stage names to :class:`StageOverride`; ``boxes`` forces stages' crop
        boxes (see :meth:`explain_from`); ``mask`` feeds oracle stages. Equivalent to
        ``explain_from(prepare(x, mask=mask), overrides, boxes=boxes)``. Gradient mode is the
        caller's (wrap in ``torch.no_grad()`` for display).
        """
        return self.explain_from(self.prepare(x, mask=mask), overrides, boxes=boxes)
