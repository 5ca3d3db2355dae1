"""Argument checks shared by the operator, the models and the simulator.

Each raises ``TypeError`` (wrong type) or ``ValueError`` (wrong value) naming the argument.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

KERNELS = ("gaussian", "box")


def check_rate_pair(value: object, name: str) -> tuple[float, float]:
    """A rate or pair of rates in (0, 1] as ``(h, w)``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        pair = (float(value), float(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise TypeError(f"{name} must hold two numbers, got {value!r}")
        pair = (float(value[0]), float(value[1]))
    else:
        raise TypeError(f"{name} must be a number or a pair of numbers, got {value!r}")
    for v in pair:
        if not (0.0 < v <= 1.0) or math.isnan(v):
            raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
    return pair


def check_positive(value: object, name: str) -> float:
    """A finite number > 0, named ``name`` in the error."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (value > 0) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_count(value: object, name: str, *, optional: bool = False) -> int | None:
    """``value`` as an int >= 1 (a count, a size, a limit; ``bool`` is not one), or ``None``
    when ``optional``; otherwise a ``ValueError`` naming ``name``."""
    if optional and value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1{' or None' if optional else ''}, "
                         f"got {value!r}")
    return value


#: The largest ``k`` accepted: far past any useful value (ARP's rate saturates near 1 from
#: ``k`` of a few on), small enough that no arithmetic on it overflows.
K_MAX = 100.0


def check_k(k: object) -> float:
    """The trade-off coefficient: a finite number in ``(0, K_MAX]``."""
    value = check_positive(k, "k")
    if value > K_MAX:
        raise ValueError(f"k must be at most {K_MAX:g}, got {k!r}")
    return value


def check_int(value: object, name: str, *, low: int | None = None, high: int | None = None,
              optional: bool = False) -> int | None:
    """``value`` as an int within ``[low, high]`` (a ``bool`` or a float such as ``64.0`` is not
    an int), or ``None`` when ``optional``; a ``ValueError`` naming ``name`` otherwise."""
    if optional and value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ValueError(f"{name} must be an int in {bounds}, got {value!r}")
    return value


def check_number(value: object, name: str, *, optional: bool = False) -> float | None:
    """``value`` as a finite float (an int or a float, not a ``bool``), or ``None`` when
    ``optional``; a ``ValueError`` naming ``name`` otherwise."""
    if optional and value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_flag(value: object, name: str, *, optional: bool = False) -> bool | None:
    """``value`` as a ``bool`` (``true``/``false``, not 0, 1 or a string), or ``None`` when
    ``optional``; a ``ValueError`` naming ``name`` otherwise."""
    if (optional and value is None) or isinstance(value, bool):
        return value  # type: ignore[return-value]
    raise ValueError(f"{name} must be true or false, got {value!r}")


def check_text(value: object, name: str, *, optional: bool = False) -> str | None:
    """``value`` as a ``str``, or ``None`` when ``optional``; a ``ValueError`` naming ``name``
    otherwise."""
    if (optional and value is None) or isinstance(value, str):
        return value  # type: ignore[return-value]
    raise ValueError(f"{name} must be a string, got {value!r}")


def check_tau(tau: object) -> float:
    """The confidence temperature (beyond the paper; 1 is the paper): a finite number > 0."""
    return check_positive(tau, "tau")


def check_kernel(kernel: object, sigma: object) -> float:
    """A known window kernel and a finite sigma > 0; returns sigma as a float."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if not isinstance(sigma, (int, float)) or isinstance(sigma, bool):
        raise TypeError(f"sigma must be a number, got {sigma!r}")
    if not (sigma > 0) or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    return float(sigma)


def _writable_folder(folder: Path, name: str, shown: object) -> None:
    """``folder`` exists as a writable folder, or can be created: its nearest existing
    ancestor is a writable folder (not a file)."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{name}: {shown!s} cannot be created, {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: {shown!s} cannot be written, {probe} is not writable")


def check_output_file(path: str | os.PathLike, name: str) -> Path:
    """A file path that can be written (checked before any work): not a folder, its folder
    existing and writable or creatable. ``ValueError`` naming ``name`` otherwise."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{name}: {out} is a folder, not a file")
    if out.exists() and not os.access(out, os.W_OK):
        raise ValueError(f"{name}: {out} exists and is not writable")
    _writable_folder(out.parent, name, out)
    return out


def check_output_dir(path: str | os.PathLike, name: str) -> Path:
    """A folder that can be written or created (checked before any work). ``ValueError``
    naming ``name`` otherwise."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{name}: {out} is a file, not a folder")
    _writable_folder(out, name, out)
    return out


def check_device(device: object, name: str = "device", *, local_rank: int | None = None) -> Any:
    """A ``torch.device`` this machine has: ``cpu``, ``cuda[:i]`` with CUDA present, or for
    ``"auto"`` CUDA when present, else the CPU (``ValueError`` naming ``name`` for an unknown
    or absent device).

    With ``local_rank`` (a process's rank on its machine, e.g. ``torchrun``'s ``LOCAL_RANK``)
    a CUDA device without an index (``"cuda"``, or ``"auto"`` with CUDA) becomes
    ``cuda:<local_rank % device_count>``, so the processes of one machine share its GPUs; a
    named index is kept.
    """
    import torch

    if local_rank is not None and (isinstance(local_rank, bool) or not isinstance(local_rank, int)
                                   or local_rank < 0):
        raise ValueError(f"local_rank must be an int >= 0, got {local_rank!r}")
    if device == "auto":
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)  # type: ignore[arg-type]
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"{name} must be cpu or cuda[:N], got {device!r}") from exc
        if resolved.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"{name} {device!r}: CUDA is not available on this machine")
            if resolved.index is not None and resolved.index >= torch.cuda.device_count():
                raise ValueError(f"{name} {device!r}: this machine has "
                                 f"{torch.cuda.device_count()} CUDA device(s)")
        elif resolved.type != "cpu":
            raise ValueError(f"{name} must be cpu or cuda[:N], got {device!r}")
    if resolved.type == "cuda" and resolved.index is None and local_rank is not None:
        resolved = torch.device("cuda", local_rank % torch.cuda.device_count())
    return resolved


def dataclass_fields_of(data: object, cls: type) -> dict[str, Any]:
    """``data`` as a plain dict for ``cls(**...)``: a mapping whose keys are all fields of the
    dataclass ``cls`` (a ``TypeError`` for a non-mapping, a ``ValueError`` naming unknown keys)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"data has unknown {cls.__name__} keys: {unknown}")
    return dict(data)


_Config = TypeVar("_Config", bound="DictConfig")


class DictConfig:
    """Mixin of a frozen config dataclass: :meth:`to_dict`, :meth:`from_dict` (missing keys
    take defaults, unknown keys are a ``ValueError``) and a validated :meth:`replace`."""

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[_Config], data: Mapping[str, Any]) -> _Config:
        """Build a config from a dict (missing keys take defaults; unknown keys are an error)."""
        return cls(**dataclass_fields_of(data, cls))

    def replace(self: _Config, **changes: Any) -> _Config:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)
