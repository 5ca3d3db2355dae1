"""Safe image loading for untrusted files: size limits before decoding, one RGB result.

``load_image_info`` decodes png, jpg, webp, bmp, tiff and gif (first frame) into an 8-bit RGB
``PIL.Image``, and says in ``notes`` what it had to do on the way (EXIF rotation, alpha
composited on white, 16-bit scaled down, first frame of an animation, a decoder's warning such
as corrupt EXIF data, ...). Anything it cannot read safely is a ``ValueError`` with a message fit
to show a user. No pickle anywhere.

:func:`check_resized` bounds what the network's evaluation resize would make of an image
(:data:`MAX_RESIZED_PIXELS`): the pixel limits count the file's pixels, and a resize that keeps
the aspect turns a 16000 x 1 strip into a 256 x 4,096,000 input.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = [
    "ALLOWED_FORMATS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_RESIZED_PIXELS",
    "LoadedImage",
    "check_resized",
    "load_image",
    "load_image_info",
    "shape_notes",
    "to_tensor",
]

logger = logging.getLogger(__name__)

#: PIL format names that ``load_image`` accepts.
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
#: ImageNet channel statistics (RGB, for images scaled to [0, 1]).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

DEFAULT_MAX_PIXELS = 40_000_000
#: The most pixels an image may have once resized for the network, before the centre crop
#: (:func:`check_resized`): 8 megapixels, 24 MB as 8-bit RGB; a 10:1 panorama for a 224 input
#: (256 x 2560) is a tenth of it.
MAX_RESIZED_PIXELS = 8_000_000
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ORIENTATION = 0x0112  # EXIF tag

Source = bytes | bytearray | memoryview | str | os.PathLike | BinaryIO


@dataclass(frozen=True)
class LoadedImage:
    """A decoded RGB image and what was done to get it.

    ``format`` is PIL's name of the file format, ``original_mode``/``original_size`` describe
    the file before conversion (size as width, height), ``frames`` counts frames or pages, and
    ``notes`` lists each conversion in words ("used the first of 3 frames", ...).
    """

    image: Image.Image
    format: str
    original_mode: str
    original_size: tuple[int, int]
    frames: int = 1
    notes: tuple[str, ...] = ()

    def notes_for(self, input_size: int) -> tuple[str, ...]:
        """:attr:`notes`, then what the image's shape means for a network of square input
        ``input_size`` (:func:`shape_notes`: tiny, extreme aspect)."""
        return tuple(self.notes) + shape_notes(self.image.width, self.image.height, input_size)


#: An image whose shorter side is under this share of the network's input is "tiny"; one whose
#: sides differ by more than :data:`EXTREME_ASPECT` times has an "extreme aspect".
TINY_SHARE = 0.5
EXTREME_ASPECT = 3.0


def shape_notes(width: int, height: int, input_size: int) -> tuple[str, ...]:
    """What a user should know about an image's shape before trusting its explanation.

    ``width x height`` is the image, ``input_size`` the network's square input side. Returns
    a note for a tiny image (shorter side under half the input: the network sees it blown up,
    with details the resize made up) and for an extreme aspect (sides more than 3 times apart:
    a square input squeezes it or cuts most of it off); else nothing.
    """
    for name, value in (("width", width), ("height", height), ("input_size", input_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    notes = []
    short, long = sorted((width, height))
    if short < TINY_SHARE * input_size:
        notes.append(f"tiny image ({width} x {height} px): the network sees it enlarged about "
                     f"{input_size / short:.0f}x, so its fine detail is made up by the resize")
    if long / short > EXTREME_ASPECT:
        notes.append(f"extreme aspect ({width} x {height} px, {long / short:.0f}:1): the "
                     f"network's square input squeezes it or keeps only part of it")
    return tuple(notes)


def check_resized(name: str, size: tuple[int, int], resized: tuple[int, int]) -> None:
    """Refuse an image of ``size`` (width, height) whose evaluation resize (``resized``, width
    and height, as :attr:`arpviz.explain.InputGeometry.resized` computes it without resizing)
    has more than :data:`MAX_RESIZED_PIXELS` pixels: call it before any resize.

    Raises:
        ValueError: the message names the image (``name``), both sizes and the limit.
    """
    (width, height), (new_w, new_h) = size, resized
    if new_w * new_h <= MAX_RESIZED_PIXELS:
        return
    short, long = sorted((width, height))
    raise ValueError(
        f"{name!r} ({width} x {height} px, aspect {long / max(short, 1):.0f}:1) would become a "
        f"{new_w} x {new_h} network input before its centre crop, {new_w * new_h / 1e6:.0f} "
        f"megapixels, more than the limit of {MAX_RESIZED_PIXELS / 1e6:.0f}: this checkpoint "
        "keeps the aspect, so an image this elongated cannot be explained (crop it first)")


def _read_source(source: Source, max_bytes: int | None) -> tuple[bytes, str]:
    """The raw bytes and a short name for messages."""
    limit = None if max_bytes is None else max_bytes + 1
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "image data"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        name = os.path.basename(path) or path
        if os.path.isdir(path):
            raise ValueError(f"{name!r} is a directory, not an image file")
        size = os.path.getsize(path)  # FileNotFoundError names the path
        if max_bytes is not None and size > max_bytes:
            raise ValueError(f"{name!r} is {size} bytes, more than the limit of {max_bytes}")
        with open(path, "rb") as f:
            return f.read(limit if limit is not None else -1), name
    read = getattr(source, "read", None)
    if callable(read):
        data = read(limit if limit is not None else -1)
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("source must be opened in binary mode (read() returned text)")
        return bytes(data), str(getattr(source, "name", "uploaded file"))
    raise TypeError(
        f"source must be bytes, a path or a binary file object, got {type(source).__name__}"
    )


def _identify_other(data: bytes) -> str | None:
    """The format PIL sees in data it would not accept, if any (header only, no decoding)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return im.format
    except Exception:  # noqa: BLE001 - anything here just means "not an image we know"
        return None


def _sixteen_to_eight(im: Image.Image) -> Image.Image:
    """Scale a 16-bit (or 32-bit integer holding 16-bit data) grey image to 8-bit."""
    arr = np.asarray(im)
    arr = np.clip(arr.astype(np.int64), 0, 65535)
    return Image.fromarray(((arr * 255 + 32767) // 65535).astype(np.uint8), mode="L")


def _float_to_eight(im: Image.Image) -> Image.Image:
    arr = np.asarray(im, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo >= 0.0 and hi <= 1.0:
        lo, hi = 0.0, 1.0
    scaled = (np.nan_to_num(arr, nan=lo) - lo) / max(hi - lo, 1e-12)
    return Image.fromarray(np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8), mode="L")


def _on_white(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_rgb(im: Image.Image, notes: list[str]) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB, noting what changed."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        notes.append("composited the transparent parts on white")
        return _on_white(im)
    if mode in _SIXTEEN_BIT_MODES:
        notes.append(f"scaled {mode} (16-bit) grey levels to 8-bit")
        return _sixteen_to_eight(im).convert("RGB")
    if mode == "F":
        notes.append("scaled floating-point grey levels to 8-bit")
        return _float_to_eight(im).convert("RGB")
    if mode in ("1", "L"):
        notes.append(f"converted {'black-and-white' if mode == '1' else 'greyscale'} to RGB")
    elif mode == "P":
        notes.append("converted a palette image to RGB")
    elif mode == "CMYK":
        notes.append("converted CMYK to RGB")
    else:
        notes.append(f"converted {mode} to RGB")
    return im.convert("RGB")


def _check_limits(max_pixels: object, max_bytes: object) -> None:
    if not isinstance(max_pixels, int) or isinstance(max_pixels, bool):
        raise TypeError(f"max_pixels must be an int, got {max_pixels!r}")
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be > 0, got {max_pixels}")
    if max_bytes is not None:
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool):
            raise TypeError(f"max_bytes must be an int or None, got {max_bytes!r}")
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0 or None, got {max_bytes}")


def _decode(data: bytes, name: str, max_pixels: int,
            notes: list[str]) -> tuple[Image.Image, int]:
    """Open and decode ``data`` (header checks first; ``notes`` says what was done): the image
    and its frame count."""
    try:
        im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"{name!r} is too large: more than the limit of {max_pixels} "
                         f"pixels; refusing to decode it ({exc})") from exc
    except UnidentifiedImageError as exc:
        other = _identify_other(data)
        if other is not None:
            raise ValueError(
                f"{name!r} is a {other} image; supported formats are "
                "PNG, JPEG, WebP, BMP, TIFF and GIF"
            ) from exc
        raise ValueError(f"{name!r} is not a readable image (corrupt or unsupported)") from exc
    except Exception as exc:  # noqa: BLE001 - malformed headers raise all sorts
        raise ValueError(f"{name!r} is not a readable image: {exc}") from exc

    width, height = im.size
    if width <= 0 or height <= 0:
        raise ValueError(f"{name!r} has an invalid size {width}x{height}")
    if width * height > max_pixels:
        raise ValueError(
            f"{name!r} is too large: {width}x{height} = {width * height} pixels, more than "
            f"the limit of {max_pixels}; refusing to decode it"
        )
    deep = any(";16" in str(getattr(tile, "args", "")) for tile in (im.tile or ()))
    if deep and im.mode in ("RGB", "RGBA"):  # PIL hands 16-bit colour over as 8-bit
        notes.append(f"scaled 16-bit {im.mode} colour to 8 bits a channel")
    try:
        frames = int(getattr(im, "n_frames", 1) or 1)
        if frames > 1:
            im.seek(0)
            kind = "pages" if im.format == "TIFF" else "frames"
            notes.append(f"used the first of {frames} {kind}")
        im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"{name!r} is too large to decode safely: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
        raise ValueError(f"{name!r} is corrupt or truncated: {exc}") from exc
    return im, frames


def _oriented(im: Image.Image, notes: list[str]) -> Image.Image:
    """``im`` turned upright by its EXIF orientation (a note says so); a malformed EXIF block
    is noted and ignored."""
    try:
        orientation = int(im.getexif().get(_ORIENTATION, 1) or 1)
    except Exception:  # noqa: BLE001 - a malformed EXIF block is not worth refusing the image
        notes.append("ignored an unreadable EXIF block")
        return im
    if 2 <= orientation <= 8:
        try:
            im = ImageOps.exif_transpose(im)
            notes.append(f"applied the EXIF orientation {orientation}")
        except Exception:  # noqa: BLE001
            notes.append(f"ignored an unusable EXIF orientation {orientation}")
    return im


def _warning_notes(caught: list[warnings.WarningMessage]) -> list[str]:
    """The decoder's warnings (Pillow's "Corrupt EXIF data", ...) as notes, once each."""
    notes = []
    for item in caught:
        text = " ".join(str(item.message).split())[:160]
        note = (f"ignored a damaged EXIF block (Pillow: {text})" if "EXIF" in text
                else f"the decoder warned: {text}")
        if note not in notes:
            notes.append(note)
    return notes


def load_image_info(
    source: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int | None = None
) -> LoadedImage:
    """Decode an image file safely into 8-bit RGB, with notes on every conversion.

    ``source`` is raw bytes, a path or a binary file object. Raises ``ValueError`` for an
    empty, corrupt, truncated or unsupported file, and for one whose header claims more than
    ``max_pixels`` pixels (checked before decoding) or that is larger than ``max_bytes``.
    A missing path raises ``FileNotFoundError``.
    """
    _check_limits(max_pixels, max_bytes)
    data, name = _read_source(source, max_bytes)
    if not data:
        raise ValueError(f"{name!r} is empty (0 bytes)")
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError(f"{name!r} is larger than the limit of {max_bytes} bytes")

    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        # every decoder warning is recorded (made a note below, never printed), except PIL's
        # own bomb check above ~89 Mpx, which becomes an error we can report
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im, frames = _decode(data, name, max_pixels, notes)
        fmt = im.format or "unknown"
        width, height = im.size
        original_mode = im.mode
        im = _oriented(im, notes)
        try:
            rgb = _to_rgb(im, notes)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{name!r} has an unsupported pixel mode {im.mode!r}: "
                             f"{exc}") from exc
    notes += _warning_notes(caught)
    if isinstance(rgb, ImageFile.ImageFile):
        rgb = rgb.copy()  # detach from the in-memory file so it can be freed
    for note in notes:
        logger.info("%s: %s", name, note)
    return LoadedImage(
        image=rgb,
        format=fmt,
        original_mode=original_mode,
        original_size=(width, height),
        frames=frames,
        notes=tuple(notes),
    )


def load_image(
    source: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int | None = None
) -> Image.Image:
    """Decode an image file safely into an 8-bit RGB ``PIL.Image`` (see ``load_image_info``)."""
    return load_image_info(source, max_pixels=max_pixels, max_bytes=max_bytes).image


def to_tensor(
    image: Image.Image | np.ndarray,
    size: int | tuple[int, int] | None = None,
    mean: tuple[float, float, float] | None = IMAGENET_MEAN,
    std: tuple[float, float, float] | None = IMAGENET_STD,
):  # -> torch.Tensor (torch imported lazily so this module stays light)
    """An RGB image as a float32 tensor [3, H, W], optionally resized and normalised.

    ``size`` is an int (square) or (height, width); resizing is bilinear with antialiasing.
    Values are scaled to [0, 1], then ``(x - mean) / std`` unless ``mean``/``std`` are None.
    """
    import torch

    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image array must be HxWx3 uint8, got {image.shape} {image.dtype}")
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image or an ndarray, got {type(image).__name__}")
    if image.mode != "RGB":
        image = image.convert("RGB")
    if size is not None:
        if isinstance(size, int) and not isinstance(size, bool):
            hw = (size, size)
        elif (
            isinstance(size, (tuple, list))
            and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in size)
        ):
            hw = (int(size[0]), int(size[1]))
        else:
            raise TypeError(f"size must be an int or a (height, width) pair, got {size!r}")
        if min(hw) <= 0:
            raise ValueError(f"size must be positive, got {size!r}")
        if (image.height, image.width) != hw:
            image = image.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)
    if (mean is None) != (std is None):
        raise ValueError("mean and std must both be given or both be None")
    if mean is not None and std is not None:
        m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        if bool((s <= 0).any()):
            raise ValueError(f"std must be > 0, got {std!r}")
        x = (x - m) / s
    return x.contiguous()
