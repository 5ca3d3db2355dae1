"""Safe image loading: every odd or hostile file becomes an RGB image or a clear ValueError."""

from __future__ import annotations

import io
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, features

from arpviz.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LoadedImage,
    load_image,
    load_image_info,
    to_tensor,
)


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def _patch_png_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the IHDR width/height of a PNG (with a valid CRC), without touching pixels."""
    assert data[12:16] == b"IHDR"
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)) & 0xFFFFFFFF)
    return data[:16] + bytes(ihdr) + crc + data[33:]


# --------------------------------------------------------------------------- plain images


@pytest.mark.parametrize(
    "fmt,suffix",
    [("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp"), ("TIFF", ".tif"), ("WEBP", ".webp")],
)
def test_supported_formats_load_as_rgb(tmp_path: Path, fmt: str, suffix: str) -> None:
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    src = Image.new("RGB", (30, 20), (200, 40, 10))
    path = _save(src, tmp_path / f"img{suffix}", format=fmt)
    info = load_image_info(path)
    assert isinstance(info, LoadedImage)
    assert info.format == fmt
    assert info.image.mode == "RGB"
    assert info.image.size == (30, 20)
    assert info.original_size == (30, 20)
    r, g, b = np.asarray(info.image)[10, 15].tolist()
    assert abs(r - 200) < 12 and abs(g - 40) < 12 and abs(b - 10) < 12


def test_sources_bytes_path_str_and_file_objects(tmp_path: Path) -> None:
    src = Image.new("RGB", (5, 4), (1, 2, 3))
    data = _png_bytes(src)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    expected = np.asarray(src)
    with open(path, "rb") as f:
        from_file = load_image(f)
    for image in (
        load_image(data),
        load_image(bytearray(data)),
        load_image(memoryview(data)),
        load_image(path),
        load_image(str(path)),
        load_image(io.BytesIO(data)),
        from_file,
    ):
        assert np.array_equal(np.asarray(image), expected)


def test_wrong_source_types_raise_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="source"):
        load_image(123)  # type: ignore[arg-type]
    path = tmp_path / "a.png"
    path.write_bytes(_png_bytes(Image.new("RGB", (2, 2))))
    with open(path, encoding="latin-1") as text, pytest.raises(TypeError, match="binary"):
        load_image(text)  # type: ignore[arg-type]


def test_bad_limits_raise(tmp_path: Path) -> None:
    data = _png_bytes(Image.new("RGB", (2, 2)))
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(data, max_pixels=0)
    with pytest.raises(TypeError, match="max_pixels"):
        load_image(data, max_pixels=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_bytes"):
        load_image(data, max_bytes=-1)


# --------------------------------------------------------------------------- bad files


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_image(path)
    with pytest.raises(ValueError, match="empty"):
        load_image(b"")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="noise.png"):
        load_image(path)


def test_truncated_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    src = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = _png_bytes(src)
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt|truncated|readable"):
        load_image(path)


def test_truncated_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    src = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    buf = io.BytesIO()
    src.save(buf, format="JPEG")
    with pytest.raises(ValueError, match="corrupt|truncated|readable"):
        load_image(buf.getvalue()[:600])


def test_header_claiming_huge_size_is_refused_before_decoding(tmp_path: Path) -> None:
    data = _patch_png_size(_png_bytes(Image.new("RGB", (1, 1), (9, 9, 9))), 20000, 20000)
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    assert len(data) < 200  # the file itself is tiny: only the header lies
    with pytest.raises(ValueError, match="too large"):
        load_image(path)
    # 8000 x 8000 = 64 Mpx: below PIL's own alarm, above our 40 Mpx default; header check.
    path.write_bytes(_patch_png_size(_png_bytes(Image.new("RGB", (1, 1))), 8000, 8000))
    with pytest.raises(ValueError, match="8000x8000 = 64000000 pixels"):
        load_image(path)


def test_pil_decompression_bomb_is_a_value_error() -> None:
    # 100000 x 100000 trips PIL's own DecompressionBombError inside Image.open.
    data = _patch_png_size(_png_bytes(Image.new("RGB", (1, 1))), 100_000, 100_000)
    with pytest.raises(ValueError, match="too large|pixels"):
        load_image(data, max_pixels=10**12)
    # Above PIL's warning threshold but below our limit: the warning becomes an error too.
    warn = _patch_png_size(_png_bytes(Image.new("RGB", (1, 1))), 10_000, 10_000)
    with pytest.raises(ValueError, match="too large"):
        load_image(warn, max_pixels=10**9)


def test_max_pixels_and_max_bytes_limits() -> None:
    data = _png_bytes(Image.new("RGB", (100, 100)))
    with pytest.raises(ValueError, match="limit"):
        load_image(data, max_pixels=5000)
    assert load_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ValueError, match="limit"):
        load_image(data, max_bytes=len(data) - 1)
    assert load_image(io.BytesIO(data), max_bytes=len(data)).size == (100, 100)


def test_max_bytes_on_a_path(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_png_bytes(Image.new("RGB", (50, 50))))
    with pytest.raises(ValueError, match="bytes"):
        load_image(path, max_bytes=10)


def test_unsupported_format_is_named(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (8, 8)), tmp_path / "x.ppm", format="PPM")
    with pytest.raises(ValueError, match="PPM.*supported"):
        load_image(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ValueError, match="directory"):
        load_image(tmp_path)


# --------------------------------------------------------------------------- odd modes


def test_animated_gif_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    info = load_image_info(path)
    assert info.frames == 3
    assert any("first of 3 frames" in n for n in info.notes)
    r, g, b = np.asarray(info.image)[5, 5].tolist()
    assert r > 200 and g < 50 and b < 50
    assert info.image.mode == "RGB"


def test_multipage_tiff_uses_first_page(tmp_path: Path) -> None:
    pages = [Image.new("RGB", (6, 6), c) for c in ((0, 0, 250), (250, 0, 0))]
    path = tmp_path / "pages.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    info = load_image_info(path)
    assert info.frames == 2
    assert any("first of 2 pages" in n for n in info.notes)
    assert np.asarray(info.image)[0, 0].tolist() == [0, 0, 250]


def test_sixteen_bit_png_is_scaled_to_eight_bit(tmp_path: Path) -> None:
    arr = np.zeros((4, 4), dtype=np.uint16)
    arr[0, 0], arr[0, 1], arr[0, 2], arr[0, 3] = 0, 257 * 100, 32896, 65535
    path = _save(Image.fromarray(arr), tmp_path / "deep.png")
    info = load_image_info(path)
    assert info.original_mode.startswith("I")
    out = np.asarray(info.image)
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    assert out[0, :, 0].tolist() == [0, 100, 128, 255]
    assert np.array_equal(out[..., 0], out[..., 2])
    assert any("16-bit" in n for n in info.notes)


def test_mode_i_tiff_is_treated_as_sixteen_bit(tmp_path: Path) -> None:
    arr = np.array([[0, 65535], [257, 1000]], dtype=np.int32)
    path = _save(Image.fromarray(arr, mode="I"), tmp_path / "deep.tif")
    out = np.asarray(load_image(path))
    assert out[..., 0].tolist() == [[0, 255], [1, 4]]


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grey_and_bilevel_become_rgb(tmp_path: Path, mode: str) -> None:
    src = Image.new("L", (8, 8), 0)
    src.paste(255, (0, 0, 4, 8))
    src = src.convert(mode)
    path = _save(src, tmp_path / f"grey_{mode}.png")
    info = load_image_info(path)
    out = np.asarray(info.image)
    assert info.original_mode == mode and info.image.mode == "RGB"
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 7].tolist() == [0, 0, 0]


def test_palette_image(tmp_path: Path) -> None:
    src = Image.new("RGB", (8, 8), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    path = _save(src, tmp_path / "pal.png")
    info = load_image_info(path)
    assert info.original_mode == "P"
    r, g, b = np.asarray(info.image)[3, 3].tolist()
    assert abs(r - 10) < 8 and abs(g - 200) < 8 and abs(b - 30) < 8


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    src = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    src.putpixel((0, 0), (255, 0, 0, 255))
    src.putpixel((1, 0), (0, 0, 0, 128))
    path = _save(src, tmp_path / "alpha.png")
    info = load_image_info(path)
    out = np.asarray(info.image)
    assert out[0, 0].tolist() == [255, 0, 0]  # opaque red stays red
    assert out[3, 3].tolist() == [255, 255, 255]  # fully transparent becomes white
    assert all(abs(v - 127) <= 1 for v in out[0, 1].tolist())  # half black over white
    assert any("white" in n for n in info.notes)


def test_la_and_transparent_palette_are_composited(tmp_path: Path) -> None:
    la = Image.new("LA", (3, 3), (0, 0))
    out = np.asarray(load_image(_save(la, tmp_path / "la.png")))
    assert out[1, 1].tolist() == [255, 255, 255]
    pal = Image.new("P", (3, 3), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.putpixel((0, 0), 1)
    path = _save(pal, tmp_path / "pal_t.png", transparency=0)
    out = np.asarray(load_image(path))
    assert out[0, 0].tolist() == [255, 0, 0] and out[2, 2].tolist() == [255, 255, 255]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    src = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # no cyan, full magenta+yellow: red
    path = _save(src, tmp_path / "cmyk.jpg", format="JPEG", quality=95)
    info = load_image_info(path)
    assert info.original_mode == "CMYK" and info.image.mode == "RGB"
    r, g, b = np.asarray(info.image)[8, 8].tolist()
    assert r > 200 and g < 60 and b < 60
    assert any("CMYK" in n for n in info.notes)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    src = Image.new("RGB", (40, 20), (0, 0, 255))
    src.paste((255, 0, 0), (0, 0, 20, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs 90 degrees clockwise
    path = _save(src, tmp_path / "rot.jpg", format="JPEG", exif=exif, quality=95)
    with Image.open(path) as raw:
        assert raw.size == (40, 20)
    info = load_image_info(path)
    assert info.image.size == (20, 40)  # width, height swapped
    assert info.original_size == (40, 20)
    out = np.asarray(info.image)
    assert out[2, 10, 0] > 200 and out[2, 10, 2] < 60  # red on top
    assert out[37, 10, 2] > 200 and out[37, 10, 0] < 60  # blue at the bottom
    assert any("EXIF orientation 6" in n for n in info.notes)


def test_notes_are_logged_not_printed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    path = _save(Image.new("L", (3, 3)), tmp_path / "grey.png")
    with caplog.at_level(logging.INFO, logger="arpviz.images"):
        load_image(path)
    assert any("greyscale" in r.getMessage() for r in caplog.records)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# --------------------------------------------------------------------------- to_tensor


def test_to_tensor_shape_and_normalisation() -> None:
    image = Image.new("RGB", (10, 6), (255, 128, 0))
    raw = to_tensor(image, mean=None, std=None)
    assert raw.shape == (3, 6, 10) and raw.dtype == torch.float32
    assert torch.allclose(raw[:, 0, 0], torch.tensor([1.0, 128 / 255, 0.0]))
    norm = to_tensor(image, size=(4, 5))
    assert norm.shape == (3, 4, 5)
    expected = (torch.tensor([1.0, 128 / 255, 0.0]) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(
        IMAGENET_STD
    )
    assert torch.allclose(norm[:, 2, 2], expected, atol=1e-5)
    assert to_tensor(np.zeros((3, 4, 3), np.uint8), size=8).shape == (3, 8, 8)


def test_to_tensor_bad_arguments() -> None:
    image = Image.new("RGB", (4, 4))
    with pytest.raises(TypeError, match="size"):
        to_tensor(image, size="big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        to_tensor(image, size=0)
    with pytest.raises(TypeError, match="image"):
        to_tensor("x.png")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="image"):
        to_tensor(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="mean and std"):
        to_tensor(image, mean=None)


def test_shape_notes_flag_tiny_and_extreme_images() -> None:
    from arpviz.images import shape_notes

    assert shape_notes(741, 500, 128) == ()
    tiny = shape_notes(1, 1, 128)
    assert len(tiny) == 1 and tiny[0].startswith("tiny image (1 x 1 px)") and "128x" in tiny[0]
    extreme = shape_notes(5000, 20, 128)
    assert [n.split(" (")[0] for n in extreme] == ["tiny image", "extreme aspect"]
    assert "250:1" in extreme[1]
    assert shape_notes(400, 100, 128)[0].startswith("extreme aspect")
    with pytest.raises(ValueError, match="width"):
        shape_notes(0, 10, 128)


# --------------------------------------------------------------------------- odd files, noted


def _jpeg_with_corrupt_exif() -> bytes:
    """A JPEG whose EXIF block says 5 entries and holds one (Pillow warns "Corrupt EXIF")."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (9, 90, 200)).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    ifd = struct.pack("<H", 5) + struct.pack("<HHI4s", 0x0112, 3, 1, b"\x01\x00\x00\x00")
    exif = b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + jpeg[2:]


def test_corrupt_exif_is_a_note_not_a_warning_on_stderr(
        recwarn: pytest.WarningsRecorder, capsys: pytest.CaptureFixture) -> None:
    info = load_image_info(_jpeg_with_corrupt_exif())
    assert info.image.size == (16, 16)
    assert [n for n in info.notes if "EXIF" in n] == [
        "ignored a damaged EXIF block (Pillow: Corrupt EXIF data. Expecting to read 12 bytes "
        "but only got 0.)"]
    assert len(recwarn) == 0
    assert capsys.readouterr().err == ""


def _png_16bit_rgb(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one)."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def test_sixteen_bit_rgb_is_noted() -> None:
    pixels = np.zeros((4, 5, 3), dtype=np.uint16)
    pixels[0, 0] = (65535, 32896, 0)
    info = load_image_info(_png_16bit_rgb(pixels))
    assert info.original_mode == "RGB" and info.image.size == (5, 4)
    assert np.asarray(info.image)[0, 0].tolist() == [255, 128, 0]
    assert "scaled 16-bit RGB colour to 8 bits a channel" in info.notes
    eight = io.BytesIO()
    Image.new("RGB", (5, 4)).save(eight, "PNG")
    assert load_image_info(eight.getvalue()).notes == ()  # an 8-bit one gets no note
