"""`decode` and `detect_channels` over formats, modes, frames and channel counts: every file
decodes to exactly uint8 [channels, H, W], whichever decoder (torchvision or Pillow) reads it."""

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, features

from resnets.data.decode import decode, detect_channels
from resnets.errors import DataError

H, W = 10, 12  # not square: a transposed image would show
WEBP = features.check("webp")
MODES = ("L", "RGB", "RGBA", "P", "LA", "I;16")
WRITABLE = {  # the modes Pillow writes in each format
    "png": MODES,
    "jpg": ("L", "RGB"),
    "bmp": ("L", "RGB", "RGBA", "P"),
    "gif": MODES,
    "tiff": MODES,
    **({"webp": MODES} if WEBP else {}),
}
LOSSLESS = {"lossless": True}  # WebP options; the other formats ignore them


def image(mode: str, seed: int = 0) -> Image.Image:
    """Random pixels in `mode`, H x W."""
    rgb = np.random.default_rng(seed).integers(0, 256, (H, W, 3), np.uint8)
    if mode == "I;16":
        return Image.fromarray(rgb[..., 0].astype(np.uint16) * 200)
    return Image.fromarray(rgb).convert(mode)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    ("fmt", "mode"), [(fmt, mode) for fmt, modes in WRITABLE.items() for mode in modes]
)
def test_every_format_and_mode_decodes_to_the_asked_channels(tmp_path, fmt, mode, channels):
    path = tmp_path / f"x.{fmt}"
    image(mode).save(path, **LOSSLESS)
    x = decode(path, channels)
    assert x.dtype == torch.uint8 and tuple(x.shape) == (channels, H, W)


@pytest.mark.parametrize("mode", MODES)
def test_torchvision_and_pillow_agree_on_lossless_files(tmp_path, mode):
    """PNG goes to torchvision, TIFF (and BMP, WebP) to Pillow: the same pixels either way,
    16-bit samples included (their high byte); grey from colour may differ by rounding."""
    image(mode).save(tmp_path / "x.png")
    others = [f for f in ("tiff", "webp", "bmp") if f in WRITABLE and mode in WRITABLE[f]]
    if mode == "I;16":
        others = ["tiff"]  # Pillow writes 16-bit WebP clipped to 8 bits
    for fmt in others:
        image(mode).save(tmp_path / f"x.{fmt}", **LOSSLESS)
        for channels, tolerance in ((3, 0), (1, 1)):
            png = decode(tmp_path / "x.png", channels).int()
            other = decode(tmp_path / f"x.{fmt}", channels).int()
            assert (png - other).abs().max() <= tolerance, (fmt, channels)


def test_sixteen_bit_keeps_the_high_byte(tmp_path):
    values = np.arange(H * W, dtype=np.uint16).reshape(H, W) * 30  # max 3570: not stretched
    for fmt in ("png", "tiff"):
        Image.fromarray(values).save(tmp_path / f"x.{fmt}")
        assert decode(tmp_path / f"x.{fmt}", 1)[0].numpy().tolist() == (values >> 8).tolist()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("fmt", ["gif", "tiff", *(["webp"] if WEBP else [])])
def test_multi_frame_files_give_their_first_frame(tmp_path, fmt, channels):
    first, second = Image.new("RGB", (W, H), (40, 40, 40)), Image.new("RGB", (W, H), (200,) * 3)
    path = tmp_path / f"anim.{fmt}"
    first.save(path, save_all=True, append_images=[second], **LOSSLESS)
    with Image.open(path) as im:
        assert getattr(im, "n_frames", 1) == 2
    x = decode(path, channels)
    assert tuple(x.shape) == (channels, H, W) and x.dtype == torch.uint8
    assert (x.int() - 40).abs().max() <= 2


def test_grey_palette_decodes_to_its_grey_values(tmp_path):
    index = np.arange(H * W, dtype=np.uint8).reshape(H, W) % 4
    im = Image.fromarray(index, "P")
    im.putpalette([0, 0, 0, 50, 50, 50, 100, 100, 100, 255, 255, 255])
    for fmt in ("gif", "png"):
        im.save(tmp_path / f"g.{fmt}")
        x = decode(tmp_path / f"g.{fmt}", 1)
        assert x[0].tolist() == np.array([0, 50, 100, 255])[index].tolist()


def test_detect_channels_reads_palettes(tmp_path):
    """A palette of greys is a greyscale image; one colour in the palette makes it RGB."""
    index = np.arange(H * W, dtype=np.uint8).reshape(H, W) % 3
    grey = Image.fromarray(index, "P")
    grey.putpalette([v for g in (0, 80, 255) for v in (g, g, g)])
    colour = grey.copy()
    colour.putpalette([0, 0, 0, 80, 80, 80, 255, 0, 0])  # one red
    for fmt in ("gif", "png"):
        grey.save(tmp_path / f"grey.{fmt}")
        colour.save(tmp_path / f"colour.{fmt}")
    image("L").save(tmp_path / "l.png")
    image("I;16").save(tmp_path / "i16.tiff")
    image("RGB").save(tmp_path / "rgb.png")
    greys = [tmp_path / n for n in ("grey.gif", "grey.png", "l.png", "i16.tiff")]
    assert detect_channels(greys) == 1
    assert detect_channels([*greys, tmp_path / "colour.gif"]) == 3
    assert detect_channels([tmp_path / "colour.png"]) == 3
    assert detect_channels([*greys, tmp_path / "rgb.png"]) == 3


def test_pillow_decodes_what_torchvision_rejects_with_any_error(tmp_path, monkeypatch):
    import torchvision.io

    def broken(*args, **kwargs):
        raise TypeError("not this one")

    image("RGB").save(tmp_path / "x.png")
    expected = decode(tmp_path / "x.png", 3)
    monkeypatch.setattr(torchvision.io, "decode_image", broken)
    assert torch.equal(decode(tmp_path / "x.png", 3), expected)


def png_header(width: int, height: int) -> bytes:
    """A PNG that is all header: it claims width x height, and holds no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_an_image_over_pillows_own_limit_is_refused_from_its_header(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_header(30_000, 30_000))
    with pytest.raises(DataError, match="pixel limit"):
        decode(tmp_path / "bomb.png", 1)


def test_float_and_32_bit_images_keep_their_contrast(tmp_path):
    from PIL import Image

    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(ramp, mode="F").save(tmp_path / "float.tiff")
    img = decode(tmp_path / "float.tiff", 1)
    assert img.min() == 0 and img.max() == 255  # not all black
    eight = (ramp * 255).astype(np.int32)
    Image.fromarray(eight, mode="I").save(tmp_path / "int32.tiff")
    assert decode(tmp_path / "int32.tiff", 1).max() == 255  # 8-bit values in 32 bits: kept
