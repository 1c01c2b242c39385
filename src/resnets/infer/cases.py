"""What predict and export read for 3D models: volumes (a file, or a folder of DICOM slices)
or clips (a video file, or a folder of frames), found in the paths given and prepared as the
weights' training data was (WeightsMeta's inputs, input_depth and intensity)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.augment import match_channels, normalize
from ..data.external import need
from ..data.volumes.folder import SUFFIXES, is_case, read_case, to_file_voxels
from ..data.volumes.video import is_clip, read_clip
from ..errors import UsageError
from ..models.meta import WeightsMeta

WHAT = {
    "volumes": "volumes (.nii, .nii.gz, .npy, .npz files or DICOM series folders)",
    "clips": "clips (video files or folders of frames)",
}


def check_inputs(meta: WeightsMeta, command: str) -> None:
    """Refuse, in one line, 3D weights whose metadata does not say how to read a new input
    (written before resnets stored it)."""
    if meta.config.spatial_dims == 3 and (meta.inputs == "images" or not meta.input_depth):
        raise UsageError(
            f"{command}: these 3D weights do not say how their inputs were read "
            "(written by an older resnets); train them again, or evaluate the "
            "run with `resnets evaluate RUN`"
        )


def expand_cases(paths: Any, inputs: str) -> list[Path]:
    """Paths as given; a folder that is not itself one input becomes the inputs under it
    (searched recursively, in name order)."""
    one: Callable[[Path], bool] = is_case if inputs == "volumes" else is_clip
    given = [paths] if isinstance(paths, str | os.PathLike) else paths
    if not isinstance(given, Iterable):
        raise UsageError(f"a 3D model takes paths of {WHAT[inputs]}")
    found: list[Path] = []
    for p in given:
        if not isinstance(p, str | os.PathLike):
            raise UsageError(
                f"a {type(p).__name__} is not a path; a 3D model takes paths of {WHAT[inputs]}"
            )
        p = Path(p)
        if not p.exists():
            raise UsageError(f"{p} does not exist")
        found += [p] if p.is_file() or one(p) else _search(p, one)
    if not found:
        raise UsageError(f"no {WHAT[inputs]} found in what was given")
    return found


def _search(folder: Path, one: Callable[[Path], bool]) -> list[Path]:
    out: list[Path] = []
    for q in sorted(folder.iterdir()):
        if q.name.startswith("."):
            continue
        if one(q):
            out.append(q)
        elif q.is_dir():
            out += _search(q, one)
    return out


def prepare_cases(
    files: list[Path], meta: WeightsMeta, channels: int
) -> tuple[torch.Tensor | None, list[str], dict[str, str], list[tuple]]:
    """(normalized batch or None, the names in it, {unreadable input: why}, each volume's
    geometry for `write_mask_volume`): each input read at the weights' shape, so that a bad
    file costs only itself."""
    side, depth = meta.input_size, meta.input_depth
    inputs, names, failed, geometries = [], [], {}, []
    for f in files:
        try:
            if meta.inputs == "volumes":
                shape = (depth, side, side)
                intensity = meta.intensity or "raw"
                x, geometry = read_case(f, intensity, shape, meta.spacing, meta.volume_index)
            else:
                x, geometry = read_clip(f, depth, side), None
        except Exception as e:  # the readers name the file; keep the reason
            failed[str(f)] = str(e).splitlines()[0] if str(e) else type(e).__name__
            continue
        inputs.append(match_channels(x[None], channels)[0])
        names.append(str(f))
        geometries.append(geometry)
    if not inputs:
        return None, names, failed, geometries
    mean, std = torch.tensor(meta.mean), torch.tensor(meta.std)
    return normalize(torch.stack(inputs), mean, std), names, failed, geometries


def mask_volume_name(relative: str) -> str:
    """A predicted mask volume's name: the input's with `_mask`, as NIfTI beside NIfTI inputs
    (with their affine, so that viewers overlay it), else a NumPy array (D, H, W) of class
    indices (`scans/a.nii.gz` -> `scans/a_mask.nii.gz`; a DICOM series `b/` -> `b_mask.npy`)."""
    nifti = relative.lower().endswith((".nii", ".nii.gz"))
    stem = next((relative[: -len(s)] for s in SUFFIXES if relative.lower().endswith(s)), relative)
    return stem + ("_mask.nii.gz" if nifti else "_mask.npy")


def write_mask_volume(
    mask: torch.Tensor, geometry: tuple, source: Path, path: Path, spacing: list[float] | None
) -> None:
    """A volume's predicted classes on its own voxels (see `to_file_voxels`), at `path`:
    NIfTI with the source's affine, or .npy (see `mask_volume_name`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = to_file_voxels(mask.to(torch.uint8), geometry, spacing).numpy()
    if path.name.endswith(".nii.gz"):
        nibabel = need("nibabel", "NIfTI")
        image = nibabel.load(str(source))  # its affine: the mask lies where the scan lies
        nibabel.save(nibabel.Nifti1Image(array.T.copy(), image.affine), str(path))
    else:
        np.save(path, array)
