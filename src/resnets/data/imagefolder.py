"""Folders of images, one sub-folder per class: the source. Scanned into files and labels,
split, sized (sizing.py), and described as datasets whose items are decoded uint8 images
(or `Unreadable`); cache.py decodes them once, stream.py every epoch. Each item's random
transform is seeded by (seed, epoch, index). Unreadable images are skipped and counted, or
fail the run with `strict`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import DataError, UsageError
from ..options import DataOptions
from .augment import mix_seed
from .csvlabels import as_labels, read_table
from .decode import IMAGE_EXTENSIONS, decode, detect_channels
from .device_decode import read_bytes
from .sizing import ModelSize, choose_size, header_size
from .splits import ReadSplits, carve, choose_flips, crop_padding

LOADER_TIMEOUT = 300  # seconds without a batch from the workers before giving up


def scan(root: Path) -> tuple[list[Path], torch.Tensor, list[str]]:
    """Image files, labels and class names (sorted folder names) under `root`."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class folders; put each class's images in {root}/CLASS/")
    files, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(
            p
            for p in (root / name).rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
        )
        if not found:
            raise DataError(
                f"class folder {root / name} has no images "
                f"({', '.join(sorted(IMAGE_EXTENSIONS))}); add images or remove the folder"
            )
        check_some_readable(root / name, found)
        files += found
        labels += [label] * len(found)
    return files, torch.tensor(labels, dtype=torch.long), classes


def check_some_readable(folder: Path, files: list[Path]) -> None:
    """Refuse a class folder none of whose files opens as an image (headers only, stopping at
    the first that does): its class would train on nothing, and the run would still report."""
    if any(header_size(f) is not None for f in files):
        return
    raise DataError(
        f"class folder {folder}: none of its {len(files)} files opens as an image (e.g. "
        f"{files[0].name}); replace them with readable images or remove the folder"
    )


def train_transform(size: int, crop: str, hflip: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """ "random-resized": Inception-style crop (and flip) in the worker; "resize": a plain
    resize, leaving pad-crop and flip to the device."""
    from torchvision.transforms import v2

    if crop == "random-resized":
        flip = [v2.RandomHorizontalFlip()] if hflip else []
        return v2.Compose([v2.RandomResizedCrop(size, antialias=True), *flip])
    return v2.Resize((size, size), antialias=True)


def eval_transform(size: int, resize: int | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Shorter side to `resize`, then the centre `size` crop; no resize: straight to size."""
    from torchvision.transforms import v2

    if resize is None:
        return v2.Resize((size, size), antialias=True)
    return v2.Compose([v2.Resize(resize, antialias=True), v2.CenterCrop(size)])


class Unreadable(int):
    """Stands in for an image that could not be decoded: its index in the dataset."""


class ImageFolderDataset(Dataset):
    """Items are (image uint8 [C, S, S], label), or `Unreadable(index)`.

    With `raw=True` (decoding on the device) items are (file bytes, label, index) instead.
    """

    def __init__(self, files, labels, transform, channels: int, seed: int, strict: bool):
        self.files, self.labels, self.transform = files, labels, transform
        self.channels, self.seed, self.strict = channels, seed, strict
        self.raw = False

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, i = key if isinstance(key, tuple) else (0, key)
        if self.raw:
            try:
                return read_bytes(self.files[i]), int(self.labels[i]), i
            except OSError:
                return Unreadable(i)
        try:
            img = decode(self.files[i], self.channels)
        except Exception as e:
            if self.strict:
                raise DataError(f"cannot decode {self.files[i]} ({e}); fix or remove it") from None
            return Unreadable(i)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(self.seed, epoch, i))
            img = self.transform(img)
        return img, self.labels[i]


def collate(items: list) -> tuple[torch.Tensor | list, torch.Tensor, list[int]]:
    """Stack the readable items; return the indices of the unreadable ones beside them.

    Raw items (bytes, label, index) stay a list of (bytes, index) pairs for the device."""
    bad = [int(it) for it in items if isinstance(it, Unreadable)]
    kept = [it for it in items if not isinstance(it, Unreadable)]
    if not kept:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long), bad
    if len(kept[0]) == 3:
        y = torch.stack([torch.as_tensor(it[1]) for it in kept])
        return [(it[0], it[2]) for it in kept], y, bad
    x = torch.stack([it[0] for it in kept])
    y = torch.stack([torch.as_tensor(it[1]) for it in kept])
    return x, y, bad


@contextlib.contextmanager
def worker_errors() -> Iterator[None]:
    """A DataError raised in a worker arrives with the worker's traceback in its message;
    keep only the original one-line message."""
    try:
        yield
    except DataError as e:
        text = str(e)
        if "Traceback" in text:
            last = text.strip().splitlines()[-1]
            raise DataError(last.split("DataError: ", 1)[-1]) from None
        raise
    except RuntimeError as e:
        if "timed out" not in str(e):
            raise
        raise DataError(
            f"no batch from the data-loading workers in {LOADER_TIMEOUT} s; "
            "retry with --num-workers 0 to see the underlying error"
        ) from None


@dataclass
class _FolderSplit:
    files: list[Path]
    labels: torch.Tensor
    classes: list[str]

    def subset(self, index: torch.Tensor) -> _FolderSplit:
        return _FolderSplit(
            [self.files[i] for i in index.tolist()], self.labels[index], self.classes
        )


def _scan_split(root: Path, classes: list[str] | None = None) -> _FolderSplit:
    files, labels, found = scan(root)
    if classes is not None:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DataError(f"{root} has classes the training set lacks: {', '.join(unknown[:5])}")
        remap = torch.tensor([classes.index(c) for c in found])
        labels, found = remap[labels], classes
    return _FolderSplit(files, labels, found)


def _table_splits(path: Path, opts: DataOptions, notes: list[str]):
    """train, val, test file lists from a label table (its split column, where it has one)."""
    rows, classes, table_notes = read_table(path, opts.strict, opts.path_column, opts.label_column)
    notes += table_notes
    made = {n: _FolderSplit(*as_labels(items, classes), classes) for n, items in rows.items()}
    return made["train"], made.get("val"), made.get("test")


def _three_splits(root: Path, opts: DataOptions, notes: list[str], kind: str):
    """train, val, test file lists: the folder's own train/ val/ test/ (or a table's), or
    carved."""
    if kind == "csv":
        train, val, test = _table_splits(root, opts, notes)
    elif (root / "train").is_dir():
        train = _scan_split(root / "train")
        val = _scan_split(root / "val", train.classes) if (root / "val").is_dir() else None
        test = _scan_split(root / "test", train.classes) if (root / "test").is_dir() else None
        if test is None and val is not None:
            test, val = val, None
            notes.append("val/ serves as the test set; validation is carved from train/")
    else:
        train, val, test = _scan_split(root), None, None
    return carve(train, val, test, opts, notes, source=str(root))


def folder_splits(
    root: Path,
    opts: DataOptions,
    seed: int,
    channels: int | None,
    model: ModelSize | None,
    kind: str = "imagefolder",
) -> ReadSplits:
    """The folder's (or label table's) splits as datasets, with size, crops and flips."""
    notes: list[str] = []
    train, val, test = _three_splits(root, opts, notes, kind)
    channels = channels or detect_channels(train.files)
    size, reason = choose_size(train.files, model, opts.image_size)
    notes.append(reason)
    crop = opts.train_crop or ("random-resized" if size >= 128 else "resize")
    if crop not in ("random-resized", "resize"):
        raise UsageError(f"--train-crop must be 'random-resized' or 'resize', got {crop!r}")
    flip = choose_flips(opts.hflip, channels == 3, notes)
    rrc = crop == "random-resized"
    resize = opts.eval_resize or (round(size / 0.875) if rrc else None)

    def dataset(split, transform):
        if split is None:
            return None
        return ImageFolderDataset(split.files, split.labels, transform, channels, seed, opts.strict)

    return ReadSplits(
        name=f"{kind}:{root}",
        train=dataset(train, train_transform(size, crop, hflip=flip)),
        val=dataset(val, eval_transform(size, resize)),
        test=dataset(test, eval_transform(size, resize)),
        classes=train.classes,
        channels=channels,
        input_size=size,
        stream_only=_why_streamed(opts.gpu_decode, crop),
        crop_padding=crop_padding(opts.crop_padding, size) if crop == "resize" else 0,
        hflip=flip if crop == "resize" else False,
        resize_size=resize,
        in_memory=False,
        notes=notes,
        root=root.parent if kind == "csv" else root,
        decode=dict(size=size, channels=channels, seed=seed, rrc=rrc, resize=resize, hflip=flip)
        if opts.gpu_decode
        else None,
    )


def _why_streamed(gpu_decode: bool, crop: str) -> str | None:
    """Why a folder's images cannot be decoded once and kept, if they cannot."""
    if gpu_decode:
        return "--gpu-decode decodes on the device every epoch"
    if crop == "random-resized":
        return "random-resized crops are cut from each full image every epoch"
    return None
