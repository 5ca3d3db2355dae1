"""Explaining images in batches: finding and safely decoding image files, running them through a
checkpoint's model with stage overrides, and turning the results into records.

Memory is bounded per batch: an image whose evaluation resize would exceed
:data:`arpviz.images.MAX_RESIZED_PIXELS` is refused before any resize; a forward pass holds at
most :data:`BATCH_INPUT_PIXELS` network-input pixels (the batch is split to fit); a batch of
:func:`explain_files` holds at most :data:`BATCH_DECODED_PIXELS` decoded pixels (an image
larger than that alone)."""

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
from arpviz.images import DEFAULT_MAX_PIXELS, LoadedImage, check_resized, load_image_info
from arpviz.models import MSGNExplanation, StageOverride
from arpviz.validation import check_count

__all__ = [
    "BATCH_DECODED_PIXELS",
    "BATCH_INPUT_PIXELS",
    "DEFAULT_MAX_BYTES",
    "checked_geometry",
    "explain_files",
    "explain_images",
    "explain_page",
    "images_per_pass",
    "list_images",
    "load_images",
    "model_device",
]

logger = logging.getLogger(__name__)

#: Largest image file read, in bytes (a bound on what a hostile file can make us read).
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
#: Network-input pixels one forward pass may hold: ``batch x input_size**2`` stays under it
#: (the batch is split): 32 images of 224 px, 8 of 448, 1 of 1024 (a checkpoint's largest).
BATCH_INPUT_PIXELS = 32 * 224 * 224
#: Decoded pixels one batch of :func:`explain_files` may hold (192 MB as 8-bit RGB): the batch
#: ends early when the next image would pass it (an image larger than that goes alone).
BATCH_DECODED_PIXELS = 64_000_000
_TOP = 5


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def list_images(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """The files named by ``inputs``, in order; a folder contributes its image files.

    A folder is walked recursively (hidden files and folders skipped, symlinked folders not
    followed) and its files with an image extension (:data:`arpviz.data.folder.IMG_EXTENSIONS`,
    any case) are listed in sorted path order; a folder that holds none (a folder named
    ``x.jpg`` too) is logged as a warning, never dropped in silence. A file is listed as given,
    whatever its name (a missing one too: explaining it reports the error).
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
        if not found:
            what = "a folder, not an image file," if _is_image_name(path.name) else "a folder"
            logger.warning("%r is %s and holds no image files: nothing taken from it",
                           str(path), what)
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
        batch_size: images per forward pass (fewer when they would pass
            :data:`BATCH_INPUT_PIXELS`: :func:`images_per_pass`).

    Returns:
        One :class:`ImageRecord` per image, in order, boxes in each image's own pixels.

    Raises:
        ValueError/TypeError: bad overrides (unknown stage, ``k`` on an RP stage, ...),
            ``batch_size < 1``, ``names`` of another length; an image whose resize would pass
            :data:`arpviz.images.MAX_RESIZED_PIXELS` (before any work, naming it).
    """
    if not isinstance(model_bundle, ckpt.Checkpoint):
        raise TypeError(f"model_bundle must be a Checkpoint, got {type(model_bundle).__name__}")
    batch_size = check_count(batch_size, "batch_size")
    if names is not None and len(names) != len(images):
        raise ValueError(f"names has {len(names)} entries for {len(images)} images")
    model, meta = model_bundle.model, model_bundle.meta
    model.stage_settings(overrides)  # check the overrides before any work
    items = [_loaded(item) for item in images]
    labels = list(names) if names is not None else [f"image {i}" for i in range(len(items))]
    # every network input's size, before any resize
    geometries = [checked_geometry(item.image, meta, label)
                  for item, label in zip(items, labels, strict=True)]
    resize, keep_aspect = eval_resize(meta)  # square, or the aspect kept (converted ImageNet)
    transform = eval_transform(meta.input_size, resize, keep_aspect=keep_aspect, mean=meta.mean,
                               std=meta.std)
    device = model_device(model)
    per_pass = images_per_pass(meta.input_size, batch_size)
    out: list[ImageRecord] = []
    for start in range(0, len(items), per_pass):
        chunk = slice(start, start + per_pass)
        x = torch.stack([transform(item.image) for item in items[chunk]]).to(device)
        explanation = model.explain(x, overrides)
        notes = [item.notes_for(meta.input_size) for item in items[chunk]]
        out += _records(explanation, geometries[chunk], labels[chunk], notes, meta.class_names)
    return out


def _loaded(item: object) -> LoadedImage:
    """A PIL image as a :class:`LoadedImage` (RGB, no notes); a ``LoadedImage`` as it is."""
    if isinstance(item, Image.Image):
        return LoadedImage(item if item.mode == "RGB" else item.convert("RGB"),
                           item.format or "", item.mode, item.size)
    if not isinstance(item, LoadedImage):
        raise TypeError(f"images must hold PIL images or LoadedImage, got {type(item).__name__}")
    return item


def checked_geometry(image: Image.Image, meta: ckpt.CheckpointMeta,
                     name: str) -> InputGeometry:
    """``image``'s geometry under ``meta``'s evaluation transform, refused (a ``ValueError``
    naming ``name``) when its resize would pass :data:`arpviz.images.MAX_RESIZED_PIXELS`;
    nothing is resized."""
    geometry = InputGeometry.of_checkpoint(image.width, image.height, meta)
    check_resized(name, image.size, geometry.resized)
    return geometry


def images_per_pass(input_size: int, batch_size: int) -> int:
    """How many images one forward pass takes: ``batch_size``, fewer when ``batch_size``
    inputs of ``input_size`` would pass :data:`BATCH_INPUT_PIXELS` (at least one)."""
    return max(1, min(batch_size, BATCH_INPUT_PIXELS // (input_size * input_size)))


def _decoded_batches(
    files: Sequence[str | os.PathLike], batch_size: int, max_pixels: int, max_bytes: int,
) -> Iterator[list[tuple[str, LoadedImage | str]]]:
    """``files`` decoded one by one (a failure as its message) in batches of at most
    ``batch_size`` files and :data:`BATCH_DECODED_PIXELS` decoded pixels."""
    batch: list[tuple[str, LoadedImage | str]] = []
    held = 0
    for file in files:
        [item] = load_images([file], max_pixels=max_pixels, max_bytes=max_bytes)
        pixels = item.image.width * item.image.height if isinstance(item, LoadedImage) else 0
        if batch and (len(batch) >= batch_size or held + pixels > BATCH_DECODED_PIXELS):
            yield batch
            batch, held = [], 0
        batch.append((str(file), item))
        held += pixels
    if batch:
        yield batch


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

    Files are yielded in order; a file that cannot be read, or whose network input would be
    too large (:func:`checked_geometry`), yields a failed record (and no image). Only one batch
    of decoded images is held at a time (at most ``batch_size`` files and
    :data:`BATCH_DECODED_PIXELS` pixels). ``progress`` shows a tqdm bar.
    A Gallery page explains one page with ``list(explain_files(bundle, files[a:b], ...))``.
    """
    model_bundle.model.stage_settings(overrides)  # usage errors before the first file
    batch_size = check_count(batch_size, "batch_size")
    meta = model_bundle.meta
    bar = tqdm(total=len(files), desc="explain", unit="img", disable=not progress)
    try:
        for batch in _decoded_batches(files, batch_size, max_pixels, max_bytes):
            errors: dict[int, str] = {}
            for i, (file, item) in enumerate(batch):
                if isinstance(item, str):
                    errors[i] = item
                    continue
                try:
                    checked_geometry(item.image, meta, file)
                except ValueError as exc:
                    errors[i] = str(exc)
            good = [i for i in range(len(batch)) if i not in errors]
            records = explain_images(model_bundle, [batch[i][1] for i in good], overrides,
                                     names=[batch[i][0] for i in good], batch_size=batch_size)
            by_index = dict(zip(good, records, strict=True))
            for i, (file, item) in enumerate(batch):
                bar.update(1)
                if i in by_index:
                    yield ExplainedImage(by_index[i], item.image)  # type: ignore[union-attr]
                else:
                    logger.warning("%s", errors[i])
                    yield ExplainedImage(ImageRecord.failed(file, errors[i]), None)
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
