"""ARP-FG (arpviz.foreground), the foreground-spread variant beyond the paper: the finding it
answers (on perfect features the paper's rate falls as the object grows, ARP-FG's follows it),
and the operator's contract (boxes, rates, gradients, dtypes, devices, modules, errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import assert_gradient_inside_box
from hypothesis import given, settings
from hypothesis import strategies as st

from arpviz.foreground import (
    DEFAULT_MIN_RATE,
    ForegroundRegionPool,
    foreground_confidence,
    foreground_region_pool,
    peak_component,
)
from arpviz.pooling import adaptive_region_pool, output_size, significance

SETTINGS = settings(max_examples=40, deadline=None)
SIDES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _square(side: float, size: int = 28, channels: int = 8) -> tuple[torch.Tensor, int]:
    """Perfect features: every channel is a centred square object's mask; its side in cells."""
    cells = round(side * size)
    start = (size - cells) // 2
    mask = torch.zeros(1, 1, size, size)
    mask[..., start:start + cells, start:start + cells] = 1.0
    return mask.expand(1, channels, size, size).clone(), cells


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = (np.argsort(np.argsort(v, kind="stable")) for v in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _structured(batch: int, height: int, width: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 6, height, width, generator=gen) * 0.3
    for b in range(batch):
        y0 = int(torch.randint(0, height, (1,), generator=gen))
        x0 = int(torch.randint(0, width, (1,), generator=gen))
        x[b, :, y0:y0 + max(1, height // 3), x0:x0 + max(1, width // 3)] += 3.0
    return x


# ----------------------------------------------------------------------------- the finding


def test_paper_rate_falls_as_the_object_grows_on_perfect_features() -> None:
    """Eq. 1-3 put a floor under the background: the rate falls from 0.99 to 0.88."""
    rates = [float(adaptive_region_pool(_square(s)[0], 0.5, 1.0).rates[0, 0]) for s in SIDES]
    expected = {0.1: 0.99, 0.2: 0.97, 0.4: 0.93, 0.5: 0.90, 0.6: 0.88, 0.7: 0.88}
    for side, rate in zip(SIDES, rates, strict=True):
        if side in expected:
            assert rate == pytest.approx(expected[side], abs=0.01)
    falling = rates[: SIDES.index(0.7) + 1]
    assert all(a >= b - 1e-6 for a, b in zip(falling, falling[1:], strict=False))
    assert falling[0] - falling[-1] > 0.1
    # and the background stays near 0.5: the floor, not a learnt property
    conf = adaptive_region_pool(_square(0.3)[0], 0.5, 1.0).confidence[0]
    assert 0.3 < float(conf[0, 0]) < 0.5


def test_variant_rate_is_the_object_side_on_perfect_features() -> None:
    rates, sides = [], []
    for side in SIDES:
        x, cells = _square(side)
        rate = float(foreground_region_pool(x, 0.5, 1.0, min_rate=0.05).rates[0, 0])
        # Eq. 7: sqrt(12) std of a uniform distribution over n cells is sqrt(n^2 - 1)
        assert rate == pytest.approx(math.sqrt(cells**2 - 1) / 28, abs=1e-4)
        rates.append(rate)
        sides.append(cells / 28)
    assert all(a < b for a, b in zip(rates, rates[1:], strict=False))  # it rises
    assert _spearman(np.array(rates), np.array(sides)) >= 0.9
    # the crop holds the object
    x, cells = _square(0.5)
    x1, y1, x2, y2 = foreground_region_pool(x, 0.5, 1.0).boxes[0].tolist()
    start = (28 - cells) // 2
    assert x1 <= start + 0.5 and x2 >= start + cells - 0.5
    assert y1 <= start + 0.5 and y2 >= start + cells - 0.5


def test_confidence_has_no_floor() -> None:
    x, _ = _square(0.3)
    conf = foreground_confidence(x)
    assert float(conf[0, 0, 0]) == 0.0 and float(conf.max()) > 0
    torch.testing.assert_close(conf, torch.relu(significance(x)))
    assert float(foreground_confidence(torch.ones(1, 3, 5, 5)).abs().max()) == 0.0


def test_lower_bound_may_go_below_the_dsr_and_zooms() -> None:
    x, _ = _square(0.1)
    result = foreground_region_pool(x, 0.5, 1.0, min_rate=DEFAULT_MIN_RATE)
    assert result.rates[0].tolist() == pytest.approx([DEFAULT_MIN_RATE, DEFAULT_MIN_RATE])
    assert result.features.shape[2:] == (14, 14)  # the DSR's output: the crop is upsampled
    paper = adaptive_region_pool(x, 0.5, 1.0)
    assert (paper.rates >= 0.5).all()


def test_peak_component_drops_clutter_away_from_the_peak() -> None:
    conf = torch.zeros(1, 12, 12)
    conf[0, 2:5, 2:5] = 2.0  # the object, with the map's maximum
    conf[0, 9:11, 8:11] = 1.0  # clutter, not connected
    kept = peak_component(conf)
    assert float(kept[0, 3, 3]) == 2.0 and float(kept[0, 9:11, 8:11].abs().sum()) == 0.0
    x = torch.zeros(1, 4, 12, 12)
    x[:, :, 2:5, 2:5] = 2.0
    x[:, :, 9:11, 8:11] = 1.0
    every = foreground_region_pool(x, 0.5, 1.0, min_rate=0.05)
    peak = foreground_region_pool(x, 0.5, 1.0, min_rate=0.05, region="peak")
    assert (peak.rates < every.rates).all()
    assert float(peak_component(torch.zeros(2, 3, 3)).abs().sum()) == 0.0


def test_guide_replaces_the_confidence() -> None:
    x = torch.randn(2, 4, 16, 16)
    guide = torch.zeros(2, 16, 16)
    guide[0, 4:8, 2:12] = 1.0
    guide[1, 1:15, 1:15] = 1.0
    result = foreground_region_pool(x, 0.5, 1.0, min_rate=0.05, guide=guide)
    torch.testing.assert_close(result.confidence, guide)
    assert result.rates[0].tolist() == pytest.approx([math.sqrt(15) / 16, math.sqrt(99) / 16],
                                                     abs=1e-4)
    assert float(result.rates[1, 0]) > 0.8


# ----------------------------------------------------------------------------- the contract


@SETTINGS
@given(
    height=st.integers(1, 16),
    width=st.integers(1, 16),
    dsr=st.floats(0.05, 1.0),
    min_rate=st.floats(0.05, 1.0),
    k=st.floats(0.05, 3.0),
    seed=st.integers(0, 10_000),
    region=st.sampled_from(["all", "peak"]),
)
def test_box_inside_map_and_sized_by_rate(height, width, dsr, min_rate, k, seed, region):
    x = _structured(2, height, width, seed)
    result = foreground_region_pool(x, dsr, k, min_rate=min_rate, region=region)
    x1, y1, x2, y2 = result.boxes.unbind(1)
    assert (x1 >= -1e-5).all() and (y1 >= -1e-5).all()
    assert (x2 <= width + 1e-4).all() and (y2 <= height + 1e-4).all()
    assert (x1 < x2).all() and (y1 < y2).all()
    torch.testing.assert_close(y2 - y1, result.rates[:, 0] * height, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(x2 - x1, result.rates[:, 1] * width, atol=1e-4, rtol=1e-5)
    out = output_size(height, width, (dsr, dsr))
    for axis, (size, kept) in enumerate(zip((height, width), out, strict=True)):
        low = 1.0 if kept == size else min_rate
        assert (result.rates[:, axis] >= low - 1e-6).all()
    assert (result.rates <= 1).all() and torch.isfinite(result.features).all()
    assert result.features.shape[2:] == out


@SETTINGS
@given(seed=st.integers(0, 10_000), k=st.floats(0.1, 2.0))
def test_batch_equals_one_by_one(seed, k):
    x = _structured(3, 11, 13, seed)
    batched = foreground_region_pool(x, 0.5, k, region="peak")
    for b in range(3):
        single = foreground_region_pool(x[b:b + 1], 0.5, k, region="peak")
        torch.testing.assert_close(single.boxes[0], batched.boxes[b])
        torch.testing.assert_close(single.features[0], batched.features[b], atol=1e-5,
                                   rtol=1e-5)


def test_gradient_flows_inside_crop_only() -> None:
    x = torch.randn(1, 4, 24, 24) * 0.05
    x[:, :, 2:7, 3:8] += 4.0
    x.requires_grad_(True)
    result = foreground_region_pool(x, 0.5, 1.0)
    result.features.sum().backward()
    assert_gradient_inside_box(x, result.boxes[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtypes(dtype) -> None:
    x = _structured(2, 14, 14, 5)
    out = foreground_region_pool(x.to(dtype), 0.5, 1.0)
    ref = foreground_region_pool(x, 0.5, 1.0)
    assert out.features.dtype == dtype and out.confidence.dtype == torch.float32
    tol = 0.05 if dtype != torch.float32 else 1e-6
    torch.testing.assert_close(out.features.float(), ref.features, atol=tol, rtol=tol)


def test_torch_compile_fullgraph() -> None:
    x = _structured(2, 12, 12, 4)
    compiled = torch.compile(lambda t: foreground_region_pool(t, 0.5, 1.0).features,
                             fullgraph=True)
    torch.testing.assert_close(compiled(x), foreground_region_pool(x, 0.5, 1.0).features,
                               atol=1e-5, rtol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_and_never_syncs() -> None:
    x = _structured(4, 20, 20, 3)
    cpu = foreground_region_pool(x, 0.5, 1.0, region="peak")
    xc = x.cuda().requires_grad_(True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = foreground_region_pool(xc, 0.5, 1.0, region="peak")
        out.features.sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(out.boxes.cpu(), cpu.boxes, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.features.cpu(), cpu.features, atol=1e-4, rtol=1e-4)


def test_module_has_no_state_and_matches_the_function() -> None:
    x = _structured(2, 12, 12, 1)
    pool = ForegroundRegionPool(0.5, k=1.5, min_rate=0.2, region="peak")
    assert dict(pool.state_dict()) == {} and list(pool.parameters()) == []
    torch.testing.assert_close(
        pool(x), foreground_region_pool(x, 0.5, 1.5, min_rate=0.2, region="peak").features)
    assert "min_rate=0.2" in repr(pool) and "region='peak'" in repr(pool)


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda x: foreground_region_pool(x, 0.5, k=0.0), ValueError, "k"),
        (lambda x: foreground_region_pool(x, 0.5, min_rate=0.0), ValueError, "min_rate"),
        (lambda x: foreground_region_pool(x, 0.5, min_rate=1.5), ValueError, "min_rate"),
        (lambda x: foreground_region_pool(x, 0.5, min_rate=(0.2, 0.2)), TypeError, "min_rate"),
        (lambda x: foreground_region_pool(x, 0.5, region="box"), ValueError, "region"),
        (lambda x: foreground_region_pool(x, 1.5), ValueError, "dsr"),
        (lambda x: foreground_region_pool(x[0]), ValueError, "x"),
        (lambda x: foreground_region_pool(x, guide=torch.zeros(2, 4, 4)), ValueError, "guide"),
        (lambda x: foreground_region_pool(x, guide=x.numpy()), TypeError, "guide"),
        (lambda x: peak_component(torch.zeros(8, 8)), ValueError, "confidence"),
        (lambda x: ForegroundRegionPool(region="mean"), ValueError, "region"),
    ],
)
def test_invalid_arguments_name_the_argument(call, error, name) -> None:
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(error, match=rf"\b{name}\b"):
        call(x)
