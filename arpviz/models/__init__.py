"""MSGN models built on RP/ARP: configuration, network, spatial transformer, weights, FLOPs."""

from arpviz.models.backbones import TinyResNet, build_backbone, remove_stride
from arpviz.models.config import (
    BACKBONES,
    CONV3_MODES,
    CONV4_MODES,
    LOCAL_BRANCHES,
    MSGNConfig,
)
from arpviz.models.explanation import (
    MSGNExplanation,
    StageCache,
    check_mask,
    compose_boxes,
    mask_on_map,
)
from arpviz.models.flops import count_flops, count_parameters
from arpviz.models.msgn import MSGN, MSGNBranch
from arpviz.models.pretrained import (
    cached_weights_path,
    from_torchvision,
    load_backbone_state_dict,
)
from arpviz.models.stages import (
    ADAPTIVE_MODES,
    POOLED_MODES,
    STAGE_MODES,
    STEERABLE_MODES,
    StageOverride,
    StageSettings,
    mode_label,
)
from arpviz.models.stn import SpatialTransformer, affine_boxes, spatial_transform

__all__ = [
    "ADAPTIVE_MODES",
    "BACKBONES",
    "CONV3_MODES",
    "CONV4_MODES",
    "LOCAL_BRANCHES",
    "MSGN",
    "MSGNBranch",
    "MSGNConfig",
    "MSGNExplanation",
    "POOLED_MODES",
    "STAGE_MODES",
    "STEERABLE_MODES",
    "SpatialTransformer",
    "StageCache",
    "StageOverride",
    "StageSettings",
    "TinyResNet",
    "affine_boxes",
    "build_backbone",
    "cached_weights_path",
    "check_mask",
    "compose_boxes",
    "count_flops",
    "count_parameters",
    "from_torchvision",
    "load_backbone_state_dict",
    "mask_on_map",
    "mode_label",
    "remove_stride",
    "spatial_transform",
]
