"""Augmentation of whole batches on the training device (GPU when there is one).

Random parameters are drawn for the whole global batch from a generator seeded by
(seed, epoch, step), then sliced per process and micro-batch. So the images a sample sees do
not depend on the number of processes, on gradient accumulation, or on a resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from several integers (seed, epoch, step)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (p + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2))) & (2**63 - 1)
    return h


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [B, C, H, W] (or [B, C, D, H, W]) -> float, scaled to [0, 1] and standardized
    per channel."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x.float() / 255 - mean.view(shape)) / std.view(shape)


def in_layout(x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """x in `memory_format` where it applies (channels_last is for 4D batches; volumes stay
    contiguous)."""
    if x.ndim != 4:
        return x.contiguous()
    return x.contiguous(memory_format=memory_format)


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey to RGB by repetition, RGB to grey by ITU-R 601 luma."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, *x.shape[2:])
    if channels == 1 and x.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, *[1] * (x.ndim - 2))
        return (x.float() * w).sum(1, keepdim=True).round().to(x.dtype)
    raise ValueError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")


@dataclass(frozen=True)
class CropFlip:
    """Zero-pad by `padding`, take a random crop of the original size, flip half horizontally.
    Volumes (`dims` 3) are also shifted in depth, by up to `depth_padding` (default
    `padding`); the flip is left-right (the last axis). `rotate` (degrees) and `scale` (a
    fraction) add a random rotation and zoom about the centre, up to those bounds: about all
    three axes for volumes, within the frame for images and clips (`video`)."""

    padding: int
    hflip: bool
    dims: int = 2
    depth_padding: int | None = None
    rotate: float = 0.0
    scale: float = 0.0
    video: bool = False

    @property
    def active(self) -> bool:
        return bool(self.padding or self.depth_padding or self.hflip or self.rotate or self.scale)

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        dev = generator.device
        span = 2 * self.padding + 1
        drawn = {
            "dy": torch.randint(0, span, (n,), generator=generator, device=dev),
            "dx": torch.randint(0, span, (n,), generator=generator, device=dev),
            "flip": torch.rand(n, generator=generator, device=dev) < 0.5,
        }
        if self.dims == 3:  # drawn after, so that 2D draws stay as they were
            depth = 2 * self._depth_padding + 1
            drawn["dz"] = torch.randint(0, depth, (n,), generator=generator, device=dev)
        if self.rotate or self.scale:
            axes = 3 if self.dims == 3 and not self.video else 1
            u = torch.rand(n, axes + 1, generator=generator, device=dev) * 2 - 1
            drawn["angles"] = u[:, :axes] * math.radians(self.rotate)
            drawn["zoom"] = 1 + u[:, axes] * self.scale
        return drawn

    @property
    def _depth_padding(self) -> int:
        return self.padding if self.depth_padding is None else self.depth_padding

    def apply(
        self, x: torch.Tensor, p: dict[str, torch.Tensor], mask_last: bool = False
    ) -> torch.Tensor:
        """The drawn crop, rotation and flip of `x` (uint8 kept uint8); with `mask_last`, the
        last channel holds labels and is resampled by nearest neighbour."""
        if self.padding or (x.ndim == 5 and self._depth_padding):
            pads = [self._depth_padding, self.padding, self.padding][5 - x.ndim :]
            shifts = [p["dz"], p["dy"], p["dx"]] if x.ndim == 5 else [p["dy"], p["dx"]]
            x = _crop(x, pads, shifts)
        if "angles" in p:
            x = _turn(x, p["angles"], p["zoom"], mask_last)
        if self.hflip:
            x = torch.where(p["flip"].view(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)
        return x


def _turn(x: torch.Tensor, angles: torch.Tensor, zoom: torch.Tensor, mask_last: bool):
    """Each sample rotated by its `angles` and zoomed by `zoom` about its centre (bilinear;
    labels nearest); what comes in from outside is zero (labels: 255, ignored)."""
    rotation = _rotation(angles)
    if x.ndim == 5 and rotation.shape[-1] == 2:  # a clip: turned within each frame
        rotation = F.pad(rotation, (0, 1, 0, 1))
        rotation[:, 2, 2] = 1  # affine_grid's axes are (x, y, z): depth is the last
    shift = rotation.new_zeros(len(x), rotation.shape[1], 1)
    grid = F.affine_grid(
        torch.cat([rotation / zoom.view(-1, 1, 1), shift], 2), list(x.shape), align_corners=False
    )
    images = x[:, :-1] if mask_last else x
    out = F.grid_sample(images.float(), grid, mode="bilinear", align_corners=False)
    out = out.round_().clamp_(0, 255).to(x.dtype)
    if mask_last:
        labels = F.grid_sample(x[:, -1:].float() + 1, grid, mode="nearest", align_corners=False)
        labels = (labels - 1).masked_fill_(labels == 0, 255)  # from outside: ignored (255)
        out = torch.cat([out, labels.to(x.dtype)], 1)
    return out


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """(n, 1) angles -> (n, 2, 2) rotations; (n, 3) -> (n, 3, 3), about the three axes."""
    c, s = angles.cos(), angles.sin()
    if angles.shape[1] == 1:
        return torch.stack([torch.cat([c, -s], 1), torch.cat([s, c], 1)], 1)
    one, zero = torch.ones_like(c[:, 0]), torch.zeros_like(c[:, 0])

    def about(i: int, a: int, b: int) -> torch.Tensor:  # rotation by angle i in plane (a, b)
        m = torch.stack([one, zero, zero, zero, one, zero, zero, zero, one], 1).view(-1, 3, 3)
        m = m.clone()
        m[:, a, a], m[:, a, b], m[:, b, a], m[:, b, b] = c[:, i], -s[:, i], s[:, i], c[:, i]
        return m

    return about(0, 0, 1) @ about(1, 0, 2) @ about(2, 1, 2)


def _crop(x: torch.Tensor, pads: list[int], shifts: list[torch.Tensor]) -> torch.Tensor:
    """Per-sample translated crops as one gather (no Python loop over samples): `shifts[i]`
    is each sample's offset along spatial axis i, zero-padded by `pads[i]` on both sides."""
    b, c, *sizes = x.shape
    padded = F.pad(x, [p for pad in reversed(pads) for p in (pad, pad)])
    index = torch.zeros((b,) + (1,) * len(sizes), dtype=torch.long, device=x.device)
    for axis, (size, pad, shift) in enumerate(zip(sizes, pads, shifts, strict=True)):
        shape = [b] + [1] * len(sizes)
        shape[axis + 1] = size
        position = (shift[:, None] + torch.arange(size, device=x.device)).view(shape)
        index = index * (size + 2 * pad) + position
    count = index[0].numel()
    flat = padded.flatten(2).gather(2, index.reshape(b, 1, count).expand(b, c, count))
    return flat.view(b, c, *sizes)


@dataclass(frozen=True)
class MixUpCutMix:
    """MixUp and CutMix on normalized batches with one-hot (smoothed) targets.

    One of the two is chosen per batch (CutMix with probability `switch_prob` when both are
    on); a sample is mixed with its mirror in the micro-batch. Parameters are plain numbers
    drawn on the host, so mixing costs the device no synchronization.
    """

    mixup_alpha: float
    cutmix_alpha: float
    num_classes: int
    label_smoothing: float = 0.0
    switch_prob: float = 0.5

    @property
    def active(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def sample(self, generator: torch.Generator) -> dict[str, float]:
        """Draw (cutmix?, lambda, box centre) from a CPU generator."""
        u = torch.rand(3, generator=generator).tolist()
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or u[0] < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        gamma = torch._standard_gamma(torch.full((2,), float(alpha)), generator).tolist()
        return {"cutmix": use_cutmix, "lam": gamma[0] / sum(gamma), "cy": u[1], "cx": u[2]}

    def apply(
        self, x: torch.Tensor, y: torch.Tensor, p: dict[str, float]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lam = p["lam"]
        if p["cutmix"]:
            h, w = x.shape[-2:]
            cut = (1 - lam) ** 0.5
            ch, cw, cy, cx = int(cut * h), int(cut * w), int(p["cy"] * h), int(p["cx"] * w)
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
            x = x.clone()
            x[:, :, y0:y1, x0:x1] = x.flip(0)[:, :, y0:y1, x0:x1]
            lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
        else:
            x = x * lam + x.flip(0) * (1 - lam)
        off = self.label_smoothing / self.num_classes
        target = F.one_hot(y, self.num_classes).float() * (1 - self.label_smoothing) + off
        return x, target * lam + target.flip(0) * (1 - lam)
