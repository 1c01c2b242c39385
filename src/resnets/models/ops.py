"""The conv, norm and pool layers of one spatial dimensionality, chosen once from the config.

As in MONAI (`Conv[Conv.CONV, spatial_dims]`), a block never names `nn.Conv2d`: it asks its
`Ops` for a conv, so one BasicBlock or Bottleneck builds 2D images and 3D volumes or clips.
A 3D block's 3x3 conv comes in the three kinds of Tran et al. 2018 ("A Closer Look at
Spatiotemporal Convolutions", torchvision's video models):

    full     3x3x3 (R3D; MedicalNet/MONAI's 3D ResNets)
    mixed    full in the first stage, spatial (1x3x3, depth kept: stride (1, s, s)) after it (MC3)
    2plus1d  a 1x3x3 spatial conv to `mid` channels, BN-ReLU, then a 3x1x1 temporal conv (R(2+1)D)

"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

Size = tuple[int, ...]
CONV = {2: nn.Conv2d, 3: nn.Conv3d}
NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
MAX_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
AVG_POOL = {2: nn.AvgPool2d, 3: nn.AvgPool3d}
ADAPTIVE_AVG_POOL = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}


class Conv2Plus1d(nn.Sequential):
    """(2+1)D convolution: spatial 1xkxk to `mid` channels, BN, ReLU, temporal kx1x1."""

    def __init__(self, in_ch: int, out_ch: int, mid: int, kernel: Size, stride: Size) -> None:
        t, h, w = kernel
        super().__init__(
            OrderedDict(
                spatial=nn.Conv3d(
                    in_ch, mid, (1, h, w), (1, *stride[1:]), (0, h // 2, w // 2), bias=False
                ),
                bn=nn.BatchNorm3d(mid),
                act=nn.ReLU(inplace=True),
                temporal=nn.Conv3d(
                    mid, out_ch, (t, 1, 1), (stride[0], 1, 1), (t // 2, 0, 0), bias=False
                ),
            )
        )


def mid_width(in_ch: int, out_ch: int, k: int = 3) -> int:
    """The (2+1)D conv's inner width that matches a full k^3 conv's parameter count
    (Tran et al. 2018; torchvision's `midplanes`)."""
    return (in_ch * out_ch * k**3) // (in_ch * k * k + k * out_ch)


@dataclass(frozen=True)
class Ops:
    """The layer classes for `dims` spatial dimensions; `kind`: how a 3D kxk conv is built
    (full, mixed, 2plus1d, or spatial: the form mixed takes after its first stage)."""

    dims: int = 2
    kind: str = "full"

    def stride(self, s: int | Size) -> int | Size:
        """A stride over all spatial dimensions (an int in 2D); spatial-only convs keep the
        depth."""
        if isinstance(s, tuple) or self.dims == 2:
            return s
        return (1, s, s) if self.kind == "spatial" else (s,) * self.dims

    def conv(
        self,
        in_ch: int,
        out_ch: int,
        k: int,
        stride: int | Size = 1,
        groups: int = 1,
        mid: int | None = None,
        bias: bool = False,
    ) -> nn.Module:
        """A kxk (k^3) conv with 'same' padding, built by this kind."""
        stride = self.stride(stride)
        if self.dims == 2 or k == 1 or self.kind in ("full", "mixed"):
            return CONV[self.dims](in_ch, out_ch, k, stride, k // 2, groups=groups, bias=bias)
        if self.kind == "spatial":
            return nn.Conv3d(
                in_ch, out_ch, (1, k, k), stride, (0, k // 2, k // 2), groups=groups, bias=False
            )
        if groups != 1:
            raise ValueError("(2+1)D convolutions are not grouped")
        return Conv2Plus1d(in_ch, out_ch, mid or mid_width(in_ch, out_ch, k), (k, k, k), stride)

    def norm(self, ch: int) -> nn.Module:
        return NORM[self.dims](ch)

    def max_pool(self) -> nn.Module:
        return MAX_POOL[self.dims](3, stride=2, padding=1)

    def avg_pool(self, stride: int | Size) -> nn.Module:
        return AVG_POOL[self.dims](stride, stride, ceil_mode=True, count_include_pad=False)

    def global_pool(self) -> nn.Module:
        return ADAPTIVE_AVG_POOL[self.dims](1)

    def for_stage(self, stage: int) -> Ops:
        """Mixed convolution (MC3): full 3D in the first stage, spatial-only after it."""
        if self.kind == "mixed":
            return Ops(self.dims, "full" if stage == 0 else "spatial")
        return self


def subsample(x: torch.Tensor, stride: int | Size) -> torch.Tensor:
    """x strided over its spatial dimensions (the paper's option-A shortcut)."""
    steps = stride if isinstance(stride, tuple) else (stride,) * (x.ndim - 2)
    return x[(slice(None), slice(None), *(slice(None, None, s) for s in steps))]
