"""JPEG decoding on the training device (`--gpu-decode`): workers only read bytes.

The batch's files are decoded together by `torchvision.io.decode_jpeg(device=...)` (nvJPEG on
a GPU), then cropped and resized per image on the device. Crop parameters come from a
generator seeded by (seed, epoch, index), as on the CPU path. Files nvJPEG cannot decode
(PNG, CMYK JPEG, ...) fall back to the CPU decoder; unreadable ones are skipped and counted.
"""

from __future__ import annotations

import warnings

import torch
from torchvision.io import ImageReadMode
from torchvision.transforms.v2 import functional as TF

from .augment import mix_seed


def read_bytes(path) -> bytes:
    """A file's bytes, as plain `bytes`: workers send them by value (small tensors sent
    through torch's shared-memory file descriptors got lost in transit, hanging the loader)."""
    with open(path, "rb") as f:
        return f.read()


def _decode_batch(blobs: list[bytes], device: torch.device, channels: int):
    """Decoded images (or None where unreadable), trying the device decoder first."""
    from torchvision.io import decode_image, decode_jpeg

    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return list(decode_jpeg(data, mode=mode, device=device))
        except RuntimeError:
            pass  # one bad file fails the batch call: decode one by one
        out = []
        for blob in data:
            try:
                out.append(decode_jpeg(blob, mode=mode, device=device))
            except RuntimeError:
                try:
                    out.append(decode_image(blob, mode=mode).to(device))
                except RuntimeError:
                    out.append(None)
        return out


def random_resized_crop_params(
    height: int, width: int, generator: torch.Generator
) -> tuple[int, int, int, int]:
    """(top, left, h, w) drawn by torchvision's own RandomResizedCrop sampler (scale 0.08-1,
    ratio 3/4-4/3), made reproducible by seeding it from `generator`."""
    from torchvision.transforms import RandomResizedCrop

    seed = int(torch.randint(2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        shape = torch.empty(1, height, width, device="meta")
        return tuple(RandomResizedCrop.get_params(shape, (0.08, 1.0), (3 / 4, 4 / 3)))


class DeviceDecoder:
    """Turns a batch of JPEG bytes into uint8 [B, C, S, S] on `device`."""

    def __init__(
        self,
        device: torch.device,
        size: int,
        channels: int,
        seed: int,
        train: bool,
        resize: int | None = None,
        hflip: bool = True,
    ):
        self.device, self.size, self.channels = device, size, channels
        self.seed, self.train, self.resize, self.hflip = seed, train, resize, hflip

    def __call__(
        self, data: list[bytes], index: list[int], epoch: int
    ) -> tuple[torch.Tensor, list[int]]:
        """(images, positions in the batch that decoded)."""
        images = _decode_batch(data, self.device, self.channels)
        out, kept = [], []
        gen = torch.Generator()
        for pos, (img, i) in enumerate(zip(images, index, strict=True)):
            if img is None:
                continue
            if self.train:
                gen.manual_seed(mix_seed(self.seed, epoch, i))
                top, left, h, w = random_resized_crop_params(img.shape[-2], img.shape[-1], gen)
                img = TF.resized_crop(img, top, left, h, w, [self.size, self.size], antialias=True)
                if self.hflip and torch.rand(1, generator=gen).item() < 0.5:
                    img = img.flip(-1)
            elif self.resize is not None:
                img = TF.center_crop(TF.resize(img, self.resize, antialias=True), self.size)
            else:
                img = TF.resize(img, [self.size, self.size], antialias=True)
            out.append(img)
            kept.append(pos)
        if not out:
            return torch.empty(0, self.channels, self.size, self.size, dtype=torch.uint8), kept
        return torch.stack(out), kept
