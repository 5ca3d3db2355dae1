"""What an MSGN pass gives back and keeps: the explanation, the stage cache, box composition.

Box conventions: ``RegionPoolResult.boxes`` are ``(x1, y1, x2, y2)`` pixel-edge coordinates of
the stage's input map. ``MSGNExplanation.image_boxes`` are the same boxes in input-image pixels:
a map of ``h x w`` spans its *frame* (the whole image for Conv3's input; Conv3's image box for
Conv4's input when Conv3 is pooled), so a map coordinate ``u`` becomes
``frame_x1 + u * frame_width / w`` (for a strided map the frame is the whole image, i.e. the
stage's effective stride ``W / w``). A Conv4 box therefore lies inside its Conv3 box.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

from arpviz.models.stages import StageSettings
from arpviz.pooling import RegionPoolResult

__all__ = ["MSGNExplanation", "StageCache", "check_mask", "compose_boxes", "mask_on_map"]


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
    C, H/4, W/4]`` for the ResNets), ``mask`` (the objects' masks ``Tensor[B, 1, H, W]`` in
    [0, 1] when given, for the oracle mode and the ideal-map analysis) and, filled lazily, a
    bounded LRU of Conv3 outputs (keyed by Conv3's settings) and branch results (keyed by
    Conv3's settings and the settings of the branch and of the local branches before it):
    :meth:`get` and :meth:`put`, the least recently used entry dropped past ``max_entries``.
    It assumes the model's weights and mode do not change while it is used
    (:meth:`check_owner`); :meth:`clear` drops everything but ``conv3_input`` and ``mask``.
    """

    def __init__(
        self, model: nn.Module, image_size: tuple[int, int], conv3_input: Tensor,
        max_entries: int, mask: Tensor | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries!r}")
        self._model = weakref.ref(model)
        self.training = model.training
        self.image_size = image_size
        self.conv3_input = conv3_input
        self.mask = mask
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, tuple[Tensor, RegionPoolResult | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every cached stage output."""
        self._entries.clear()

    def check_owner(self, model: nn.Module) -> None:
        """Raise ``ValueError`` unless ``model`` prepared this cache and is still in the same
        train/eval mode."""
        if self._model() is not model:
            raise ValueError("this StageCache was prepared by another model")
        if model.training != self.training:
            raise ValueError("the model's train/eval mode changed since prepare(); prepare again")

    def get(self, key: tuple) -> tuple[Tensor, RegionPoolResult | None] | None:
        """The entry kept under ``key`` (now the most recently used), or ``None``."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple, value: tuple[Tensor, RegionPoolResult | None]) -> None:
        """Keep ``value`` under ``key`` as the most recently used entry; past ``max_entries``
        the least recently used one goes."""
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


def check_mask(mask: object, images: Tensor) -> Tensor | None:
    """``mask`` as float32 ``[B, 1, H, W]`` in [0, 1] matching ``images`` ``[B, 3, H, W]``.

    Accepts ``None``, ``[B, H, W]`` or ``[B, 1, H, W]``, any real dtype (``uint8`` is read as
    0..255); otherwise a ``TypeError``/``ValueError`` naming ``mask``.
    """
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a Tensor[B, 1, H, W] or None, got {type(mask).__name__}")
    if mask.dim() == 3:
        mask = mask[:, None]
    expected = (images.shape[0], 1, images.shape[2], images.shape[3])
    if tuple(mask.shape) != expected:
        raise ValueError(f"mask must have shape {list(expected)} (one mask per image), "
                         f"got {tuple(mask.shape)}")
    if mask.dtype == torch.bool or mask.is_complex():
        mask = mask.float()
    scale = 255.0 if mask.dtype == torch.uint8 else 1.0
    return (mask.to(device=images.device, dtype=torch.float32) / scale).clamp(0.0, 1.0)


def mask_on_map(mask: Tensor, frame: Tensor, map_size: tuple[int, int]) -> Tensor:
    """The share of every cell of a map that the object covers.

    Args:
        mask: ``Tensor[B, 1, H, W]`` in [0, 1], the objects' masks in input-image pixels.
        frame: ``Tensor[B, 4]``, the region ``(x1, y1, x2, y2)`` (pixel edges of the image) that
            the map spans (the whole image, or Conv3's crop box for a Conv4 input).
        map_size: the map's ``(h, w)``.

    Returns:
        ``Tensor[B, h, w]`` float32: ``roi_align`` of the mask over the frame with adaptive
        sampling (``ceil(frame side / map side)`` samples a bin and axis, averaged): the area
        the object covers in each cell, as the features of that cell see it.
    """
    rois = torch.cat([torch.arange(mask.shape[0], device=mask.device, dtype=torch.float32)[:, None],
                      frame.to(device=mask.device, dtype=torch.float32)], dim=1)
    out = roi_align(mask.float(), rois, output_size=map_size, spatial_scale=1.0,
                    sampling_ratio=-1, aligned=True)
    return out[:, 0]
