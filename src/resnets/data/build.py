"""From a `--data` spec to train / validation / test splits and their loaders.

Specs: `digits` (bundled), `synthetic`, `cifar10[:PATH]`, `cifar100[:PATH]`, `mnist[:PATH]`,
`fashion-mnist[:PATH]`, `imagefolder:PATH`. Model selection uses a validation split carved
from the training data (with a fixed seed, the same for every run); the test split is only
for the final, single evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import DataError, UsageError, unknown_name
from ..options import DATASETS, SPLITS, DataOptions, split_spec
from . import imagefolder as imf
from .augment import MixUpCutMix
from .cache import decode_once, sample_images
from .device_decode import DeviceDecoder
from .loaders import (
    ONE_PROCESS,
    EvalLoader,
    GlobalBatches,
    InMemoryEvalLoader,
    InMemoryTrainLoader,
    Shard,
    TrainLoader,
    balanced_weights,
    channel_stats,
)
from .memory import memory_splits
from .provenance import fingerprint, read_record, same_data
from .python import PYTHON, PythonData, python_splits
from .sizing import ModelSize
from .splits import ReadSplits, Splits, unit
from .stream import FolderEvalLoader, FolderTrainLoader

SAMPLERS = ("uniform", "balanced")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def parse_spec(spec: str) -> tuple[str, Path | None]:
    name, path = split_spec(spec)
    if name not in DATASETS:
        found = Path(spec).expanduser()
        if found.is_dir():
            raise UsageError(
                f"--data {spec} is a folder: say what it holds, --data "
                f"imagefolder:{spec} (class folders) or segfolder:{spec} "
                "(images with masks)"
            )
        if found.is_file() and found.suffix.lower() == ".csv":
            raise UsageError(f"--data {spec} is a CSV file: use --data csv:{spec}")
        raise unknown_name("dataset", name, DATASETS)
    if name in ("imagefolder", "segfolder", "csv", "npz", "volumes", "video") and not path:
        raise UsageError(f"{name} needs a path: --data {name}:PATH")
    return name, Path(path).expanduser() if path else None


def load_splits(
    opts: DataOptions,
    seed: int,
    channels: int | None = None,
    model: ModelSize | None = None,
    run: Path | None = None,
    decode: tuple[str, ...] = SPLITS,
    objects: PythonData | None = None,
    normalization: tuple[list[float], list[float]] | None = None,
) -> Splits:
    """Load the data named by `opts.data`, carve validation (and test) splits, and settle the
    input size (from `model` and the images), the normalization and how folders are read.

    With `run`, the data must be what that run was made from (see provenance.py). Folder
    splits named in `decode` are decoded once when they fit (see cache.py). `objects`: data
    given as Python objects (python.py); `opts.data` is then "python". `normalization`: the
    (mean, std) to use, a model's own, in place of `opts.normalize`."""
    read = _read(opts, seed, channels, model, objects)
    read.fingerprint = fingerprint(read)
    read.rotate, read.scale = opts.rotate, opts.scale
    if opts.rotate or opts.scale:
        about = "each axis" if read.spatial_dims == 3 and read.name != "video" else "the frame"
        read.notes.append(
            f"training augmentation: rotation up to {opts.rotate:g} degrees about "
            f"{about}, zoom {1 - opts.scale:g}..{1 + opts.scale:g}x"
        )
    if run is not None:
        read = same_data(read, read_record(run), opts.allow_changed_data)
    workers = default_workers(decoding=True) if opts.num_workers is None else opts.num_workers
    if not read.in_memory:
        decode_once(read, opts.cache, decode, workers)
    if normalization is not None:
        read.notes.append("normalization: the weights' own mean and std")
        return Splits.normalized(read, *normalization)
    return Splits.normalized(read, *_normalization(read, opts.normalize or "dataset", workers))


def _read(opts: DataOptions, seed: int, channels, model, objects) -> ReadSplits:
    """The source's splits as read and carved, checked to hold classes that can be learnt."""
    _check_mask_options(opts)
    if objects is not None:
        read = python_splits(objects, opts, channels, model)
    elif opts.data == PYTHON:
        raise UsageError(
            "this run was trained on Python objects; give them again: "
            "resnets.train(data=..., resume=RUN) or evaluate(RUN, data=...)"
        )
    elif (name_path := parse_spec(opts.data))[0] in ("imagefolder", "csv"):
        read = imf.folder_splits(name_path[1], opts, seed, channels, model, kind=name_path[0])
    else:
        read = memory_splits(*name_path, opts, channels)
    if len(read.classes) < 2:
        raise DataError(
            f"{opts.data} has only one class ({read.classes[0]}); a classifier needs two or more"
        )
    _note_empty_classes(read)
    return read


def _note_empty_classes(splits: ReadSplits) -> None:
    """A class with no training image cannot be learnt: said in the notes, by name (classes
    numbered from the labels' range, or given by num_classes, may have none)."""
    labels = splits.train_labels()
    if labels is None or labels.ndim != 1:
        return
    counts = torch.bincount(labels, minlength=len(splits.classes))
    empty = [splits.classes[c] for c in (counts == 0).nonzero().flatten().tolist()]
    if empty:
        splits.notes.append(
            f"warning: no training images of class {', '.join(empty[:5])}"
            f"{', ...' if len(empty) > 5 else ''}: the model cannot learn "
            f"{'it' if len(empty) == 1 else 'them'}; check the labels (or num_classes)"
        )


def _check_mask_options(opts: DataOptions) -> None:
    """--mask-pattern and --mask-colours read segmentation folders: given for other data, they
    would be ignored, so they are refused."""
    for flag, value in (
        ("--mask-pattern", opts.mask_pattern),
        ("--mask-colours", opts.mask_colours),
    ):
        if value is not None and split_spec(opts.data)[0] != "segfolder":
            raise UsageError(f"{flag} applies to --data segfolder:DIR, not to --data {opts.data}")


def _normalization(read: ReadSplits, how: str, workers: int) -> tuple[list[float], list[float]]:
    """Mean and std: ImageNet's, or measured on the training split (all of it when it is in
    memory, an even sample of 1,000 images when it streams)."""
    if how == "imagenet":
        grey = read.channels == 1
        read.notes.append("normalization: ImageNet's mean and std")
        if grey:
            return [sum(IMAGENET_MEAN) / 3], [sum(IMAGENET_STD) / 3]
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    train = read.tensors("train")
    if train is not None:
        mean, std = channel_stats(train.images)
        where = f"all {len(train)} training {unit(train, read.name)}"
    else:
        sample = sample_images(read.train, read.input_size, workers)
        mean, std = channel_stats(sample)
        where = f"{len(sample)} of {len(read.train)} training images (an even sample)"
    shown = ", ".join(f"{m:.3f}/{s:.3f}" for m, s in zip(mean.tolist(), std.tolist(), strict=True))
    read.notes.append(f"normalization: the data's own mean/std ({shown}), from {where}")
    return mean.tolist(), std.tolist()


@dataclass
class Loaders:
    train: TrainLoader
    val: EvalLoader | None
    test: EvalLoader | None
    notes: list[str] = field(default_factory=list)  # what building them decided (the sampler)


def make_loaders(
    splits: Splits,
    *,
    batch_size: int,
    shard: Shard,
    device: torch.device,
    seed: int,
    mix: MixUpCutMix | None = None,
    channels_last: bool = False,
    num_workers: int | None = None,
    sampler: str = "uniform",
) -> Loaders:
    """Loaders for the three splits; training batches are global, sharded by `shard`.
    `sampler`: "uniform" (each image once per epoch) or "balanced" (see `train_batches`)."""
    mean, std = torch.tensor(splits.mean), torch.tensor(splits.std)
    augment = splits.train_augment()
    decoded = splits.tensors("train")
    notes: list[str] = []
    batches = train_batches(splits, batch_size, shard, seed, sampler, notes)
    common = {"device": device, "mean": mean, "std": std, "channels_last": channels_last}
    if decoded is not None:
        train = InMemoryTrainLoader(decoded, batches, augment=augment, mix=mix, **common)
    else:
        workers = default_workers() if num_workers is None else num_workers
        train = FolderTrainLoader(
            splits.train,
            batches,
            augment=augment,
            mix=mix,
            num_workers=workers,
            decoder=_decoder(splits, device, train=True),
            **common,
        )
    eval_batch = max(batch_size // shard.world_size, 1)
    eval_shard = Shard(shard.rank, shard.world_size)

    def evaluation(split: str):
        return eval_loader(
            splits, split, eval_batch, device, eval_shard, channels_last, num_workers
        )

    return Loaders(train, evaluation("val"), evaluation("test"), notes)


def train_batches(
    splits: Splits, batch_size: int, shard: Shard, seed: int, sampler: str, notes: list[str]
) -> GlobalBatches:
    """The training split's global batches. "balanced": each epoch draws as many images as the
    split holds, with replacement, each with probability 1 / its class's count (noted)."""
    if sampler not in SAMPLERS:
        raise unknown_name("sampler", sampler, SAMPLERS)
    data = splits.tensors("train") or splits.train  # decoded once: unreadable files left out
    weights = None
    if sampler == "balanced":
        weights = balanced_weights(data.labels)
        counts = torch.bincount(data.labels)
        counts = counts[counts > 0]
        notes.append(
            f"sampler: balanced: each epoch draws {len(data)} training images with replacement, "
            f"every class equally likely (classes of {int(counts.min())} to "
            f"{int(counts.max())} images), so images of rare classes repeat"
        )
    return GlobalBatches(len(data), batch_size, shard, seed, weights=weights)


def eval_loader(
    splits: Splits,
    split: str,
    batch_size: int,
    device: torch.device,
    shard: Shard = ONE_PROCESS,
    channels_last: bool = False,
    num_workers: int | None = None,
) -> InMemoryEvalLoader | FolderEvalLoader | None:
    """Batches of one split ("train", "val" or "test") in order, normalized; None if absent."""
    data = getattr(splits, split)
    if data is None:
        return None
    mean, std = torch.tensor(splits.mean), torch.tensor(splits.std)
    common = {"device": device, "mean": mean, "std": std, "channels_last": channels_last}
    decoded = splits.tensors(split)
    if decoded is not None:
        return InMemoryEvalLoader(decoded, batch_size, shard=shard, **common)
    workers = default_workers() if num_workers is None else num_workers
    decoder = _decoder(splits, device, train=False)
    return FolderEvalLoader(
        data, batch_size, num_workers=workers, shard=shard, decoder=decoder, **common
    )


def _decoder(splits: Splits, device: torch.device, train: bool) -> DeviceDecoder | None:
    if splits.decode is None:
        return None
    d = splits.decode
    return DeviceDecoder(
        device,
        d["size"],
        d["channels"],
        d["seed"],
        train=train and d["rrc"],
        resize=None if train else d["resize"],
        hflip=d["hflip"],
    )


def default_workers(decoding: bool = False) -> int:
    """Loader processes: one core is left to training, except to decode before training."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    return min(cpus, 8) if decoding and cpus > 1 else max(min(cpus - 1, 8), 0)
