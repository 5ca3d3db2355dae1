"""RP/ARP against the loop reference, properties, validation, compile and gradients."""

from __future__ import annotations

import math

import pytest
import reference as ref
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from arpviz import (
    AdaptiveRegionPool,
    RegionPool,
    RegionPoolResult,
    adaptive_region_pool,
    keypoint_confidence,
    region_pool,
)
from arpviz.pooling import adaptive_rates, output_size, select_boxes
from arpviz.resample import _resample_grid, _resample_separable

SETTINGS = settings(max_examples=40, deadline=None)


def _structured(batch: int, height: int, width: int, seed: int) -> torch.Tensor:
    """Noise plus one bright rectangle per sample."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 6, height, width, generator=gen) * 0.3
    for b in range(batch):
        h = int(torch.randint(1, height + 1, (1,), generator=gen))
        w = int(torch.randint(1, width + 1, (1,), generator=gen))
        y = int(torch.randint(0, height - h + 1, (1,), generator=gen))
        xx = int(torch.randint(0, width - w + 1, (1,), generator=gen))
        x[b, :, y : y + h, xx : xx + w] += 2.0
    return x


def _check_against_reference(x: torch.Tensor, dsr, k, kernel="gaussian") -> None:
    fast = (
        region_pool(x, dsr, kernel=kernel)
        if k is None
        else adaptive_region_pool(x, dsr, k, kernel=kernel)
    )
    out_h, out_w = fast.features.shape[2:]
    assert (out_h, out_w) == output_size(x.shape[2], x.shape[3], dsr)
    for b in range(x.shape[0]):
        conf = ref.confidence(x[b])
        torch.testing.assert_close(fast.confidence[b].double(), conf, atol=1e-5, rtol=1e-5)
        rate = ref.rates(conf, dsr, k)
        torch.testing.assert_close(fast.rates[b].double(), torch.tensor(rate, dtype=torch.float64),
                                   atol=1e-5, rtol=1e-5)
        ref_box, scores, (win_h, win_w) = ref.box(conf, rate, kernel)
        # the fast window scores the reference maximum (exact ties may resolve to either)
        fx1, fy1, fx2, fy2 = fast.boxes[b].double().tolist()
        ext_h, ext_w = x.shape[2] * rate[0], x.shape[3] * rate[1]
        assert fy2 - fy1 == pytest.approx(ext_h, abs=1e-4)
        assert fx2 - fx1 == pytest.approx(ext_w, abs=1e-4)
        if max(scores.values()) - sorted(scores.values())[-2 if len(scores) > 1 else -1] > 1e-4:
            assert (fx1, fy1, fx2, fy2) == pytest.approx(ref_box, abs=1e-4)
        expected = ref.bilinear(x[b], (fx1, fy1, fx2, fy2), out_h, out_w)
        torch.testing.assert_close(fast.features[b].double(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("k", [None, 0.5, 1.0, 1.5])
@pytest.mark.parametrize("shape", [(7, 7), (9, 12), (14, 14)])
def test_matches_reference_structured(shape, k):
    seed = 100 * shape[0] + shape[1] + round(10 * (k or 0))  # fixed across runs (no hash())
    x = _structured(3, *shape, seed=seed)
    _check_against_reference(x, (0.5, 0.5), k)


@pytest.mark.parametrize("kernel", ["gaussian", "box"])
def test_matches_reference_random(kernel):
    x = torch.randn(4, 5, 10, 8, generator=torch.Generator().manual_seed(3))
    _check_against_reference(x, (0.4, 0.6), 0.8, kernel)
    _check_against_reference(x, (0.3, 0.7), None, kernel)


@SETTINGS
@given(
    height=st.integers(1, 16),
    width=st.integers(1, 16),
    dsr_h=st.floats(0.05, 1.0),
    dsr_w=st.floats(0.05, 1.0),
    k=st.floats(0.05, 3.0),
    seed=st.integers(0, 10_000),
)
def test_box_inside_map_and_sized_by_rate(height, width, dsr_h, dsr_w, k, seed):
    x = _structured(2, height, width, seed)
    result = adaptive_region_pool(x, (dsr_h, dsr_w), k)
    x1, y1, x2, y2 = result.boxes.unbind(1)
    assert (x1 >= -1e-5).all() and (y1 >= -1e-5).all()
    assert (x2 <= width + 1e-4).all() and (y2 <= height + 1e-4).all()
    assert (x1 < x2).all() and (y1 < y2).all()
    torch.testing.assert_close(y2 - y1, result.rates[:, 0] * height, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(x2 - x1, result.rates[:, 1] * width, atol=1e-4, rtol=1e-5)
    assert (result.rates[:, 0] >= dsr_h - 1e-6).all() and (result.rates <= 1).all()
    assert (result.rates[:, 1] >= dsr_w - 1e-6).all()
    assert result.features.shape[2:] == output_size(height, width, (dsr_h, dsr_w))


@SETTINGS
@given(k1=st.floats(0.05, 3.0), k2=st.floats(0.05, 3.0), seed=st.integers(0, 10_000))
def test_rate_non_decreasing_in_k(k1, k2, seed):
    x = _structured(3, 12, 10, seed)
    lo, hi = sorted((k1, k2))
    assert (adaptive_region_pool(x, 0.25, lo).rates <= adaptive_region_pool(x, 0.25, hi).rates
            + 1e-6).all()


@SETTINGS
@given(seed=st.integers(0, 10_000), k=st.floats(0.1, 2.0))
def test_batch_equals_one_by_one(seed, k):
    x = _structured(4, 11, 13, seed)
    batched = adaptive_region_pool(x, (0.5, 0.5), k)
    for b in range(4):
        single = adaptive_region_pool(x[b : b + 1], (0.5, 0.5), k)
        torch.testing.assert_close(single.boxes[0], batched.boxes[b])
        torch.testing.assert_close(single.rates[0], batched.rates[b])
        torch.testing.assert_close(single.features[0], batched.features[b], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fill", [0.0, 3.5])
@pytest.mark.parametrize("op", ["rp", "arp"])
def test_constant_input_is_uniform_and_finite(fill, op):
    x = torch.full((2, 4, 9, 9), fill)
    result = adaptive_region_pool(x, 0.5, 1.0) if op == "arp" else region_pool(x, 0.5)
    assert torch.isfinite(result.features).all() and torch.isfinite(result.boxes).all()
    torch.testing.assert_close(result.confidence, torch.full((2, 9, 9), 0.5))
    if op == "arp":  # uniform distribution: rate = sqrt(H^2 - 1) / H, close to k
        torch.testing.assert_close(result.rates, torch.full((2, 2), math.sqrt(80) / 9))
    torch.testing.assert_close(result.features, torch.full_like(result.features, fill))


def test_one_by_one_map_returns_itself():
    x = torch.randn(3, 5, 1, 1)
    result = adaptive_region_pool(x, 0.5, 1.0)
    torch.testing.assert_close(result.features, x)
    torch.testing.assert_close(result.boxes, torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 3))


def _hot_regions(tops, lefts, size: int, height: int = 28) -> torch.Tensor:
    """Faint noise with one hot ``size x size`` square per sample at ``(top, left)``."""
    x = torch.empty(len(tops), 8, height, height)
    for b, (top, left) in enumerate(zip(tops, lefts, strict=True)):
        gen = torch.Generator().manual_seed(top * 31 + left)
        x[b] = torch.randn(8, height, height, generator=gen) * 0.05
        x[b, :, top : top + size, left : left + size] += 5.0
    return x


def _regions_outside(x, tops, lefts, size: int, k: float, kernel: str = "gaussian") -> list:
    """The (top, left) of every sample whose hot region is not inside its box."""
    # a window at least as large as the region, so the region fits inside
    boxes = adaptive_region_pool(x, (size + 1) / x.shape[2], k, kernel=kernel).boxes
    x1, y1, x2, y2 = boxes.unbind(1)
    tops, lefts = torch.tensor(tops, dtype=torch.float32), torch.tensor(lefts, dtype=torch.float32)
    outside = (x1 > lefts + 1e-4) | (x2 < lefts + size - 1e-4)
    outside |= (y1 > tops + 1e-4) | (y2 < tops + size - 1e-4)
    return [(int(t), int(le)) for t, le, o in zip(tops, lefts, outside, strict=True) if o]


# The Gaussian window search (Eq. 4) itself misses these two: a 2 x 2 region in the corner of a
# 20 x 20 window weighs about 4% of its centre, less than the background noise between windows,
# so the best window does not contain the region at all (test_known_search_misses checks that).
KNOWN_SEARCH_MISSES = {(2, 0.7, "gaussian"): [(0, 1), (22, 0)]}


@SETTINGS
@given(
    top=st.integers(0, 22),
    left=st.integers(0, 22),
    size=st.integers(2, 6),
    k=st.floats(0.3, 2.0),
)
def test_hot_region_inside_box(top, left, size, k):
    top, left = min(top, 28 - size), min(left, 28 - size)
    bad = _regions_outside(_hot_regions([top], [left], size), [top], [left], size, k)
    assert set(bad) <= set(KNOWN_SEARCH_MISSES.get((size, k, "gaussian"), []))


@pytest.mark.parametrize("kernel", ["gaussian", "box"])
@pytest.mark.parametrize("k", [0.3, 0.7, 1.0, 2.0])
@pytest.mark.parametrize("size", [2, 3, 4, 5, 6])
def test_hot_region_inside_box_whole_grid(size, k, kernel):
    """The whole grid of the property (top, left 0..22): with step 8's placement the box holds
    the region wherever the window does (it failed at the borders before the rule)."""
    positions = [(min(t, 28 - size), min(le, 28 - size)) for t in range(23) for le in range(23)]
    tops, lefts = zip(*positions, strict=True)
    bad = _regions_outside(_hot_regions(tops, lefts, size), tops, lefts, size, k, kernel)
    assert sorted(set(bad)) == KNOWN_SEARCH_MISSES.get((size, k, kernel), [])


def test_known_search_misses_are_the_window_search():
    for (size, k, kernel), positions in KNOWN_SEARCH_MISSES.items():
        for top, left in positions:
            x = _hot_regions([top], [left], size)
            conf = ref.confidence(x[0])
            rate = ref.rates(conf, ((size + 1) / 28,) * 2, k)
            _, scores, (win_h, win_w) = ref.box(conf, rate, kernel)
            holding = [s for (y0, x0), s in scores.items()
                       if y0 <= top and top + size <= y0 + win_h
                       and x0 <= left and left + size <= x0 + win_w]
            assert max(scores.values()) > max(holding)


def test_window_at_border_keeps_box_flush():
    # the example of the issue: a region at (0, 0) gave the box (0.171, 0.165, 19.829, 19.835)
    x = _hot_regions([0], [0], 4)
    box = adaptive_region_pool(x, 5 / 28, 2.0).boxes[0]
    assert box[0] == 0 and box[1] == 0
    x = _hot_regions([24], [24], 4)
    box = adaptive_region_pool(x, 5 / 28, 2.0).boxes[0]
    assert box[2] == pytest.approx(28) and box[3] == pytest.approx(28)


def test_suppress_moves_the_window():
    x = torch.zeros(1, 4, 16, 16)
    x[:, :, 2:5, 2:5] = 4.0
    x[:, :, 10:13, 10:13] = 3.0
    first = region_pool(x, 0.25)
    second = region_pool(x, 0.25, suppress=first.boxes[:, None, :])
    assert first.boxes[0, 0] < 5 and second.boxes[0, 0] >= 8
    # suppression touches the search only: confidence and rates are unchanged
    torch.testing.assert_close(first.confidence, second.confidence)
    third = adaptive_region_pool(x, 0.25, 1.0, suppress=first.boxes[:, None, :])
    torch.testing.assert_close(third.rates, adaptive_region_pool(x, 0.25, 1.0).rates)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtypes(dtype):
    x = _structured(2, 14, 14, 5)
    out = adaptive_region_pool(x.to(dtype), 0.5, 0.7)
    ref32 = adaptive_region_pool(x, 0.5, 0.7)
    assert out.features.dtype == dtype and out.confidence.dtype == torch.float32
    tol = 0.05 if dtype != torch.float32 else 1e-6
    torch.testing.assert_close(out.features.float(), ref32.features, atol=tol, rtol=tol)


def test_gradient_flows_inside_crop_only():
    x = torch.randn(1, 4, 24, 24) * 0.05
    x[:, :, 2:7, 3:8] += 4.0
    x.requires_grad_(True)
    result = adaptive_region_pool(x, 0.25, 0.5)
    result.features.sum().backward()
    x1, y1, x2, y2 = result.boxes[0].tolist()
    grad = x.grad.abs().sum(1)[0]
    inside = grad[math.ceil(y1) : math.floor(y2), math.ceil(x1) : math.floor(x2)]
    assert (inside.sum() > 0) and grad.sum() > 0
    far = grad.clone()
    rows = slice(max(0, math.floor(y1) - 1), math.ceil(y2) + 1)
    cols = slice(max(0, math.floor(x1) - 1), math.ceil(x2) + 1)
    far[rows, cols] = 0
    assert far.abs().max() == 0


def test_modules_have_no_state_and_match_functions():
    x = _structured(2, 12, 12, 1)
    arp, rp = AdaptiveRegionPool((0.5, 0.5), k=0.7), RegionPool(0.5, kernel="box")
    assert dict(arp.state_dict()) == {} and list(arp.parameters()) == []
    assert dict(rp.state_dict()) == {} and list(rp.buffers()) == []
    torch.testing.assert_close(arp(x), adaptive_region_pool(x, 0.5, 0.7).features)
    result = rp.forward_result(x)
    assert isinstance(result, RegionPoolResult)
    torch.testing.assert_close(rp(x), region_pool(x, 0.5, kernel="box").features)
    assert "k=0.7" in repr(arp)
    with pytest.raises(AttributeError):
        result.boxes = result.boxes  # frozen


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda x: adaptive_region_pool(x, 0.5, k=0.0), ValueError, "k"),
        (lambda x: adaptive_region_pool(x, 0.5, k=-1.0), ValueError, "k"),
        (lambda x: adaptive_region_pool(x, 0.5, k=float("nan")), ValueError, "k"),
        (lambda x: adaptive_region_pool(x, 0.5, k="1"), TypeError, "k"),
        (lambda x: adaptive_region_pool(x, 1.5), ValueError, "dsr"),
        (lambda x: region_pool(x, (0.5, 0.0)), ValueError, "dsr"),
        (lambda x: region_pool(x, (0.5,)), TypeError, "dsr"),
        (lambda x: region_pool(x[0]), ValueError, "x"),
        (lambda x: region_pool(x.long()), TypeError, "x"),
        (lambda x: region_pool(x.numpy()), TypeError, "x"),
        (lambda x: region_pool(x, kernel="triangle"), ValueError, "kernel"),
        (lambda x: region_pool(x, sigma=0), ValueError, "sigma"),
        (lambda x: region_pool(x, suppress=torch.zeros(2, 4)), ValueError, "suppress"),
        (lambda x: keypoint_confidence(x[:, :, :0]), ValueError, "x"),
        (lambda x: AdaptiveRegionPool(k=0), ValueError, "k"),
    ],
)
def test_invalid_arguments_name_the_argument(call, error, name):
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(error, match=rf"\b{name}\b"):
        call(x)


def test_rates_and_boxes_are_reusable_building_blocks():
    x = _structured(2, 10, 10, 9)
    conf = keypoint_confidence(x)
    rates = adaptive_rates(conf, (0.5, 0.5), 1.0)
    boxes = select_boxes(conf, rates)
    result = adaptive_region_pool(x, 0.5, 1.0)
    torch.testing.assert_close(rates, result.rates)
    torch.testing.assert_close(boxes, result.boxes)


def test_torch_compile_fullgraph():
    x = _structured(2, 12, 12, 4)
    compiled = torch.compile(lambda t: adaptive_region_pool(t, 0.5, 0.7).features, fullgraph=True)
    torch.testing.assert_close(compiled(x), adaptive_region_pool(x, 0.5, 0.7).features,
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_separable_resampling_equals_grid_sample(dtype, channels_last):
    """The two resampling paths agree, forward and backward (grid_sample is the reference)."""
    x = _structured(4, 15, 12, 7)
    boxes = adaptive_region_pool(x, (0.4, 0.5), 0.8).boxes
    x = x.to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xg = x.detach().clone().requires_grad_(True)
    xr = x.detach().clone().requires_grad_(True)
    fast = _resample_separable(xg, boxes, (6, 6))
    expected = _resample_grid(xr, boxes, (6, 6))
    assert fast.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(fast.float(), expected.float(), atol=tol, rtol=tol)
    weight = torch.randn(fast.shape, generator=torch.Generator().manual_seed(0))
    (fast.float() * weight).sum().backward()
    (expected.float() * weight).sum().backward()
    torch.testing.assert_close(xg.grad.float(), xr.grad.float(), atol=tol * 4, rtol=tol * 4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_matches_cpu_and_never_syncs(dtype):
    x = _structured(4, 20, 20, 3)
    cpu = adaptive_region_pool(x, 0.5, 0.7)
    xc = x.cuda().to(dtype).requires_grad_(True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = adaptive_region_pool(xc, 0.5, 0.7)
        out.features.float().sum().backward()
        rp = region_pool(xc, 0.5)
        rp.features.float().sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(out.boxes.cpu(), cpu.boxes, atol=1e-4, rtol=0)
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(out.features.float().cpu(), cpu.features, atol=tol, rtol=tol)


@pytest.mark.parametrize("shape", [(13, 11), (48, 44)])  # the separable and the grid path
def test_resampling_equals_torchvision_roi_align(shape):
    from torchvision.ops import roi_align

    x = _structured(3, *shape, 2)
    result = adaptive_region_pool(x, (0.45, 0.6), 0.6)
    rois = torch.cat([torch.arange(3.0)[:, None], result.boxes], dim=1)
    expected = roi_align(x, rois, tuple(result.features.shape[2:]), 1.0, 1, True)
    torch.testing.assert_close(result.features, expected, atol=1e-5, rtol=1e-5)


def test_autocast_keeps_the_search_in_float32():
    x = _structured(3, 20, 20, 11)
    plain = adaptive_region_pool(x, 0.5, 0.7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = adaptive_region_pool(x, 0.5, 0.7)
    torch.testing.assert_close(mixed.confidence, plain.confidence)
    torch.testing.assert_close(mixed.boxes, plain.boxes)
    torch.testing.assert_close(mixed.features, plain.features)


def test_confidence_is_exact_far_from_zero():
    """The channel statistics stay exact for features with a large offset (a one-pass
    E[x^2] - E[x]^2 in float32 loses most digits of the variance at mean / std ~ 1000)."""
    x = _structured(2, 12, 12, 9) + 1000.0
    for b in range(2):
        torch.testing.assert_close(keypoint_confidence(x)[b].double(), ref.confidence(x[b]),
                                   atol=1e-4, rtol=1e-4)


def test_the_exported_steps_check_their_arguments() -> None:
    """Eq. 5-9's steps, called one by one, name the argument that is wrong."""
    from arpviz.pooling import marginals, resample_boxes

    conf = torch.rand(2, 6, 6)
    rates = torch.full((2, 2), 0.5)
    for bad, error in ((conf[0], ValueError), (conf.long(), TypeError), ([1.0], TypeError)):
        with pytest.raises(error, match="confidence"):
            marginals(bad)
    for kwargs, name in (({"k": -1.0}, "k"), ({"k": float("nan")}, "k"), ({"k": "1"}, "k"),
                         ({"dsr": (0.0, 0.0)}, "dsr"), ({"dsr": (2.0, 2.0)}, "dsr"),
                         ({"min_rate": (0.0, 0.5)}, "min_rate")):
        with pytest.raises((ValueError, TypeError), match=name):
            adaptive_rates(conf, **{"dsr": (0.5, 0.5), "k": 1.0, **kwargs})
    assert adaptive_rates(conf, 0.5, 1).shape == (2, 2)  # a scalar DSR and an int k are fine
    for kwargs, name in (({"kernel": "bogus"}, "kernel"), ({"sigma": -1.0}, "sigma"),
                         ({"suppress": torch.zeros(2, 4)}, "suppress")):
        with pytest.raises((ValueError, TypeError), match=name):
            select_boxes(conf, rates, **kwargs)
    for bad in (rates[:1], rates.long(), rates[:, :1]):
        with pytest.raises((ValueError, TypeError), match="rates"):
            select_boxes(conf, bad)
    x = torch.rand(2, 3, 6, 6)
    boxes = select_boxes(conf, rates)
    assert resample_boxes(x, boxes, (3, 3)).shape == (2, 3, 3, 3)
    for args, name in (((x.long(), boxes, (3, 3)), "x"), ((x, boxes[:, :2], (3, 3)), "boxes"),
                       ((x, boxes, (0, 3)), "size"), ((x, boxes, 3), "size")):
        with pytest.raises((ValueError, TypeError), match=name):
            resample_boxes(*args)
