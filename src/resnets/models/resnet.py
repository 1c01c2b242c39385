"""`ResNet`: one module that builds any `ResNetConfig`.

Layout (and state_dict keys): `stem`, `stages[i][j]` (blocks), `norm` (the final BN-ReLU of
pre-activation nets), `fc`. `models/keys.py` maps these keys to torchvision's and timm's.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .blocks import (
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    make_shortcut,
)
from .config import ResNetConfig
from .ops import CONV, Conv2Plus1d, Ops


@dataclass(frozen=True)
class FeatureInfo:
    """One stage output: its name, channel count and stride relative to the input."""

    name: str
    channels: int
    stride: int


def ops_of(cfg: ResNetConfig) -> Ops:
    """The layers of the config's dimensionality (and 3D conv kind)."""
    return Ops(cfg.spatial_dims, cfg.conv3d)


def make_stem(cfg: ResNetConfig) -> nn.Sequential:
    """The stem; pre-activation nets leave out its last BN-ReLU (each block starts with one)."""
    ops, parts = ops_of(cfg), OrderedDict()
    width = cfg.stem_width
    if cfg.stem == "deep":
        mid = width // 2
        for i, (cin, cout, stride) in enumerate(
            [(cfg.in_chans, mid, 2), (mid, mid, 1), (mid, width, 1)], start=1
        ):
            parts[f"conv{i}"] = ops.conv(cin, cout, 3, stride)
            if i < 3 or not cfg.preact:
                parts[f"bn{i}"] = ops.norm(cout)
                parts[f"act{i}"] = nn.ReLU(inplace=True)
    else:
        parts["conv"] = _stem_conv(cfg, ops)
        if not cfg.preact:
            parts["bn"] = ops.norm(width)
            parts["act"] = nn.ReLU(inplace=True)
    if cfg.stem in ("imagenet", "deep"):
        parts["pool"] = ops.max_pool()
    return nn.Sequential(parts)


def _stem_conv(cfg: ResNetConfig, ops: Ops) -> nn.Module:
    if cfg.stem == "cifar":
        return ops.conv(cfg.in_chans, cfg.stem_width, 3)
    if cfg.stem == "imagenet":  # 7x7 (7x7x7 in 3D, as MedicalNet) stride 2
        return CONV[cfg.spatial_dims](cfg.in_chans, cfg.stem_width, 7, 2, 3, bias=False)
    if cfg.conv3d == "2plus1d":  # torchvision's R2Plus1dStem: 45 channels in between
        return Conv2Plus1d(cfg.in_chans, cfg.stem_width, 45, (3, 7, 7), (1, 2, 2))
    return nn.Conv3d(cfg.in_chans, cfg.stem_width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False)


def block_class(cfg: ResNetConfig) -> type[nn.Module]:
    if cfg.preact:
        return PreActBottleneck if cfg.block == "bottleneck" else PreActBasicBlock
    return Bottleneck if cfg.block == "bottleneck" else BasicBlock


def make_stages(cfg: ResNetConfig) -> tuple[nn.ModuleList, list[FeatureInfo]]:
    """The stages, each a sequence of blocks. Widths, strides, shortcuts and drop-path rates
    are worked out here from the config, so that a block sees only numbers."""
    block = block_class(cfg)
    bottleneck = {"groups": cfg.groups, "stride_in_1x1": cfg.stride_in_1x1}
    extra = bottleneck if cfg.block == "bottleneck" else {}
    total = sum(cfg.layers)
    rates = [cfg.drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # deeper: more
    stride = cfg.stem_stride  # of the stem's output
    in_ch, k, stages, info = cfg.stem_width, 0, [], []
    for stage, depth in enumerate(cfg.layers):
        width, out_ch = cfg.inner_width(stage), cfg.out_width(stage)
        stage_stride = 1 if stage == 0 else 2  # each later stage halves the size, once
        stride *= stage_stride
        blocks, ops = [], ops_of(cfg).for_stage(stage)
        for j in range(depth):
            s = stage_stride if j == 0 else 1
            shortcut = make_shortcut(
                in_ch,
                out_ch,
                s,
                cfg.shortcut,
                cfg.avg_down,
                not cfg.preact,
                ops,
                cfg.shortcut_bias,
            )
            blocks.append(block(in_ch, width, out_ch, s, shortcut, rates[k], ops=ops, **extra))
            in_ch, k = out_ch, k + 1
        stages.append(nn.Sequential(*blocks))
        info.append(FeatureInfo(f"stages.{stage}", out_ch, stride))
    return nn.ModuleList(stages), info


class ResNet(nn.Module):
    """A residual (or plain) network built from a `ResNetConfig`."""

    def __init__(self, config: ResNetConfig, name: str = "custom") -> None:
        super().__init__()
        self.config = config
        self.name = name
        self.grad_checkpointing = False
        self.weights_meta = None  # a WeightsMeta once weights that carry one are loaded
        self.stem = make_stem(config)

        self.stages, self.feature_info = make_stages(config)
        in_ch = self.num_features = self.feature_info[-1].channels

        ops = ops_of(config)
        self.norm = (
            nn.Sequential(OrderedDict(bn=ops.norm(in_ch), act=nn.ReLU(inplace=True)))
            if config.preact
            else nn.Identity()
        )
        self.pool = ops.global_pool()
        self.dropout = nn.Dropout(config.drop_rate) if config.drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(in_ch, config.num_classes) if config.num_classes else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's initialization: Kaiming-normal convs (fan-out), BN at identity."""
        if next(self.parameters()).is_meta:  # shapes only (resnets info): no values to draw
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if isinstance(self.fc, nn.Linear):
            self.fc.reset_parameters()
        if self.config.zero_init_residual:
            for b in self.blocks():
                b.zero_init_last()

    def blocks(self) -> Iterator[nn.Module]:
        for stage in self.stages:
            yield from stage

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of storing them."""
        self.grad_checkpointing = enable

    def _check_input(self, x: torch.Tensor) -> None:
        if torch.jit.is_tracing():  # a traced graph has fixed shapes anyway
            return
        dims = self.config.spatial_dims
        if x.ndim != dims + 2 or x.shape[1] != self.config.in_chans:
            shape = "H, W" if dims == 2 else "D, H, W"
            raise ValueError(
                f"{self.name} expects input of shape (N, {self.config.in_chans}, {shape}), "
                f"got {tuple(x.shape)}"
            )

    def _run_stage(self, stage: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        if not (self.grad_checkpointing and torch.is_grad_enabled()):
            return stage(x)
        for block in stage:
            if torch.compiler.is_compiling():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = checkpoint(
                    block,
                    x,
                    use_reentrant=False,
                    context_fn=lambda b=block: (contextlib.nullcontext(), _frozen_bn_stats(b)),
                )
        return x

    def forward_intermediates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output, for detection and segmentation heads (see `feature_info`)."""
        self._check_input(x)
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = self._run_stage(stage, x)
            outs.append(x)
        if self.config.preact:
            outs[-1] = self.norm(outs[-1])
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before pooling."""
        self._check_input(x)
        x = self.stem(x)
        for stage in self.stages:
            x = self._run_stage(stage, x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.pool(x), 1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@contextlib.contextmanager
def _frozen_bn_stats(module: nn.Module) -> Iterator[None]:
    """Keep BN running statistics unchanged while a checkpointed block is recomputed.

    Without this, recomputation in the backward pass would update them a second time.
    """
    bns = [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.num_batches_tracked is not None
    ]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(bns, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)
