"""Explain many images: ``python -m arpviz.explain --checkpoint CKPT --out DIR INPUT...``.

An INPUT is an image file or a folder (searched recursively for image files, in sorted order).
The command writes ``DIR/results.jsonl`` (one JSON object per image, in input order),
``DIR/overlays/<nnnnnn>_<name>.png`` (every pooled stage's box drawn on the original image, one
colour per stage) and ``DIR/manifest.json`` (checkpoint digest and card, settings, versions,
device). A file that cannot be read safely gets a record with ``"ok": false`` and the reason;
the run goes on. Exit status: 0 when every image worked, 1 when some failed, 2 for a usage
error. Under ``torchrun`` each rank explains a shard and rank 0 writes one results file.

The library side, for the app's export buttons and its Gallery page:

- :func:`list_images`: the image files of files and folders, in a stable order;
- :func:`load_images`: decode them safely (:func:`arpviz.images.load_image_info`);
- :func:`explain_images`: a batch of decoded images through a checkpoint's model, with stage
  overrides (:class:`~arpviz.models.StageOverride`), into :class:`ImageRecord` s whose boxes are
  in each image's own pixels (:class:`InputGeometry` maps them back through the resize and
  centre crop of :func:`arpviz.data.transforms.eval_transform`);
- :func:`explain_files`: both of the above for a list of files, batched, failures included;
  :func:`explain_page`: one page of them, for a gallery;
- :func:`record_to_json` and :func:`overlay_png`: the exported record and overlay.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import math
import os
import platform
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from arpviz import checkpoint as ckpt
from arpviz.data.folder import IMG_EXTENSIONS
from arpviz.data.transforms import default_resize, eval_transform
from arpviz.images import DEFAULT_MAX_PIXELS, LoadedImage, load_image_info
from arpviz.models import MSGNExplanation, StageOverride

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ClassScore",
    "ExplainedImage",
    "ImageRecord",
    "InputGeometry",
    "StageRecord",
    "explain_files",
    "explain_images",
    "explain_page",
    "list_images",
    "load_images",
    "main",
    "overlay_png",
    "parse_overrides",
    "record_to_json",
]

logger = logging.getLogger(__name__)

#: Largest image file read, in bytes (a bound on what a hostile file can make us read).
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
_TOP = 5


# ----------------------------------------------------------------------------- records


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


@dataclass(frozen=True)
class InputGeometry:
    """How the eval transform maps an image of ``width x height`` onto the network's input.

    The image is resized (stretched) to ``resize x resize`` and the centre ``input_size``
    square is cut at ``(left, top)`` of the resized image (torchvision's ``CenterCrop``
    rounding), as :func:`arpviz.data.transforms.eval_transform` does.
    """

    width: int
    height: int
    input_size: int
    resize: int
    left: int
    top: int

    @classmethod
    def of(cls, width: int, height: int, input_size: int) -> InputGeometry:
        """The geometry of an image of ``width x height`` for a model of ``input_size``."""
        if width <= 0 or height <= 0:
            raise ValueError(f"width and height must be > 0, got {width}x{height}")
        resize = default_resize(input_size)
        offset = int(round((resize - input_size) / 2.0))
        return cls(width, height, input_size, resize, offset, offset)

    def to_image(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """A box ``(x1, y1, x2, y2)`` in input pixels -> the same box in image pixels."""
        sx, sy = self.width / self.resize, self.height / self.resize
        x1, y1, x2, y2 = (float(v) for v in box)
        return ((x1 + self.left) * sx, (y1 + self.top) * sy,
                (x2 + self.left) * sx, (y2 + self.top) * sy)

    @property
    def crop_area(self) -> tuple[float, float, float, float]:
        """The part of the image the network sees, in image pixels."""
        return self.to_image((0.0, 0.0, self.input_size, self.input_size))


# ----------------------------------------------------------------------------- inputs


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def list_images(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """The files named by ``inputs``, in order; a folder contributes its image files.

    A folder is walked recursively (hidden files and folders skipped, symlinked folders not
    followed) and its files with an image extension (:data:`arpviz.data.folder.IMG_EXTENSIONS`,
    any case) are listed in sorted path order. A file is listed as given, whatever its name
    (a missing one too: explaining it reports the error).
    """
    if isinstance(inputs, (str, os.PathLike)):
        raise TypeError("inputs must be a collection of paths, not one path")
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if not path.is_dir():
            out.append(path)
            continue
        found = []
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found += [Path(dirpath) / f for f in filenames if _is_image_name(f)]
        out += sorted(found, key=lambda p: p.relative_to(path).parts)
    return out


def load_images(
    files: Sequence[str | os.PathLike],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[LoadedImage | str]:
    """Decode each file safely: a :class:`~arpviz.images.LoadedImage`, or the error message.

    Never raises for a bad file: missing, not a regular file, empty, corrupt, too large, a
    foreign format under an image name, ... each becomes a one-line message.
    """
    out: list[LoadedImage | str] = []
    for file in files:
        path = Path(file)
        try:
            if not path.exists():
                raise ValueError(f"{str(path)!r}: no such file")
            if not path.is_file():
                raise ValueError(f"{str(path)!r} is not a regular file")
            out.append(load_image_info(path, max_pixels=max_pixels, max_bytes=max_bytes))
        except (ValueError, OSError) as exc:
            out.append(str(exc) or type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - a hostile file must not stop the run
            out.append(f"{path.name!r} could not be read: {type(exc).__name__}: {exc}")
    return out


# ----------------------------------------------------------------------------- explaining


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _records(
    explanation: MSGNExplanation,
    geometries: Sequence[InputGeometry],
    names: Sequence[str],
    notes: Sequence[tuple[str, ...]],
    class_names: Sequence[str],
) -> list[ImageRecord]:
    probs = explanation.logits.float().softmax(dim=1).cpu()
    top = min(_TOP, probs.shape[1])
    values, indices = probs.topk(top, dim=1)
    stages = {
        name: (explanation.settings[name], result.rates.float().cpu().numpy(),
               explanation.image_boxes[name].float().cpu().numpy())
        for name, result in explanation.stages.items()
    }
    out = []
    for i, geometry in enumerate(geometries):
        top5 = tuple(ClassScore(int(j), class_names[int(j)], float(p))
                     for p, j in zip(values[i].tolist(), indices[i].tolist(), strict=True))
        per_stage = {}
        for name, (settings, rates, boxes) in stages.items():
            input_box = tuple(float(v) for v in boxes[i])
            per_stage[name] = StageRecord(
                mode=settings.mode,
                box=geometry.to_image(input_box),
                input_box=input_box,  # type: ignore[arg-type]
                rates=(float(rates[i, 0]), float(rates[i, 1])),
                k=settings.k,
                dsr=settings.dsr,
            )
        out.append(ImageRecord(file=names[i], ok=True, size=(geometry.width, geometry.height),
                               top5=top5, stages=per_stage, notes=notes[i]))
    return out


@torch.no_grad()
def explain_images(
    model_bundle: ckpt.Checkpoint,
    images: Sequence[Image.Image | LoadedImage],
    overrides: Mapping[str, StageOverride] | None = None,
    *,
    names: Sequence[str] | None = None,
    batch_size: int = 32,
) -> list[ImageRecord]:
    """Explain decoded images with a checkpoint's model (on whatever device it is).

    Args:
        model_bundle: a loaded :class:`~arpviz.checkpoint.Checkpoint` (model and meta).
        images: RGB PIL images or :class:`~arpviz.images.LoadedImage` s (their notes are kept).
        overrides: stage name -> :class:`~arpviz.models.StageOverride`, as
            :meth:`arpviz.models.MSGN.explain` takes them.
        names: what each record's ``file`` says (default ``"image <i>"``).
        batch_size: images per forward pass.

    Returns:
        One :class:`ImageRecord` per image, in order, boxes in each image's own pixels.

    Raises:
        ValueError/TypeError: bad overrides (unknown stage, ``k`` on an RP stage, ...),
            ``batch_size < 1``, ``names`` of another length.
    """
    if not isinstance(model_bundle, ckpt.Checkpoint):
        raise TypeError(f"model_bundle must be a Checkpoint, got {type(model_bundle).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if names is not None and len(names) != len(images):
        raise ValueError(f"names has {len(names)} entries for {len(images)} images")
    model, meta = model_bundle.model, model_bundle.meta
    model.stage_settings(overrides)  # check the overrides before any work
    transform = eval_transform(meta.input_size, mean=meta.mean, std=meta.std)
    device = _model_device(model)
    out: list[ImageRecord] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        pils, notes = [], []
        for item in chunk:
            if isinstance(item, LoadedImage):
                pils.append(item.image)
                notes.append(tuple(item.notes))
            elif isinstance(item, Image.Image):
                pils.append(item if item.mode == "RGB" else item.convert("RGB"))
                notes.append(())
            else:
                raise TypeError(f"images must hold PIL images or LoadedImage, got "
                                f"{type(item).__name__}")
        x = torch.stack([transform(p) for p in pils]).to(device)
        explanation = model.explain(x, overrides)
        geometries = [InputGeometry.of(p.width, p.height, meta.input_size) for p in pils]
        chunk_names = (names[start : start + len(chunk)] if names is not None
                       else [f"image {start + i}" for i in range(len(chunk))])
        out += _records(explanation, geometries, chunk_names, notes, meta.class_names)
    return out


def explain_files(
    model_bundle: ckpt.Checkpoint,
    files: Sequence[str | os.PathLike],
    overrides: Mapping[str, StageOverride] | None = None,
    *,
    batch_size: int = 32,
    progress: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Iterator[ExplainedImage]:
    """Load and explain ``files`` batch by batch; yields one :class:`ExplainedImage` per file.

    Files are yielded in order; a file that cannot be read yields a failed record (and no
    image). Only one batch of decoded images is held at a time. ``progress`` shows a tqdm bar.
    A Gallery page explains one page with ``list(explain_files(bundle, files[a:b], ...))``.
    """
    model_bundle.model.stage_settings(overrides)  # usage errors before the first file
    bar = tqdm(total=len(files), desc="explain", unit="img", disable=not progress)
    try:
        for start in range(0, len(files), batch_size):
            chunk = [str(f) for f in files[start : start + batch_size]]
            loaded = load_images(chunk, max_pixels=max_pixels, max_bytes=max_bytes)
            good = [i for i, item in enumerate(loaded) if isinstance(item, LoadedImage)]
            records = explain_images(model_bundle, [loaded[i] for i in good], overrides,
                                     names=[chunk[i] for i in good], batch_size=batch_size)
            by_index = dict(zip(good, records, strict=True))
            for i, item in enumerate(loaded):
                bar.update(1)
                if isinstance(item, LoadedImage):
                    yield ExplainedImage(by_index[i], item.image)
                else:
                    logger.warning("%s", item)
                    yield ExplainedImage(ImageRecord.failed(chunk[i], item), None)
    finally:
        bar.close()


def explain_page(
    model_bundle: ckpt.Checkpoint,
    files: Sequence[str | os.PathLike],
    page: int,
    page_size: int = 24,
    overrides: Mapping[str, StageOverride] | None = None,
    *,
    batch_size: int = 32,
) -> list[ExplainedImage]:
    """Page ``page`` (0-based) of ``files``, ``page_size`` per page, explained (for a gallery).

    Raises:
        ValueError: ``page_size < 1`` or ``page`` outside ``[0, pages)`` (an empty list has
            one empty page 0).
    """
    if not isinstance(page_size, int) or page_size < 1:
        raise ValueError(f"page_size must be an int >= 1, got {page_size!r}")
    pages = max(1, math.ceil(len(files) / page_size))
    if not isinstance(page, int) or not 0 <= page < pages:
        raise ValueError(f"page must be in [0, {pages}), got {page!r}")
    chunk = files[page * page_size : (page + 1) * page_size]
    return list(explain_files(model_bundle, chunk, overrides, batch_size=batch_size))


# ----------------------------------------------------------------------------- export


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


def _colour(name: str) -> str:
    from arpviz.explorer.figures.palette import stage_colour

    return stage_colour(name)


def overlay_png(image: Image.Image, record: ImageRecord, *, max_side: int | None = None) -> bytes:
    """The image with every stage's box of ``record`` drawn on it, as PNG bytes.

    ``image`` is the decoded PIL image the record belongs to (e.g.
    ``arpviz.images.load_image_info(...).image``); the PNG has its size. Each stage has its
    colour (:func:`arpviz.explorer.figures.palette.stage_colour`) and a label; the line width
    grows with the image. ``max_side`` (a thumbnail, e.g. for a gallery) shrinks a larger image
    first so that its longer side is ``max_side``, and draws the boxes at that scale.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image, got {type(image).__name__}")
    if not isinstance(record, ImageRecord):
        raise TypeError(f"record must be an ImageRecord, got {type(record).__name__}")
    if record.size is not None and tuple(record.size) != image.size:
        raise ValueError(f"record is for a {record.size} image, got {image.size}")
    if max_side is not None and (not isinstance(max_side, int) or max_side < 1):
        raise ValueError(f"max_side must be an int >= 1 or None, got {max_side!r}")
    canvas = image.convert("RGB")  # a copy: the caller's image is untouched
    scale = 1.0
    if max_side is not None and max(canvas.size) > max_side:
        scale = max_side / max(canvas.size)
        canvas = canvas.resize((max(1, round(canvas.width * scale)),
                                max(1, round(canvas.height * scale))), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    side = min(canvas.size)
    width = max(1, round(side / 160))
    font = ImageFont.load_default(size=max(10, side // 30))
    line = font.getbbox("Ag")[3] + 4
    for row, (name, stage) in enumerate(record.stages.items()):
        colour = _colour(name)
        x1, y1, x2, y2 = (v * scale for v in stage.box)
        # PIL's rectangle includes its far edge; a box under a pixel wide stays one pixel
        draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=colour, width=width)
        label = name if stage.k is None else f"{name} k={stage.k:g}"
        tx, ty = x1 + width + 1, y1 + width + 1 + row * line  # nested boxes: labels stack
        bbox = draw.textbbox((tx, ty), label, font=font)
        draw.rectangle(bbox, fill=(0, 0, 0))
        draw.text((tx, ty), label, fill=colour, font=font)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- command line


class UsageError(ValueError):
    """A mistake on the command line (exit status 2)."""


_SET = re.compile(r"^(?P<stage>[A-Za-z0-9_.]+)\.(?P<field>k|dsr|mode)=(?P<value>.+)$")


def parse_overrides(items: Sequence[str]) -> dict[str, StageOverride]:
    """``["conv4.local0.k=0.5", "conv3.dsr=0.6", "conv3.mode=rp"]`` -> stage overrides.

    ``dsr`` is one number or ``h,w``. Stage names are checked by the model later.

    Raises:
        ValueError: bad syntax, a value that is not a number, a field set twice, ``k <= 0``,
            a DSR outside ``(0, 1]``.
    """
    fields: dict[str, dict[str, Any]] = {}
    for item in items:
        match = _SET.match(item.strip())
        if match is None:
            raise ValueError(f"--set {item!r}: expected STAGE.k=V, STAGE.dsr=V or STAGE.mode=M, "
                             "e.g. conv4.local0.k=0.5")
        stage, name, raw = match["stage"], match["field"], match["value"].strip()
        try:
            if name == "k":
                value: Any = float(raw)
            elif name == "dsr":
                parts = [float(v) for v in raw.split(",")]
                if len(parts) not in (1, 2):
                    raise ValueError
                value = parts[0] if len(parts) == 1 else tuple(parts)
            else:
                value = raw
        except ValueError:
            raise ValueError(f"--set {item!r}: {raw!r} is not a valid {name}") from None
        if name in fields.setdefault(stage, {}):
            raise ValueError(f"--set {item!r}: {stage}.{name} is set twice")
        fields[stage][name] = value
    out = {}
    for stage, values in fields.items():
        try:
            out[stage] = StageOverride(**values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--set {stage}: {exc}") from None
    return out


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _card(meta: ckpt.CheckpointMeta) -> dict[str, Any]:
    history = list(meta.history)
    return {
        "config": meta.config.to_dict(),
        "classes": len(meta.class_names),
        "input": {"size": meta.input_size, "mean": list(meta.mean), "std": list(meta.std)},
        "dataset": str(meta.dataset.get("name", "unknown")),
        "epochs": len(history),
        "last_epoch": dict(history[-1]) if history else {},
        "created": meta.created,
    }


def _versions() -> dict[str, str]:
    import torchvision

    import arpviz

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__,
            "pillow": Image.__version__, "arpviz": getattr(arpviz, "__version__", "unknown")}


def _resolve_device(choice: str, local_rank: int) -> torch.device:
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(choice)
    except RuntimeError as exc:
        raise UsageError(f"--device {choice!r}: {exc}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {choice!r}: CUDA is not available here")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def _distributed() -> tuple[int, int]:
    """``(rank, world_size)``; starts the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _gather(rows: list[tuple[int, dict[str, Any]]], world: int) -> list[tuple[int, dict]]:
    """Every rank's ``(input index, record JSON)`` rows, sorted by input index."""
    if world > 1:
        import torch.distributed as dist

        parts: list[Any] = [None] * world
        dist.all_gather_object(parts, rows)
        rows = [row for part in parts for row in part]
    return sorted(rows, key=lambda row: row[0])


def _finish(world: int) -> None:
    """Wait for every rank and leave the process group (under torchrun)."""
    if world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def _overlay_name(index: int, file: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file).stem)[:60] or "image"
    return f"{index:06d}_{stem}.png"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m arpviz.explain",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files and folders (searched recursively)")
    parser.add_argument("--checkpoint", required=True, help="an arpviz .safetensors checkpoint")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="STAGE.FIELD=V",
                        help="override a stage: STAGE.k=V, STAGE.dsr=V (or H,W), STAGE.mode=rp|arp;"
                             " repeatable, e.g. --set conv4.local0.k=0.5")
    parser.add_argument("--no-overlays", dest="overlays", action="store_false",
                        help="skip the overlay PNGs (draw overlays: %(default)s)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse images with more pixels (checked before decoding)")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help="refuse image files larger than this")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
    return parser


def _prepare(args: argparse.Namespace, local_rank: int) -> tuple[ckpt.Checkpoint, dict, list]:
    """Check every argument and load the model; raises UsageError."""
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.max_pixels < 1 or args.max_bytes < 1:
        raise UsageError("--max-pixels and --max-bytes must be >= 1")
    try:
        overrides = parse_overrides(args.overrides)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    device = _resolve_device(args.device, local_rank)
    try:
        bundle = ckpt.load(args.checkpoint, device=device)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        raise UsageError(f"--checkpoint: {exc}") from None
    try:
        bundle.model.stage_settings(overrides)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--set: {exc}") from None
    files = list_images(args.inputs)
    if not files:
        raise UsageError(f"no image files found in {args.inputs}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a folder")
    return bundle, overrides, files


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 all ok, 1 some failed, 2 usage error)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(message)s")
    rank, world = _distributed()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    try:
        bundle, overrides, files = _prepare(args, local_rank)
    except UsageError as exc:
        if rank == 0:
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        _finish(world)
        return 2
    out = Path(args.out)
    overlays = out / "overlays"
    (overlays if args.overlays else out).mkdir(parents=True, exist_ok=True)
    device = _model_device(bundle.model)

    mine = list(range(rank, len(files), world))  # strided shard: similar work per rank
    rows: list[tuple[int, dict[str, Any]]] = []
    explained = explain_files(bundle, [files[i] for i in mine], overrides,
                              batch_size=args.batch_size, progress=not args.quiet and rank == 0,
                              max_pixels=args.max_pixels, max_bytes=args.max_bytes)
    for index, item in zip(mine, explained, strict=True):
        row = record_to_json(item.record)
        row["file"] = str(files[index])
        if args.overlays and item.image is not None:
            name = _overlay_name(index, row["file"])
            try:
                (overlays / name).write_bytes(overlay_png(item.image, item.record))
                row["overlay"] = f"overlays/{name}"
            except Exception as exc:  # noqa: BLE001 - a drawing failure must not stop the run
                logger.warning("overlay of %s failed: %s", row["file"], exc)
                row["overlay"] = None
        rows.append((index, row))
    rows = _gather(rows, world)
    failed = sum(not row["ok"] for _, row in rows)
    if rank == 0:
        with open(out / "results.jsonl", "w", encoding="utf-8") as handle:
            for _, row in rows:
                handle.write(json.dumps(row, allow_nan=False) + "\n")
        manifest = {
            "command": "python -m arpviz.explain",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "checkpoint": {"path": str(args.checkpoint),
                           "sha256": _file_sha256(Path(args.checkpoint)),
                           "card": _card(bundle.meta)},
            "settings": {
                "inputs": [str(i) for i in args.inputs],
                "images": len(files),
                "overrides": {name: {"mode": o.mode, "k": o.k,
                                     "dsr": list(o.dsr) if o.dsr is not None else None}
                              for name, o in overrides.items()},
                "stages": {name: {"mode": s.mode, "k": s.k,
                                  "dsr": list(s.dsr) if s.dsr is not None else None}
                           for name, s in bundle.model.stage_settings(overrides).items()},
                "batch_size": args.batch_size,
                "max_pixels": args.max_pixels,
                "max_bytes": args.max_bytes,
                "overlays": args.overlays,
            },
            "device": {"type": device.type, "name": (torch.cuda.get_device_name(device)
                                                      if device.type == "cuda" else
                                                      platform.processor() or platform.machine()),
                       "world_size": world},
            "versions": _versions(),
            "results": {"ok": len(rows) - failed, "failed": failed},
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"{len(rows) - failed} of {len(rows)} images explained; {failed} failed; "
              f"results in {out / 'results.jsonl'}")
    _finish(world)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
