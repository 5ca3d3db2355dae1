"""One MSGN training step (forward, backward, SGD) with ARP against the strided network.

Run: ``.venv/bin/python -m benchmarks.bench_msgn`` (add ``--repeats N``,
``--device cpu|cuda|all``, ``--cases tiny resnet50``). For each case two networks with the same
backbone and one local branch are timed in the same run, interleaved, median of the repeats:

* ``ARP``: Conv3 ARP (k 1.0), Conv4 of the local branch ARP (k 0.7), the paper's MSGN;
* ``stride``: the same network with strided Conv3 and Conv4 (same feature-map sizes).

Each step is timed by the wall clock and, on CPU, by this process's CPU time
(``time.process_time``), which a machine shared with other jobs disturbs less.

Cases: ``tiny`` at 128 px batch 32 and ``resnet50`` at 224 px batch 4 (target: ARP / stride
<= 1.10); on CUDA also ``resnet50_448``, the paper's setting: 448 px, batch 32, bfloat16
autocast, channels_last (target <= 1.05).
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from arpviz.models import MSGN, MSGNConfig, count_flops


@dataclass(frozen=True)
class Case:
    """A benchmark case: backbone, input side, batch, and the GPU training setting."""

    backbone: str
    size: int
    batch: int
    amp: bool = False  # bfloat16 autocast (CUDA only)
    channels_last: bool = False
    target: float = 1.10
    cuda_only: bool = False


CASES = {
    "tiny": Case("tiny", 128, 32),
    "resnet50": Case("resnet50", 224, 4),
    # the paper's classification setting on a GPU: 448 px, batch 32, bf16, channels_last
    "resnet50_448": Case("resnet50", 448, 32, amp=True, channels_last=True, target=1.05,
                         cuda_only=True),
}
VARIANTS = {
    "ARP": {"conv3": "arp", "conv4": "arp"},
    "stride": {"conv3": "stride", "conv4": "stride"},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(model: MSGN, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
          device: torch.device, amp: bool = False) -> tuple[float, float]:
    """One training step; returns ``(wall seconds, process CPU seconds)``."""
    _sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    optimizer.zero_grad(set_to_none=True)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext()
    with autocast:
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    _sync(device)
    return time.perf_counter() - start, time.process_time() - cpu_start


def run_case(name: str, device: torch.device, repeats: int) -> float:
    """Print the medians of case ``name`` on ``device``; return ARP / stride."""
    case = CASES[name]
    backbone, size, batch = case.backbone, case.size, case.batch
    amp = case.amp and device.type == "cuda"
    memory_format = torch.channels_last if case.channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=gen).to(device, memory_format=memory_format)
    y = torch.randint(0, 200, (batch,), generator=gen).to(device)
    models, optimizers, gflops = {}, {}, {}
    for name, options in VARIANTS.items():
        torch.manual_seed(0)
        config = MSGNConfig(backbone=backbone, num_classes=200, local_branches=1, **options)
        with torch.device("meta"):
            gflops[name] = count_flops(MSGN(config), size, batch_size=batch) / 1e9
        model = MSGN(config).to(device, memory_format=memory_format).train()
        models[name] = model
        optimizers[name] = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                           weight_decay=5e-4)
    times: dict[str, list[float]] = {name: [] for name in models}
    cpu_times: dict[str, list[float]] = {name: [] for name in models}
    for name in models:  # warm-up
        _step(models[name], optimizers[name], x, y, device, amp)
    for _ in range(repeats):
        for name in models:
            wall, cpu = _step(models[name], optimizers[name], x, y, device, amp)
            times[name].append(wall)
            cpu_times[name].append(cpu)
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu_times.items()}
    ratio = medians["ARP"] / medians["stride"]
    setting = ", bf16 autocast" if amp else ""
    setting += ", channels_last" if case.channels_last else ""
    print(f"\n{device.type}: {backbone} at {size} px, batch {batch}{setting}, median of "
          f"{repeats} training steps")
    print(f"{'network':<10}{'ms / step':>12}{'min ms':>10}{'max ms':>10}{'CPU ms':>10}"
          f"{'forward GFLOPs':>17}")
    for name, values in times.items():
        print(f"{name:<10}{medians[name] * 1e3:>12.1f}{min(values) * 1e3:>10.1f}"
              f"{max(values) * 1e3:>10.1f}{cpu_medians[name] * 1e3:>10.1f}{gflops[name]:>17.2f}")
    verdict = "meets" if ratio <= case.target else "MISSES"
    print(f"ARP / stride = {ratio:.3f} wall-clock ({verdict} the <= {case.target:.2f} target)")
    if device.type == "cpu":
        print(f"ARP / stride = {cpu_medians['ARP'] / cpu_medians['stride']:.3f} CPU time, "
              f"{min(times['ARP']) / min(times['stride']):.3f} fastest steps")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES),
                        help="cases to run; resnet50_448 runs on CUDA only")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    for device in devices:
        for name in args.cases:
            if device.type == "cuda" or not CASES[name].cuda_only:
                run_case(name, device, args.repeats)


if __name__ == "__main__":
    main()
