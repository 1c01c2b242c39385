"""The training image size, from the model and the data (as timm's per-model default config).

A folder whose images share one small size trains at that size; images smaller than the model
can take, images larger than it was designed for, and folders of mixed sizes train at the
model's natural size. `--image-size` overrides all of it. The decision and its reason go to
the run's notes.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .dicom import dicom_size, is_dicom

SAMPLE = 1000  # image headers read to decide; spread evenly over the folder


@dataclass(frozen=True)
class ModelSize:
    """What the model says about its input: its natural side and the smallest it takes whole."""

    name: str
    natural: int
    smallest: int


def even_sample(n: int, sample: int = SAMPLE) -> list[int]:
    """At most `sample` indices spread evenly over 0..n-1 (all of them when n is smaller)."""
    return list(range(0, n, max(n // sample, 1)))[:sample]


def header_sizes(files: list[Path], sample: int = SAMPLE) -> Counter[tuple[int, int]]:
    """(width, height) counts over an even sample of the files, from headers only."""
    sizes: Counter[tuple[int, int]] = Counter()
    for f in (files[i] for i in even_sample(len(files), sample)):
        if size := header_size(f):
            sizes[size] += 1
    return sizes


def header_size(file: Path) -> tuple[int, int] | None:
    """(width, height) from an image's or a DICOM file's header; None when neither opens it
    (decoding will then skip the file, or fail with --strict)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as im:
                return im.size
    except Exception:
        return dicom_size(file) if is_dicom(file) else None


def choose_size(files: list[Path], model: ModelSize | None, given: int | None) -> tuple[int, str]:
    """(side, reason) for training on `files` with `model`."""
    if given or model is None:
        return size_from_counts(Counter(), len(files), model, given)
    return size_from_counts(header_sizes(files), len(files), model, given)


def size_from_counts(
    sizes: Counter[tuple[int, int]], total: int, model: ModelSize | None, given: int | None
) -> tuple[int, str]:
    """(side, reason) from the (width, height) counts seen in a sample of `total` images."""
    if given:
        return given, f"input size {given} px, as given by --image-size"
    if model is None:
        return 224, "input size 224 px, the ImageNet default (no model to ask)"
    seen = f"{sum(sizes.values())} of {total} read" if total > sum(sizes.values()) else ""
    natural = f"{model.name}'s natural {model.natural} px"
    if len(sizes) != 1:
        if not sizes:
            return model.natural, f"input size {natural}: no image header could be read"
        (w0, h0), (w1, h1) = min(sizes), max(sizes)
        what = f"sizes vary from {w0}x{h0} to {w1}x{h1}"
        return model.natural, f"input size {natural}: {what}" + (f" ({seen})" if seen else "")
    ((w, h),) = sizes
    side = max(w, h)
    shape = f"{w}x{h}" + (f" (all {seen})" if seen else "")
    if side > model.natural:
        return model.natural, f"input size {natural}: images are {shape}, larger than that"
    if side < model.smallest:
        return model.natural, (
            f"input size {natural}: images are {shape}, smaller than the {model.smallest} px "
            f"{model.name} needs; a CIFAR-stem model (resnet20) trains at their own size"
        )
    return side, f"input size {side} px: images are {shape}, kept at their own size"
