"""Segmentation over a ResNet's stage features: a U-Net-style decoder on the backbone's stages,
in 2D or, on a 3D backbone, in 3D (its layers chosen by `Ops`, as the backbone's are).

Built by `factory.create_segmentation_model("resnet34", num_classes=2, in_chans=1)`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .ops import Ops
from .resnet import ResNet

DECODER_WIDTH = 256  # each decoder level: min(its skip's channels, 256)
PLANAR = Ops(2)


class UpBlock(nn.Module):
    """Upsample to the skip's size, concatenate it, two 3x3 conv-BN-ReLU."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, ops: Ops = PLANAR):
        super().__init__()
        self.conv1 = ops.conv(in_ch + skip_ch, out_ch, 3)
        self.bn1 = ops.norm(out_ch)
        self.conv2 = ops.conv(out_ch, out_ch, 3)
        self.bn2 = ops.norm(out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[2:], mode=_mode(x), align_corners=False)
        x = F.relu(self.bn1(self.conv1(torch.cat([x, skip], 1))))
        return F.relu(self.bn2(self.conv2(x)))


class UNetDecoder(nn.Module):
    """From the deepest stage up to the shallowest, then to the input size; per-pixel logits."""

    def __init__(self, stage_channels: list[int], num_classes: int, ops: Ops = PLANAR):
        super().__init__()
        deep, *skips = reversed(stage_channels)
        blocks, in_ch = [], deep
        for skip in skips:
            out = min(skip, DECODER_WIDTH)
            blocks.append(UpBlock(in_ch, skip, out, ops))
            in_ch = out
        self.blocks = nn.ModuleList(blocks)
        self.head = ops.conv(in_ch, num_classes, 1, bias=True)

    def forward(self, feats: list[torch.Tensor], size: tuple[int, ...]) -> torch.Tensor:
        x = feats[-1]
        for block, skip in zip(self.blocks, reversed(feats[:-1]), strict=True):
            x = block(x, skip)
        x = self.head(x)
        return F.interpolate(x, size=size, mode=_mode(x), align_corners=False)


def _mode(x: torch.Tensor) -> str:
    return "trilinear" if x.ndim == 5 else "bilinear"


class SegmentationModel(nn.Module):
    """ResNet backbone (no classifier) + U-Net decoder: [N, C, H, W] -> [N, classes, H, W]."""

    def __init__(self, backbone: ResNet, num_classes: int):
        super().__init__()
        self.backbone = backbone
        ops = Ops(backbone.config.spatial_dims)  # full 3x3x3 in 3D, whatever the backbone's
        self.decoder = UNetDecoder([f.channels for f in backbone.feature_info], num_classes, ops)
        self.weights_meta = None  # a WeightsMeta once weights that carry one are loaded
        self.num_classes = num_classes

    @property
    def name(self) -> str:
        return self.backbone.name

    @property
    def config(self):
        return self.backbone.config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.backbone.forward_intermediates(x), x.shape[2:])
