"""A ResNet + FPN backbone for torchvision's detectors (FasterRCNN, RetinaNet, MaskRCNN).

Like torchvision's `resnet_fpn_backbone`, for any registered ResNet (in_chans=1 included):

    backbone = resnet_fpn_backbone("resnet50", pretrained="r50.pth", trainable_stages=3)
    model = torchvision.models.detection.FasterRCNN(backbone, num_classes=3)

Stage numbers count from 1: ImageNet-stem nets have stages 1..4 at strides 4..32, CIFAR-stem
nets stages 1..3 at strides 1..4. torchvision's default anchors expect five maps at strides
4..64 (FasterRCNN) or 8..128 (RetinaNet); for any other pyramid, a CIFAR-stem one say, pass
`rpn_anchor_generator=backbone.anchor_generator()` (or `anchor_generator=` to RetinaNet).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d

from ..errors import UsageError
from .factory import create_model
from .registry import get_config
from .resnet import ResNet

EXTRA_LEVELS = {"pool": ("pool",), "p6p7": ("p6", "p7")}


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


def pick_stages(
    returned_stages: Sequence[int] | None,
    num_stages: int,
    extra_levels: str = "pool",
    net: str = "this net",
) -> tuple[int, ...]:
    """The stages (numbered from 1) that feed the pyramid, checked against the net's.

    None picks what torchvision's detectors expect: every stage with "pool" (FasterRCNN,
    MaskRCNN), the last three with "p6p7" (RetinaNet's P3-P5; all of a 3-stage net), so that
    either gives five maps on a 4-stage net.
    """
    if extra_levels not in EXTRA_LEVELS:
        raise UsageError(f"extra_levels must be 'pool' or 'p6p7', got {extra_levels!r}")
    if returned_stages is None:
        first = max(num_stages - 2, 1) if extra_levels == "p6p7" else 1
        return tuple(range(first, num_stages + 1))
    stages = tuple(returned_stages)
    if not stages or not all(isinstance(s, int) and 1 <= s <= num_stages for s in stages):
        raise UsageError(
            f"returned_stages must be within 1..{num_stages} ({net} has {num_stages} stages), "
            f"got {stages}; leave it out for the default"
        )
    if list(stages) != sorted(set(stages)):
        raise UsageError(f"returned_stages must be increasing stage numbers, got {stages}")
    return stages


class ResNetFPN(nn.Module):
    """Stage outputs of a ResNet through a feature pyramid: an OrderedDict of maps named "0",
    "1", ... (one per returned stage, finest first), plus extra coarser levels: "pool" (a
    max-pool, as FasterRCNN/MaskRCNN use) or "p6" and "p7" (strided convs on the coarsest
    pyramid map, as RetinaNet uses). `strides` lists each map's stride, extra levels included."""

    def __init__(
        self,
        backbone: ResNet,
        returned_stages: Sequence[int] | None = None,
        out_channels: int = 256,
        extra_levels: str = "pool",
    ):
        super().__init__()
        self.backbone = backbone
        n = len(backbone.stages)
        self.returned = pick_stages(returned_stages, n, extra_levels, backbone.name)
        info = [backbone.feature_info[i - 1] for i in self.returned]
        extra = (
            LastLevelMaxPool()
            if extra_levels == "pool"
            else LastLevelP6P7(out_channels, out_channels)
        )
        self.fpn = FeaturePyramidNetwork(
            [f.channels for f in info], out_channels, extra_blocks=extra
        )
        self.out_channels = out_channels
        coarsest = info[-1].stride
        extra_strides = [coarsest * 2 ** (k + 1) for k in range(len(EXTRA_LEVELS[extra_levels]))]
        self.strides = tuple(f.stride for f in info) + tuple(extra_strides)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.backbone.forward_intermediates(x)
        picked = OrderedDict((str(k), feats[i - 1]) for k, i in enumerate(self.returned))
        return self.fpn(picked)

    def anchor_generator(
        self, size_per_stride: float = 8.0, aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0)
    ) -> AnchorGenerator:
        """Anchors for these maps, one size per map (size_per_stride x its stride): for a
        4-stage net with "pool", torchvision FasterRCNN's default (32, 64, ..., 512)."""
        sizes = tuple((round(size_per_stride * s),) for s in self.strides)
        return AnchorGenerator(sizes, (tuple(aspect_ratios),) * len(sizes))


def resnet_fpn_backbone(
    name: str,
    *,
    pretrained: str | Path | None = None,
    trainable_stages: int | None = None,
    frozen_bn: bool = True,
    returned_stages: Sequence[int] | None = None,
    out_channels: int = 256,
    extra_levels: str = "pool",
    **overrides: Any,
) -> ResNetFPN:
    """A detection backbone from a registered ResNet.

    trainable_stages: how many of the last stages train (0: none; all stages and the stem: the
    number of stages + 1); by default all but the stem and the first stage (3 of a 4-stage net,
    as torchvision; 2 of a CIFAR one). frozen_bn: BN with fixed statistics (the usual choice for
    the small per-GPU batches of detection). extra_levels: "pool" for FasterRCNN / MaskRCNN,
    "p6p7" for RetinaNet. returned_stages: by default every stage with "pool", the last three
    with "p6p7" (see `pick_stages`).
    """
    cfg = get_config(name).replace(**overrides)
    pick_stages(returned_stages, len(cfg.layers), extra_levels, name)  # before building
    backbone = detection_resnet(name, pretrained, trainable_stages, frozen_bn, **overrides)
    return ResNetFPN(backbone, returned_stages, out_channels, extra_levels)


def detection_resnet(
    name: str,
    pretrained: str | Path | None = None,
    trainable_stages: int | None = None,
    frozen_bn: bool = True,
    **overrides: Any,
) -> ResNet:
    """A registered ResNet without its classifier, its first stages frozen and its BN
    statistics fixed as torchvision's detection backbones have them (see
    `resnet_fpn_backbone`)."""
    cfg = get_config(name).replace(**overrides)
    if cfg.spatial_dims != 2:
        raise UsageError(f"torchvision's detection models take 2D images; {name} is a 3D model")
    n = len(cfg.layers)
    if trainable_stages is None:
        trainable_stages = max(n - 1, 0)
    if not 0 <= trainable_stages <= n + 1:
        raise UsageError(f"trainable_stages must be within 0..{n + 1}, got {trainable_stages}")
    backbone = create_model(name, pretrained=pretrained, num_classes=0, **overrides)
    if frozen_bn:
        freeze_batchnorm(backbone)
    parts = [backbone.stem, *backbone.stages]
    for part in parts[: len(parts) - trainable_stages]:
        part.requires_grad_(False)
    return backbone


class LastStage(nn.Module):
    """The seed's single-map backbone: the last stage's output alone, as map "0" (no
    pyramid), for a Faster R-CNN whose RPN and RoI pooling both read that one map."""

    def __init__(self, backbone: ResNet):
        super().__init__()
        self.backbone = backbone
        self.out_channels = backbone.feature_info[-1].channels
        self.strides = (backbone.feature_info[-1].stride,)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return OrderedDict([("0", self.backbone.forward_intermediates(x)[-1])])
