"""Segmentation folders: PATH/images/ with their masks in PATH/masks/, as data sets ship them.

Masks are paired to images by name (pairing.py: a usual suffix such as `_mask`, another
extension, or `--mask-pattern`), and the whole set's mask kind decides how values become
classes: 0/255 or a few exact values, JPEG masks thresholded, palette indices, or colours
through a table (`--mask-colours FILE`). Each decision is a note the run prints.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import DataError
from .colours import load_colours
from .datasets import ImageTensors
from .decode import IMAGE_EXTENSIONS, decode, detect_channels
from .masks import apply, infer_scheme, read_mask
from .pairing import pair_masks, without_masks


def load_segfolder(
    root: Path,
    size: int,
    channels: int | None,
    colours: str | None = None,
    pattern: str | None = None,
    strict: bool = False,
) -> tuple[ImageTensors, list[str]]:
    """The set's images and masks at `size` px, and notes on how the masks were read."""
    pairs, missing, paired = pair_masks(root, pattern, _is_image)
    scheme = infer_scheme([m for _, m in pairs], load_colours(Path(colours)) if colours else None)
    notes = [paired, scheme.note, f"segmentation classes: {', '.join(scheme.classes)}"]
    if note := without_masks(missing, strict):
        notes.append(note)
    channels = channels or detect_channels([p for p, _ in pairs])
    start = time.perf_counter()
    images, masks, files, sizes, skipped = [], [], [], Counter(), []
    for image, mask in pairs:
        try:
            x, y = decode(image, channels), apply(scheme, read_mask(mask))
        except Exception as e:  # a broken image or mask costs its pair, unless strict
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            if strict:
                raise DataError(f"cannot read {image} or its mask {mask} ({why})") from None
            skipped.append(f"{image.name} ({why})")
            continue
        if tuple(x.shape[-2:]) != tuple(y.shape):
            raise DataError(
                f"mask {mask} is {y.shape[1]}x{y.shape[0]} but its image {image} is "
                f"{x.shape[2]}x{x.shape[1]}; resize the mask (nearest neighbour) or fix the pair"
            )
        sizes[(x.shape[2], x.shape[1])] += 1
        x = F.interpolate(x.float()[None], size=(size, size), mode="bilinear", antialias=True)
        images.append(x[0].round().clamp(0, 255).to(torch.uint8))
        masks.append(F.interpolate(y.float()[None, None], size=(size, size), mode="nearest")[0, 0])
        files.append(image)
    if not images:
        raise DataError(f"none of the {len(pairs)} images with masks could be read: {skipped[0]}")
    notes.append(_size_note(sizes, size, len(images), time.perf_counter() - start))
    if skipped:
        pairs_left = f"{len(skipped)} pairs" if len(skipped) > 1 else "1 pair"
        notes.append(
            f"{pairs_left} with an unreadable image or mask left out (--strict stops instead), "
            f"e.g. {skipped[0]}"
        )
    labels = torch.stack(masks).long()
    return ImageTensors(torch.stack(images), labels, list(scheme.classes), files), notes


def _size_note(sizes: Counter, size: int, count: int, seconds: float) -> str:
    """What the images were and became: their sizes, the training size, the decoding time."""
    (w0, h0), (w1, h1) = min(sizes), max(sizes)
    shape = f"{w0}x{h0}" if len(sizes) == 1 else f"{w0}x{h0} to {w1}x{h1}"
    how = "kept" if sizes.keys() == {(size, size)} else f"resized to {size}x{size}"
    return (
        f"{count} images of {shape} {how} (images bilinear, masks nearest); decoded once in "
        f"{seconds:.1f} s ({count / max(seconds, 1e-9):.0f} images/s)"
    )


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
