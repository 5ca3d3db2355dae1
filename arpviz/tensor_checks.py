"""What the pooling operators share before any arithmetic (:mod:`arpviz.pooling`,
:mod:`arpviz.resample`, :mod:`arpviz.foreground`, :mod:`arpviz.zoom`).

- the checks of their tensor arguments (the feature map ``x``, a confidence or ``guide`` map,
  rates and boxes, the ``suppress`` boxes, plain numbers), each error naming the argument; the
  exported steps call them once and then private bodies that trust their arguments;
- :func:`_no_autocast`, which keeps the operators' sums and matrix products in float32 whatever
  autocast the caller runs under.

The names are private to the operator's modules, which import them from here.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import torch
from torch import Tensor

P = ParamSpec("P")
R = TypeVar("R")


def _check_input(x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must be 4-D [B, C, H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[1] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"x must have non-empty C, H and W, got shape {tuple(x.shape)}")
    return x


def _check_finite_map(confidence: Tensor) -> None:
    """A ``ValueError`` naming ``x`` when a confidence map computed from it is not finite: ``x``
    held NaN or inf, or values too large to standardise in float32 (either spreads to the
    sample's whole map). Checked on the CPU only, where it costs no device synchronisation
    (and not while ``torch.compile`` traces); on CUDA such a sample passes through, its
    confidence NaN and its features not finite (docs/method.md)."""
    if confidence.device.type != "cpu" or torch.compiler.is_compiling():
        return
    bad = ~torch.isfinite(confidence.flatten(1)).all(dim=1)
    if bool(bad.any()):
        samples = bad.nonzero().flatten().tolist()
        raise ValueError(f"x holds NaN or inf values, or values too large to standardise in "
                         f"float32, in sample(s) {samples[:8]}: its keypoint confidence is not "
                         f"finite")


def _empty_result(x: Tensor, out_size: tuple[int, int]) -> tuple[Tensor, ...]:
    """``(features, confidence, boxes, rates)`` of an empty batch ``x`` ``[0, C, H, W]``."""
    batch, channels, height, width = x.shape
    # a slice of x (empty): the result stays in x's autograd graph
    return (x[:, :, :out_size[0], :out_size[1]] * 0,
            x.new_zeros(batch, height, width, dtype=torch.float32),
            x.new_zeros(batch, 4, dtype=torch.float32),
            x.new_zeros(batch, 2, dtype=torch.float32))


def _check_map(confidence: object, name: str = "confidence") -> Tensor:
    if not isinstance(confidence, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor[B, H, W], got {type(confidence).__name__}")
    if confidence.dim() != 3 or 0 in confidence.shape[1:]:
        raise ValueError(f"{name} must be a non-empty Tensor[B, H, W], got shape "
                         f"{tuple(confidence.shape)}")
    if not confidence.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {confidence.dtype}")
    return confidence


def _check_guide(guide: object, x: Tensor) -> Tensor:
    """A map ``Tensor[B, H, W]`` on ``x``'s grid used as the confidence (an object's mask),
    detached, float32 and non-negative; the errors name ``guide``."""
    if not isinstance(guide, Tensor):
        raise TypeError(f"guide must be a Tensor[B, H, W] or None, got {type(guide).__name__}")
    expected = (x.shape[0], x.shape[2], x.shape[3])
    if tuple(guide.shape) != expected:
        raise ValueError(f"guide must have shape {list(expected)} (x's batch and map), "
                         f"got {tuple(guide.shape)}")
    if not guide.is_floating_point():
        raise TypeError(f"guide must be a floating-point tensor, got dtype {guide.dtype}")
    return guide.detach().to(device=x.device, dtype=torch.float32).clamp_min(0.0)


def _check_pairs(value: object, batch: int, width: int, name: str) -> Tensor:
    """A floating ``Tensor[batch, width]`` (rates, boxes), named ``name`` in the error."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor[B, {width}], got {type(value).__name__}")
    if value.dim() != 2 or value.shape[0] != batch or value.shape[1] != width:
        raise ValueError(f"{name} must have shape [B={batch}, {width}], got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def _check_number(value: object, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def _check_suppress(suppress: object, batch: int) -> Tensor | None:
    if suppress is None:
        return None
    if not isinstance(suppress, Tensor):
        kind = type(suppress).__name__
        raise TypeError(f"suppress must be a Tensor[B, N, 4] or None, got {kind}")
    if suppress.dim() != 3 or suppress.shape[0] != batch or suppress.shape[2] != 4:
        raise ValueError(
            f"suppress must have shape [B={batch}, N, 4], got {tuple(suppress.shape)}"
        )
    return suppress


def _no_autocast(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with autocast off: its sums and matrix products stay in float32.

    Under bfloat16/float16 autocast the window scores would round into ties (and the first,
    top-left window would win), so the search must not follow the caller's autocast.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with torch.autocast("cuda", enabled=False), torch.autocast("cpu", enabled=False):
            return fn(*args, **kwargs)

    return wrapper
