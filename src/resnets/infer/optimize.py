"""Inference fast path: BatchNorm folded into the convolutions, channels_last, bf16, compile.

Folding rewrites conv(x) followed by BN as one conv with w' = w * g / sqrt(v + eps) and
b' = (b - m) * g / sqrt(v + eps) + beta, and turns the BN into an identity. Post-activation
blocks fold every BN; pre-activation blocks fold each BN that follows a conv (the BN that
opens a block reads a sum and stays).
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn

from ..models import ResNet
from ..models.blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from ..models.segmentation import UpBlock

# (conv, the BN that directly follows it) inside each kind of block
_PAIRS: dict[type, list[tuple[str, str]]] = {
    BasicBlock: [("conv1", "bn1"), ("conv2", "bn2"), ("shortcut.conv", "shortcut.bn")],
    Bottleneck: [
        ("conv1", "bn1"),
        ("conv2", "bn2"),
        ("conv3", "bn3"),
        ("shortcut.conv", "shortcut.bn"),
    ],
    PreActBasicBlock: [("conv1", "bn2")],
    PreActBottleneck: [("conv1", "bn2"), ("conv2", "bn3")],
    UpBlock: [("conv1", "bn1"), ("conv2", "bn2")],
}
_STEM_PAIRS = [("conv", "bn"), ("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")]


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One conv computing bn(conv(x)) with the BN's running statistics."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
    ).to(conv.weight.device, conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def _get(module: nn.Module, path: str) -> nn.Module | None:
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def _set(module: nn.Module, path: str, value: nn.Module) -> None:
    *parents, last = path.split(".")
    for part in parents:
        module = getattr(module, part)
    setattr(module, last, value)


def fold_bn(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` (a ResNet, or a segmentation model around one) with every
    foldable BN merged into its conv."""
    model = copy.deepcopy(model).eval()
    resnet: ResNet = getattr(model, "backbone", model)
    targets = [(resnet.stem, _STEM_PAIRS)] + [(b, _PAIRS[type(b)]) for b in resnet.blocks()]
    targets += [(m, _PAIRS[UpBlock]) for m in model.modules() if isinstance(m, UpBlock)]
    for module, pairs in targets:
        for conv_path, bn_path in pairs:
            conv, bn = _get(module, conv_path), _get(module, bn_path)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                _set(module, conv_path, fuse_conv_bn(conv, bn))
                _set(module, bn_path, nn.Identity())
    return model


def optimize_for_inference(
    model: ResNet,
    device: torch.device | str = "cpu",
    *,
    channels_last: bool = True,
    dtype: Literal["float32", "bfloat16", "float16"] = "float32",
    compile: bool = False,
) -> nn.Module:
    """Fold BN, move to `device`, and optionally use channels_last, a lower dtype, compile.

    Feed the result inputs of the same dtype (and channels_last layout for best speed).
    """
    fast = fold_bn(model).to(device=device, dtype=getattr(torch, dtype))
    if channels_last and model.config.spatial_dims == 2:  # a 2D layout: volumes stay as they are
        fast = fast.to(memory_format=torch.channels_last)
    for p in fast.parameters():
        p.requires_grad_(False)
    return torch.compile(fast) if compile else fast
