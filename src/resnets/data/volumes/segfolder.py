"""`--data segfolder:DIR` holding volumes: DIR/images/ and DIR/masks/ of NIfTI (.nii, .nii.gz)
or .npy/.npz volumes, as the Medical Segmentation Decathlon ships them (imagesTr, labelsTr).

A mask is paired to its volume by name (the same name, or with a usual suffix such as
`_seg`), holds one class value per voxel and must have its volume's shape. Volumes are read as
`volumes:DIR` reads them (window or z-score, cube or `--spacing`), masks the same way by
nearest neighbour. The values found in all masks become the classes, in order (0 first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ..datasets import ImageTensors
from ..masks import MASK_SUFFIXES
from .folder import DEFAULT_SIDE, SUFFIXES, read_volume, resample, said, to_uint8


def volume_stem(path: Path) -> str:
    """A volume file's name without its extension (`a.nii.gz` -> `a`), lower case."""
    name = path.name.lower()
    return next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), path.stem.lower())


def holds_volumes(images_dir: Path) -> bool:
    return images_dir.is_dir() and any(
        p.name.lower().endswith(SUFFIXES) for p in images_dir.iterdir()
    )


def load_volume_segfolder(
    root: Path, side: int | None, window, spacing
) -> tuple[ImageTensors, list[str]]:
    """The volumes and their masks as (N, 1, S, S, S) uint8 and (N, S, S, S) class indices,
    and notes on what was read."""
    pairs, missing = _pairs(root / "images", root / "masks")
    side = side or DEFAULT_SIDE
    cube = (side,) * 3
    images, masks, values, kinds = [], [], set(), set()
    for image, mask in pairs:
        volume, kind, found = read_volume(image)
        labels, _, _ = read_volume(mask)
        if labels.shape != volume.shape:
            raise DataError(f"mask {mask} has shape {labels.shape} but its volume {image} has "
                            f"{volume.shape}; a mask labels each voxel of its volume")  # fmt: skip
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
        f"{len(pairs)} volumes with masks (paired by name: {_pairing(pairs)}), at {side}^3 voxels"
        + (" (--spacing, then cropped or padded)" if spacing else " (--image-size)"),
        f"segmentation classes: the mask values {', '.join(map(str, order))}"
        + ("" if order == list(range(len(order))) else " (numbered in that order)"),
    ]
    notes.append("intensities: " + ", ".join(sorted(said(k, window) for k in kinds)))
    if missing:
        notes.append(f"{len(missing)} of the volumes had no mask and were left out, e.g. "
                     f"{missing[0].name}")  # fmt: skip
    files = [image for image, _ in pairs]
    return ImageTensors(torch.stack(images), labels, [str(v) for v in order], files), notes


def _pairing(pairs: list[tuple[Path, Path]]) -> str:
    """How the masks were named, as found: "same name" or "+_seg"."""
    added = {volume_stem(m)[len(volume_stem(i)) :] for i, m in pairs}
    return ", ".join(sorted(f"+{s}" if s else "same name" for s in added))


def _pairs(images_dir: Path, masks_dir: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    if not masks_dir.is_dir():
        raise DataError(f"{masks_dir.parent} needs images/ and masks/ sub-folders")
    masks = {volume_stem(m): m for m in sorted(masks_dir.iterdir())
             if m.name.lower().endswith(SUFFIXES)}  # fmt: skip
    pairs, missing = [], []
    for image in sorted(images_dir.iterdir()):
        if not image.name.lower().endswith(SUFFIXES) or image.name.startswith("."):
            continue
        found = [masks[k] for s in MASK_SUFFIXES if (k := volume_stem(image) + s) in masks]
        if found:
            pairs.append((image, found[0]))
        else:
            missing.append(image)
    if not pairs:
        raise DataError(f"no volume in {images_dir} has a mask of the same name in {masks_dir}")
    return pairs, missing
