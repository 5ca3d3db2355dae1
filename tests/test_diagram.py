"""The network diagram of Explore's "What am I looking at?" panel (arpviz.explorer.diagram)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from arpviz.explorer import diagram
from arpviz.explorer.controls import stage_controls
from arpviz.models import MSGN, MSGNConfig


@pytest.fixture(scope="module")
def controls():
    model = MSGN(MSGNConfig(backbone="tiny", num_classes=4, conv3="arp", conv4="arp",
                            local_branches=1))
    return stage_controls(model)


def test_the_diagram_names_every_stage_with_its_setting(controls) -> None:
    dot = diagram.msgn_dot(controls, 128)
    assert dot.startswith("digraph msgn {") and dot.rstrip().endswith("}")
    assert "Conv3" in dot and "Conv4 local 0" in dot and "image 128 x 128" in dot
    assert "k 0.7" in dot and "DSR 0.5" in dot  # the trained values
    with pytest.raises(ValueError, match="input_size"):
        diagram.msgn_dot(controls, 0)


def test_without_values_the_diagram_changes_only_with_a_mode(controls) -> None:
    local = next(c for c in controls if c.name == "conv4.local0")
    other_k = [replace(c, trained=replace(c.trained, k=1.3)) if c is local else c
               for c in controls]
    other_mode = [replace(c, trained=replace(c.trained, mode="rp", k=None)) if c is local
                  else c for c in controls]
    plain = diagram.msgn_dot(controls, 128, values=False)
    assert "k 0.7" not in plain and "DSR" not in plain
    # a new k sends the same diagram (the browser does not lay it out again) ...
    assert diagram.msgn_dot(other_k, 128, values=False) == plain
    assert diagram.msgn_dot(other_k, 128) != diagram.msgn_dot(controls, 128)
    # ... a new mode a new one
    assert diagram.msgn_dot(other_mode, 128, values=False) != plain
