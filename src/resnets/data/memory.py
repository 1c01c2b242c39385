"""Sources read whole into memory: the bundled and downloadable sets (digits, CIFAR, MNIST),
generated ones (synthetic, shapes), an .npz, a 2D segmentation folder and 3D folders (volumes,
clips), each carved into train / validation / test as `splits.py` says."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from ..errors import UsageError
from ..options import DataOptions
from . import datasets as ds
from .datasets import ImageTensors
from .loaders import to_channels
from .segfolder import load_segfolder
from .splits import SPLIT_SEED, ReadSplits, carve, crop_padding
from .volumes.arrays import load_npz, make_shapes3d, reading_3d
from .volumes.cache import cached
from .volumes.folder import load_volume_folder, parse_spacing, parse_window
from .volumes.segfolder import holds_volumes, load_volume_segfolder
from .volumes.video import load_video_folder

FILE_SOURCES = ("segfolder", "volumes", "video")  # held in memory, each item from a file


def memory_splits(
    name: str, path: Path | None, opts: DataOptions, channels: int | None
) -> ReadSplits:
    """The source's splits as `ImageTensors`: its own test (and validation) split where it has
    one, else carved with the fixed seed; channels and size as asked."""
    check_3d_options(name, path, opts)
    train, given_val, test, notes = _read_memory(name, path, opts)
    sets = [(x and to_channels(x, channels)) if channels else x for x in (train, given_val, test)]
    if opts.image_size and name != "video":  # clips: sized as they were read
        sets = [x and ds.resize(x, opts.image_size) for x in sets]
    train, given_val, test = sets
    if given_val is not None:
        notes.append(f"validation split: the file's own, {len(given_val)} images")
    train, val, test = carve(train, given_val, test, opts, notes, str(path or name), name)
    size = train.images.shape[-1]
    spacing = parse_spacing(opts.spacing)
    reading = reading_3d(name, train.images, opts.window, spacing, notes, opts.volume_index)
    return ReadSplits(
        name=name,
        train=train,
        val=val,
        test=test,
        classes=train.classes,
        channels=train.channels,
        input_size=size,
        crop_padding=crop_padding(opts.crop_padding, size),
        hflip=opts.hflip
        if opts.hflip is not None
        else name in ("cifar10", "cifar100", "fashion-mnist", "shapes", "shapes3d", "video"),
        notes=notes,
        reading=reading,
        root=path if name in FILE_SOURCES else None,
    )


def _read_memory(name: str, path: Path | None, opts: DataOptions) -> tuple:
    """(train, the source's own validation set or None, its own test set or None, notes) for a
    source read whole into memory."""
    notes: list[str] = []
    if name in ("volumes", "video") or (
        name == "segfolder" and holds_volumes(path, opts.mask_pattern)
    ):
        (train, notes), test = read_3d_folder(name, path, opts), None
    elif name == "segfolder":
        train, notes, test = *_read_segfolder(path, opts), None
    elif name == "npz":
        (train, notes), test = load_npz(path), None
    else:
        train, test = _memory_sets(name, path, opts)
    if isinstance(train, dict):  # an .npz's own splits
        return train["train"], train.get("val"), train.get("test"), notes
    return train, None, test, notes


def _read_segfolder(path: Path | None, opts: DataOptions) -> tuple:
    """A 2D segmentation folder's pairs and notes, with what it chose for the user."""
    size = opts.image_size or 128
    train, notes = load_segfolder(
        path or Path("data"), size, None, opts.mask_colours, opts.mask_pattern, opts.strict
    )
    if not opts.image_size:
        notes.append("input size 128 px, the segmentation-folder default (--image-size)")
    if opts.hflip is None:
        notes.append(
            "random horizontal flips: off (scans have a left and a right); --hflip flips "
            "images and their masks together"
        )
    return train, notes


def _memory_sets(name: str, path: Path | None, opts: DataOptions):
    root = path or Path("data")
    if name == "digits":
        return ds.load_digits(), None
    if name == "shapes":
        return _generated(ds.make_shapes, opts.synthetic_samples, opts.image_size or 64)
    if name == "synthetic":
        return _generated(
            ds.make_synthetic, opts.synthetic_samples, opts.image_size or 32, opts.synthetic_classes
        )
    if name == "shapes3d":
        return _generated(make_shapes3d, max(opts.synthetic_samples // 4, 8), opts.image_size or 32)
    if name.startswith("cifar"):
        return ds.load_cifar(name, root, opts.download)
    return ds.load_mnist(name, root, opts.download)


def _generated(make, total: int, size: int, *extra):
    """(train, test) of a generated set: `total` training samples and a quarter more for test,
    from the fixed split seed."""
    full = make(total + total // 4, size, *extra, seed=SPLIT_SEED)
    return full.subset(torch.arange(total)), full.subset(torch.arange(total, len(full)))


def read_3d_folder(name: str, path: Path, opts: DataOptions) -> tuple[ImageTensors, list]:
    """A folder of volumes, clips, or volumes with masks, decoded once and kept in the disk
    cache for the next run with the same files and options (volumes/cache.py)."""
    window, spacing = parse_window(opts.window), parse_spacing(opts.spacing)
    if name == "video":
        load, args = load_video_folder, (opts.image_size, opts.frames, opts.strict)
    elif name == "volumes":
        load = load_volume_folder
        args = (opts.image_size, window, spacing, opts.strict, opts.volume_index)
    else:
        load = load_volume_segfolder
        args = (
            opts.image_size,
            window,
            spacing,
            opts.mask_pattern,
            opts.volume_index,
            opts.strict,
        )
    # the cache key is the reader's own arguments, so that no option is left out of it
    return cached(path, (name, *args), opts.cache, partial(load, path, *args))


def check_3d_options(name: str, path: Path | None, opts: DataOptions) -> None:
    """--window, --spacing and --volume-index read volumes, --frames clips: given for other
    data, refused."""
    volumes = name == "volumes" or (name == "segfolder" and holds_volumes(path, opts.mask_pattern))
    checks = (
        ("--window", opts.window, volumes),
        ("--spacing", opts.spacing, volumes),
        ("--volume-index", opts.volume_index, volumes),
        ("--frames", opts.frames, name == "video"),
    )
    for flag, value, applies in checks:
        if value is not None and not applies:
            what = "video:DIR" if flag == "--frames" else "volumes:DIR and segfolder:DIR of volumes"
            raise UsageError(f"{flag} applies to {what}, not to --data {opts.data}")
