"""arpviz.explorer.faithful: Explore's faithfulness panel, numbers and figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arpviz import checkpoint as ckpt
from arpviz.explorer import faithful, inputs
from arpviz.explorer.controls import Knob
from arpviz.explorer.figures.panels import faithfulness_figure
from arpviz.explorer.live import LiveSession
from arpviz.faithfulness import crop_faithfulness


@pytest.fixture(scope="module")
def live(tiny_checkpoint):
    bundle = ckpt.load(tiny_checkpoint)
    image = inputs.synth_sample(bundle.meta, 2)
    return LiveSession(bundle.model, image, bundle.meta.class_names)


def test_crop_check_numbers_follow_the_view(live) -> None:
    view = live.explain({"conv4.local0": Knob(0.3, None)})
    assert faithful.default_crop_stage(view) == "conv4.local0"
    check = faithful.crop_check(live, view, "conv4.local0", n_random=4)
    direct = crop_faithfulness(live.model, live.image.tensor,
                               torch.tensor([view.stages["conv4.local0"].image_box]),
                               n_random=4, overrides=dict(view.overrides))
    assert check.keep == pytest.approx(float(direct.keep[0]))
    assert check.random_remove == pytest.approx(float(direct.random_remove[0]))
    assert check.target == int(view.probs.argmax())
    assert check.full == pytest.approx(float(view.probs.max()), abs=1e-5)
    for value in (check.keep, check.remove, check.centre_keep, check.random_keep, check.area):
        assert 0.0 <= value <= 1.0
    assert check.scales.shape == check.insertion.shape == check.deletion.shape == (11,)
    assert np.all(np.diff(check.curve_area) >= -1e-7)
    x1, y1, x2, y2 = view.stages["conv4.local0"].image_box
    size = live.image.image.shape[0]
    assert check.area == pytest.approx((x2 - x1) * (y2 - y1) / size**2, rel=1e-4)
    wider = faithful.crop_check(live, live.explain({"conv4.local0": Knob(2.0, None)}),
                                "conv4.local0", n_random=4)
    assert wider.area > check.area  # the sliders' k reaches the test
    fig = faithfulness_figure(check)
    assert len(fig.data) == 5 and all(len(t.y) for t in fig.data)
    with pytest.raises(ValueError, match="stage"):
        faithful.crop_check(live, view, "conv5")
