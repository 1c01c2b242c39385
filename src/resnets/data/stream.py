"""Folder images decoded every epoch, in worker processes: the path for folders too large to
decode once (see cache.py) and for random-resized crops, drawn from each full image.

Workers return uint8 tensors of one size; normalization, crops for small images and
MixUp/CutMix then run on the training device like the in-memory path. Each sample's random
transform is seeded by (seed, epoch, index), so it does not depend on the number of workers
or processes, nor on where a run was resumed. Unreadable images are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from ..errors import DataError
from .augment import CropFlip, MixUpCutMix, mix_seed, normalize
from .device_decode import DeviceDecoder
from .imagefolder import LOADER_TIMEOUT, ImageFolderDataset, collate, worker_errors
from .loaders import ONE_PROCESS, Batch, GlobalBatches, Shard, TrainBatches


class Unreadable:
    """The files of a streamed split that could not be decoded, each counted once however many
    epochs meet it; with a device decoder, raw batches become images on the device here."""

    def __init__(
        self, dataset: ImageFolderDataset, device: torch.device, decoder: DeviceDecoder | None
    ):
        self.dataset, self.device, self.decoder, self.indices = dataset, device, decoder, set()
        dataset.raw = decoder is not None

    def images(self, x, y: torch.Tensor, bad: list[int], epoch: int):
        """uint8 images and labels on the device; unreadable files recorded."""
        self.indices.update(bad)
        if self.decoder is None or not isinstance(x, list):
            return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        images, kept = self.decoder([b for b, _ in x], [i for _, i in x], epoch)
        self.indices.update(x[p][1] for p in range(len(x)) if p not in set(kept))
        return images, y[kept].to(self.device, non_blocking=True)

    def files(self) -> list[str]:
        return [str(self.dataset.files[i]) for i in sorted(self.indices)]


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


class FolderTrainLoader(TrainBatches):
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
        super().__init__(batches, device, mean, std, augment, mix, channels_last)
        self.dataset, self.unreadable = dataset, Unreadable(dataset, device, decoder)
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

    @property
    def skipped(self) -> int:
        """Unreadable files met so far, each once."""
        return len(self.unreadable.indices)

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[list[Batch]]:
        self.sampler.epoch, self.sampler.start = epoch, start_step
        with worker_errors():
            yield from self._epoch(epoch, start_step)
        self._check_classes()

    def _check_classes(self) -> None:
        """Refuse to go on once every training file of a class has failed to decode (their
        headers opened, so the scan let them through): that class would train on nothing."""
        labels = self.dataset.labels
        if labels.ndim != 1 or not self.unreadable.indices:
            return
        bad = torch.zeros(len(labels), dtype=torch.bool)
        bad[sorted(self.unreadable.indices)] = True
        for c in labels.unique().tolist():
            if bad[labels == c].all():
                first = self.dataset.files[int((labels == c).nonzero()[0])]
                raise DataError(
                    f"none of the {int((labels == c).sum())} training images of class #{c} "
                    f"could be decoded (e.g. {first}); replace them or remove the class"
                )

    def _epoch(self, epoch: int, start_step: int) -> Iterator[list[Batch]]:
        gen = torch.Generator(device=self.device)
        host_gen = torch.Generator()
        accum = self.batches.shard.accum
        for step, (x, y, bad) in enumerate(self.loader, start=start_step):
            x, y = self.unreadable.images(x, y, bad, epoch)
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


class FolderEvalLoader:
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
        self.unreadable = Unreadable(dataset, device, decoder)
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

    @property
    def skipped(self) -> int:
        """Unreadable files met so far, each once."""
        return len(self.unreadable.indices)

    def __iter__(self) -> Iterator[Batch]:
        with worker_errors():
            for x, y, bad in self.loader:
                x, y = self.unreadable.images(x, y, bad, epoch=0)
                if len(y) == 0:
                    continue
                x = normalize(x, self.mean, self.std)
                yield x.contiguous(memory_format=self.memory_format), y
