"""Shared fixtures: a tiny, untrained arpviz checkpoint written once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

# CI replays a fixed set of examples (derandomized, no example database); local runs explore.
settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

TINY_CLASSES = 24
TINY_INPUT = 128


def _tiny_checkpoint(path: Path) -> Path:
    """Write an untrained ``tiny`` MSGN (24 classes, input 128) trained "on SynthBirds"."""
    from arpviz import checkpoint as ckpt
    from arpviz.data.synthbirds import SynthBirdsConfig, class_names
    from arpviz.data.transforms import default_resize
    from arpviz.images import IMAGENET_MEAN, IMAGENET_STD
    from arpviz.models import MSGN, MSGNConfig
    from arpviz.train import snapshot

    torch.manual_seed(0)
    config = MSGNConfig(backbone="tiny", num_classes=TINY_CLASSES)
    model = MSGN(config).eval()
    synth = SynthBirdsConfig(num_classes=TINY_CLASSES, image_size=default_resize(TINY_INPUT),
                             train_size=64, val_size=32, test_size=32)
    history = tuple(
        {"epoch": e, "train_loss": 3.2 - 0.2 * e, "train_top1": 5.0 * e, "val_top1": 4.0 * e,
         "val_top5": 20.0 + 5 * e, "lr": 0.01, "seconds": 1.0}
        for e in (1, 2)
    )
    meta = ckpt.CheckpointMeta(
        config=config,
        class_names=class_names(TINY_CLASSES),
        input_size=TINY_INPUT,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        recipe={"epochs": 2, "image_size": TINY_INPUT, "model": {"backbone": "tiny"}},
        history=history,
        dataset={"name": "synthbirds", "config": synth.to_dict(), "eval_split": "val",
                 "probe_indices": [0, 1], "limit_val": None},
    )
    probes = torch.randn(2, 3, TINY_INPUT, TINY_INPUT, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        snaps = tuple(snapshot(model, probes, epoch) for epoch in (1, 2))
    return ckpt.save(path, model, meta, snaps, torch.tensor([0, 1]))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny untrained checkpoint (``tiny`` MSGN, 1 local branch, ARP in Conv3 and
    Conv4, 24 SynthBirds classes, input 128, 2 epochs of made-up history and snapshots of 2
    probe images). About 10 MB; written once per session, in a folder of its own."""
    folder = tmp_path_factory.mktemp("tiny_checkpoint")
    return _tiny_checkpoint(folder / "tiny_msgn_arp.safetensors")


@pytest.fixture()
def streamlit_v2_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``AppTest.from_file("app.py")`` rerun app.py (and its sidebar) on every run.

    AppTest resets ``PagesManager.uses_pages_directory`` before each run; with a ``pages/``
    folder beside app.py every rerun after the first then takes Streamlit's legacy pages/ mode
    and runs the page file alone. The live server sets the flag to ``False`` for good at the
    first ``st.navigation`` call; this fixture does the same after each reset.
    """
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def init_v2(self: PagesManager, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init_v2)
