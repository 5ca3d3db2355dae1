"""The package as a user installs it: a wheel built from a copy of the checkout, installed into
a temporary prefix, its commands run from a folder outside the checkout.

Nothing here touches the network or the checkout: the build runs on a copy (``build/`` and the
egg-info land there), pip installs with ``--no-deps`` (the test environment has the
dependencies) and ``--no-build-isolation``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import free_port, stop, wait_healthy
from PIL import Image

import arpviz
from arpviz.bundled import DEFAULT_CLASSIFICATION, DEFAULT_REID

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
COMMANDS = ("arpviz-app", "arpviz-train", "arpviz-evaluate", "arpviz-convert", "arpviz-explain",
            "arpviz-analysis")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the wheel from a copy of the checkout and install it into a fresh prefix."""
    base = tmp_path_factory.mktemp("package")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "app.py", "requirements.txt"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "pages", source / "pages",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "arpviz", source / "arpviz", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (source / "checkpoints").mkdir()
    for name in (DEFAULT_CLASSIFICATION, DEFAULT_REID, "synthbirds_wide_msgn_rp.safetensors"):
        shutil.copy2(ROOT / "checkpoints" / name, source / "checkpoints" / name)
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "--no-index", "-q", "-w", str(wheels)],
                   check=True, cwd=base, capture_output=True, timeout=600)
    wheel = next(wheels.glob("arpviz-*.whl"))
    prefix = base / "prefix"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--target", str(prefix), str(wheel)],
                   check=True, cwd=base, capture_output=True, timeout=600)
    outside = base / "elsewhere"
    outside.mkdir()
    return {"wheel": wheel, "prefix": prefix, "outside": outside}


def _env(installed: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ARPVIZ_") and k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(installed["prefix"])
    env["ARPVIZ_CACHE"] = str(installed["outside"] / "cache")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(installed: dict[str, Path], command: str, *args: str,
         timeout: float = 600) -> subprocess.CompletedProcess:
    script = installed["prefix"] / "bin" / command
    return subprocess.run([str(script), *args], cwd=installed["outside"], env=_env(installed),
                          capture_output=True, text=True, timeout=timeout)


def test_wheel_carries_the_defaults_and_the_app(installed: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    assert f"arpviz/bundled/{DEFAULT_CLASSIFICATION}" in names
    assert f"arpviz/bundled/{DEFAULT_REID}" in names
    assert "arpviz/bundled/synthbirds_wide_msgn_rp.safetensors" not in names  # the others stay
    assert {"arpviz/webapp/app.py", "arpviz/webapp/pages/explore.py"} <= names
    assert installed["wheel"].name.startswith(f"arpviz-{arpviz.__version__}-")
    for command in COMMANDS:
        assert (installed["prefix"] / "bin" / command).exists(), command


def test_version_is_one_source(installed: dict[str, Path]) -> None:
    code = ("import arpviz, importlib.metadata as m; "
            "print(arpviz.__version__, m.version('arpviz'), arpviz.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=installed["outside"],
                         env=_env(installed), capture_output=True, text=True, check=True)
    version, metadata, where = out.stdout.split()
    assert version == metadata == arpviz.__version__
    assert where.startswith(str(installed["prefix"]))  # the installed copy, not the checkout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_names_itself_explains_every_argument_and_its_version(
        installed: dict[str, Path], command: str) -> None:
    out = _run(installed, command, "--help", timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"usage: {command}" in out.stdout
    assert "python -m" not in out.stdout.split("\n")[0]
    if command != "arpviz-app":  # its flags are Streamlit's
        lines = [line for line in out.stdout.splitlines() if line.strip().startswith("-")]
        bare = [line for line in lines if len(line.split()) == 1 and not line.endswith(",")]
        assert not bare, f"{command}: arguments without help: {bare}"
    out = _run(installed, command, "--version", timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{command} {arpviz.__version__}\n"


def test_commands_use_the_bundled_default_from_anywhere(installed: dict[str, Path]) -> None:
    photos = installed["outside"] / "photos"
    photos.mkdir()
    Image.new("RGB", (741, 500), (120, 160, 200)).save(photos / "wide.png")
    out = _run(installed, "arpviz-explain", "--out", "explained", "--no-overlays", "--quiet",
               str(photos))
    assert out.returncode == 0, out.stderr
    manifest = json.loads((installed["outside"] / "explained" / "manifest.json").read_text())
    assert manifest["command"] == "arpviz-explain"
    assert manifest["checkpoint"]["path"].endswith(DEFAULT_CLASSIFICATION)
    assert str(installed["prefix"]) in manifest["checkpoint"]["path"]

    out = _run(installed, "arpviz-evaluate", "--limit", "8", "--no-crops")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["count"] == 8

    out = _run(installed, "arpviz-analysis", "--limit", "8", "--k-values", "0.7",
               "--n-random", "1", "--n-boot", "50", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert DEFAULT_CLASSIFICATION in out.stdout


def test_a_file_that_is_not_a_checkpoint_gets_one_line(installed: dict[str, Path]) -> None:
    bogus = installed["outside"] / "y.png"
    Image.new("RGB", (8, 8)).save(bogus)
    out = _run(installed, "arpviz-evaluate", str(bogus))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "arpviz-evaluate: error" in out.stderr


def test_arpviz_app_serves_the_bundled_default(installed: dict[str, Path]) -> None:
    port = free_port()
    script = installed["prefix"] / "bin" / "arpviz-app"
    process = subprocess.Popen(
        [str(script), "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"],
        cwd=installed["outside"], env=_env(installed), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    try:
        assert wait_healthy(f"http://127.0.0.1:{port}", process, 120), (
            process.stdout.read().decode() if process.poll() is not None else "no answer")
    finally:
        stop(process)
