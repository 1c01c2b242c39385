"""Folders of images, one sub-folder per class, decoded by torchvision in worker processes.

Workers return uint8 tensors of one size; normalization, crops for small images and
MixUp/CutMix then run on the training device like the in-memory path. Each sample's random
transform is seeded by (seed, epoch, index), so it does not depend on the number of workers
or processes, nor on where a run was resumed. Unreadable images are skipped and counted, or
fail the run with `strict`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError
from .augment import CropFlip, MixUpCutMix, mix_seed, normalize
from .decode import IMAGE_EXTENSIONS, decode
from .device_decode import DeviceDecoder, read_bytes
from .loaders import ONE_PROCESS, Batch, GlobalBatches, Shard, TrainBatches

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
        files += found
        labels += [label] * len(found)
    return files, torch.tensor(labels, dtype=torch.long), classes


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


class _Unreadables:
    """Counts each unreadable file once, however many epochs meet it; with a device decoder,
    turns raw batches into images on the device."""

    def __init__(self, dataset: ImageFolderDataset, decoder: DeviceDecoder | None = None):
        self.dataset, self.indices, self.decoder = dataset, set(), decoder
        dataset.raw = decoder is not None

    def _images(self, x, y: torch.Tensor, bad: list[int], epoch: int):
        """uint8 images and labels on the device; unreadable files recorded."""
        self.indices.update(bad)
        if self.decoder is None or not isinstance(x, list):
            return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        images, kept = self.decoder([b for b, _ in x], [i for _, i in x], epoch)
        self.indices.update(x[p][1] for p in range(len(x)) if p not in set(kept))
        return images, y[kept].to(self.device, non_blocking=True)

    @property
    def skipped(self) -> int:
        return len(self.indices)

    def files(self) -> list[str]:
        return [str(self.dataset.files[i]) for i in sorted(self.indices)]


@contextlib.contextmanager
def _worker_errors() -> Iterator[None]:
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


class _StepSampler:
    """Yields this process's (epoch, index) lists, step by step, from `start_step` on."""

    def __init__(self, batches: GlobalBatches):
        self.batches, self.epoch, self.start = batches, 0, 0
        per_rank = batches.batch_size // batches.shard.world_size
        self.mine = slice(batches.shard.rank * per_rank, (batches.shard.rank + 1) * per_rank)

    def __len__(self) -> int:
        return len(self.batches) - self.start

    def __iter__(self):
        for _, index in self.batches.epoch(self.epoch, self.start):
            yield [(self.epoch, int(i)) for i in index[self.mine]]


class FolderTrainLoader(_Unreadables, TrainBatches):
    """Training micro-batches from an ImageFolder, finished on the training device."""

    def __init__(
        self,
        dataset: ImageFolderDataset,
        batches: GlobalBatches,
        device: torch.device,
        mean: torch.Tensor,
        std: torch.Tensor,
        augment: CropFlip | None,
        mix: MixUpCutMix | None,
        num_workers: int,
        channels_last: bool = False,
        decoder: DeviceDecoder | None = None,
    ):
        _Unreadables.__init__(self, dataset, decoder)
        TrainBatches.__init__(self, batches, device, mean, std, augment, mix, channels_last)
        self.sampler = _StepSampler(batches)
        self.loader = DataLoader(
            dataset,
            batch_sampler=self.sampler,
            num_workers=num_workers,
            collate_fn=collate,
            pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
            prefetch_factor=4 if num_workers > 0 else None,
            timeout=LOADER_TIMEOUT if num_workers > 0 else 0,
        )

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[list[Batch]]:
        self.sampler.epoch, self.sampler.start = epoch, start_step
        with _worker_errors():
            yield from self._epoch(epoch, start_step)

    def _epoch(self, epoch: int, start_step: int) -> Iterator[list[Batch]]:
        gen = torch.Generator(device=self.device)
        host_gen = torch.Generator()
        accum = self.batches.shard.accum
        for step, (x, y, bad) in enumerate(self.loader, start=start_step):
            x, y = self._images(x, y, bad, epoch)
            if len(y) < accum:
                continue
            gen.manual_seed(mix_seed(self.batches.seed, epoch, step, 1))
            host_gen.manual_seed(mix_seed(self.batches.seed, epoch, step, 2))
            if self.augment:  # drawn for the global batch, as in memory; this process's share
                params = self.augment.sample(self.batches.batch_size, gen)
                mine = {k: v[self.sampler.mine][: len(x)] for k, v in params.items()}
                x = self.augment.apply(x, mine)
            x = normalize(x, self.mean, self.std)
            mix_params = self.mix.sample(host_gen) if self.mix else None
            micro = []
            for xs, ys in zip(x.chunk(accum), y.chunk(accum), strict=True):
                if self.mix:
                    xs, ys = self.mix.apply(xs, ys, mix_params)
                micro.append((xs.contiguous(memory_format=self.memory_format), ys))
            yield micro


class FolderEvalLoader(_Unreadables):
    """Evaluation batches from an ImageFolder; process r of w takes samples r, r+w, ..."""

    def __init__(
        self,
        dataset: ImageFolderDataset,
        batch_size: int,
        device: torch.device,
        mean: torch.Tensor,
        std: torch.Tensor,
        num_workers: int,
        shard: Shard = ONE_PROCESS,
        channels_last: bool = False,
        decoder: DeviceDecoder | None = None,
    ):
        super().__init__(dataset, decoder)
        index = list(range(shard.rank, len(dataset), shard.world_size))
        batches = [index[i : i + batch_size] for i in range(0, len(index), batch_size)]
        self.loader = DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=num_workers,
            collate_fn=collate,
            pin_memory=device.type == "cuda",
            timeout=LOADER_TIMEOUT if num_workers > 0 else 0,
        )
        self.device, self.mean, self.std = device, mean.to(device), std.to(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        with _worker_errors():
            for x, y, bad in self.loader:
                x, y = self._images(x, y, bad, epoch=0)
                if len(y) == 0:
                    continue
                x = normalize(x, self.mean, self.std)
                yield x.contiguous(memory_format=self.memory_format), y
