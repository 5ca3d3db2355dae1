"""Explaining images in batches: finding and safely decoding image files, running them through a
checkpoint's model with stage overrides, and turning the results into records."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from arpviz import checkpoint as ckpt
from arpviz.data.folder import IMG_EXTENSIONS
from arpviz.data.transforms import eval_transform
from arpviz.explain.records import ClassScore, ExplainedImage, ImageRecord, StageRecord
from arpviz.geometry import InputGeometry, eval_resize
from arpviz.images import DEFAULT_MAX_PIXELS, LoadedImage, load_image_info
from arpviz.models import MSGNExplanation, StageOverride
from arpviz.validation import check_count

__all__ = [
    "DEFAULT_MAX_BYTES",
    "explain_files",
    "explain_images",
    "explain_page",
    "list_images",
    "load_images",
    "model_device",
]

logger = logging.getLogger(__name__)

#: Largest image file read, in bytes (a bound on what a hostile file can make us read).
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
_TOP = 5


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


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (where its inputs must go)."""
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
    batch_size = check_count(batch_size, "batch_size")
    if names is not None and len(names) != len(images):
        raise ValueError(f"names has {len(names)} entries for {len(images)} images")
    model, meta = model_bundle.model, model_bundle.meta
    model.stage_settings(overrides)  # check the overrides before any work
    resize, keep_aspect = eval_resize(meta)  # square, or the aspect kept (converted ImageNet)
    transform = eval_transform(meta.input_size, resize, keep_aspect=keep_aspect, mean=meta.mean,
                               std=meta.std)
    device = model_device(model)
    out: list[ImageRecord] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        pils, notes = [], []
        for item in chunk:
            if isinstance(item, Image.Image):
                item = LoadedImage(item if item.mode == "RGB" else item.convert("RGB"),
                                   item.format or "", item.mode, item.size)
            elif not isinstance(item, LoadedImage):
                raise TypeError(f"images must hold PIL images or LoadedImage, got "
                                f"{type(item).__name__}")
            pils.append(item.image)
            notes.append(item.notes_for(meta.input_size))
        x = torch.stack([transform(p) for p in pils]).to(device)
        explanation = model.explain(x, overrides)
        geometries = [InputGeometry.of_checkpoint(p.width, p.height, meta) for p in pils]
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
    page_size = check_count(page_size, "page_size")
    pages = max(1, math.ceil(len(files) / page_size))
    if not isinstance(page, int) or not 0 <= page < pages:
        raise ValueError(f"page must be in [0, {pages}), got {page!r}")
    chunk = files[page * page_size : (page + 1) * page_size]
    return list(explain_files(model_bundle, chunk, overrides, batch_size=batch_size))
