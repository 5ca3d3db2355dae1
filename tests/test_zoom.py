"""The learnt zoom crop (arpviz.zoom) and the mask-placed fixed crop (``region_pool(guide=)``),
both beyond the paper: what box they pick, and the operator's contract (shapes, gradients,
dtypes, batching, modules, errors), and both as MSGN stages."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_gradient_inside_box
from hypothesis import given, settings
from hypothesis import strategies as st

from arpviz.models import MSGN, MSGNConfig
from arpviz.models.stages import StageOverride, crop_text
from arpviz.pooling import output_size, region_pool
from arpviz.zoom import ZoomRegionPool, peak_region_boxes, zoom_region_pool

SETTINGS = settings(max_examples=40, deadline=None)


def _object(size: int, top: int, left: int, height: int, width: int, channels: int = 6,
            noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, channels, size, size, generator=gen) * noise
    x[..., top:top + height, left:left + width] += 3.0
    return x


def test_box_is_the_padded_peak_region() -> None:
    conf = torch.zeros(1, 10, 12)
    conf[0, 3:5, 4:8] = 1.0  # the peak region: rows 3-4, columns 4-7
    conf[0, 8, 10] = 0.9  # as high, but not connected to the peak
    conf[0, 5, 4] = 0.3  # connected, but under half the peak
    box = peak_region_boxes(conf, 0.5, 1)[0].tolist()
    assert box == [3.0, 2.0, 9.0, 6.0]
    assert peak_region_boxes(conf, 0.5, 0)[0].tolist() == [4.0, 3.0, 8.0, 5.0]
    # a lower threshold takes in the weaker connected cell
    assert peak_region_boxes(conf, 0.25, 0)[0].tolist() == [4.0, 3.0, 8.0, 6.0]


def test_box_is_clipped_to_the_map_and_whole_map_without_a_peak() -> None:
    conf = torch.zeros(2, 6, 6)
    conf[0, 0, 5] = 2.0
    boxes = peak_region_boxes(conf, 0.5, 2)
    assert boxes[0].tolist() == [3.0, 0.0, 6.0, 3.0]
    assert boxes[1].tolist() == [0.0, 0.0, 6.0, 6.0]  # all zero: no peak, the whole map


def test_crop_follows_the_object_size_on_perfect_features() -> None:
    """Unlike the paper's ARP, the zoom's rate grows with the object (perfect features)."""
    rates = []
    for side in (3, 6, 10, 14):
        x = _object(24, 4, 5, side, side)
        result = zoom_region_pool(x, 0.5)
        rates.append(float(result.rates[0, 0]))
        assert result.boxes[0].tolist() == [4.0, 3.0, float(min(5 + side + 1, 24)),
                                            float(min(4 + side + 1, 24))]
    assert rates == sorted(rates) and rates[0] < 0.5 < rates[-1]


@SETTINGS
@given(height=st.integers(1, 24), width=st.integers(1, 24), dsr=st.floats(0.05, 1.0),
       threshold=st.floats(0.05, 1.0), pad=st.integers(0, 3), seed=st.integers(0, 10_000))
def test_box_inside_map_and_rates_its_extent(height, width, dsr, threshold, pad, seed):
    x = torch.randn(2, 4, height, width, generator=torch.Generator().manual_seed(seed))
    result = zoom_region_pool(x, dsr, threshold=threshold, pad=pad)
    x1, y1, x2, y2 = result.boxes.unbind(1)
    assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= width).all() and (y2 <= height).all()
    assert (x1 < x2).all() and (y1 < y2).all()
    torch.testing.assert_close(y2 - y1, result.rates[:, 0] * height)
    torch.testing.assert_close(x2 - x1, result.rates[:, 1] * width)
    out = output_size(height, width, (dsr, dsr))
    assert result.features.shape == (2, 4, *out) and torch.isfinite(result.features).all()
    for axis, (size, kept) in enumerate(zip((height, width), out, strict=True)):
        if kept == size:
            assert (result.rates[:, axis] == 1).all()


@SETTINGS
@given(seed=st.integers(0, 10_000))
def test_batch_equals_one_by_one(seed):
    x = torch.randn(3, 5, 13, 11, generator=torch.Generator().manual_seed(seed))
    batched = zoom_region_pool(x, 0.5)
    for b in range(3):
        single = zoom_region_pool(x[b:b + 1], 0.5)
        torch.testing.assert_close(single.boxes[0], batched.boxes[b])
        torch.testing.assert_close(single.features[0], batched.features[b], atol=1e-5,
                                   rtol=1e-5)


def test_suppressed_cells_move_the_peak() -> None:
    x = _object(20, 2, 2, 4, 4)
    x[..., 12:16, 12:16] += 2.0  # a second, weaker object
    first = zoom_region_pool(x, 0.5)
    second = zoom_region_pool(x, 0.5, suppress=first.boxes[:, None])
    assert first.boxes[0].tolist() == [1.0, 1.0, 7.0, 7.0]
    assert second.boxes[0].tolist() == [11.0, 11.0, 17.0, 17.0]


def test_gradient_flows_inside_the_crop_only() -> None:
    x = _object(24, 3, 4, 5, 5, noise=0.05).requires_grad_(True)
    result = zoom_region_pool(x, 0.5)
    result.features.sum().backward()
    assert_gradient_inside_box(x, result.boxes[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_dtypes(dtype) -> None:
    x = _object(16, 3, 3, 5, 6, noise=0.1)
    ref = zoom_region_pool(x, 0.5)
    out = zoom_region_pool(x.to(dtype), 0.5)
    assert out.features.dtype == dtype and out.confidence.dtype == torch.float32
    torch.testing.assert_close(out.boxes, ref.boxes)
    torch.testing.assert_close(out.features.float(), ref.features, atol=0.05, rtol=0.05)


def test_module_has_no_state_and_matches_the_function() -> None:
    x = _object(16, 3, 3, 5, 6, noise=0.1)
    pool = ZoomRegionPool(0.5, threshold=0.3, pad=2)
    assert dict(pool.state_dict()) == {} and list(pool.parameters()) == []
    torch.testing.assert_close(pool(x), zoom_region_pool(x, 0.5, threshold=0.3, pad=2).features)
    assert "threshold=0.3" in repr(pool) and "pad=2" in repr(pool)


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda x: zoom_region_pool(x, 0.5, threshold=0.0), ValueError, "threshold"),
        (lambda x: zoom_region_pool(x, 0.5, threshold="half"), TypeError, "threshold"),
        (lambda x: zoom_region_pool(x, 0.5, pad=-1), ValueError, "pad"),
        (lambda x: zoom_region_pool(x, 0.5, pad=1.5), TypeError, "pad"),
        (lambda x: zoom_region_pool(x, 1.5), ValueError, "dsr"),
        (lambda x: zoom_region_pool(x[0]), ValueError, "x"),
        (lambda x: zoom_region_pool(x, suppress=torch.zeros(2, 4)), ValueError, "suppress"),
        (lambda x: peak_region_boxes(torch.zeros(8, 8)), ValueError, "confidence"),
        (lambda x: region_pool(x, guide=torch.zeros(2, 4, 4)), ValueError, "guide"),
        (lambda x: region_pool(x, guide=x.numpy()), TypeError, "guide"),
    ],
)
def test_invalid_arguments_name_the_argument(call, error, name) -> None:
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(error, match=rf"\b{name}\b"):
        call(x)


# ----------------------------------------------------------------------------- mask-placed


def test_mask_placed_crop_has_a_fixed_size_and_sits_on_the_mask() -> None:
    x = torch.randn(2, 4, 16, 16)  # features that say nothing
    guide = torch.zeros(2, 16, 16)
    guide[0, 1:5, 10:15] = 1.0
    guide[1, 9:15, 2:6] = 1.0
    result = region_pool(x, 0.5, crop=(0.25, 0.375), guide=guide)
    assert result.rates.tolist() == [[0.25, 0.375], [0.25, 0.375]]
    torch.testing.assert_close(result.confidence, guide)
    for b, (top, left, bottom, right) in enumerate([(1, 10, 5, 15), (9, 2, 15, 6)]):
        x1, y1, x2, y2 = result.boxes[b].tolist()
        assert y2 - y1 == 4 and x2 - x1 == 6
        centre_y, centre_x = (y1 + y2) / 2, (x1 + x2) / 2
        assert top <= centre_y <= bottom and left <= centre_x <= right
    # the features do not move it
    other = region_pool(x * -5, 0.5, crop=(0.25, 0.375), guide=guide)
    torch.testing.assert_close(other.boxes, result.boxes)


# ----------------------------------------------------------------------------- as stages


def _tiny(conv4: str, **extra) -> MSGN:
    torch.manual_seed(0)
    return MSGN(MSGNConfig(backbone="tiny", num_classes=5, conv4=conv4, **extra)).eval()


def test_zoom_stage_runs_without_a_mask_and_can_be_steered_to() -> None:
    x = torch.randn(2, 3, 64, 64)
    model = _tiny("zoom", conv3="zoom")
    assert not model.needs_mask
    explanation = model.explain(x)
    assert explanation.settings["conv4.local0"].mode == "zoom"
    assert explanation.settings["conv4.local0"].k is None
    assert set(explanation.stages) == {"conv3", "conv4.local0"}
    arp = _tiny("arp")
    switched = arp.explain(x, {"conv4.local0": StageOverride(mode="zoom")})
    direct = zoom_pool_of(arp, x)
    torch.testing.assert_close(switched.stages["conv4.local0"].boxes, direct)
    with pytest.raises(ValueError, match="k has no meaning"):
        arp.explain(x, {"conv4.local0": StageOverride(mode="zoom", k=0.5)})


def zoom_pool_of(model: MSGN, x: torch.Tensor) -> torch.Tensor:
    """The zoom's boxes on the model's Conv4 input (Conv3's crop through layer2), computed
    outside the model."""
    with torch.no_grad():
        conv3 = model.explain(x).stages["conv3"]
        return zoom_region_pool(model.layer2(conv3.features), model.config.dsr).boxes


def test_mask_placed_stage_needs_a_mask_and_keeps_its_crop() -> None:
    model = _tiny("oracle_fixed", conv4_crop=(0.33, 0.61))
    assert model.needs_mask
    assert model.config.to_dict()["conv4_crop"] == [0.33, 0.61]
    assert MSGNConfig.from_dict(model.config.to_dict()) == model.config
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(ValueError, match="mask"):
        model(x)
    mask = torch.zeros(2, 1, 64, 64)
    mask[0, :, 4:20, 30:60] = 1.0
    mask[1, :, 40:60, 2:20] = 1.0
    explanation = model.explain(x, mask=mask)
    stage = explanation.stages["conv4.local0"]
    torch.testing.assert_close(stage.rates, torch.tensor([[0.33, 0.61]] * 2))
    boxes = explanation.image_boxes["conv4.local0"]
    assert boxes[0, 1] < 20 and boxes[0, 2] > 45 and boxes[1, 3] > 40 and boxes[1, 0] < 10
    assert crop_text(model.config.conv4_crop) == "0.33 x 0.61"
    assert crop_text((0.7, 0.7)) == "0.7"
    with pytest.raises(ValueError, match="conv4_crop"):
        MSGNConfig(backbone="tiny", conv4="arp", conv4_crop=0.5)
