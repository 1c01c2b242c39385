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
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import DataError
from ..datasets import ImageTensors
from ..external import class_cases, guarded, need, read_each, skipped_notes

SUFFIXES = (".nii", ".nii.gz", ".npy", ".npz")
DEFAULT_SIDE = 64


def load_volume_folder(
    root: Path,
    side: int | None,
    window: tuple[float, float] | None,
    spacing: tuple[float, float, float] | None = None,
    strict: bool = False,
    index: int | None = None,
) -> tuple[ImageTensors, list[str]]:
    """Every volume under `root`'s class folders, as one ImageTensors, and notes. With
    `spacing` (mm, depth-height-width), each is resampled to it from its header's spacing,
    then centre-cropped or padded to the cube. A file that cannot be read is left out and
    said (`strict`: refused)."""
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; --data volumes:DIR takes class folders")
    hint = f"{', '.join(SUFFIXES)} files or DICOM series folders"
    classes, cases = class_cases(root, _cases, "volumes", hint)
    # the side from the headers, so that each volume is read once and kept only as uint8
    if spacing:
        target = side or DEFAULT_SIDE
    else:
        shape_of = partial(_shape, index=index)
        shapes, _, _ = read_each(
            cases, partial(guarded, shape_of, what="volume"), strict, "volumes"
        )
        target = side or min(DEFAULT_SIDE, min(max(s) for s in shapes))

    def one(path: Path) -> tuple[torch.Tensor, str, bool, bool]:  # kept only as uint8
        volume, kind, found = read_volume(path, index)
        cut = bool(spacing) and _spaced_larger(volume.shape, found, spacing, target)
        return to_uint8(volume, kind, window, (target,) * 3, found, spacing), kind, found, cut

    read, kept, skipped = read_each(cases, one, strict, "volumes", classes)
    images = [image for image, _, _, _ in read]
    kinds = {kind for _, kind, _, _ in read}
    unspaced = sum(found is None for _, _, found, _ in read)
    cropped = sum(cut for _, _, _, cut in read)
    labels = torch.tensor([label for _, label in kept])
    size = "" if side else " (--image-size sets the side)"
    if spacing:
        mm = "x".join(f"{v:g}" for v in reversed(spacing))
        shape = (
            f"resampled to {mm} mm voxels (x, y, z; --spacing), then centre-cropped or "
            f"padded to {target}^3{size}; {cropped} reached past the cube and were "
            "cut"
        )
        if unspaced:
            shape += f"; {unspaced} without a spacing in their file (.npy/.npz) taken as 1 mm"
    else:
        shape = f"resampled to {target}^3 voxels{size}; voxel spacing not used (--spacing)"
    notes = [
        f"{len(images)} volumes in {len(classes)} classes, {shape}",
        "intensities: " + ", ".join(sorted(said(k, window) for k in kinds)),
        *skipped_notes(skipped, "volumes"),
    ]
    files = [path for path, _ in kept]
    return ImageTensors(torch.stack(images), labels, classes, files), notes


def _cases(folder: Path) -> list[Path]:
    """A class folder's volume files and DICOM series folders, in name order."""
    return [p for p in sorted(folder.iterdir()) if is_case(p)]


def is_case(p: Path) -> bool:
    """A volume file, or a folder of DICOM slices (a series)."""
    if p.is_dir():
        return any(q.suffix.lower() == ".dcm" for q in p.iterdir())
    return p.name.lower().endswith(SUFFIXES)


def _shape(path: Path, index: int | None = None) -> tuple[int, ...]:
    """A case's volume shape from its header alone (without axes of length 1); of a 4D file,
    one volume's."""
    if path.is_dir():
        pydicom = need("pydicom", "DICOM series")
        first = pydicom.dcmread(sorted(path.glob("*.dcm"))[0], stop_before_pixels=True)
        shape = (len(list(path.glob("*.dcm"))), int(first.Rows), int(first.Columns))
    elif path.name.lower().endswith((".nii", ".nii.gz")):
        shape = need("nibabel", "NIfTI").load(str(path)).shape
        if _one_of(path, shape, 3, index, "x, y, z") is not None:
            shape = shape[:3]
    elif path.name.lower().endswith(".npy"):
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    else:
        with zipfile.ZipFile(path) as archive, archive.open(archive.namelist()[0]) as f:
            major, _ = np.lib.format.read_magic(f)
            header = np.lib.format.read_array_header_1_0
            if major != 1:
                header = np.lib.format.read_array_header_2_0
            shape = header(f)[0]
    nifti = path.name.lower().endswith((".nii", ".nii.gz"))
    if not nifti and _one_of(path, shape, 0, index, "D, H, W") is not None:
        shape = shape[1:]
    return tuple(n for n in shape if n != 1) or (1,)


def read_volume(
    path: Path, index: int | None = None
) -> tuple[np.ndarray, str, tuple[float, float, float] | None]:
    """(a float32 (D, H, W) array, "ct" or "mr", its voxel spacing in mm if the file says)
    from one case; of a 4D file, volume `index` (--volume-index); one line on failure."""
    volume, kind, spacing = guarded(partial(_load, index=index), path, "volume")
    volume = np.squeeze(np.asarray(volume, dtype=np.float32))
    if volume.ndim != 3 or min(volume.shape) < 2:
        raise DataError(f"{path} has shape {tuple(volume.shape)}; a volume is (D, H, W)")
    if not np.isfinite(volume).all():
        raise DataError(f"{path} has NaN or infinite voxels")
    if spacing is not None and (len(spacing) != 3 or not all(v > 0 for v in spacing)):
        spacing = None  # a header without a usable spacing: as if it had none
    return volume, kind, spacing


def _load(path: Path, index: int | None = None) -> tuple[np.ndarray, str, tuple | None]:
    if path.is_dir():
        volume, spacing = _dicom_series(path)
        return volume, "ct", spacing
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        image = need("nibabel", "NIfTI").load(str(path))
        zooms = tuple(float(v) for v in image.header.get_zooms()[:3])[::-1]  # (z, y, x)
        which = _one_of(path, image.shape, 3, index, "x, y, z")
        if which is None:
            return image.get_fdata(dtype=np.float32).T, "mr", zooms
        return np.array(image.dataobj[..., which], dtype=np.float32).T, "mr", zooms
    if name.endswith(".npy"):
        array = np.load(path, allow_pickle=False)
    elif name.endswith(".npz"):
        with np.load(path, allow_pickle=False) as arrays:
            if len(arrays.files) != 1:
                raise DataError(f"{path} holds {len(arrays.files)} arrays; a volume file holds one")
            array = arrays[arrays.files[0]]
    else:
        raise DataError(
            f"{path} is not a volume ({', '.join(SUFFIXES)} files or DICOM series folders are)"
        )
    which = _one_of(path, array.shape, 0, index, "D, H, W")
    return (array if which is None else array[which]), "mr", None


def _one_of(path: Path, shape: tuple, axis: int, index: int | None, spatial: str) -> int | None:
    """Which volume of a 4D file to read along `axis` (None: the file holds one volume);
    a 4D file without --volume-index, or an index past its end, refused naming its shape as
    the file's reader gives it."""
    full = tuple(shape)
    shape = tuple(n for n in full if n != 1)
    if len(shape) <= 3:
        if index not in (None, 0):
            raise DataError(f"{path} holds one volume {full}; --volume-index {index} is past it")
        return None
    count = full[axis] if len(full) == 4 else None
    if count is None or len(shape) > 4:
        raise DataError(f"{path} has shape {full}; a volume file holds (D, H, W) or 4D volumes")
    where = "the 4th axis" if axis == 3 else "the first axis"
    if index is None:
        raise DataError(
            f"{path} holds {count} volumes (shape {full}: {spatial} and {count} along {where}); "
            f"choose one with --volume-index N (0..{count - 1})"
        )
    if index >= count:
        raise DataError(f"{path} holds {count} volumes; --volume-index {index} is past them")
    return index


def _dicom_series(folder: Path) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """Slices ordered by their position along the normal (InstanceNumber where it lacks one),
    in Hounsfield units (rescale slope and intercept), and the voxel spacing: the median step
    between slice positions (else SliceThickness) and PixelSpacing."""
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
    steps = np.diff([position(s) for s in slices])
    depth = (
        float(np.median(steps))
        if len(steps) and "ImagePositionPatient" in slices[0]
        else (float(getattr(slices[0], "SliceThickness", 0) or 0))
    )
    rows = getattr(slices[0], "PixelSpacing", None)
    spacing = (depth, float(rows[0]), float(rows[1])) if rows is not None and depth > 0 else None
    return np.stack(planes), spacing


def read_case(
    path: Path,
    intensity: str,
    shape: tuple[int, int, int],
    spacing: list[float] | None = None,
    index: int | None = None,
) -> tuple[torch.Tensor, tuple]:
    """One new volume as (1, D, H, W) uint8, read as a model's training volumes were
    (`intensity`: WeightsMeta's "raw", "auto" or "window C,W"; `spacing`: its --spacing;
    `index`: its --volume-index), and its geometry (its own shape and spacing) for
    `to_file_voxels`."""
    volume, kind, found = read_volume(path, index)
    target = tuple(spacing) if spacing else None
    geometry = (tuple(volume.shape), found)
    if intensity == "raw":  # 0..255 as given; floats in [0, 1] scaled, as in an .npz
        volume, kind = volume * (1.0 if volume.max() <= 1 else 1 / 255), "raw"
    given = intensity.startswith("window ")
    window = parse_window(intensity.removeprefix("window ")) if given else None
    return to_uint8(volume, kind, window, shape, found, target), geometry


def to_file_voxels(labels: torch.Tensor, geometry: tuple, spacing: list[float] | None):
    """A label volume (D', H', W') at the model's shape, back onto the file's own voxels
    (nearest): `resample` undone. Where the cube had cut the scan, the labels are 0."""
    shape, found = geometry
    x = labels[None, None].float()
    if spacing:  # the centre crop or padding taken back
        sized = _spaced_shape(shape, found, tuple(spacing))
        x = F.pad(x, [-p for p in _centre_pads(sized, labels.shape)])
    return F.interpolate(x, size=shape, mode="nearest-exact")[0, 0].to(labels.dtype)


def to_uint8(
    volume: np.ndarray, kind: str, window, shape: tuple[int, ...], found=None, target=None
) -> torch.Tensor:
    """Intensities onto 0..1 (a window, a z-score over +-3 sigma, or `kind` "raw": already
    there), then to `shape` (through `target` spacing when given), as uint8 (1, D, H, W)."""
    x = torch.from_numpy(volume)
    if window is not None or kind == "ct":
        centre, width = window or (40.0, 400.0)  # a soft-tissue window unless told
        x = (x - (centre - width / 2)) / width
    elif kind != "raw":  # MRI: no absolute scale; a z-score per volume
        x = ((x - x.mean()) / x.std().clamp_min(1e-6) + 3) / 6
    return (resample(x.clamp(0, 1), shape, found, target) * 255).round().to(torch.uint8)


def resample(x: torch.Tensor, shape, found, target, mode: str = "trilinear") -> torch.Tensor:
    """(D, H, W) in [0, 1] -> (1, *shape): stretched onto the shape, or (with a `target`
    spacing) resampled from its own spacing (`found`, else 1 mm) and centre-cropped or padded
    with 0 to the shape. `mode` "nearest-exact" for label volumes."""
    if target is None:
        return F.interpolate(x[None, None], size=shape, mode=mode)[0]
    sized = _spaced_shape(x.shape, found, target)
    x = F.interpolate(x[None, None], size=sized, mode=mode)[0]
    return F.pad(x, _centre_pads(sized, shape))  # negative pads crop


def _centre_pads(have, want) -> list[int]:
    """F.pad's amounts (last axis first) that centre a `have`-shaped volume in `want`."""
    pads = []
    for h, w in zip(reversed(have), reversed(want), strict=True):
        pads += [(w - h) // 2, w - h - (w - h) // 2]
    return pads


def _spaced_shape(shape, found, target) -> tuple[int, ...]:
    found = found or (1.0, 1.0, 1.0)
    return tuple(max(round(n * f / t), 1) for n, f, t in zip(shape, found, target, strict=True))


def _spaced_larger(shape, found, target, side: int) -> bool:
    return max(_spaced_shape(shape, found, target)) > side


def said(kind: str, window) -> str:
    """How a volume of `kind` ("ct" or "mr") was mapped onto 0..255, in words."""
    if window is not None:
        return f"window centre {window[0]:g}, width {window[1]:g} (--window)"
    if kind == "ct":
        return "DICOM series in Hounsfield units through a soft-tissue window 40/400 (--window)"
    return "a z-score per volume, +-3 sigma onto 0..255 (no --window given)"


def parse_spacing(text: str | None) -> tuple[float, float, float] | None:
    """ "1.5" or "0.8,0.8,2.5" (mm, x, y, z as NIfTI lists them) -> (z, y, x) spacing."""
    if not text:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 3) or not all(0 < v < 1000 for v in values):
        raise DataError(
            f"--spacing takes millimetres, one number or X,Y,Z (e.g. 1.5 or "
            f"0.8,0.8,2.5), got {text!r}"
        )
    return tuple(values * 3 if len(values) == 1 else values[::-1])


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
