"""Forward + backward time of ARP and RP against common downsampling ops, as ratios.

Run: ``.venv/bin/python -m benchmarks.bench_pooling`` (add ``--repeats N``). Every op is timed in
the same run, interleaved, and reported as the median time divided by ``avg_pool2d(2)``'s; on
CUDA in float32 and bfloat16, timed with CUDA events. ARP-FG (beyond the paper) is timed beside
ARP: its peak region adds ``H + W`` small max-pools on the confidence map. Targets (issue 10):
ARP <= 2.0x on the CPU at (32, 256, 56, 56), <= 1.5x on a GPU at both shapes and dtypes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from arpviz import adaptive_region_pool, region_pool
from arpviz.foreground import foreground_region_pool

SHAPES = [(32, 256, 56, 56), (32, 512, 28, 28)]


def _ops(channels: int, device: torch.device, dtype: torch.dtype = torch.float32,
         ) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    conv = torch.nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False)
    conv = conv.to(device=device, dtype=dtype)
    theta = torch.tensor([[[0.5, 0.0, 0.1], [0.0, 0.5, -0.1]]], device=device, dtype=dtype)

    def affine(x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[0], x.shape[1], x.shape[2] // 2, x.shape[3] // 2)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(size), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)

    return {
        "avg_pool2d(2)": lambda x: F.avg_pool2d(x, 2),
        "ARP (k=1)": lambda x: adaptive_region_pool(x, 0.5, 1.0).features,
        "RP": lambda x: region_pool(x, 0.5).features,
        "ARP-FG (k=1.5)": lambda x: foreground_region_pool(x, 0.5, 1.5).features,
        "ARP-FG peak (k=1.5)": lambda x: foreground_region_pool(x, 0.5, 1.5,
                                                                region="peak").features,
        "conv3x3 stride 2": conv,
        "affine_grid+grid_sample": affine,
    }


TARGETS = {"cpu": 2.0, "cuda": 1.5}  # ARP forward + backward / avg_pool2d(2)


def _step(op: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    """Seconds of one forward + backward (CUDA events on a GPU, the wall clock on the CPU)."""
    x = x.detach().requires_grad_(True)
    if x.is_cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        op(x).float().sum().backward()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    start_s = time.perf_counter()
    op(x).float().sum().backward()
    return time.perf_counter() - start_s


def run(device: torch.device, repeats: int,
        dtypes: tuple[torch.dtype, ...] = (torch.float32,)) -> dict[str, float]:
    """Print median times and ratios to avg_pool2d for every shape and dtype on ``device``;
    return ``{"<shape> <dtype>": ARP / avg_pool2d}``."""
    ratios: dict[str, float] = {}
    for shape in SHAPES:
        for dtype in dtypes:
            x = torch.randn(*shape, device=device, dtype=dtype)
            ops = _ops(shape[1], device, dtype)
            times: dict[str, list[float]] = {name: [] for name in ops}
            for op in ops.values():  # warm-up
                _step(op, x)
            for _ in range(repeats):
                for name, op in ops.items():
                    times[name].append(_step(op, x))
            base = statistics.median(times["avg_pool2d(2)"])
            dname = str(dtype).removeprefix("torch.")
            print(f"\n{device.type} {tuple(shape)} {dname}  (median of {repeats}, "
                  "forward + backward)")
            print(f"{'op':<26}{'ms':>10}{'x avg_pool2d':>15}")
            for name, values in times.items():
                med = statistics.median(values)
                print(f"{name:<26}{med * 1e3:>10.2f}{med / base:>15.2f}")
            ratio = statistics.median(times["ARP (k=1)"]) / base
            target = TARGETS[device.type]
            verdict = "meets" if ratio <= target else "MISSES"
            print(f"ARP / avg_pool2d = {ratio:.2f} ({verdict} the <= {target:.1f} target)")
            ratios[f"{tuple(shape)} {dname}"] = ratio
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    if args.device in ("cpu", "all"):
        run(torch.device("cpu"), args.repeats)
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        run(torch.device("cuda"), args.repeats, (torch.float32, torch.bfloat16))


if __name__ == "__main__":
    main()
