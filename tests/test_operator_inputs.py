"""What the pooling operators do with inputs that carry no answer: non-finite values (a
``ValueError`` naming ``x`` on the CPU, a documented pass-through on CUDA, where a check would
block the stream) and an empty batch (an empty result of the right shapes)."""

from __future__ import annotations

import pytest
import torch

from arpviz.foreground import foreground_region_pool
from arpviz.pooling import adaptive_region_pool, region_pool
from arpviz.zoom import zoom_region_pool

OPERATORS = {
    "rp": lambda x: region_pool(x, 0.5),
    "arp": lambda x: adaptive_region_pool(x, 0.5, 0.7),
    "arpfg": lambda x: foreground_region_pool(x, 0.5, 1.5),
    "arpfg_peak": lambda x: foreground_region_pool(x, 0.5, 1.5, region="peak"),
    "zoom": lambda x: zoom_region_pool(x, 0.5),
}


@pytest.mark.parametrize("mode", list(OPERATORS))
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_input_is_refused_naming_x_and_the_sample(mode: str, value: float) -> None:
    x = torch.randn(3, 4, 10, 10)
    x[2, 1, 3, 4] = value
    with pytest.raises(ValueError, match=r"^x holds NaN or inf .* sample\(s\) \[2\]"):
        OPERATORS[mode](x)


@pytest.mark.parametrize("mode", list(OPERATORS))
def test_values_too_large_to_standardise_are_refused(mode: str) -> None:
    x = torch.randn(2, 4, 10, 10)
    x[0] = 3e38 * torch.rand(4, 10, 10)  # finite, but their sum overflows float32
    with pytest.raises(ValueError, match=r"too large to standardise.*\[0\]"):
        OPERATORS[mode](x)


@pytest.mark.parametrize("mode", list(OPERATORS))
def test_large_but_standardisable_values_pass(mode: str) -> None:
    x = torch.randn(2, 4, 10, 10) * 1e30
    result = OPERATORS[mode](x)
    assert torch.isfinite(result.features).all() and torch.isfinite(result.confidence).all()


@pytest.mark.parametrize("mode", list(OPERATORS))
def test_an_empty_batch_gives_an_empty_result(mode: str) -> None:
    x = torch.randn(0, 4, 10, 12, requires_grad=True)
    result = OPERATORS[mode](x)
    assert result.features.shape == (0, 4, 5, 6)
    assert result.confidence.shape == (0, 10, 12)
    assert result.boxes.shape == (0, 4) and result.rates.shape == (0, 2)
    result.features.sum().backward()  # still part of the graph
    assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_non_finite_values_pass_through_without_a_sync() -> None:
    x = torch.randn(2, 4, 10, 10, device="cuda")
    x[1, 0, 0, 0] = float("nan")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        result = adaptive_region_pool(x, 0.5, 0.7)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isnan(result.confidence[1]).all() and torch.isfinite(result.confidence[0]).all()
