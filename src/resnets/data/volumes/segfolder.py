"""`--data segfolder:DIR` holding volumes: DIR/images/ and DIR/masks/ of NIfTI (.nii, .nii.gz)
or .npy/.npz volumes, as the Medical Segmentation Decathlon ships them (imagesTr, labelsTr).

A mask is paired to its volume as 2D masks are (pairing.py: the same name, a usual suffix
such as `_seg`, or `--mask-pattern`), holds one class value per voxel and must have its
volume's shape. Volumes are read as `volumes:DIR` reads them (window or z-score, cube or
`--spacing`), masks the same way by nearest neighbour. The values found in all masks become
the classes, in order (0 first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ..datasets import ImageTensors
from ..pairing import image_folder, pair_masks, without_masks
from .folder import DEFAULT_SIDE, SUFFIXES, read_volume, resample, said, to_uint8


def is_volume(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES) and path.is_file()


def holds_volumes(root: Path, pattern: str | None = None) -> bool:
    """Whether a segmentation folder's images (by `--mask-pattern`'s rule) are volumes."""
    images = image_folder(root, pattern)
    return images.is_dir() and any(p.name.lower().endswith(SUFFIXES) for p in images.iterdir())


def load_volume_segfolder(
    root: Path,
    side: int | None,
    window,
    spacing,
    pattern: str | None = None,
    index: int | None = None,
    strict: bool = False,
) -> tuple[ImageTensors, list[str]]:
    """The volumes and their masks as (N, 1, S, S, S) uint8 and (N, S, S, S) class indices,
    and notes on what was read (masks paired as in 2D: pairing.py)."""
    pairs, missing, paired = pair_masks(root, pattern, is_volume)
    without = without_masks(missing, strict, "volumes")  # with --strict: stops here
    side = side or DEFAULT_SIDE
    cube = (side,) * 3
    images, masks, values, kinds = [], [], set(), set()
    for image, mask in pairs:
        volume, kind, found = read_volume(image, index)  # a 4D scan: one of its volumes
        labels, _, _ = read_volume(mask)
        if labels.shape != volume.shape:
            raise DataError(
                f"mask {mask} has shape {labels.shape} but its volume {image} has "
                f"{volume.shape}; a mask labels each voxel of its volume"
            )
        if (labels != np.round(labels)).any() or labels.min() < 0:
            raise DataError(f"mask {mask} holds values that are not class indices (0, 1, ...)")
        images.append(to_uint8(volume, kind, window, cube, found, spacing))
        kinds.add(kind)
        target = tuple(spacing) if spacing else None
        masks.append(
            resample(torch.from_numpy(labels), cube, found, target, mode="nearest-exact")[0]
        )
        values |= set(np.unique(labels).astype(int).tolist())
    order = sorted(values)
    lookup = torch.full((max(order) + 1,), -1, dtype=torch.long)
    lookup[order] = torch.arange(len(order))
    labels = lookup[torch.stack(masks).long()]
    notes = [
        f"{len(pairs)} volumes with masks, at {side}^3 voxels"
        + (" (--spacing, then cropped or padded)" if spacing else " (--image-size)")
        + f"; {paired}",
        f"segmentation classes: the mask values {', '.join(map(str, order))}"
        + ("" if order == list(range(len(order))) else " (numbered in that order)"),
    ]
    notes.append("intensities: " + ", ".join(sorted(said(k, window) for k in kinds)))
    if without:
        notes.append(without)
    files = [image for image, _ in pairs]
    return ImageTensors(torch.stack(images), labels, [str(v) for v in order], files), notes
