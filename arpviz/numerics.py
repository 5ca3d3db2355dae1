"""Which floating-point numerics a run uses, and a switch to deterministic ones.

PyTorch's defaults on CUDA let cuDNN convolutions use TF32 (``torch.backends.cudnn.allow_tf32``,
on by default) while matrix products stay in full float32 (``torch.backends.cuda.matmul.
allow_tf32``, off by default), and pick convolution algorithms that may differ run to run. So a
checkpoint evaluated on CUDA can differ from the CPU in a few images: the bundled default gave
88.33% test top-1 on the CPU and 87.83% on an H200 (3 of 600 images differ). ``evaluate`` and the
app use PyTorch's defaults; :func:`set_deterministic` (``python -m arpviz.evaluate
--deterministic``) turns TF32 off and asks for deterministic algorithms.
"""

from __future__ import annotations

import os

import torch

__all__ = ["describe", "set_deterministic"]


def set_deterministic() -> None:
    """TF32 off for convolutions and matrix products, deterministic algorithms only, no
    cuDNN autotuning. Call it before the first CUDA operation of the process (cuBLAS reads
    ``CUBLAS_WORKSPACE_CONFIG`` when it starts; it is set here when unset)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True)


def describe(device: torch.device | str) -> dict[str, object]:
    """The numerics in force for ``device``, as plain JSON values (recorded with results)."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    return {
        "device": str(device),
        "dtype": "float32",
        "tf32_convolutions": bool(cuda and torch.backends.cudnn.allow_tf32),
        "tf32_matmul": bool(cuda and torch.backends.cuda.matmul.allow_tf32),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "torch": torch.__version__,
    }
