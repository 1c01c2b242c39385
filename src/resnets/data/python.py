"""Data given as Python objects: the source behind `resnets.train(data=...)`,
`ImageClassifier.train(train_loader, val_loader)` and `evaluate(weights, data=...)`.

Accepted: a map-style `Dataset` yielding (image, label); a `DataLoader` (its dataset is
read; resnets' own seeded sampler and batch size replace the loader's, so resume and
torchrun stay exact); arrays or tensors `(x, y)`; a list of (path, label); a pandas
DataFrame of paths and labels. Images take any form `items.py` reads. Every item is read
once into uint8 tensors, so training runs the in-memory path; the dataset's own random
transforms are therefore applied once, not every epoch (a note says so).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError, UsageError
from ..options import SPLITS
from .cache import gigabytes, memory_budget
from .datasets import ImageTensors
from .decode import decode, detect_channels
from .items import Undo, class_indices, find_normalize, to_image, to_label
from .sizing import ModelSize, size_from_counts

PYTHON = "python"  # what a run's config records as its data


@dataclass
class PythonData:
    """The objects given for training: train, and optionally validation and test data."""

    train: Any
    val: Any = None
    test: Any = None


def is_spec(obj: Any) -> bool:
    """A `--data` spec or a path (a string), as opposed to Python objects."""
    return obj is None or isinstance(obj, str | os.PathLike)


def take_objects(options: dict[str, Any]) -> PythonData | None:
    """Python objects among `resnets.train`'s options (`data`, `val_data`, `test_data`),
    taken out; `options["data"]` becomes "python" for the run's records."""
    data, val, test = (
        options.get("data"),
        options.pop("val_data", None),
        options.pop("test_data", None),
    )
    if is_spec(data) and val is None and test is None:
        return None
    if is_spec(data) or any(v is not None and is_spec(v) for v in (val, test)):
        raise UsageError(
            "give data, val_data and test_data all as Python objects, or data as a spec alone"
        )
    options["data"] = PYTHON
    return PythonData(data, val, test)


@dataclass
class Items:
    """The items of one object: a getter by index, their count and what was learned."""

    get: Any
    count: int
    classes: list[str] | None
    notes: list[str]
    undo: Undo | None


def items_of(obj: Any, what: str) -> Items:
    """How to read the (image, label) items of any accepted object."""
    notes: list[str] = []
    if isinstance(obj, DataLoader):
        notes.append(
            f"{what}: the DataLoader's dataset is used; its sampler and batch size "
            f"({obj.batch_size}) are replaced by resnets' own (seeded, resumable)"
        )
        obj = obj.dataset
    if type(obj).__name__ == "DataFrame" and hasattr(obj, "columns"):
        return _frame_items(obj, what, notes)
    if isinstance(obj, tuple) and len(obj) == 2 and all(hasattr(o, "shape") for o in obj):
        x, y = obj
        if len(x) != len(y):
            raise DataError(f"{what}: {len(x)} images but {len(y)} labels")
        return Items(lambda i: (x[i], y[i]), len(x), None, notes, None)
    if isinstance(obj, list | tuple) and obj and _is_path_pair(obj[0]):
        return Items(lambda i: (Path(obj[i][0]), obj[i][1]), len(obj), None, notes, None)
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__"):
        classes = _classes_of(obj)
        return Items(obj.__getitem__, len(obj), classes, notes, find_normalize(obj))
    if hasattr(obj, "__iter__"):  # an IterableDataset: read once, in its own order
        listed = list(obj)
        notes.append(f"{what}: an iterable dataset, read once in its own order")
        return Items(listed.__getitem__, len(listed), _classes_of(obj), notes, find_normalize(obj))
    raise DataError(
        f"{what} has type {type(obj).__name__}; give a Dataset of (image, label), a DataLoader, "
        "arrays (x, y), a list of (path, label), a DataFrame or a --data spec"
    )


def _is_path_pair(first: Any) -> bool:
    return (
        isinstance(first, tuple | list)
        and len(first) == 2
        and isinstance(first[0], str | os.PathLike)
    )


def _frame_items(frame, what: str, notes: list[str]) -> Items:
    from .csvlabels import LABEL_COLUMNS, PATH_COLUMNS, _column

    header = [str(c) for c in frame.columns]
    path_col = _column(header, PATH_COLUMNS, "path", Path(what))
    label_col = _column(header, LABEL_COLUMNS, "label", Path(what))
    if label_col is None:
        raise DataError(f"{what}: no label column among {header}; name one 'label' or 'class'")
    notes.append(f"{what}: paths from column {path_col!r}, labels from {label_col!r}")
    paths, labels = frame[path_col].tolist(), frame[label_col].tolist()
    return Items(lambda i: (Path(paths[i]), labels[i]), len(paths), None, notes, None)


def _classes_of(obj: Any) -> list[str] | None:
    for _ in range(8):
        classes = getattr(obj, "classes", None)
        if isinstance(classes, list | tuple) and classes:
            return [str(c) for c in classes]
        obj = getattr(obj, "dataset", None)
        if obj is None:
            return None
    return None


def read_items(
    obj: Any,
    what: str,
    channels: int | None = None,
    undo: Undo | None = None,
    strict: bool = False,
) -> tuple[list[torch.Tensor], list[int | str], Items]:
    """Every item of `obj` as (uint8 image at its own size, raw label). Files that cannot be
    read (lists of paths, DataFrames) are skipped and counted in a note, or refused with
    `strict`; any other bad item is refused, naming it."""
    items = items_of(obj, what)
    skipped: list[str] = []
    undo = items.undo or undo
    if items.count == 0:
        raise DataError(f"{what} is empty")
    images, labels, budget, used = [], [], memory_budget(), 0
    for i in _progress(items.count, what):
        where = f"{what} item {i}"
        item = items.get(i)
        if not isinstance(item, tuple | list) or len(item) < 2:
            raise DataError(
                f"{where} is not (image, label) but of type {type(item).__name__}; a dataset "
                "must yield pairs"
            )
        if len(item) > 2 and i == 0:
            items.notes.append(
                f"{what}: items have {len(item)} parts; the first two are (image, label)"
            )
        try:
            img = _image(item[0], where, channels, undo)
        except DataError:
            if strict or not isinstance(item[0], Path):
                raise
            skipped.append(where)
            continue
        used += img.numel()
        if used * items.count / (i + 1) > budget and i >= 16:
            raise DataError(
                f"{what}: {items.count} images of {tuple(img.shape)} need about "
                f"{gigabytes(round(used * items.count / (i + 1)))}, over the "
                f"{gigabytes(budget)} resnets holds in memory; write them to an image folder "
                "or a CSV table (--data csv:FILE), which stream"
            )
        images.append(img)
        labels.append(to_label(item[1], where))
    items.undo = undo
    if skipped:
        items.notes.append(f"{what}: {len(skipped)} unreadable files skipped ({skipped[0]}, ...)")
    if not images:
        raise DataError(f"{what}: no item could be read")
    return images, labels, items


def _image(image: Any, where: str, channels: int | None, undo: Undo | None) -> torch.Tensor:
    if not isinstance(image, Path):
        return to_image(image, where, undo)
    try:
        return decode(image, channels or detect_channels([image]))
    except Exception as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{where}: cannot read {image} ({why})") from None


def _progress(n: int, what: str):
    from tqdm import tqdm

    from ..logs import interactive

    return tqdm(range(n), desc=f"reading {what}", unit="img", disable=not interactive())


def to_tensors(
    images: list[torch.Tensor],
    labels: torch.Tensor,
    classes: list[str],
    size: int,
    channels: int,
    resize_side: int | None = None,
) -> ImageTensors:
    """Stack the images at one side and channel count (resized when they differ; with
    `resize_side`, shorter side to it and the centre crop, as folders are evaluated)."""
    from .augment import match_channels
    from .imagefolder import eval_transform

    resize = eval_transform(size, resize_side)
    out = torch.empty(len(images), channels, size, size, dtype=torch.uint8)
    for i, img in enumerate(images):
        if img.shape[-2:] != (size, size):
            img = resize(img)
        out[i] = match_channels(img[None], channels)[0]
    return ImageTensors(out, labels, classes)


def choose_channels(images: list[torch.Tensor], given: int | None, notes: list[str]) -> int:
    """The given count, else 1 if every image is grey, else 3 (mixed ones noted)."""
    if given is None and len({img.shape[0] for img in images}) > 1:
        notes.append("channels: greyscale and colour items are mixed; all are read as RGB")
    return given or (1 if all(img.shape[0] == 1 for img in images) else 3)


def choose_side(images: list[torch.Tensor], model: ModelSize | None, given: int | None):
    """(side, reason) by the folders' rule, from the images' own sizes."""
    sizes = Counter((int(img.shape[-1]), int(img.shape[-2])) for img in images)
    return size_from_counts(sizes, len(images), model, given)


def python_splits(given: PythonData, opts, channels: int | None, model: ModelSize | None):
    """Train / val / test `ReadSplits` from Python objects, carved as for folders where a split
    is not given (test first, then validation from what is left)."""
    from .splits import ReadSplits, carve, choose_flips, crop_padding

    num_classes = getattr(opts, "num_classes", None)
    images, raw, items = read_items(given.train, "train data", channels, strict=opts.strict)
    notes = list(items.notes)
    y, classes, source = class_indices(raw, items.classes, num_classes, "train data")
    notes.append(f"classes: {len(classes)}, {source}")
    if items.undo is not None:
        notes.append(
            f"the items went through Normalize(mean={list(items.undo.mean)}, "
            f"std={list(items.undo.std)}); resnets takes it back and normalizes by itself"
        )
    channels = choose_channels(images, channels, notes)
    size, reason = choose_side(images, model, opts.image_size)
    notes.append(reason)
    train = to_tensors(images, y, classes, size, channels)
    val, test = (_given_split(given, n, train, items.undo, opts.strict, notes) for n in SPLITS[1:])
    train, val, test = carve(train, val, test, opts, notes, source="the training data")
    if isinstance(_dataset(given.train), Dataset) and getattr(
        _dataset(given.train), "transform", None
    ):
        notes.append(
            "the dataset's own transform ran once per item (random augmentation in it is "
            "fixed); resnets augments every epoch on the device (pad-crop, flips)"
        )
    flip = choose_flips(opts.hflip, _colour(train.images), notes, ("hflip=True", "hflip=False"))
    return ReadSplits(
        name="python",
        train=train,
        val=val,
        test=test,
        classes=train.classes,
        channels=channels,
        input_size=size,
        crop_padding=crop_padding(opts.crop_padding, size),
        hflip=flip,
        notes=notes,
        item_normalize=None
        if items.undo is None
        else [list(items.undo.mean), list(items.undo.std)],
    )


def _given_split(
    given: PythonData, name: str, train: ImageTensors, undo, strict: bool, notes: list[str]
) -> ImageTensors | None:
    """A validation or test split given as objects, read as the training split was."""
    obj = getattr(given, name)
    if obj is None:
        return None
    images, labels, items = read_items(obj, f"{name} data", train.channels, undo, strict)
    notes += items.notes
    index, _, _ = class_indices(labels, train.classes, None, f"{name} data")
    size = train.images.shape[-1]
    return to_tensors(images, index, train.classes, size, train.channels)


def _colour(images: torch.Tensor) -> bool:
    """Whether the images hold colour: three channels that are not all equal (grey images
    given as RGB are grey)."""
    if images.shape[1] != 3:
        return False
    sample = images[:: max(len(images) // 256, 1)]
    return not (torch.equal(sample[:, 0], sample[:, 1]) and torch.equal(sample[:, 1], sample[:, 2]))


def _dataset(obj: Any) -> Any:
    return obj.dataset if isinstance(obj, DataLoader) else obj
