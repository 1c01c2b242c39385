"""Files that other packages decode (DICOM through pydicom, NIfTI through nibabel, video
through PyAV): each package imported when such a file is met, with the install line named
when it is missing, and a broken file's error turned into one line that names the file."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import DataError

EXTRAS = {"pydicom": "dicom", "nibabel": "volumes", "av": "video"}
T = TypeVar("T")


def need(module: str, reading: str):
    """`module`, imported; or one line saying how to install it for `reading`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(
            f"reading {reading} needs {module}: pip install 'resnets[{EXTRAS[module]}]' "
            f"(or pip install {module})"
        ) from None


def guarded(read: Callable[[Path], T], path: Path, what: str) -> T:
    """`read(path)`, any failure of a broken file turned into one line naming it as not a
    readable `what`."""
    try:
        return read(path)
    except DataError:
        raise
    except Exception as e:  # the decoding packages raise many kinds on a broken file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path} is not a readable {what} ({first})") from None
