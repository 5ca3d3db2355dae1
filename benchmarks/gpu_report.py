"""Everything arpviz checks on a GPU, in one command that writes ``docs/benchmarks_gpu.md``.

Run on a machine with CUDA, from the repository root (about 3 to 5 minutes on one GPU; needs
only torch, torchvision, numpy, safetensors, pillow, tqdm and OpenCV, no Streamlit or plotly)::

    PYTHONPATH=. python -m benchmarks.gpu_report [--out docs/benchmarks_gpu.md] [--quick]

Sections: the CPU and CUDA operator agree (boxes, features, gradients; float32, float16,
bfloat16); no host synchronisation in RP, ARP and MSGN forward and backward
(``torch.cuda.set_sync_debug_mode("error")``); an AMP training epoch; ``torchrun`` on one GPU
with NCCL, and with ``--device cpu`` (gloo) on the same machine; the bundled checkpoint
evaluated on the CPU, on CUDA with the default numerics and with ``--deterministic``; the
operator and MSGN benchmarks (``bench_pooling``, ``bench_msgn`` with ``resnet50_448``).
Without CUDA it writes nothing and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "checkpoints" / "synthbirds_wide_msgn_arp.safetensors"


def _structured(batch: int, size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 16, size, size, generator=gen) * 0.3
    for b in range(batch):
        top, left, side = (int(v) for v in torch.randint(0, size // 2, (3,), generator=gen))
        x[b, :, top : top + side + 2, left : left + side + 2] += 2.0
    return x


def equality() -> str:
    """CPU against CUDA: boxes, features and input gradients, per dtype."""
    from arpviz import adaptive_region_pool

    lines = ["| dtype | max box diff (px) | max feature diff | max gradient diff |",
             "| --- | --- | --- | --- |"]
    x = _structured(64, 28, 0)
    weight = torch.randn(64, 16, 14, 14, generator=torch.Generator().manual_seed(1))
    xc = x.clone().requires_grad_(True)
    cpu = adaptive_region_pool(xc, 0.5, 0.7)
    (cpu.features * weight).sum().backward()
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        xg = x.cuda().to(dtype).requires_grad_(True)
        gpu = adaptive_region_pool(xg, 0.5, 0.7)
        (gpu.features.float() * weight.cuda()).sum().backward()
        box = (gpu.boxes.cpu() - cpu.boxes).abs().max().item()
        feat = (gpu.features.float().cpu() - cpu.features).abs().max().item()
        grad = (xg.grad.float().cpu() - xc.grad).abs().max().item()
        lines.append(f"| {str(dtype).removeprefix('torch.')} | {box:.2e} | {feat:.2e} | "
                     f"{grad:.2e} |")
    return "\n".join(lines)


def _no_sync(name: str, fn: Callable[[], None]) -> str:
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fn()
        verdict = "no synchronisation"
    except RuntimeError as exc:
        verdict = f"SYNCHRONISES: {str(exc).splitlines()[0][:160]}"
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return f"| {name} | {verdict} |"


def no_sync() -> str:
    """Forward and backward of RP, ARP and MSGN under ``set_sync_debug_mode("error")``."""
    from arpviz import adaptive_region_pool, region_pool
    from arpviz.models import MSGN, MSGNConfig

    x = _structured(8, 28, 2).cuda().requires_grad_(True)

    def pool(op: Callable) -> Callable[[], None]:
        return lambda: op(x).features.sum().backward()

    lines = ["| what | result |", "| --- | --- |",
             _no_sync("region_pool forward + backward", pool(lambda t: region_pool(t, 0.5))),
             _no_sync("adaptive_region_pool forward + backward",
                      pool(lambda t: adaptive_region_pool(t, 0.5, 0.7)))]
    for backbone, size in (("tiny", 128), ("resnet50", 224)):
        model = MSGN(MSGNConfig(backbone=backbone, num_classes=10)).cuda()
        images = torch.randn(4, 3, size, size, device="cuda")
        model(images)  # warm-up (lazy CUDA initialisation may synchronise once)

        def step(model: MSGN = model, images: torch.Tensor = images) -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(images)
            out.float().sum().backward()

        lines.append(_no_sync(f"MSGN {backbone} forward + backward (bf16 autocast)", step))
    return "\n".join(lines)


def _run(cmd: list[str], timeout: int = 300) -> tuple[int, str, float]:
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=env)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return proc.returncode, " / ".join(tail)[:300], time.perf_counter() - start


def training(folder: Path) -> str:
    """An AMP epoch in this process, then torchrun with NCCL (CUDA) and gloo (CPU)."""
    small = ["--model", '{"backbone": "tiny", "num_classes": 12}', "--epochs", "1",
             "--limit-train", "256", "--limit-val", "64", "--probes", "2", "--batch-size", "32",
             "--no-progress"]
    lines = ["| run | exit | seconds | last output |", "| --- | --- | --- | --- |"]
    runs = {
        "python -m arpviz.train --device cuda (AMP)":
            [sys.executable, "-m", "arpviz.train", *small, "--device", "cuda", "--out",
             str(folder / "amp.safetensors")],
        "torchrun --nproc_per_node 1 ... --device cuda (NCCL)":
            [sys.executable, "-m", "torch.distributed.run", "--standalone",
             "--nproc_per_node", "1", "-m", "arpviz.train", *small, "--device", "cuda",
             "--out", str(folder / "nccl.safetensors")],
        "torchrun --nproc_per_node 2 ... --device cpu (gloo, CUDA present)":
            [sys.executable, "-m", "torch.distributed.run", "--standalone",
             "--nproc_per_node", "2", "-m", "arpviz.train", *small, "--device", "cpu",
             "--threads", "2", "--out", str(folder / "gloo.safetensors")],
    }
    for name, cmd in runs.items():
        code, tail, seconds = _run(cmd)
        lines.append(f"| `{name}` | {code} | {seconds:.1f} | {tail.replace('|', '/')} |")
    return "\n".join(lines)


def evaluation(limit: int | None) -> str:
    """The bundled checkpoint on the CPU, on CUDA, and on CUDA with --deterministic."""
    if not BUNDLED.is_file():
        return f"(no {BUNDLED.relative_to(ROOT)} to evaluate)"
    lines = ["| device, numerics | top-1 | top-5 | exit |", "| --- | --- | --- | --- |"]
    extra = ["--limit", str(limit)] if limit else []
    for label, args in (("cpu", ["--device", "cpu"]), ("cuda, default", ["--device", "cuda"]),
                        ("cuda, --deterministic", ["--device", "cuda", "--deterministic"])):
        cmd = [sys.executable, "-m", "arpviz.evaluate", str(BUNDLED), "--split", "test",
               "--no-crops", *extra, *args]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT,
                              env=env)
        try:
            result = json.loads(proc.stdout)
            lines.append(f"| {label} | {result['top1']:.2f} | {result['top5']:.2f} | "
                         f"{proc.returncode} |")
        except (json.JSONDecodeError, KeyError):
            lines.append(f"| {label} | - | - | {proc.returncode}: "
                         f"{proc.stderr.strip().splitlines()[-1:]} |")
    return "\n".join(lines)


def benchmarks(repeats: int) -> str:
    """bench_pooling on CUDA (float32, bfloat16) and bench_msgn's resnet50_448 case."""
    from benchmarks import bench_msgn, bench_pooling

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        bench_pooling.run(torch.device("cuda"), repeats, (torch.float32, torch.bfloat16))
        for case in ("resnet50", "resnet50_448"):
            bench_msgn.run_case(case, torch.device("cuda"), repeats)
    return "```\n" + buffer.getvalue().strip() + "\n```"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks_gpu.md"),
                        help="the report to write")
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per benchmark")
    parser.add_argument("--quick", action="store_true",
                        help="5 repeats and 200 evaluation images (a smoke run)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_report: no CUDA device here; nothing written", file=sys.stderr)
        return 1
    repeats = 5 if args.quick else args.repeats
    started = time.perf_counter()
    sections: list[tuple[str, Callable[[], str]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sections = [
            ("CPU and CUDA agree", equality),
            ("No host synchronisation", no_sync),
            ("Training on CUDA, torchrun with NCCL and gloo", lambda: training(Path(tmp))),
            ("Evaluation of the bundled checkpoint (test split)",
             lambda: evaluation(200 if args.quick else None)),
            (f"Benchmarks (median of {repeats})", lambda: benchmarks(repeats)),
        ]
        body = []
        for title, fn in sections:
            print(f"gpu_report: {title} ...", file=sys.stderr, flush=True)
            try:
                text = fn()
            except Exception as exc:  # a failed section is reported, the others still run
                text = f"FAILED: {type(exc).__name__}: {exc}"
            body.append(f"## {title}\n\n{text}\n")
    props = torch.cuda.get_device_properties(0)
    header = (
        "# GPU report\n\n"
        f"Written by `PYTHONPATH=. python -m benchmarks.gpu_report"
        f"{' --quick' if args.quick else ''}` on {props.name} "
        f"({props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, CUDA "
        f"{torch.version.cuda}, Python {platform.python_version()}, in "
        f"{time.perf_counter() - started:.0f} s.\n"
    )
    Path(args.out).write_text(header + "\n" + "\n".join(body))
    print(f"gpu_report: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
