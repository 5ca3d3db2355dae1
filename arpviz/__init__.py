"""arpviz: see and steer Adaptive Region Pooling (ARP) and the MSGN network built on it."""

from arpviz.pooling import (
    AdaptiveRegionPool,
    RegionPool,
    RegionPoolResult,
    adaptive_region_pool,
    keypoint_confidence,
    region_pool,
)

__all__ = [
    "AdaptiveRegionPool",
    "RegionPool",
    "RegionPoolResult",
    "adaptive_region_pool",
    "keypoint_confidence",
    "region_pool",
]
__version__ = "0.3.0"
