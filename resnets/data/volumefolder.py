"""`--data volumes:DIR`: class folders of 3D volumes (CT, MRI), one file or series each.

    DIR/<class>/<case>.nii | .nii.gz     NIfTI, through nibabel (pip install 'resnets[volumes]')
    DIR/<class>/<case>.npy | .npz        a (D, H, W) array (an .npz's single array)
    DIR/<class>/<case>/*.dcm             a DICOM series: one slice per file, ordered by position

Each volume becomes (1, S, S, S) uint8 once, kept in memory like the 2D sets:
- intensities: CT (a DICOM series with Hounsfield units, or `--window L,W` given) through the
  window, else a per-volume z-score (MRI) clipped to +-3 sigma; both mapped onto 0..255;
- shape: resampled (trilinear) to a cube of side `--image-size` (default 64, or the largest
  side of the smallest volume when that is less). Voxel spacing is not used: anisotropic
  scans are stretched to the cube, and a note says so.
NIfTI arrays are (x, y, z); they are read as (z, y, x), so depth runs along the slices.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .datasets import ImageTensors
from .external import guarded, need

SUFFIXES = (".nii", ".nii.gz", ".npy", ".npz")
DEFAULT_SIDE = 64


def load_volume_folder(
    root: Path, side: int | None, window: tuple[float, float] | None
) -> tuple[ImageTensors, list[str]]:
    """Every volume under `root`'s class folders, as one ImageTensors, and notes."""
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; --data volumes:DIR takes class folders")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    cases = [(c, k) for k, c in enumerate(classes) for c in _cases(root / c)]
    if not cases:
        raise DataError(f"{root} has no volumes: put {', '.join(SUFFIXES)} files or DICOM "
                        "series folders in one folder per class")  # fmt: skip
    # the side from the headers, so that each volume is read once and kept only as uint8
    target = side or min(DEFAULT_SIDE, min(max(guarded(_shape, p, "volume")) for p, _ in cases))
    images, kinds = [], set()
    for path, _ in cases:
        volume, kind = _read(path)
        images.append(_to_uint8(volume, kind, window, (target,) * 3))
        kinds.add(kind)
    labels = torch.tensor([label for _, label in cases])
    notes = [
        f"{len(cases)} volumes in {len(classes)} classes, resampled to {target}^3 voxels"
        + ("" if side else " (--image-size sets the side)")
        + "; voxel spacing not used",
        "intensities: " + ", ".join(sorted(_said(k, window) for k in kinds)),
    ]
    return ImageTensors(torch.stack(images), labels, classes), notes


def _cases(folder: Path) -> list[Path]:
    """A class folder's volume files and DICOM series folders, in name order."""
    return [p for p in sorted(folder.iterdir()) if is_case(p)]


def is_case(p: Path) -> bool:
    """A volume file, or a folder of DICOM slices (a series)."""
    if p.is_dir():
        return any(q.suffix.lower() == ".dcm" for q in p.iterdir())
    return p.name.lower().endswith(SUFFIXES)


def _shape(path: Path) -> tuple[int, ...]:
    """A case's volume shape from its header alone (without axes of length 1)."""
    if path.is_dir():
        pydicom = need("pydicom", "DICOM series")
        first = pydicom.dcmread(sorted(path.glob("*.dcm"))[0], stop_before_pixels=True)
        shape = (len(list(path.glob("*.dcm"))), int(first.Rows), int(first.Columns))
    elif path.name.lower().endswith((".nii", ".nii.gz")):
        shape = need("nibabel", "NIfTI").load(str(path)).shape
    elif path.name.lower().endswith(".npy"):
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    else:
        with zipfile.ZipFile(path) as archive, archive.open(archive.namelist()[0]) as f:
            major, _ = np.lib.format.read_magic(f)
            header = np.lib.format.read_array_header_1_0 if major == 1 else (
                np.lib.format.read_array_header_2_0)  # fmt: skip
            shape = header(f)[0]
    return tuple(n for n in shape if n != 1) or (1,)


def _read(path: Path) -> tuple[np.ndarray, str]:
    """(a float32 (D, H, W) array, "ct" or "mr") from one case; one line on failure."""
    volume, kind = guarded(_load, path, "volume")
    volume = np.squeeze(np.asarray(volume, dtype=np.float32))
    if volume.ndim != 3 or min(volume.shape) < 2:
        raise DataError(f"{path} has shape {tuple(volume.shape)}; a volume is (D, H, W)")
    if not np.isfinite(volume).all():
        raise DataError(f"{path} has NaN or infinite voxels")
    return volume, kind


def _load(path: Path) -> tuple[np.ndarray, str]:
    if path.is_dir():
        return _dicom_series(path), "ct"
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return need("nibabel", "NIfTI").load(str(path)).get_fdata(dtype=np.float32).T, "mr"
    if name.endswith(".npy"):
        return np.load(path, allow_pickle=False), "mr"
    with np.load(path, allow_pickle=False) as arrays:
        if len(arrays.files) != 1:
            raise DataError(f"{path} holds {len(arrays.files)} arrays; a volume file holds one")
        return arrays[arrays.files[0]], "mr"


def _dicom_series(folder: Path) -> np.ndarray:
    """Slices ordered by their position along the normal (InstanceNumber where it lacks one),
    in Hounsfield units (rescale slope and intercept)."""
    pydicom = need("pydicom", "DICOM series")
    slices = [pydicom.dcmread(p, force=True) for p in sorted(folder.glob("*.dcm"))]
    shapes = {(int(s.Rows), int(s.Columns)) for s in slices}
    if len(shapes) != 1:
        raise DataError(f"{folder}: its slices differ in size {sorted(shapes)}")

    def position(s) -> float:
        where = getattr(s, "ImagePositionPatient", None)
        return float(where[2]) if where is not None else float(getattr(s, "InstanceNumber", 0))

    slices.sort(key=position)
    planes = [
        s.pixel_array.astype(np.float32) * float(getattr(s, "RescaleSlope", 1))
        + float(getattr(s, "RescaleIntercept", 0))
        for s in slices
    ]
    return np.stack(planes)


def read_case(path: Path, intensity: str, shape: tuple[int, int, int]) -> torch.Tensor:
    """One new volume as (1, D, H, W) uint8, read as a model's training volumes were
    (`intensity`: WeightsMeta's "raw", "auto" or "window C,W")."""
    volume, kind = _read(path)
    if intensity == "raw":  # 0..255 as given; floats in [0, 1] scaled, as in an .npz
        scale = 255.0 if volume.max() <= 1 else 1.0
        x = torch.from_numpy(volume * scale)
        x = F.interpolate(x[None, None], size=shape, mode="trilinear")[0]
        return x.round().clamp(0, 255).to(torch.uint8)
    window = parse_window(intensity.removeprefix("window ")) if intensity != "auto" else None
    return _to_uint8(volume, kind, window, shape)


def _to_uint8(volume: np.ndarray, kind: str, window, shape: tuple[int, ...]) -> torch.Tensor:
    x = torch.from_numpy(volume)
    if window is not None or kind == "ct":
        centre, width = window or (40.0, 400.0)  # a soft-tissue window unless told
        x = (x - (centre - width / 2)) / width
    else:  # MRI: no absolute scale; a z-score per volume
        x = ((x - x.mean()) / x.std().clamp_min(1e-6) + 3) / 6
    x = F.interpolate(x[None, None], size=shape, mode="trilinear")[0]
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _said(kind: str, window) -> str:
    if window is not None:
        return f"window centre {window[0]:g}, width {window[1]:g} (--window)"
    if kind == "ct":
        return "DICOM series in Hounsfield units through a soft-tissue window 40/400 (--window)"
    return "a z-score per volume, +-3 sigma onto 0..255 (no --window given)"


def parse_window(text: str | None) -> tuple[float, float] | None:
    """ "40,400" -> (40.0, 400.0): a CT window's centre and width."""
    if not text:
        return None
    try:
        centre, width = (float(v) for v in text.split(","))
    except ValueError:
        raise DataError(f"--window takes CENTRE,WIDTH (e.g. 40,400), got {text!r}") from None
    if width <= 0:
        raise DataError(f"--window width must be positive, got {width:g}")
    return centre, width
