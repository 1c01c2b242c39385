"""What predict, explain and export read for 2D models: image files (a folder is its images)
or images held in Python, decoded, resized and normalized as the weights' training data was.
`cases.py` is the same for volumes and clips."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ..data.augment import match_channels, normalize
from ..data.decode import IMAGE_EXTENSIONS, decode
from ..data.imagefolder import eval_transform
from ..data.items import Undo, is_image, to_image
from ..errors import DataError, UsageError
from ..models.meta import WeightsMeta

Input = Any  # a path, or an image object as data/items.py reads them


def expand_images(paths: Input | Iterable[Input]) -> list[Path | Any]:
    """Files as given; folders become their image files (recursively, sorted). Images held
    in Python (PIL, tensors, arrays; a 4-D batch is its images) are kept as they are."""
    if is_image(paths) or isinstance(paths, str | os.PathLike):
        paths = [paths]
    elif hasattr(paths, "ndim") and paths.ndim in (3, 4):  # a batch ([N, H, W]: greyscale)
        paths = list(paths)
    files: list[Path | Any] = []
    for p in paths:
        if is_image(p):
            files.append(p)
            continue
        if not isinstance(p, str | os.PathLike):
            raise UsageError(
                f"a {type(p).__name__} is not an image: give paths, PIL images, CHW tensors "
                "or HWC arrays"
            )
        p = Path(p)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.exists():
            files.append(p)
        else:
            raise UsageError(f"{p} does not exist")
    if not files:
        raise UsageError(
            "no images given (folders are searched for " + ", ".join(sorted(IMAGE_EXTENSIONS)) + ")"
        )
    return files


def prepare_images(
    files: list[Path | Any], meta: WeightsMeta, channels: int
) -> tuple[torch.Tensor | None, list[str], dict[str, str]]:
    """Decode, resize and normalize files as the weights were trained.

    Each file is prepared on its own and its shape checked before stacking, so a bad file
    costs only itself. Returns (batch or None, the names in the batch, {unreadable file: why})."""
    x, names, _, failed = prepare_sized(files, meta, channels, meta.resize_size)
    return x, names, failed


def prepare_sized(
    files: list[Path | Any], meta: WeightsMeta, channels: int, resize: int | None, start: int = 0
) -> tuple[torch.Tensor | None, list[str], list[tuple[int, int]], dict[str, str]]:
    """`prepare_images`, with each image's original (height, width) beside its name. An image
    object is named "image N" (its place among the inputs)."""
    transform = eval_transform(meta.input_size, resize)
    want = (channels, meta.input_size, meta.input_size)
    undo = Undo(*map(tuple, meta.item_normalize)) if meta.item_normalize else None
    images, names, sizes, failed = [], [], [], {}
    for i, f in enumerate(files, start):
        name = str(f) if isinstance(f, Path) else f"image {i}"
        try:
            if isinstance(f, Path):
                img = decode(f, channels)
            else:
                img = match_channels(to_image(f, name, undo)[None], channels)[0]
            size = (img.shape[-2], img.shape[-1])
            img = transform(img)
            if tuple(img.shape) != want or img.dtype != torch.uint8:
                raise DataError(
                    f"decoded to {img.dtype} {list(img.shape)}, not torch.uint8 {list(want)}"
                )
        except Exception as e:
            failed[name] = str(e).splitlines()[0] if str(e) else type(e).__name__
            continue
        images.append(img)
        names.append(name)
        sizes.append(size)
    if not images:
        return None, names, sizes, failed
    mean, std = torch.tensor(meta.mean), torch.tensor(meta.std)
    return normalize(torch.stack(images), mean, std), names, sizes, failed
