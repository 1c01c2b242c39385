"""DICOM images (hospital X-rays, CT and MR slices) as resnets reads them, through pydicom
(`pip install resnets[dicom]`).

The stored values become what the modality means: the rescale slope and intercept give
Hounsfield units for CT; the file's own window (centre and width), when it has one, picks
the range a radiologist looks at, else the image's own minimum to maximum is used. The whole
16-bit range takes part in that mapping (no high byte cut off); the result is 8 bits within
the window, as every image resnets trains on. MONOCHROME1 (white is low) is inverted so that
bright always means dense. A multi-frame file gives its first frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .external import need

DICOM_EXTENSIONS = {".dcm", ".dicom"}


IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


def is_dicom(path: Path) -> bool:
    """A DICOM file by its content: the "DICM" marker after the 128-byte preamble, or (older
    files without one) a .dcm name on a file that is not a common image format."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return path.suffix.lower() in DICOM_EXTENSIONS  # decoding will say why
    if head[128:132] == b"DICM":
        return True
    return path.suffix.lower() in DICOM_EXTENSIONS and not head.startswith(IMAGE_MAGIC)


def _pydicom():
    return need("pydicom", "DICOM")


def dicom_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the header alone; None if it cannot be read."""
    try:
        ds = _pydicom().dcmread(path, stop_before_pixels=True, force=True)
        return int(ds.Columns), int(ds.Rows)
    except Exception:
        return None


def _first(value) -> float:
    """A DICOM value that may be multi-valued (several windows): its first."""
    try:
        return float(value[0])
    except (TypeError, IndexError):
        return float(value)


def read_dicom(path: Path, channels: int) -> torch.Tensor:
    """uint8 [channels, H, W] from a DICOM file, as the module docstring says."""
    pydicom = _pydicom()
    try:
        ds = pydicom.dcmread(path, force=True)  # files without the preamble exist
        pixels = ds.pixel_array
    except Exception as e:
        first = (str(e).splitlines()[0] if str(e) else type(e).__name__).split(". ")[0]
        raise DataError(f"{path} is not a readable DICOM image ({first})") from None
    colour = int(ds.get("SamplesPerPixel", 1)) == 3
    if pixels.ndim == (4 if colour else 3):
        pixels = pixels[0]  # multi-frame: the first frame
    if colour:
        rgb = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)
        rgb = rgb.to(torch.uint8) if rgb.dtype == torch.uint8 else _scale(rgb.double(), None)
        return _channels(rgb, channels)
    values = pixels.astype(np.float64) * float(ds.get("RescaleSlope", 1) or 1)
    values += float(ds.get("RescaleIntercept", 0) or 0)
    window = None
    if "WindowCenter" in ds and "WindowWidth" in ds:
        centre, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        if width > 0:
            window = (centre - width / 2, centre + width / 2)
    grey = _scale(torch.from_numpy(values)[None], window)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        grey = 255 - grey
    return _channels(grey, channels)


def _scale(x: torch.Tensor, window: tuple[float, float] | None) -> torch.Tensor:
    """float values -> uint8 over the window (or the image's own range)."""
    low, high = window if window else (float(x.min()), float(x.max()))
    if high <= low:
        return torch.zeros(x.shape, dtype=torch.uint8)
    return ((x.clamp(low, high) - low) * (255 / (high - low))).round().to(torch.uint8)


def _channels(img: torch.Tensor, channels: int) -> torch.Tensor:
    from .augment import match_channels

    return match_channels(img[None], channels)[0].contiguous()
