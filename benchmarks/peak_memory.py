"""Peak memory of ``arpviz-explain`` on a tiny but extreme PNG, with and without the bound on the
network input (:data:`arpviz.images.MAX_RESIZED_PIXELS`).

Run: ``.venv/bin/python -m benchmarks.peak_memory`` (``--cases`` to pick some, ``--length N``
for the strip's long side, default 16000). It converts a random-weight torchvision ResNet-18
(:func:`arpviz.convert.convert`: the aspect kept, shorter side to 256, centre 224 crop) into a
temporary folder, writes the PNGs, and runs each case in a fresh Python process, which reports
its peak resident memory (``VmHWM``, see :func:`_peak_mb`):

* ``loaded``: the checkpoint loaded, nothing explained (the floor of every other case);
* ``photo``: ``arpviz-explain`` on a 640 x 480 image;
* ``strip``, ``tall``: on a ``N x 1`` and a ``1 x N`` PNG (129 bytes for N = 16000): refused
  before any resize, a failed record in ``results.jsonl``;
* ``strip-unbounded``: the same strip with the bound lifted (what happened before it): the
  resize makes a ``256 x 256 N`` input first (4 GB peak for N = 16000; leave it out with
  ``--cases`` on a small machine).

Peak memory, not time: nothing here is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = ("loaded", "photo", "strip", "tall", "strip-unbounded")


def _peak_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` of ``/proc/self/status``, the high
    water mark of this program's own memory (``getrusage``'s ``ru_maxrss`` survives ``fork`` and
    ``exec`` on Linux and would report the parent's size when it was larger); ``ru_maxrss``
    where there is no ``/proc``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(case: str, checkpoint: str, image: str, out: str) -> None:
    """Run one case in this (fresh) process and print its outcome as JSON."""
    import torch

    torch.set_num_threads(1)
    if case == "loaded":
        from arpviz import checkpoint as ckpt

        ckpt.load(checkpoint)
        print(json.dumps({"case": case, "peak_mb": _peak_mb(), "outcome": "-"}))
        return
    if case.endswith("-unbounded"):
        import arpviz.images

        arpviz.images.MAX_RESIZED_PIXELS = 10**15  # the bound lifted: the old behaviour
    from arpviz.explain import main

    code = main(["--checkpoint", checkpoint, "--out", out, "--device", "cpu", "--quiet",
                 "--no-overlays", image])
    row = json.loads((Path(out) / "results.jsonl").read_text().splitlines()[0])
    error = str(row["error"]).replace(str(Path(image).parent) + os.sep, "")
    outcome = "explained" if row["ok"] else "refused: " + error.split(": this")[0]
    print(json.dumps({"case": case, "peak_mb": _peak_mb(), "outcome": outcome,
                      "exit": code}))


def _prepare(folder: Path, length: int) -> tuple[Path, dict[str, Path]]:
    """A converted random-weight ResNet-18 and the PNGs, in ``folder``."""
    import numpy as np
    import torch
    import torchvision
    from PIL import Image

    from arpviz.convert import convert

    torch.manual_seed(0)
    weights = folder / "resnet18_random.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    checkpoint = convert("resnet18", folder / "resnet18_arp.safetensors", weights).path
    rng = np.random.default_rng(0)
    images = {
        "photo": Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)),
        "strip": Image.new("RGB", (length, 1), (200, 30, 30)),
        "tall": Image.new("RGB", (1, length), (30, 30, 200)),
    }
    paths = {}
    for name, image in images.items():
        paths[name] = folder / f"{name}.png"
        image.save(paths[name], optimize=True)
    paths["strip-unbounded"] = paths["strip"]
    paths["loaded"] = paths["photo"]
    return checkpoint, paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--length", type=int, default=16000,
                        help="the long side of the strip and the tall image, in pixels")
    parser.add_argument("--child", nargs=4, metavar=("CASE", "CKPT", "IMAGE", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="arpviz-peak-") as tmp:
        folder = Path(tmp)
        checkpoint, paths = _prepare(folder, args.length)
        print(f"converted random-weight ResNet-18, input 224, shorter side to 256, aspect kept; "
              f"strip {args.length} x 1 ({paths['strip'].stat().st_size} bytes), tall 1 x "
              f"{args.length}, photo 640 x 480")
        print(f"{'case':<16} {'peak RSS MB':>12} {'over loaded':>12}  outcome")
        floor = None
        for case in args.cases:
            out = folder / f"out-{case}"
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.peak_memory", "--child", case,
                 str(checkpoint), str(paths[case]), str(out)],
                cwd=root, env=env, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode != 0 or not lines:
                tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"{case:<16} {'-':>12} {'-':>12}  failed (exit {done.returncode}): {tail}")
                continue
            result = json.loads(lines[-1])
            floor = result["peak_mb"] if case == "loaded" else floor
            over = f"{result['peak_mb'] - floor:+.0f}" if floor is not None else "-"
            print(f"{case:<16} {result['peak_mb']:>12.0f} {over:>12}  {result['outcome'][:110]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
