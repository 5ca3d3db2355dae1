"""What an explanation is: per-image :class:`ImageRecord` s of stage boxes and predictions and
their JSON form, and :func:`synthetic_data_note`, the caveat of a checkpoint trained on
synthetic images. :class:`InputGeometry`, which maps boxes back to an image's own pixels, and
:func:`eval_resize` live in :mod:`arpviz.geometry` and are re-exported here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from arpviz.geometry import InputGeometry, eval_resize

__all__ = [
    "ClassScore",
    "ExplainedImage",
    "ImageRecord",
    "InputGeometry",
    "SYNTHETIC_DATASETS",
    "StageRecord",
    "eval_resize",
    "record_to_json",
    "synthetic_data_note",
]

#: The synthetic data sets this project draws: the name a checkpoint's ``dataset`` records, and
#: the data set's own name.
SYNTHETIC_DATASETS: dict[str, str] = {"synthbirds": "SynthBirds", "synthreid": "SynthReID"}


def synthetic_data_note(dataset: Mapping[str, Any]) -> str | None:
    """What a checkpoint trained on a synthetic data set (a ``dataset`` record named in
    :data:`SYNTHETIC_DATASETS`) can say about a photo: nothing. ``None`` for any other."""
    title = SYNTHETIC_DATASETS.get(str(dataset.get("name", "")))
    if title is None:
        return None
    return (f"Trained on {title}: synthetic images this project draws. A real photo is outside "
            "its world, so its predictions on one mean nothing; for photos use an ImageNet "
            "ResNet with ARP (arpviz-convert).")


@dataclass(frozen=True)
class ClassScore:
    """One line of the top-5: class ``index``, its ``name`` and probability ``p``."""

    index: int
    name: str
    p: float


@dataclass(frozen=True)
class StageRecord:
    """One pooled stage of one image.

    Attributes:
        mode: ``"rp"``, ``"arp"`` or ``"stn"``.
        box: ``(x1, y1, x2, y2)`` pixel-edge coordinates in the image's own pixels (the decoded,
            EXIF-rotated file).
        input_box: the same box in the network input's pixels (``input_size`` square).
        rates: ``(rate_h, rate_w)`` the stage used.
        k: ARP's ``k`` (``None`` for RP and STN).
        dsr: ``(dsr_h, dsr_w)``.
    """

    mode: str
    box: tuple[float, float, float, float]
    input_box: tuple[float, float, float, float]
    rates: tuple[float, float]
    k: float | None
    dsr: tuple[float, float] | None


@dataclass(frozen=True)
class ImageRecord:
    """What one input gave: its top-5 and every pooled stage's box, or why it failed.

    ``size`` is the image's ``(width, height)``; ``notes`` lists the loader's conversions (EXIF
    rotation, alpha, 16-bit, ...). A failed record has ``ok`` False, ``error`` set and no
    ``size``, ``top5`` or ``stages``.
    """

    file: str
    ok: bool
    error: str | None = None
    size: tuple[int, int] | None = None
    top5: tuple[ClassScore, ...] = ()
    stages: Mapping[str, StageRecord] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @classmethod
    def failed(cls, file: str, error: str) -> ImageRecord:
        """The record of an input that could not be explained."""
        return cls(file=file, ok=False, error=error)


@dataclass(frozen=True, eq=False)
class ExplainedImage:
    """A record and the decoded image it belongs to (``None`` when it failed)."""

    record: ImageRecord
    image: Image.Image | None


def _rounded(values: Iterable[float], digits: int = 3) -> list[float]:
    return [round(float(v), digits) for v in values]


def record_to_json(record: ImageRecord) -> dict[str, Any]:
    """A record as plain JSON types (the ``results.jsonl`` line and the app's JSON download).

    Keys: ``file``, ``ok``, ``error`` and, for a readable image, ``size`` ``[width, height]``,
    ``top5`` (``[{"class", "index", "p"}]``), ``stages`` (per stage ``mode``, ``box`` in image
    pixels, ``input_box`` in network-input pixels, ``rates`` ``[h, w]``, ``k``, ``dsr``
    ``[h, w]``) and ``notes``.
    """
    out: dict[str, Any] = {"file": record.file, "ok": record.ok, "error": record.error}
    if not record.ok:
        return out
    out["size"] = list(record.size) if record.size else None
    out["top5"] = [{"class": c.name, "index": c.index, "p": round(c.p, 6)} for c in record.top5]
    out["stages"] = {
        name: {
            "mode": s.mode,
            "box": _rounded(s.box, 2),
            "input_box": _rounded(s.input_box, 3),
            "rates": _rounded(s.rates, 4),
            "k": s.k,
            "dsr": list(s.dsr) if s.dsr is not None else None,
        }
        for name, s in record.stages.items()
    }
    out["notes"] = list(record.notes)
    return out
