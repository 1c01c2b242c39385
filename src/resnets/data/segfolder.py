"""Segmentation folders: PATH/images/ with their masks in PATH/masks/, as data sets ship them.

Masks are paired to images by name (masks.py: a usual suffix such as `_mask`, another
extension), and the whole set's mask kind decides how values become classes: 0/255 or a few
exact values, JPEG masks thresholded, palette indices, or colours through a table
(`--mask-colours FILE`). Each decision is a note the run prints.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import DataError
from .colours import load_colours
from .datasets import ImageTensors
from .decode import IMAGE_EXTENSIONS, decode, detect_channels
from .masks import apply, infer_scheme, pair_masks, read_mask


def load_segfolder(
    root: Path,
    size: int,
    channels: int | None,
    colours: str | None = None,
    pattern: str | None = None,
) -> tuple[ImageTensors, list[str]]:
    """The set's images and masks at `size` px, and notes on how the masks were read."""
    images_dir, masks_dir = root / "images", root / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise DataError(f"{root} needs images/ and masks/ sub-folders (masks named like images)")
    files = sorted(
        p
        for p in images_dir.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )
    pairs, missing = pair_masks(files, masks_dir, pattern)
    if not pairs:
        how = f"named by --mask-pattern {pattern!r}" if pattern else "of the same name"
        raise DataError(
            f"no image in {images_dir} has a mask {how} in {masks_dir}; name the masks like "
            "the images (a suffix such as _mask is fine) or pass --mask-pattern '{stem}_x.png'"
        )
    scheme = infer_scheme([m for _, m in pairs], load_colours(Path(colours)) if colours else None)
    notes = [scheme.note, f"segmentation classes: {', '.join(scheme.classes)}"]
    if missing:
        notes.append(f"{len(missing)} images without a mask left out, e.g. {missing[0].name}")
    channels = channels or detect_channels([p for p, _ in pairs])
    xs, ys = [], []
    for image, mask in pairs:
        x, y = decode(image, channels), apply(scheme, read_mask(mask))
        if tuple(x.shape[-2:]) != tuple(y.shape):
            raise DataError(
                f"mask {mask} is {y.shape[1]}x{y.shape[0]} but its image {image} is "
                f"{x.shape[2]}x{x.shape[1]}; resize the mask (nearest neighbour) or fix the pair"
            )
        x = F.interpolate(x.float()[None], size=(size, size), mode="bilinear", antialias=True)
        xs.append(x[0])
        ys.append(F.interpolate(y.float()[None, None], size=(size, size), mode="nearest")[0, 0])
    images = torch.stack(xs).round().clamp(0, 255).to(torch.uint8)
    files = [image for image, _ in pairs]
    return ImageTensors(images, torch.stack(ys).long(), list(scheme.classes), files), notes
