"""Batches for training and evaluation, sharded across processes and micro-batches.

`GlobalBatches` fixes which samples make up each global batch from (seed, epoch) alone; a
process takes its contiguous share and splits it into `accum` micro-batches. Two processes
therefore see exactly what one process with two accumulation steps sees, and a run resumed
at (epoch, step), with any number of processes, continues the same sequence. This holds for
the balanced sampler too: its draws come from the same (seed, epoch) generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch

from ..errors import UsageError
from .augment import CropFlip, MixUpCutMix, in_layout, match_channels, mix_seed, normalize
from .colours import IGNORE_INDEX
from .datasets import ImageTensors

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Shard:
    """This process's place: rank of world_size, and micro-batches per optimizer step."""

    rank: int = 0
    world_size: int = 1
    accum: int = 1


ONE_PROCESS = Shard()


class GlobalBatches:
    """Global batches of sample indices, identical for every world size and resume point.

    An epoch is a seeded permutation of the n samples; with `weights`, n draws with
    replacement, sample i with probability weights[i] / sum (as WeightedRandomSampler)."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        shard: Shard,
        seed: int,
        drop_last: bool = True,
        weights: torch.Tensor | None = None,
    ):
        parts = shard.world_size * shard.accum
        if batch_size % parts:
            raise UsageError(
                f"batch size {batch_size} must divide evenly over {shard.world_size} processes "
                f"x {shard.accum} accumulation steps; use a multiple of {parts}"
            )
        if drop_last and n < batch_size:
            raise UsageError(
                f"the training set has {n} samples, fewer than one batch of {batch_size}; "
                "lower the batch size (--batch-size; batch_size= in Python)"
            )
        self.n, self.batch_size, self.shard, self.seed = n, batch_size, shard, seed
        self.steps = n // batch_size if drop_last else -(-n // batch_size)
        self.weights = None if weights is None else weights.double()

    def __len__(self) -> int:
        return self.steps

    def order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        if self.weights is None:
            return torch.randperm(self.n, generator=g)
        return torch.multinomial(self.weights, self.n, replacement=True, generator=g)

    def micro_slices(self) -> list[slice]:
        """Positions, within a global batch, of this process's micro-batches."""
        per_rank = self.batch_size // self.shard.world_size
        per_micro = per_rank // self.shard.accum
        start = self.shard.rank * per_rank
        return [
            slice(start + k * per_micro, start + (k + 1) * per_micro)
            for k in range(self.shard.accum)
        ]

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
        order = self.order(epoch)
        for step in range(start_step, self.steps):
            yield step, order[step * self.batch_size : (step + 1) * self.batch_size]


def balanced_weights(labels: torch.Tensor) -> torch.Tensor:
    """Each sample's sampling weight for --sampler balanced: 1 / the count of its class, so
    every class present is drawn equally often."""
    if labels.ndim == 2:
        raise UsageError(
            "--sampler balanced needs one class per image; for multi-label data each label's "
            "positives are already weighted by its negatives / positives (use --sampler uniform)"
        )
    if labels.ndim != 1:
        raise UsageError(
            "--sampler balanced draws whole images; segmentation has a class per pixel "
            "(use --class-weights balanced)"
        )
    return 1.0 / torch.bincount(labels)[labels].double()


class TrainLoader(Protocol):
    """What the training loop asks of a training loader, whether its images live in memory
    (`InMemoryTrainLoader`) or stream from files (`stream.FolderTrainLoader`)."""

    batches: GlobalBatches

    def __len__(self) -> int:
        """Optimizer steps per epoch."""

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[list[Batch]]:
        """Each step's micro-batches, on the device and finished, from `start_step` on (a
        resumed run starts mid-epoch)."""


class EvalLoader(Protocol):
    """What evaluation asks of a validation or test loader: normalized batches on the device."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Batch]: ...


class TrainBatches:
    """What every training loader holds: its global batches and the on-device finishing steps
    (crop and flip, normalize, mix, memory layout)."""

    def __init__(
        self,
        batches: GlobalBatches,
        device: torch.device,
        mean: torch.Tensor,
        std: torch.Tensor,
        augment: CropFlip | None,
        mix: MixUpCutMix | None = None,
        channels_last: bool = False,
    ):
        self.batches, self.device = batches, device
        self.mean, self.std = mean.to(device), std.to(device)
        self.augment, self.mix = augment, mix if mix is not None and mix.active else None
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        return len(self.batches)


class InMemoryTrainLoader(TrainBatches):
    """Training batches from uint8 tensors that live on the training device.

    Per step: gather the batch, crop and flip it, normalize it, mix it: all as tensor ops on
    the device, with random parameters from a generator seeded by (seed, epoch, step).
    """

    def __init__(
        self,
        data: ImageTensors,
        batches: GlobalBatches,
        device: torch.device,
        mean: torch.Tensor,
        std: torch.Tensor,
        augment: CropFlip | None,
        mix: MixUpCutMix | None = None,
        channels_last: bool = False,
    ):
        super().__init__(batches, device, mean, std, augment, mix, channels_last)
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[list[Batch]]:
        seed = self.batches.seed
        gen = torch.Generator(device=self.device)
        host_gen = torch.Generator()
        slices = self.batches.micro_slices()
        for step, index in self.batches.epoch(epoch, start_step):
            gen.manual_seed(mix_seed(seed, epoch, step, 1))
            host_gen.manual_seed(mix_seed(seed, epoch, step, 2))
            index = index.to(self.device, non_blocking=True)
            params = self.augment.sample(len(index), gen) if self.augment else None
            mix_params = self.mix.sample(host_gen) if self.mix else None
            micro = []
            for part in slices:
                x, y = self.images[index[part]], self.labels[index[part]]
                if self.augment and y.ndim >= 3:  # masks move with their images
                    both = torch.cat(
                        [x, y[:, None].masked_fill(y[:, None] < 0, 255).to(x.dtype)], 1
                    )
                    both = self.augment.apply(
                        both, {k: v[part] for k, v in params.items()}, mask_last=True
                    )
                    x, y = both[:, :-1], both[:, -1].to(y.dtype)
                    y = y.masked_fill(y == 255, IGNORE_INDEX)  # ignored pixels stay ignored
                elif self.augment:
                    x = self.augment.apply(x, {k: v[part] for k, v in params.items()})
                x = normalize(x, self.mean, self.std)
                if self.mix:
                    x, y = self.mix.apply(x, y, mix_params)
                micro.append((in_layout(x, self.memory_format), y))
            yield micro


class InMemoryEvalLoader:
    """Evaluation batches in order; process r of w takes samples r, r+w, r+2w, ..."""

    def __init__(
        self,
        data: ImageTensors,
        batch_size: int,
        device: torch.device,
        mean: torch.Tensor,
        std: torch.Tensor,
        shard: Shard = Shard(),
        channels_last: bool = False,
    ):
        index = torch.arange(shard.rank, len(data), shard.world_size)
        self.images = data.images[index].to(device)
        self.labels = data.labels[index].to(device)
        self.batch_size = batch_size
        self.mean, self.std = mean.to(device), std.to(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        for start in range(0, len(self.labels), self.batch_size):
            x = self.images[start : start + self.batch_size]
            x = in_layout(normalize(x, self.mean, self.std), self.memory_format)
            yield x, self.labels[start : start + self.batch_size]


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    x = images.transpose(0, 1).reshape(images.shape[1], -1)
    mean = torch.zeros(x.shape[0], dtype=torch.float64)
    sq = torch.zeros(x.shape[0], dtype=torch.float64)
    for chunk in x.split(1 << 24, dim=1):
        c = chunk.double() / 255
        mean += c.sum(1)
        sq += (c * c).sum(1)
    count = x.shape[1]
    mean /= count
    std = (sq / count - mean**2).clamp_min(1e-12).sqrt()
    return mean.float(), std.float()


def to_channels(data: ImageTensors, channels: int) -> ImageTensors:
    if data.channels == channels:
        return data
    images = match_channels(data.images, channels).contiguous()
    return ImageTensors(images, data.labels, data.classes, data.files)
