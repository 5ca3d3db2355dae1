"""Shared fixtures and markers.

Markers (``pytest -m "not browser and not slow"`` runs the fast part):

- ``browser``: drives a real chromium through Playwright (skips without one);
- ``slow``: a test that takes many seconds (the app under AppTest, training, the bundled models);
- ``cuda``: needs a CUDA device (skipped without one).

Checkpoints come from the one factory, :func:`helpers.write_checkpoint`.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import write_checkpoint, write_reid_checkpoint
from hypothesis import settings

# CI replays a fixed set of examples (derandomized, no example database); local runs explore.
settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

TINY_CLASSES = 24
TINY_INPUT = 128

MARKERS = {
    "browser": "drives a real browser (chromium through Playwright)",
    "slow": "takes many seconds; left out by -m 'not slow'",
    "cuda": "needs a CUDA device (skipped without one)",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


#: Tests of other modules that take many seconds (from ``pytest --durations`` on 2 shared
#: cores): marked ``slow`` here so their files need no change. Whole files, then single tests.
SLOW_FILES = frozenset({"test_bundled.py"})
SLOW_TESTS = frozenset({
    "test_pooling.py::test_torch_compile_fullgraph",  # ~60 s: compiles the operator
    "test_train.py::test_ddp_two_cpu_processes",  # ~20 s: two processes
    "test_train.py::test_resume_continues_the_schedule",  # ~6 s
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cuda = torch.cuda.is_available()
    for item in items:
        name = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
        if item.path.name in SLOW_FILES or name in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if not cuda and "cuda" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny untrained checkpoint (``tiny`` MSGN, 1 local branch, ARP in Conv3 and
    Conv4, 24 SynthBirds classes, input 128, 2 epochs of made-up history and snapshots of 2
    probe images; the weights of ``torch.manual_seed(0)``, unperturbed), written once per
    session in a folder of its own."""
    folder = tmp_path_factory.mktemp("tiny_checkpoint")
    return write_checkpoint(folder / "tiny_msgn_arp.safetensors", classes=TINY_CLASSES,
                            input_size=TINY_INPUT, epochs=2, probes=(0, 1), split_size=32,
                            perturb=0.0)


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Run the test on one torch CPU thread (the result does not depend on the thread count,
    and small models run faster so); the count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def _own_caches(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """The torch cache (``TORCH_HOME``) and arpviz's cache (``ARPVIZ_CACHE``: converted models,
    analyses) in ``folder``: the app under test sees nothing of this machine's."""
    monkeypatch.setenv("TORCH_HOME", str(folder / "torch"))
    monkeypatch.setenv("ARPVIZ_CACHE", str(folder / "arpviz_cache"))


@pytest.fixture()
def app_env(monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path, tmp_path: Path,
            streamlit_v2_pages: None) -> Iterator[Path]:
    """The app under AppTest on the tiny checkpoint only (the bundled folder an empty one, the
    checkpoint roots the test's own folder, an empty torch cache and arpviz cache: no ImageNet
    ResNet of this machine is ready, none converted is listed), with unpickling forbidden
    while it runs; yields the test's folder and restores torch's thread count (the sidebar
    sets it)."""
    empty = tmp_path / "bundled"
    empty.mkdir()
    _own_caches(monkeypatch, tmp_path)
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(empty))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_DIR", str(tiny_checkpoint.parent))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_ROOTS", str(tmp_path))  # the test's own folders

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the app tried to unpickle something")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    threads = torch.get_num_threads()
    yield tmp_path
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def reid_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a tiny untrained re-ID checkpoint (``tiny_reid``, 3 epochs of made-up
    history) and a tiny SynthBirds classifier (``tiny_classifier``)."""
    path = tmp_path_factory.mktemp("reid_app")
    write_reid_checkpoint(path / "tiny_reid.safetensors", epochs=3)
    write_checkpoint(path / "tiny_classifier.safetensors", epochs=1, probes=(0,))
    return path


@pytest.fixture()
def reid_app(reid_folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
             streamlit_v2_pages: None) -> Iterator[Path]:
    """The app under AppTest with ``reid_folder`` as its bundled folder, the retrieval
    gallery capped at 14 images and caches of its own (as :func:`app_env`); yields the
    folder."""
    _own_caches(monkeypatch, tmp_path)
    monkeypatch.setenv("ARPVIZ_BUNDLED_DIR", str(reid_folder))
    monkeypatch.setenv("ARPVIZ_CHECKPOINT_ROOTS", str(reid_folder))
    monkeypatch.delenv("ARPVIZ_CHECKPOINT_DIR", raising=False)
    monkeypatch.setenv("ARPVIZ_RETRIEVAL_GALLERY", "14")
    threads = torch.get_num_threads()
    yield reid_folder
    torch.set_num_threads(threads)
