"""Residual blocks, named and ordered as in the papers.

BasicBlock and Bottleneck follow He et al. 2015 (post-activation); PreActBasicBlock and
PreActBottleneck follow He et al. 2016 (BN-ReLU before each conv). Blocks take plain numbers:
the stage builder in resnet.py works out the widths from the config and hands each block its
shortcut (`None` for a plain block, which adds nothing at all) and its `Ops` (ops.py): the conv,
norm and pool layers of 2D or 3D, so the same block builds images, volumes and clips.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .ops import Ops, Size, mid_width, subsample

PLANAR = Ops()  # 2D


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's whole residual branch with probability `p`."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ZeroPadShortcut(nn.Module):
    """Paper option A: subsample by striding and pad the new channels with zeros.

    In 2D the padding is split evenly before and after the existing channels, as in the widely
    used CIFAR reference implementation; in 3D (`after`) it all follows them, as in MedicalNet
    and Hara et al.'s 3D ResNets (MONAI's shortcut_type "A"): either way their trained weights
    stay interchangeable.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int | Size, after: bool = False) -> None:
        super().__init__()
        self.stride = stride
        self.pad_before = 0 if after else (out_ch - in_ch) // 2
        self.pad_after = out_ch - in_ch - self.pad_before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = subsample(x, self.stride)
        return F.pad(x, (0, 0) * (x.ndim - 2) + (self.pad_before, self.pad_after))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad=({self.pad_before}, {self.pad_after})"


def make_shortcut(
    in_ch: int,
    out_ch: int,
    stride: int,
    kind: str,
    avg_down: bool = False,
    norm: bool = True,
    ops: Ops = PLANAR,
    bias: bool = False,
) -> nn.Module | None:
    """A block's shortcut: `kind` "A" (zero-pad), "B" (project only when the shape changes),
    "C" (always project) or "none" (a plain block); `avg_down` pools before projecting
    (ResNet-D); `norm` adds BN after the projection (not in pre-activation blocks); `bias`
    gives the projection a bias (MONAI's default)."""
    if kind == "none":
        return None
    reshapes = stride != 1 or in_ch != out_ch
    if not reshapes and kind in ("A", "B"):
        return nn.Identity()
    steps = ops.stride(stride)
    if kind == "A":
        return ZeroPadShortcut(in_ch, out_ch, steps, after=ops.dims == 3)
    parts: OrderedDict[str, nn.Module] = OrderedDict()
    if avg_down and stride > 1:
        parts["pool"] = ops.avg_pool(steps)
        steps = 1
    parts["conv"] = ops.conv(in_ch, out_ch, 1, steps, bias=bias)
    if norm:
        parts["bn"] = ops.norm(out_ch)
    return nn.Sequential(parts)


def _is_projection(shortcut: nn.Module | None) -> bool:
    return isinstance(shortcut, nn.Sequential)


class BasicBlock(nn.Module):
    """Two 3x3 convs: out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    expansion = 1  # out_ch / stage width (Wide ResNets widen both)

    def __init__(
        self,
        in_ch: int,
        width: int,
        out_ch: int,
        stride: int = 1,
        shortcut: nn.Module | None = None,
        drop_path: float = 0.0,
        ops: Ops = PLANAR,
    ):
        super().__init__()
        mid = mid_width(in_ch, width)  # (2+1)D only: both convs, as torchvision's video nets
        self.conv1 = ops.conv(in_ch, width, 3, stride, mid=mid)
        self.bn1 = ops.norm(width)
        self.conv2 = ops.conv(width, out_ch, 3, mid=mid)
        self.bn2 = ops.norm(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = shortcut
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is None:
            return self.act(out)
        out = self.drop_path(out)
        out += self.shortcut(x)  # in place: BN's backward does not need its output
        return self.act(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand by 4, then add the shortcut."""

    expansion = 4  # out_ch / stage width

    def __init__(
        self,
        in_ch: int,
        width: int,
        out_ch: int,
        stride: int = 1,
        shortcut: nn.Module | None = None,
        drop_path: float = 0.0,
        groups: int = 1,
        stride_in_1x1: bool = False,
        ops: Ops = PLANAR,
    ):
        super().__init__()
        # v1 strides the first 1x1 (the paper, Caffe); v1.5 the 3x3 (torchvision, better)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = ops.conv(in_ch, width, 1, stride_1x1)
        self.bn1 = ops.norm(width)
        self.conv2 = ops.conv(width, width, 3, stride_3x3, groups, mid_width(in_ch, width))
        self.bn2 = ops.norm(width)
        self.conv3 = ops.conv(width, out_ch, 1)
        self.bn3 = ops.norm(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = shortcut
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut is None:
            return self.act(out)
        out = self.drop_path(out)
        out += self.shortcut(x)  # in place: BN's backward does not need its output
        return self.act(out)


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv twice; the sum is left un-activated (identity mappings, He et al. 2016).

    A projection shortcut reads the pre-activated input, an identity shortcut the raw one.
    """

    expansion = 1

    def __init__(
        self,
        in_ch: int,
        width: int,
        out_ch: int,
        stride: int = 1,
        shortcut: nn.Module | None = None,
        drop_path: float = 0.0,
        ops: Ops = PLANAR,
    ):
        super().__init__()
        mid = mid_width(in_ch, width)
        self.bn1 = ops.norm(in_ch)
        self.conv1 = ops.conv(in_ch, width, 3, stride, mid=mid)
        self.bn2 = ops.norm(width)
        self.conv2 = ops.conv(width, out_ch, 3, mid=mid)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = shortcut
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.act(self.bn2(out)))
        if self.shortcut is None:
            return out
        return self.drop_path(out) + self.shortcut(pre if _is_projection(self.shortcut) else x)


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv three times (1x1, 3x3, 1x1 expand by 4); the sum is left un-activated."""

    expansion = 4

    def __init__(
        self,
        in_ch: int,
        width: int,
        out_ch: int,
        stride: int = 1,
        shortcut: nn.Module | None = None,
        drop_path: float = 0.0,
        groups: int = 1,
        stride_in_1x1: bool = False,
        ops: Ops = PLANAR,
    ):
        super().__init__()
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.bn1 = ops.norm(in_ch)
        self.conv1 = ops.conv(in_ch, width, 1, stride_1x1)
        self.bn2 = ops.norm(width)
        self.conv2 = ops.conv(width, width, 3, stride_3x3, groups, mid_width(in_ch, width))
        self.bn3 = ops.norm(width)
        self.conv3 = ops.conv(width, out_ch, 1)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = shortcut
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.act(self.bn2(out)))
        out = self.conv3(self.act(self.bn3(out)))
        if self.shortcut is None:
            return out
        return self.drop_path(out) + self.shortcut(pre if _is_projection(self.shortcut) else x)
