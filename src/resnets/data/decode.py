"""From an image file to a uint8 tensor: the one decoding rule every path uses (folders,
segmentation masks, predict, export checks), with the formats, modes and frames it accepts."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import DataError
from .dicom import DICOM_EXTENSIONS, is_dicom, read_dicom

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
IMAGE_EXTENSIONS |= DICOM_EXTENSIONS


# Pillow modes that hold one grey channel (with alpha for LA / La)
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def detect_channels(files: list[Path], sample: int = 32) -> int:
    """1 if the first images are all greyscale, else 3 (headers only, nothing decoded).

    A palette image (GIF, PNG mode P) counts as greyscale when every palette entry is grey
    (red = green = blue): decoding it to one channel then loses nothing. Files Pillow cannot
    open are skipped here; decoding them will say why."""
    from PIL import Image

    for f in files[:sample]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(f) as im:
                    if im.mode in ("P", "PA"):
                        rgb = im.getpalette("RGB") or []
                        if any(len(set(rgb[i : i + 3])) > 1 for i in range(0, len(rgb), 3)):
                            return 3
                    elif im.mode not in GREY_MODES:
                        return 3
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return 1


MAX_PIXELS = 100_000_000  # larger images are refused from their header, before decoding


def check_size(path: Path) -> None:
    """Refuse images over MAX_PIXELS (a 'decompression bomb' needs no more than a header)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except Image.DecompressionBombError:  # Pillow's own limit, above ours
        raise DataError(
            f"{path} is over Pillow's and the {MAX_PIXELS:,} pixel limit; resize it first"
        ) from None
    except Exception:
        return  # not readable by Pillow: the decoders below will say so
    if width * height > MAX_PIXELS:
        raise DataError(
            f"{path} is {width}x{height} pixels, over the {MAX_PIXELS:,} limit; resize it first"
        )


def decode(path: Path, channels: int) -> torch.Tensor:
    """uint8 [channels, H, W] for `channels` 1 (grey) or 3 (RGB), whatever the file's mode.

    DICOM goes to dicom.py. JPEG and PNG go to torchvision's decoders, which honour the
    channel mode; other formats (GIF, WebP, BMP, TIFF), and files torchvision rejects, go to
    Pillow. Animated GIF and WebP and multi-page TIFF give their first frame (animated PNG:
    its default image). Alpha is dropped, not composited; deeper samples become 8-bit as
    `_to_8bit` says.
    """
    from torchvision.io import ImageReadMode, decode_image, read_file

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    if is_dicom(path):
        return read_dicom(path, channels)
    check_size(path)
    with open(path, "rb") as f:
        head = f.read(8)
    img = None
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")):  # JPEG, PNG
        mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
        try:
            with warnings.catch_warnings():  # torchvision 0.29 points to TorchCodec; still works
                warnings.simplefilter("ignore", DeprecationWarning)
                img = decode_image(read_file(str(path)), mode=mode)
        except Exception:  # whatever torchvision raises, Pillow gets a try
            img = None
    if img is None or img.ndim != 3 or img.shape[0] != channels:
        img = _decode_pil(path, channels)
    if img.dtype == torch.uint16:
        img = (img.to(torch.int32) >> 8).to(torch.uint8)
    return img


def _decode_pil(path: Path, channels: int) -> torch.Tensor:
    """Pillow's decoding of the first frame as uint8 [channels, H, W] (see `decode`)."""
    import numpy as np
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as im:
            im.seek(0)
            im.load()
            if im.mode == "I" or im.mode.startswith("I;16") or im.mode == "F":
                im = Image.fromarray(_to_8bit(np.asarray(im), im.mode))
            elif im.mode == "PA":
                im = im.convert("RGBA")
            arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    t = torch.from_numpy(arr.copy())
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def _to_8bit(arr, mode: str):
    """One grey image of 16 or 32 bits, or floats, as uint8. 16-bit samples keep their high
    byte (as torchvision's PNG decoder does); 32-bit integers are taken as 16-bit when they
    fit, as 8-bit when they fit there; floats in [0, 1] are scaled by 255, others clipped."""
    import numpy as np

    if mode == "F":
        arr = np.nan_to_num(arr.astype(np.float64))
        scale = 255.0 if arr.min() >= 0 and arr.max() <= 1 else 1.0
        return (arr * scale).round().clip(0, 255).astype(np.uint8)
    arr = arr.astype(np.int64).clip(0, None)
    if mode == "I" and arr.max() <= 255:
        return arr.astype(np.uint8)
    if arr.max() > 65535:
        return (arr * 255 // arr.max()).astype(np.uint8)
    return (arr >> 8).astype(np.uint8)
