"""Two random views of every image of a batch, made on the training device: a random resized
crop (as SimCLR's, of 25 to 100 % of the area here, aspect 3/4 to 4/3), a horizontal flip
where the data allows it (the same decision as training's: off for greyscale), and with
probability 0.8 a jitter of brightness and contrast (and saturation for colour images), and
for colour images a grey conversion with probability 0.2. Hue is not jittered.

As data/augment.py does, the random numbers are drawn for the whole global batch from a
generator seeded by (seed, epoch, step) and this process's rows are taken from them, so an
image's views do not depend on the number of processes or on a resume."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.augment import mix_seed

LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class TwoViews:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool
    min_scale: float = 0.25
    jitter: float = 0.4  # brightness, contrast and saturation factors in 1 ± jitter
    jitter_p: float = 0.8
    grey_p: float = 0.2

    def __call__(
        self, x: torch.Tensor, seed: int, epoch: int, step: int, batch: int, rows: slice
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two views of `x`, this process's `rows` of a global batch of `batch` images
        (normalized, as the loader gives them)."""
        views = []
        for k in range(2):
            g = torch.Generator(device=x.device).manual_seed(mix_seed(seed, epoch, step, k))
            drawn = {name: v[rows] for name, v in self.sample(batch, g, x.device).items()}
            views.append(self.apply(x, drawn))
        return views[0], views[1]

    def sample(self, n: int, g: torch.Generator, device) -> dict[str, torch.Tensor]:
        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(n, generator=g, device=device)

        area = uniform(self.min_scale, 1.0)
        ratio = torch.exp(uniform(math.log(3 / 4), math.log(4 / 3)))
        return {
            "width": (area * ratio).sqrt().clamp(max=1.0),
            "height": (area / ratio).sqrt().clamp(max=1.0),
            "cx": uniform(-1.0, 1.0),
            "cy": uniform(-1.0, 1.0),
            "flip": torch.rand(n, generator=g, device=device) < 0.5,
            "jitter": torch.rand(n, generator=g, device=device) < self.jitter_p,
            "brightness": uniform(1 - self.jitter, 1 + self.jitter),
            "contrast": uniform(1 - self.jitter, 1 + self.jitter),
            "saturation": uniform(1 - self.jitter, 1 + self.jitter),
            "grey": torch.rand(n, generator=g, device=device) < self.grey_p,
        }

    def apply(self, x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
        shape = (1, -1, 1, 1)
        mean = torch.tensor(self.mean, device=x.device).view(shape)
        std = torch.tensor(self.std, device=x.device).view(shape)
        pixels = (self.crop(x.float(), d) * std + mean).clamp(0, 1)
        pixels = self.colour(pixels, d)
        return (pixels - mean) / std

    def crop(self, x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
        """The random resized crop and flip as one affine resampling (bilinear), back to the
        input's size."""
        w, h = d["width"], d["height"]
        sign = torch.where(d["flip"] & self.hflip, -1.0, 1.0).to(x.dtype)
        theta = torch.zeros(len(x), 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = w * sign
        theta[:, 0, 2] = d["cx"] * (1 - w)
        theta[:, 1, 1] = h
        theta[:, 1, 2] = d["cy"] * (1 - h)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(
            x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )

    def colour(self, x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
        """Brightness, contrast (and saturation) jitter in [0, 1] pixels; grey conversion."""
        on = d["jitter"].view(-1, 1, 1, 1)
        factor = torch.where(on, d["brightness"].view(-1, 1, 1, 1), 1.0)
        x = (x * factor).clamp(0, 1)
        grey = self.grey(x)
        level = grey.mean((1, 2, 3), keepdim=True)
        factor = torch.where(on, d["contrast"].view(-1, 1, 1, 1), 1.0)
        x = ((x - level) * factor + level).clamp(0, 1)
        if x.shape[1] != 3:
            return x
        grey = self.grey(x)
        factor = torch.where(on, d["saturation"].view(-1, 1, 1, 1), 1.0)
        x = ((x - grey) * factor + grey).clamp(0, 1)
        return torch.where(d["grey"].view(-1, 1, 1, 1), self.grey(x).expand_as(x), x)

    @staticmethod
    def grey(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3:
            return x
        w = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
