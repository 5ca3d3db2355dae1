"""Faithfulness of a crop: masks, fills, a model whose answer is known, and an MSGN."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from arpviz.faithfulness import (
    box_mask,
    centre_boxes,
    crop_curves,
    crop_faithfulness,
    faithfulness_over_loader,
    fill_images,
    gaussian_blur,
    random_boxes,
    scale_boxes,
    stage_boxes,
)
from arpviz.models import MSGN, MSGNConfig, StageOverride

SIZE = 64


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def msgn() -> MSGN:
    torch.manual_seed(0)
    return MSGN(MSGNConfig(backbone="tiny", num_classes=5)).eval()


def _images(count: int, seed: int = 0) -> Tensor:
    return torch.randn(count, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


class RegionModel(nn.Module):
    """Two classes; the logit of class 0 is ``scale * mean`` of the pixels in one region.

    Only that region carries signal, so keeping it alone changes nothing and removing it
    (filling with the mean, i.e. zeros) leaves logits (0, 0): probability 0.5.
    """

    def __init__(self, box: tuple[int, int, int, int], scale: float = 4.0) -> None:
        super().__init__()
        self.box, self.scale = box, scale

    def forward(self, x: Tensor) -> Tensor:
        x1, y1, x2, y2 = self.box
        signal = x[:, :, y1:y2, x1:x2].mean(dim=(1, 2, 3)) * self.scale
        return torch.stack([signal, torch.zeros_like(signal)], dim=1)


# ----------------------------------------------------------------------------- geometry


def test_box_mask_covers_fractions_of_pixels() -> None:
    mask = box_mask(torch.tensor([[0.5, 0.0, 2.0, 1.0], [1.0, 1.0, 1.0, 2.0]]), (2, 3))
    assert mask.shape == (2, 1, 2, 3)
    assert mask[0, 0].tolist() == [[0.5, 1.0, 0.0], [0.0, 0.0, 0.0]]
    assert float(mask[1].sum()) == 0.0  # an empty box


def test_centre_random_and_scaled_boxes_keep_sizes() -> None:
    boxes = torch.tensor([[2.0, 4.0, 22.0, 14.0], [40.0, 30.0, 64.0, 64.0]])
    centre = centre_boxes(boxes, (SIZE, SIZE))
    assert centre[0].tolist() == [22.0, 27.0, 42.0, 37.0]
    rand = random_boxes(boxes, (SIZE, SIZE), 5, torch.Generator().manual_seed(1))
    again = random_boxes(boxes, (SIZE, SIZE), 5, torch.Generator().manual_seed(1))
    assert torch.equal(rand, again) and rand.shape == (2, 5, 4)
    widths = rand[..., 2] - rand[..., 0]
    assert torch.allclose(widths, (boxes[:, 2] - boxes[:, 0])[:, None].expand(2, 5))
    assert bool((rand >= 0).all()) and bool((rand[..., 2:] <= SIZE).all())
    assert scale_boxes(boxes, 0.5, (SIZE, SIZE))[0].tolist() == [7.0, 6.5, 17.0, 11.5]
    assert scale_boxes(boxes, 3.0, (SIZE, SIZE))[1].tolist() == [16.0, 0.0, 64.0, 64.0]


def test_fills() -> None:
    images = _images(2)
    assert torch.equal(fill_images(images, "mean"), torch.zeros_like(images))
    constant = torch.full((1, 3, 20, 30), 0.7)
    assert torch.allclose(gaussian_blur(constant, 3.0), constant, atol=1e-6)
    blurred = fill_images(images, "blur")
    assert blurred.shape == images.shape and float(blurred.std()) < float(images.std())
    with pytest.raises(ValueError, match="fill"):
        fill_images(images, "noise")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(images, 0.0)


# ----------------------------------------------------------------------------- known answer


def test_known_answer_only_the_crop_carries_signal() -> None:
    region = (8, 8, 24, 24)
    model = RegionModel(region)
    images = torch.zeros(2, 3, SIZE, SIZE)
    images[:, :, 8:24, 8:24] = 1.0  # class 0 wins with logit 4
    images[1, :, 40:, 40:] = -3.0  # noise outside the region changes nothing
    boxes = torch.tensor([region, region], dtype=torch.float32)
    result = crop_faithfulness(model, images, boxes, fill="mean", n_random=6, seed=3)
    full = torch.sigmoid(torch.tensor(4.0))
    assert torch.equal(result.target, torch.tensor([0, 0]))
    assert torch.allclose(result.full, full.expand(2))
    assert torch.allclose(result.keep, result.full)  # the crop alone keeps the answer
    assert torch.allclose(result.remove, torch.full((2,), 0.5))  # without it: a coin flip
    assert torch.allclose(result.centre_keep, torch.full((2,), 0.5))  # centre misses the region
    assert torch.allclose(result.centre_remove, result.full)
    assert bool((result.random_keep < result.full).all())
    assert torch.allclose(result.drop, torch.zeros(2), atol=1e-6)
    assert not bool(result.increase.any())
    assert torch.allclose(result.area, torch.full((2,), 256 / SIZE**2))

    curves = crop_curves(model, images, boxes, fill="mean", scales=(0.0, 0.25, 0.5, 0.75, 1.0))
    assert torch.allclose(curves.insertion[:, 0], torch.full((2,), 0.5))
    assert torch.allclose(curves.insertion[:, -1], full.expand(2))
    assert torch.allclose(curves.deletion[:, 0], full.expand(2))
    assert torch.allclose(curves.deletion[:, -1], torch.full((2,), 0.5))
    assert bool((curves.insertion.diff(dim=1) >= 0).all())  # more of the region: more signal
    assert bool((curves.deletion.diff(dim=1) <= 0).all())
    # the signal is linear in the kept pixels: kept + removed logits add up to the full one
    total = torch.logit(curves.insertion) + torch.logit(curves.deletion)
    assert torch.allclose(total, torch.full_like(total, 4.0), atol=1e-4)
    y = curves.insertion  # the AUC is the trapezoid rule over the scales (range 1)
    by_hand = 0.25 * (y[:, 0] / 2 + y[:, 1] + y[:, 2] + y[:, 3] + y[:, 4] / 2)
    assert torch.allclose(curves.insertion_auc, by_hand)


# ----------------------------------------------------------------------------- an MSGN


def test_msgn_numbers_are_probabilities_and_curves_are_ordered(msgn: MSGN) -> None:
    images = _images(3)
    boxes = stage_boxes(msgn, images, "conv4.local0")
    assert boxes.shape == (3, 4)
    result = crop_faithfulness(msgn, images, boxes, n_random=2, seed=0)
    again = crop_faithfulness(msgn, images, boxes, n_random=2, seed=0)
    for name in ("full", "keep", "remove", "centre_keep", "centre_remove", "random_keep",
                 "random_remove", "area"):
        value = getattr(result, name)
        assert value.shape == (3,) and bool(((value >= 0) & (value <= 1)).all()), name
        assert torch.equal(value, getattr(again, name)), name  # seeded
    assert torch.allclose(result.full, msgn(images).softmax(1).max(dim=1).values)
    curves = crop_curves(msgn, images, boxes, scales=(0.0, 0.5, 1.0, 1.5), fill="blur")
    assert bool((curves.scales.diff() > 0).all())
    assert bool((curves.area.diff(dim=1) >= 0).all())
    for curve in (curves.insertion, curves.deletion):
        assert curve.shape == (3, 4) and bool(((curve >= 0) & (curve <= 1)).all())
    # scale 0 keeps nothing (deletion = the unaltered image)
    assert torch.allclose(curves.deletion[:, 0], result.full, atol=1e-5)
    with pytest.raises(ValueError, match="scales"):
        crop_curves(msgn, images, boxes, scales=(0.5, 0.2))
    with pytest.raises(ValueError, match="boxes"):
        crop_faithfulness(msgn, images, boxes[:2])


def test_overrides_reach_every_forward_pass(msgn: MSGN) -> None:
    images = _images(2, seed=1)
    overrides = {"conv4.local0": StageOverride(k=2.0)}
    boxes = stage_boxes(msgn, images, "conv4.local0", overrides)
    result = crop_faithfulness(msgn, images, boxes, overrides=overrides, n_random=1)
    expected = msgn.explain(images, overrides).logits.softmax(1).max(dim=1).values
    assert torch.allclose(result.full, expected)


def test_over_loader(msgn: MSGN) -> None:
    data = TensorDataset(_images(5, seed=2), torch.arange(5))
    loader = DataLoader(data, batch_size=2)
    out = faithfulness_over_loader(msgn, loader, "conv3", n_random=2, scales=(0.0, 0.5, 1.0),
                                   progress=False)
    assert out["count"] == 5 and out["stage"] == "conv3"
    for key in ("full", "keep", "remove", "centre_keep", "random_remove", "insertion_auc",
                "deletion_auc"):
        assert 0.0 <= out[key] <= 1.0, key
    for key in ("average_drop", "increase_in_confidence", "random_average_drop"):
        assert 0.0 <= out[key] <= 100.0, key
    assert out["curves"]["scales"] == [0.0, 0.5, 1.0] and len(out["curves"]["insertion"]) == 3
    limited = faithfulness_over_loader(msgn, loader, "conv3", n_random=2, limit=3,
                                       scales=(0.0, 1.0), progress=False)
    assert limited["count"] == 3
    with pytest.raises(ValueError, match="crops nothing"):
        faithfulness_over_loader(msgn, loader, "conv4.global", progress=False)
    with pytest.raises(ValueError, match="no images"):
        faithfulness_over_loader(msgn, [], "conv3", progress=False)
