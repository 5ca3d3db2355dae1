"""Every command answers a wrong argument before doing any work: one line naming the argument,
a non-zero exit status, no traceback, and nothing lost (an unwritable ``--out`` is found before
the analysis or the training runs, not after)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from arpviz import checkpoint as ckpt
from arpviz.analysis import cli as analysis_cli
from arpviz.convert import main as convert_main
from arpviz.evaluate import main as evaluate_main
from arpviz.explain.cli import main as explain_main
from arpviz.train import main as train_main
from arpviz.validation import check_device, check_output_dir, check_output_file

ROOT = Path(__file__).resolve().parents[1]


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]  # argparse prints its usage first
    assert "error" in last and all(w in last for w in words), err
    return last


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a_file.png"
    Image.new("RGB", (40, 30)).save(path)
    return path


def test_output_and_device_checks_name_the_argument(tmp_path: Path) -> None:
    blocker = _a_file(tmp_path)
    with pytest.raises(ValueError, match="--out: .* is a folder"):
        check_output_file(tmp_path, "--out")
    with pytest.raises(ValueError, match="--out: .* is a file"):
        check_output_file(blocker / "x.json", "--out")
    with pytest.raises(ValueError, match="--out: .* is a file, not a folder"):
        check_output_dir(blocker, "--out")
    assert check_output_file(tmp_path / "new" / "deeper" / "x.json", "--out").name == "x.json"
    assert not (tmp_path / "new").exists()  # checked, not created
    for bad in ("bogus", "mps", "meta", 3.5):
        with pytest.raises(ValueError, match="device"):
            check_device(bad)
    if not __import__("torch").cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            check_device("cuda")
    assert check_device("cpu").type == "cpu"


def test_check_device_spreads_local_ranks_over_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda", local_rank=3) == torch.device("cuda", 1)
    assert check_device("auto", local_rank=2) == torch.device("cuda", 0)
    assert check_device("cuda:1", local_rank=0) == torch.device("cuda", 1)  # a named index stays
    assert check_device("cuda") == torch.device("cuda")  # no rank: no index
    assert check_device("cpu", local_rank=5) == torch.device("cpu")
    for bad in (-1, 1.0, True, "0"):
        with pytest.raises(ValueError, match="local_rank"):
            check_device("cuda", local_rank=bad)


def test_load_names_a_bad_device(tiny_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="device"):
        ckpt.load(tiny_checkpoint, device="bogus")


@pytest.mark.parametrize("extra", [["--device", "mps"], ["--device", "meta"],
                                   ["--max-pixels", "500000000"]])
def test_explain_refuses_devices_and_limits_it_cannot_use(
        tiny_checkpoint: Path, tmp_path: Path, extra: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    image = _a_file(tmp_path)
    assert explain_main(["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "o"),
                         "--quiet", *extra, str(image)]) == 2
    _one_line_error(capsys, extra[0])


def test_explain_refuses_an_out_it_cannot_create(tiny_checkpoint: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    image = _a_file(tmp_path)
    assert explain_main(["--checkpoint", str(tiny_checkpoint), "--out", str(image / "sub"),
                         "--quiet", str(image)]) == 2
    _one_line_error(capsys, "--out")


def test_explain_refuses_an_input_larger_than_the_commands_run(
        tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint whose input is 4096 px (a ResNet at that size takes gigabytes an image):
    refused where its metadata is read, in one line naming the limit."""
    from helpers import rewrite_checkpoint

    big = rewrite_checkpoint(tiny_checkpoint, tmp_path / "big.safetensors",
                             meta=lambda m: m["input"].update(size=4096))
    assert explain_main(["--checkpoint", str(big), "--out", str(tmp_path / "o"), "--quiet",
                         str(_a_file(tmp_path))]) == 2
    line = _one_line_error(capsys, "--checkpoint", "input size 4096 is outside [16, 1024]")
    assert "the largest input the app and the commands run is 1024 px" in line
    assert not (tmp_path / "o").exists()


def test_analysis_checks_out_before_the_work(tiny_checkpoint: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    def never(*args, **kwargs):
        raise AssertionError("the analysis ran before --out was checked")

    monkeypatch.setattr(analysis_cli, "analyse", never)
    blocker = _a_file(tmp_path)
    for out in (tmp_path, blocker / "report.json"):
        assert analysis_cli.main([str(tiny_checkpoint), "--out", str(out)]) == 2
        _one_line_error(capsys, "--out")
    for extra in (["--n-boot", "0"], ["--seed", "-1"], ["--device", "bogus"]):
        assert analysis_cli.main([str(tiny_checkpoint), *extra]) == 2
        _one_line_error(capsys, extra[0])


def test_analysis_of_a_fifo_ends(tmp_path: Path) -> None:
    """Not a regular file: refused, never read (reading a FIFO would wait forever)."""
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "arpviz.analysis", str(fifo)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and "no checkpoint file" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("extra", [
    ["--momentum", "-1"], ["--weight-decay", "-1"], ["--workers", "-1"], ["--threads", "0"],
    ["--limit-train", "0"], ["--stop-after", "0"], ["--gamma", "-1"],
    ["--milestones", "2", "5"], ["--resume", "missing.safetensors"],
])
def test_train_refuses_bad_values_before_training(
        tmp_path: Path, extra: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import arpviz.train as train_module

    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(SystemExit) as exit_:
        train_main(["--out", str(tmp_path / "m.safetensors"), *extra])
    assert exit_.value.code == 2
    _one_line_error(capsys, extra[0].lstrip("-").split("-")[0])


def test_train_checks_out_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import arpviz.train as train_module

    monkeypatch.setattr(train_module, "train", lambda *a, **k: pytest.fail("trained"))
    blocker = _a_file(tmp_path)
    for out in (tmp_path, blocker / "m.safetensors"):
        with pytest.raises(SystemExit) as exit_:
            train_main(["--out", str(out)])
        assert exit_.value.code == 2
        _one_line_error(capsys, "--out")


def test_train_reports_a_failing_run_in_one_line(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import arpviz.train as train_module

    def fails(*args, **kwargs):
        raise ValueError("the resumed checkpoint's config differs: backbone")

    monkeypatch.setattr(train_module, "train", fails)
    assert train_main(["--out", str(tmp_path / "m.safetensors")]) == 1
    _one_line_error(capsys, "config differs")


@pytest.mark.parametrize("extra", [["--limit", "0"], ["--limit", "-5"], ["--device", "bogus"],
                                   ["--batch-size", "0"]])
def test_evaluate_refuses_bad_values(tiny_checkpoint: Path, extra: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        evaluate_main([str(tiny_checkpoint), *extra])
    assert exit_.value.code == 2
    _one_line_error(capsys, extra[0])


def test_evaluate_limit_is_refused_for_re_id(capsys: pytest.CaptureFixture[str]) -> None:
    reid = ROOT / "checkpoints" / "synthreid_msgn_arp.safetensors"
    with pytest.raises(SystemExit):
        evaluate_main([str(reid), "--split", "test", "--limit", "3"])
    _one_line_error(capsys, "--limit")


def test_convert_checks_out_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = _a_file(tmp_path)
    for out in (tmp_path / "model.txt", blocker / "m.safetensors", tmp_path):
        with pytest.raises(SystemExit) as exit_:
            convert_main(["--arch", "resnet18", "--out", str(out), "--no-progress"])
        assert exit_.value.code == 2
        _one_line_error(capsys, "--out")
