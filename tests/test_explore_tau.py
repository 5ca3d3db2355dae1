"""The confidence temperature tau (beyond the paper) in the live session: knobs to overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arpviz.checkpoint import Checkpoint, load
from arpviz.explorer import controls as sess
from arpviz.explorer import inputs
from arpviz.explorer.live import LiveSession
from arpviz.models import StageOverride


@pytest.fixture(scope="module")
def live(tiny_checkpoint: Path) -> LiveSession:
    ckpt: Checkpoint = load(tiny_checkpoint)
    return LiveSession(ckpt.model, inputs.synth_sample(ckpt.meta, 0), ckpt.meta.class_names)


def test_tau_knob_becomes_an_override_only_when_it_differs(live: LiveSession) -> None:
    controls = live.controls
    assert all(c.tau == 1.0 for c in controls)  # the paper, stored in the config
    trained = {c.name: sess.Knob(c.k, c.trained_dsr, 1.0) for c in controls if c.steerable}
    assert sess.overrides_from(controls, trained) == {}
    sharp = {name: sess.Knob(k.k, k.dsr, 8.0) for name, k in trained.items()}
    assert sess.overrides_from(controls, sharp) == {
        "conv3": StageOverride(k=1.0, dsr=0.5, tau=8.0),
        "conv4.local0": StageOverride(k=0.7, dsr=0.5, tau=8.0)}
    as_rp = {name: sess.Knob(None, k.dsr, 8.0, "rp") for name, k in trained.items()}
    assert sess.overrides_from(controls, as_rp)["conv3"] == StageOverride(
        mode="rp", dsr=0.5, tau=8.0)
    with pytest.raises(ValueError, match="tau"):
        sess.overrides_from(controls, {"conv3": sess.Knob(1.0, 0.5, -1.0)})


def test_tau_sharpens_the_map_and_the_sweep_keeps_it(live: LiveSession) -> None:
    paper = live.explain({})
    sharp = live.explain({"conv3": sess.Knob(None, None, 8.0)})
    assert set(sharp.overrides) == {"conv3"}
    c1, c8 = paper.stages["conv3"].confidence, sharp.stages["conv3"].confidence
    assert np.std(c8) > np.std(c1)  # sigmoid(8 s) spreads the confidence out
    sweep = live.sweep("conv3", {"conv3": sess.Knob(None, None, 8.0)}, ks=[1.0])
    again = live.explain({"conv3": sess.Knob(1.0, None, 8.0)})
    np.testing.assert_allclose(sweep.rates[0], again.stages["conv3"].rates, atol=1e-6)
