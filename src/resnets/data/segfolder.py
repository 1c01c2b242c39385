"""Segmentation folders: PATH/images/ with their masks in PATH/masks/, as data sets ship them.

Masks are paired to images by name (pairing.py: a usual suffix such as `_mask`, another
extension, or `--mask-pattern`), and the whole set's mask kind decides how values become
classes: 0/255 or a few exact values, JPEG masks thresholded, palette indices, or colours
through a table (`--mask-colours FILE`). Each decision is a note the run prints.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import DataError
from .colours import load_colours
from .datasets import ImageTensors
from .decode import IMAGE_EXTENSIONS, decode, detect_channels
from .masks import apply, infer_scheme, read_mask
from .pairing import pair_masks


def load_segfolder(
    root: Path,
    size: int,
    channels: int | None,
    colours: str | None = None,
    pattern: str | None = None,
) -> tuple[ImageTensors, list[str]]:
    """The set's images and masks at `size` px, and notes on how the masks were read."""
    pairs, missing, paired = pair_masks(root, pattern, _is_image)
    scheme = infer_scheme([m for _, m in pairs], load_colours(Path(colours)) if colours else None)
    notes = [paired, scheme.note, f"segmentation classes: {', '.join(scheme.classes)}"]
    if missing:
        image, looked = missing[0]
        notes.append(
            f"{len(missing)} images without a mask left out, e.g. {image.name} (looked for "
            f"{looked})"
        )
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


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
