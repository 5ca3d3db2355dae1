"""Where interactive use runs: the device a user picked and torch's CPU threads."""

from __future__ import annotations

import logging
import os

import torch

from arpviz.validation import check_device

__all__ = ["DEVICE_CHOICES", "default_threads", "resolve_device", "set_threads"]

logger = logging.getLogger(__name__)

#: What the app's device control offers.
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def resolve_device(choice: str) -> tuple[str, str | None]:
    """The torch device for ``"auto"``, ``"cpu"`` or ``"cuda"`` (by
    :func:`arpviz.validation.check_device`, the one resolver), and a note when it fell back:
    ``cuda`` on a machine without CUDA runs on the CPU and says so.

    Raises:
        ValueError: ``choice`` is none of :data:`DEVICE_CHOICES`.
    """
    if choice not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {choice!r}")
    try:
        return str(check_device(choice)), None
    except ValueError:
        return "cpu", "CUDA is not available here; running on the CPU."


def default_threads() -> int:
    """CPU threads for interactive use: env ``ARPVIZ_THREADS``, else half the cores, 1 to 4.

    Small models at interactive sizes gain little from more threads and lose a lot when the
    cores are shared (on 2 busy cores a k change took 8 ms with 1 thread, 100 ms with 2; see
    docs/benchmarks.md).
    """
    raw = os.environ.get("ARPVIZ_THREADS", "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            logger.warning("ignoring ARPVIZ_THREADS=%r (not an integer)", raw)
        else:
            if value >= 1:
                return value
            logger.warning("ignoring ARPVIZ_THREADS=%r (must be >= 1)", raw)
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def set_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads (``None``: :func:`default_threads`); returns the number set."""
    count = default_threads() if threads is None else int(threads)
    if count < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
        logger.info("torch CPU threads: %d", count)
    return count
