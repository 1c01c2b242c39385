"""From a `--data` spec to train / validation / test splits and their loaders.

Specs: `digits` (bundled), `synthetic`, `cifar10[:PATH]`, `cifar100[:PATH]`, `mnist[:PATH]`,
`fashion-mnist[:PATH]`, `imagefolder:PATH`. Model selection uses a validation split carved
from the training data (with a fixed seed, the same for every run); the test split is only
for the final, single evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError, UsageError, unknown_name
from ..options import DATASETS, DataOptions, split_spec
from . import datasets as ds
from . import imagefolder as imf
from .augment import CropFlip, MixUpCutMix
from .decode import detect_channels
from .device_decode import DeviceDecoder
from .loaders import (
    ONE_PROCESS,
    GlobalBatches,
    InMemoryEvalLoader,
    InMemoryTrainLoader,
    Shard,
    channel_stats,
    to_channels,
)
from .provenance import fingerprint
from .splits import SPLIT_SEED, Splits, carve_val, strata, stratified_split

SEGMENTATION = ("shapes", "segfolder")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def parse_spec(spec: str) -> tuple[str, Path | None]:
    name, path = split_spec(spec)
    if name not in DATASETS:
        raise unknown_name("dataset", name, DATASETS)
    if name in ("imagefolder", "segfolder") and not path:
        raise UsageError(f"{name} needs a path: --data {name}:PATH")
    return name, Path(path).expanduser() if path else None


def load_splits(opts: DataOptions, seed: int, channels: int | None = None) -> Splits:
    """Load the data named by `opts.data` and carve validation (and test) splits."""
    name, path = parse_spec(opts.data)
    if name == "imagefolder":
        splits = _folder_splits(path, opts, seed, channels)
    else:
        splits = _memory_splits(name, path, opts, channels)
    if len(splits.classes) < 2:
        raise DataError(
            f"{opts.data} has only one class ({splits.classes[0]}); a classifier needs two or more"
        )
    splits.fingerprint = fingerprint(splits)
    return splits


def _memory_splits(name: str, path: Path | None, opts: DataOptions, channels: int | None) -> Splits:
    train, test = _memory_sets(name, path, opts)
    if channels is not None:
        train, test = to_channels(train, channels), test and to_channels(test, channels)
    if opts.image_size:
        train, test = ds.resize(train, opts.image_size), test and ds.resize(test, opts.image_size)
    notes = []
    if test is None:
        kept, held = stratified_split(strata(train), opts.test_split)
        train, test = train.subset(kept), train.subset(held)
        notes.append(f"test split: {len(test)} images held out from {name} (fixed seed)")
    train, val = carve_val(train, opts.val_split, notes)
    mean, std = channel_stats(train.images)
    size = train.images.shape[-1]
    return Splits(
        name=name,
        train=train,
        val=val,
        test=test,
        classes=train.classes,
        channels=train.channels,
        input_size=size,
        mean=mean.tolist(),
        std=std.tolist(),
        crop_padding=opts.crop_padding if opts.crop_padding is not None else max(size // 8, 1),
        hflip=opts.hflip
        if opts.hflip is not None
        else name in ("cifar10", "cifar100", "fashion-mnist", "shapes"),
        notes=notes,
    )


def _memory_sets(name: str, path: Path | None, opts: DataOptions):
    root = path or Path("data")
    if name == "digits":
        return ds.load_digits(), None
    if name == "shapes":
        total = opts.synthetic_samples
        full = ds.make_shapes(total + total // 4, opts.image_size or 64, seed=SPLIT_SEED)
        return full.subset(torch.arange(total)), full.subset(torch.arange(total, len(full)))
    if name == "segfolder":
        return ds.load_segfolder(root, opts.image_size or 128, None), None
    if name == "synthetic":
        size = opts.image_size or 32
        total = opts.synthetic_samples
        full = ds.make_synthetic(total + total // 4, size, opts.synthetic_classes, seed=SPLIT_SEED)
        return full.subset(torch.arange(total)), full.subset(torch.arange(total, len(full)))
    if name.startswith("cifar"):
        return ds.load_cifar(name, root, opts.download)
    return ds.load_mnist(name, root, opts.download)


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
    files, labels, found = imf.scan(root)
    if classes is not None:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DataError(f"{root} has classes the training set lacks: {', '.join(unknown[:5])}")
        remap = torch.tensor([classes.index(c) for c in found])
        labels, found = remap[labels], classes
    return _FolderSplit(files, labels, found)


def _folder_splits(root: Path, opts: DataOptions, seed: int, channels: int | None) -> Splits:
    notes = []
    if (root / "train").is_dir():
        train = _scan_split(root / "train")
        val = _scan_split(root / "val", train.classes) if (root / "val").is_dir() else None
        test = _scan_split(root / "test", train.classes) if (root / "test").is_dir() else None
        if test is None and val is not None:
            test, val = val, None
            notes.append("val/ serves as the test set; validation is carved from train/")
    else:
        train, val, test = _scan_split(root), None, None
    if test is None:
        kept, held = stratified_split(train.labels, opts.test_split)
        train, test = train.subset(kept), train.subset(held)
        notes.append(f"test split: {len(test.files)} images held out from {root} (fixed seed)")
    if val is None:
        train, val = carve_val(train, opts.val_split, notes)
    channels = channels or detect_channels(train.files)
    size = opts.image_size or 224
    crop = opts.train_crop or ("random-resized" if size >= 128 else "resize")
    if crop not in ("random-resized", "resize"):
        raise UsageError(f"--train-crop must be 'random-resized' or 'resize', got {crop!r}")
    resize = opts.eval_resize or (round(size / 0.875) if crop == "random-resized" else None)

    def dataset(split, transform):
        if split is None:
            return None
        return imf.ImageFolderDataset(
            split.files, split.labels, transform, channels, seed, opts.strict
        )

    gray = channels == 1
    return Splits(
        name=f"imagefolder:{root}",
        train=dataset(train, imf.train_transform(size, crop, hflip=opts.hflip is not False)),
        val=dataset(val, imf.eval_transform(size, resize)),
        test=dataset(test, imf.eval_transform(size, resize)),
        classes=train.classes,
        channels=channels,
        input_size=size,
        mean=[sum(IMAGENET_MEAN) / 3] if gray else list(IMAGENET_MEAN),
        std=[sum(IMAGENET_STD) / 3] if gray else list(IMAGENET_STD),
        crop_padding=(opts.crop_padding or max(size // 8, 1)) if crop == "resize" else 0,
        hflip=(opts.hflip is not False) if crop == "resize" else False,
        resize_size=resize,
        in_memory=False,
        notes=notes,
        decode={
            "size": size,
            "channels": channels,
            "seed": seed,
            "rrc": crop == "random-resized",
            "resize": resize,
            "hflip": opts.hflip is not False,
        }
        if opts.gpu_decode
        else None,
    )


@dataclass
class Loaders:
    train: InMemoryTrainLoader | imf.FolderTrainLoader
    val: InMemoryEvalLoader | imf.FolderEvalLoader | None
    test: InMemoryEvalLoader | imf.FolderEvalLoader | None


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
) -> Loaders:
    """Loaders for the three splits; training batches are global, sharded by `shard`."""
    mean, std = torch.tensor(splits.mean), torch.tensor(splits.std)
    augment = CropFlip(splits.crop_padding, splits.hflip)
    if not augment.padding and not augment.hflip:
        augment = None
    batches = GlobalBatches(len(splits.train), batch_size, shard, seed)
    common = {"device": device, "mean": mean, "std": std, "channels_last": channels_last}
    if splits.in_memory:
        train = InMemoryTrainLoader(splits.train, batches, augment=augment, mix=mix, **common)
    else:
        workers = default_workers() if num_workers is None else num_workers
        train = imf.FolderTrainLoader(
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

    return Loaders(train, evaluation("val"), evaluation("test"))


def eval_loader(
    splits: Splits,
    split: str,
    batch_size: int,
    device: torch.device,
    shard: Shard = ONE_PROCESS,
    channels_last: bool = False,
    num_workers: int | None = None,
) -> InMemoryEvalLoader | imf.FolderEvalLoader | None:
    """Batches of one split ("train", "val" or "test") in order, normalized; None if absent."""
    data = getattr(splits, split)
    if data is None:
        return None
    mean, std = torch.tensor(splits.mean), torch.tensor(splits.std)
    common = {"device": device, "mean": mean, "std": std, "channels_last": channels_last}
    if splits.in_memory:
        return InMemoryEvalLoader(data, batch_size, shard=shard, **common)
    workers = default_workers() if num_workers is None else num_workers
    decoder = _decoder(splits, device, train=False)
    return imf.FolderEvalLoader(
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


def default_workers() -> int:
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(min((cpus or 1) - 1, 8), 0)
