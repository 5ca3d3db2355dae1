"""What the network sees: uploads, SynthBirds samples and probe images, prepared alike.

Every image goes through its checkpoint's evaluation geometry, that of
:func:`arpviz.data.transforms.eval_transform`: a square resize to ``default_resize(S)`` and a
centre crop of ``S`` for the trained checkpoints; for a converted torchvision network, as
torchvision evaluates it, the shorter side resized (256 for 224) with the aspect kept, then the
centre crop. :class:`arpviz.explain.InputGeometry` (``of_checkpoint``) is that geometry, decided
in one place (:func:`arpviz.explain.records.eval_resize`) for the app and ``arpviz-explain``
alike. :func:`preprocess` returns a :class:`PreparedImage`: the ``uint8`` input image to draw,
the normalised tensor, its geometry, and (for a SynthBirds sample) the ground truth mapped into
the input's pixels.

Coordinates: boxes are ``(x1, y1, x2, y2)`` in pixel-edge coordinates of the ``S x S`` input.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from arpviz.checkpoint import CheckpointMeta
from arpviz.data.synthbirds import SynthBirds
from arpviz.datasources import build, probe_batch, synth_config
from arpviz.explorer.catalog import trained_on_synthbirds
from arpviz.geometry import InputGeometry
from arpviz.images import LoadedImage, check_resized, load_image_info

__all__ = [
    "IMAGE_TYPES",
    "MAX_IMAGE_BYTES",
    "MAX_PIXELS",
    "GroundTruth",
    "PreparedImage",
    "blank_images",
    "center_crop_offsets",
    "crop_center",
    "crop_image",
    "image_digest",
    "load_file",
    "load_upload",
    "preprocess",
    "probe_images",
    "probe_images_or_blank",
    "sample_count",
    "sample_split",
    "synth_sample",
]

logger = logging.getLogger(__name__)

#: Largest image upload, in bytes (the uploader also says 20 MB).
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: Largest image, in pixels, checked from the header before decoding (24 MPx photos fit).
MAX_PIXELS = 25_000_000
#: File extensions the image uploader accepts.
IMAGE_TYPES: tuple[str, ...] = ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif")


@dataclass(frozen=True)
class GroundTruth:
    """A SynthBirds sample's truth in input-image pixels (after resize and centre crop)."""

    label: int
    name: str
    box: tuple[float, float, float, float]
    keypoints: Mapping[str, tuple[float, float]]


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """An image as the network sees it.

    Attributes:
        image: ``uint8 [S, S, 3]``, the resized and centre-cropped input (what figures show).
        tensor: ``float32 [1, 3, S, S]``, ``image`` scaled to [0, 1] and normalised.
        key: a digest of the pixels and the normalisation (cache key of this input).
        source_size: ``(width, height)`` of the decoded file.
        name: where it came from ("val #3", the file name, ...).
        notes: conversions the loader made (EXIF rotation, alpha, 16-bit, first frame, ...).
        truth: the ground truth of a SynthBirds sample, else ``None``.
        original: the decoded RGB image of ``source_size`` (what an export draws its overlay
            on), or ``None``.
        geometry: how the evaluation transform mapped the decoded image onto the input (boxes
            go back to the image's pixels through it), or ``None``.
        mask: a SynthBirds sample's bird mask on the input, ``float32 [1, 1, S, S]`` in [0, 1]
            (what a mask stage, the oracle's, crops by), else ``None``.
    """

    image: np.ndarray
    tensor: torch.Tensor
    key: str
    source_size: tuple[int, int]
    name: str = ""
    notes: tuple[str, ...] = ()
    truth: GroundTruth | None = None
    original: Image.Image | None = None
    geometry: InputGeometry | None = None
    mask: torch.Tensor | None = None


def image_digest(data: bytes | np.ndarray) -> str:
    """A short hex digest of bytes or of an array's shape and contents."""
    digest = hashlib.sha256()
    if isinstance(data, np.ndarray):
        digest.update(repr((data.shape, str(data.dtype))).encode())
        digest.update(np.ascontiguousarray(data).tobytes())
    else:
        digest.update(bytes(data))
    return digest.hexdigest()[:24]


def center_crop_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    """``(top, left)`` of a ``size x size`` centre crop, as torchvision's ``CenterCrop``.

    Raises:
        ValueError: ``size`` is larger than the image.
    """
    if size > height or size > width:
        raise ValueError(f"cannot crop {size} px out of a {height} x {width} image")
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def crop_center(image: np.ndarray, size: int) -> np.ndarray:
    """Centre crop ``[H, W, C]`` to ``size x size`` exactly as torchvision's ``CenterCrop``."""
    top, left = center_crop_offsets(image.shape[0], image.shape[1], size)
    return image[top : top + size, left : left + size]


def preprocess(
    image: Image.Image | np.ndarray,
    meta: CheckpointMeta,
    *,
    name: str = "",
    notes: Sequence[str] = (),
    truth: GroundTruth | None = None,
) -> PreparedImage:
    """Resize, centre-crop ``input_size`` and normalise, as the checkpoint is evaluated.

    The geometry is :meth:`arpviz.explain.InputGeometry.of_checkpoint`: a square resize to
    ``default_resize(input_size)``, or for a converted torchvision network the shorter side to
    the recorded resize with the aspect kept; the pixels are those of
    :func:`arpviz.data.transforms.eval_transform` (bilinear, antialiased resize of the uint8
    image), normalised with the checkpoint's mean and std.

    Raises:
        ValueError: an image whose resize would exceed
            :data:`arpviz.images.MAX_RESIZED_PIXELS` (an extreme aspect under a geometry that
            keeps it; checked before any resize, naming the image).
    """
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be HxWx3 uint8, got {image.shape} {image.dtype}")
        pil = Image.fromarray(image)
    elif isinstance(image, Image.Image):
        pil = image if image.mode == "RGB" else image.convert("RGB")
    else:
        raise TypeError(f"image must be a PIL image or an array, got {type(image).__name__}")
    size = meta.input_size
    geometry = InputGeometry.of_checkpoint(pil.width, pil.height, meta)
    check_resized(name or "image", pil.size, geometry.resized)  # before any resize
    from torchvision.transforms.v2 import functional as TF

    x = _resize_crop(TF.pil_to_tensor(pil), geometry, size)  # uint8 [3, S, S]
    shown = x.permute(1, 2, 0).numpy().copy()
    mean = torch.tensor(meta.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(meta.std, dtype=torch.float32).view(3, 1, 1)
    tensor = ((x.float() / 255.0 - mean) / std).unsqueeze(0).contiguous()
    # the input's pixels, the normalisation and the original (two images that resize to the
    # same input are still two images: their photos and boxes differ)
    key = (image_digest(shown) + image_digest(np.array(meta.mean + meta.std))[:8]
           + image_digest(np.asarray(pil))[:8])
    return PreparedImage(shown, tensor, key, (pil.width, pil.height), name, tuple(notes), truth,
                         pil, geometry)


def _resize_crop(x: torch.Tensor, geometry: InputGeometry, size: int) -> torch.Tensor:
    """``uint8 [C, H, W]`` through the evaluation transform's resize and centre crop."""
    from torchvision.transforms.v2 import functional as TF

    new_w, new_h = geometry.resized
    if tuple(x.shape[1:]) != (new_h, new_w):
        x = TF.resize(x, [new_h, new_w], antialias=True)
    top, left = geometry.top, geometry.left
    return x[:, top : top + size, left : left + size].contiguous()


def decode_upload(data: bytes, name: str = "uploaded file") -> LoadedImage:
    """Decode an uploaded image safely, within the upload limits (:data:`MAX_IMAGE_BYTES`,
    :data:`MAX_PIXELS`).

    Raises:
        ValueError: empty, corrupt, truncated, unsupported, too many pixels or bytes (the
            message names the file and is fit to show a user).
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"{name!r} is {len(data) / 1e6:.1f} MB, more than the "
                         f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB limit")
    try:
        return load_image_info(data, max_pixels=MAX_PIXELS, max_bytes=MAX_IMAGE_BYTES)
    except ValueError as exc:
        raise ValueError(str(exc).replace("'image data'", repr(name))) from exc


def load_upload(data: bytes, meta: CheckpointMeta, name: str = "uploaded file") -> PreparedImage:
    """:func:`decode_upload`, then :func:`preprocess` (notes: the conversions and the shape).

    Raises:
        ValueError: as :func:`decode_upload`.
    """
    info = decode_upload(data, name)
    return preprocess(info.image, meta, name=name, notes=info.notes_for(meta.input_size))


def load_file(path: str | Path, meta: CheckpointMeta) -> PreparedImage:
    """Decode an image file safely (the upload limits) and :func:`preprocess` it.

    Raises:
        ValueError: missing, not a file, corrupt, too large (the message is fit to show).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file")
    try:
        info = load_image_info(path, max_pixels=MAX_PIXELS, max_bytes=MAX_IMAGE_BYTES)
    except OSError as exc:
        raise ValueError(f"{path.name!r} could not be read: {exc}") from exc
    return preprocess(info.image, meta, name=path.name, notes=info.notes_for(meta.input_size))


def _synthreid(meta: CheckpointMeta) -> bool:
    return meta.dataset.get("name") == "synthreid"


def _query_split(meta: CheckpointMeta):
    """A SynthReID checkpoint's query split, rendered at its input size (as it evaluates)."""
    from arpviz.data.synthreid import SynthReID, SynthReIDConfig

    config = SynthReIDConfig.from_dict(dict(meta.dataset.get("config", {})))
    return SynthReID(config.replace(image_size=int(meta.input_size)), "query")


def sample_count(meta: CheckpointMeta) -> int:
    """How many built-in samples the checkpoint has: its SynthBirds evaluation split, or the
    query split of a SynthReID checkpoint (0 for any other data set)."""
    if _synthreid(meta):
        return len(_query_split(meta))
    if not trained_on_synthbirds(meta):
        return 0
    config = synth_config(meta.dataset, meta.input_size)
    return config.split_size(str(meta.dataset.get("eval_split", "val")))


def sample_split(meta: CheckpointMeta) -> str:
    """The split the built-in samples come from (``val``/``test``, or ``query`` for re-ID)."""
    return "query" if _synthreid(meta) else str(meta.dataset.get("eval_split", "val"))


def _truth(sample, meta: CheckpointMeta, label: int, label_name: str) -> GroundTruth:
    """A rendered sample's box and keypoints mapped into the network's input."""
    height, width = sample.image.shape[:2]
    point = InputGeometry.of_checkpoint(width, height, meta).to_input
    size = float(meta.input_size)
    x1, y1 = point(sample.box[0], sample.box[1])
    x2, y2 = point(sample.box[2], sample.box[3])
    box = (min(max(x1, 0.0), size), min(max(y1, 0.0), size),
           min(max(x2, 0.0), size), min(max(y2, 0.0), size))
    keypoints = {part: point(*xy) for part, xy in sample.keypoints.items()}
    return GroundTruth(label, label_name, box, keypoints)


def synth_sample(meta: CheckpointMeta, index: int) -> PreparedImage:
    """Render built-in sample ``index`` (:func:`sample_split`), with its truth: a SynthBirds
    image's class, or a SynthReID query's identity and camera (``label`` -1: a test identity
    the classifier never saw, so no prediction is right or wrong).

    Raises:
        ValueError: the checkpoint has no built-in samples.
        IndexError: ``index`` out of range.
    """
    split = sample_split(meta)
    if _synthreid(meta):
        sample = _query_split(meta).render(int(index))
        truth = _truth(sample, meta, -1, f"identity {sample.pid}, camera {sample.camera}")
        return preprocess(sample.image, meta, name=f"{split} #{int(index)}", truth=truth)
    if not trained_on_synthbirds(meta):
        raise ValueError("this checkpoint was not trained on SynthBirds or SynthReID; it has no "
                         "built-in samples")
    config = synth_config(meta.dataset, meta.input_size)
    sample = SynthBirds(config, split).render(int(index))
    names = meta.class_names
    label_name = names[sample.label] if sample.label < len(names) else str(sample.label)
    prepared = preprocess(sample.image, meta, name=f"{split} #{int(index)}",
                          truth=_truth(sample, meta, sample.label, label_name))
    if sample.mask is None or prepared.geometry is None:
        return prepared
    mask = _resize_crop(torch.from_numpy(np.ascontiguousarray(sample.mask))[None],
                        prepared.geometry, meta.input_size)
    return replace(prepared, mask=mask[None].float() / 255.0)


def crop_image(
    image: np.ndarray,
    box: Sequence[float],
    out_size: tuple[int, int],
    long_side: int = 160,
) -> np.ndarray:
    """The image region ``box`` covers, resampled bilinearly to the stage's output aspect.

    Args:
        image: ``uint8 [H, W, 3]``.
        box: ``(x1, y1, x2, y2)`` in the image's pixel-edge coordinates.
        out_size: ``(h, w)`` of the stage's output map (its aspect is kept).
        long_side: the returned crop's longer side in pixels.

    Returns:
        ``uint8 [h', w', 3]`` with ``max(h', w') == long_side``.
    """
    out_h, out_w = max(1, int(out_size[0])), max(1, int(out_size[1]))
    scale = long_side / max(out_h, out_w)
    size = (max(1, round(out_w * scale)), max(1, round(out_h * scale)))
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"box must have x2 > x1 and y2 > y1, got {tuple(box)}")
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.asarray(pil.resize(size, Image.Resampling.BILINEAR, box=(x1, y1, x2, y2)))


# ----------------------------------------------------------------------------- probe images


def blank_images(count: int, size: int) -> np.ndarray:
    """``count`` light grey ``size x size`` tiles, to draw boxes on when images are missing."""
    return np.full((max(1, count), size, size, 3), 200, dtype=np.uint8)


def probe_images_or_blank(meta: CheckpointMeta, count: int) -> tuple[np.ndarray, str | None]:
    """:func:`probe_images`, or ``count`` blank tiles and the reason when they cannot be had."""
    try:
        images = probe_images(meta)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        logger.warning("probe images unavailable: %s", exc)
        return blank_images(count, meta.input_size), f"probe images unavailable: {exc}"
    if len(images) < count:
        note = f"the checkpoint names {len(images)} probe images for {count} snapshot rows"
        extra = blank_images(count - len(images), meta.input_size)
        return np.concatenate([images, extra]), note
    return images, None


def probe_images(meta: CheckpointMeta, indices: Sequence[int] | None = None) -> np.ndarray:
    """The probe images as the network saw them (after the eval resize and centre crop).

    SynthBirds images are rendered again from their seed (exact, no download); other data sets
    are read through their evaluation transform and the normalisation is undone.

    Returns:
        ``uint8 [P, S, S, 3]`` with ``S = meta.input_size``.

    Raises:
        ValueError: the record names no probe images, or the data set cannot be read.
    """
    record = dict(meta.dataset)
    if indices is None:
        indices = [int(i) for i in record.get("probe_indices", ())]
    if not indices:
        raise ValueError("the checkpoint names no probe images (dataset.probe_indices)")
    split = str(record.get("eval_split", "val"))
    size = meta.input_size
    if record.get("name") == "synthbirds":
        data = SynthBirds(synth_config(record, size), split)
        images = [crop_center(data.render(int(i)).image, size) for i in indices]
        return np.stack(images).astype(np.uint8)
    sources = build(record, size, eval_split=split)
    batch, _, _ = probe_batch(sources.val, [int(i) for i in indices])
    mean = torch.tensor(meta.mean).view(1, 3, 1, 1)
    std = torch.tensor(meta.std).view(1, 3, 1, 1)
    raw = (batch.float() * std + mean).clamp(0, 1).mul(255).round().byte()
    return raw.permute(0, 2, 3, 1).numpy()
