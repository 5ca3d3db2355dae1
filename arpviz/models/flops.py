"""FLOP and parameter counts.

FLOPs are what :class:`torch.utils.flop_counter.FlopCounterMode` counts: 2 x multiply-adds of
convolutions, matrix products and the like (RP/ARP's ``roi_align`` and element-wise ops are not
counted; they are negligible next to the convolutions).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "count_parameters"]


def count_flops(model: nn.Module, input_size: int | tuple[int, int], *, batch_size: int = 1) -> int:
    """FLOPs of one eval-mode forward of ``model`` on ``[batch_size, 3, H, W]`` zeros.

    ``input_size`` is ``H`` (square) or ``(H, W)``. The input is made on the device and with the
    dtype of the model's first parameter; a model on ``torch.device("meta")`` works (no memory,
    no compute). The model's train/eval mode is restored afterwards.
    """
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        height = width = input_size
    elif (
        isinstance(input_size, (tuple, list))
        and len(input_size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in input_size)
    ):
        height, width = input_size
    else:
        raise TypeError(f"input_size must be an int or a pair of ints, got {input_size!r}")
    if height < 1 or width < 1 or batch_size < 1:
        raise ValueError(f"input_size and batch_size must be >= 1, got {input_size!r}, "
                         f"{batch_size!r}")
    param = next(model.parameters())
    x = torch.zeros(batch_size, 3, height, width, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())
