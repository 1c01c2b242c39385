"""A ResNet + FPN backbone for torchvision's detectors (FasterRCNN, RetinaNet, MaskRCNN).

Like torchvision's `resnet_fpn_backbone`, for any registered ResNet (in_chans=1 included):

    backbone = resnet_fpn_backbone("resnet50", pretrained="r50.pth", trainable_stages=3)
    model = torchvision.models.detection.FasterRCNN(backbone, num_classes=3)
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d

from .factory import create_model
from .resnet import ResNet


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d by a FrozenBatchNorm2d with the same statistics and affine."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            with torch.no_grad():
                frozen.weight.copy_(child.weight)
                frozen.bias.copy_(child.bias)
                frozen.running_mean.copy_(child.running_mean)
                frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


class ResNetFPN(nn.Module):
    """Stage outputs of a ResNet through a feature pyramid: an OrderedDict of maps named "0",
    "1", ... (strides 4..32 for ImageNet stems), plus extra coarser levels: "pool" (a max-pool,
    as FasterRCNN/MaskRCNN use) or "p6" and "p7" (strided convs, as RetinaNet uses)."""

    def __init__(
        self,
        backbone: ResNet,
        returned_stages=(1, 2, 3, 4),
        out_channels: int = 256,
        extra_levels: str = "pool",
    ):
        super().__init__()
        if (
            not returned_stages
            or max(returned_stages) > len(backbone.stages)
            or min(returned_stages) < 1
        ):
            raise ValueError(
                f"returned_stages must be within 1..{len(backbone.stages)}, got {returned_stages}"
            )
        self.backbone = backbone
        self.returned = tuple(returned_stages)
        channels = [backbone.feature_info[i - 1].channels for i in self.returned]
        if extra_levels not in ("pool", "p6p7"):
            raise ValueError(f"extra_levels must be 'pool' or 'p6p7', got {extra_levels!r}")
        extra = (
            LastLevelMaxPool()
            if extra_levels == "pool"
            else LastLevelP6P7(out_channels, out_channels)
        )
        self.fpn = FeaturePyramidNetwork(channels, out_channels, extra_blocks=extra)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.backbone.forward_intermediates(x)
        picked = OrderedDict((str(k), feats[i - 1]) for k, i in enumerate(self.returned))
        return self.fpn(picked)


def resnet_fpn_backbone(
    name: str,
    *,
    pretrained: str | Path | None = None,
    trainable_stages: int = 3,
    frozen_bn: bool = True,
    returned_stages=(1, 2, 3, 4),
    out_channels: int = 256,
    extra_levels: str = "pool",
    **overrides: Any,
) -> ResNetFPN:
    """A detection backbone from a registered ResNet.

    trainable_stages: how many of the last stages train (0: none; all stages and the stem: the
    number of stages + 1). frozen_bn: BN with fixed statistics (the usual choice for the small
    per-GPU batches of detection). extra_levels: "pool" for FasterRCNN / MaskRCNN, "p6p7" with
    returned_stages=(2, 3, 4) for RetinaNet (five levels, as torchvision builds it).
    """
    backbone = create_model(name, pretrained=pretrained, num_classes=0, **overrides)
    n = len(backbone.stages)
    if not 0 <= trainable_stages <= n + 1:
        raise ValueError(f"trainable_stages must be within 0..{n + 1}, got {trainable_stages}")
    if frozen_bn:
        freeze_batchnorm(backbone)
    parts = [backbone.stem, *backbone.stages]
    for part in parts[: len(parts) - trainable_stages]:
        part.requires_grad_(False)
    return ResNetFPN(backbone, returned_stages, out_channels, extra_levels)
