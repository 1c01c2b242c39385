"""`ResNetConfig`: the single description of a network in the ResNet family.

Every registered model is one instance of this dataclass, so a name can be checked against the
paper's table at a glance, and every variant (plain, pre-activation, ResNeXt, Wide, B/C/D) is a
field rather than a subclass.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ..errors import ConfigError, unknown_name

Block = Literal["basic", "bottleneck"]
Stem = Literal["imagenet", "cifar", "deep", "video"]
Shortcut = Literal["A", "B", "C", "none"]
Conv3d = Literal["full", "mixed", "2plus1d"]


@dataclass(frozen=True)
class ResNetConfig:
    """Everything that distinguishes one ResNet from another.

    block: "basic" (two 3x3 convs) or "bottleneck" (1x1, 3x3, 1x1 with expansion 4).
    layers: blocks per stage; widths: each stage's width (the bottleneck's "planes").
    stem: "imagenet" (7x7/2 conv + max-pool), "cifar" (3x3/1 conv), "deep" (three 3x3 convs
        + max-pool, ResNet-C/D), "video" (3D only: a 3x7x7 conv striding height and width, no
        max-pool; with 2plus1d, a 1x7x7 then 3x1x1 conv, as torchvision's video nets);
        stem_width is the stem's output channels.
    shortcut: paper option "A" (identity, strided subsampling and zero-padded channels),
        "B" (1x1 projection only where the shape changes), "C" (projection everywhere),
        "none" (a plain network: no shortcut at all).
    groups, width_per_group: ResNeXt cardinality and per-group width of the bottleneck 3x3.
    width_factor: Wide ResNet's k. Basic blocks: every conv of the stage is k times wider
        (WRN-n-k). Bottleneck: the inner 1x1/3x3 width (torchvision's wide_resnet50_2); the
        block output stays planes x 4.
    preact: pre-activation ordering BN-ReLU-conv (ResNet v2, He et al. 2016).
    avg_down: average-pool then 1x1 conv in strided projection shortcuts (ResNet-D).
    shortcut_bias: a bias in projection shortcut convs (MONAI's default bias_downsample=True;
        MedicalNet's weights and torchvision have none).
    stride_in_1x1: put a bottleneck's stride on its first 1x1 (v1) instead of the 3x3 (v1.5).
    zero_init_residual: start each residual branch at zero (its last BN, or last conv in v2).
    drop_path_rate: stochastic depth, rising linearly to this rate at the last block.
    drop_rate: dropout before the classifier. num_classes=0 leaves the classifier out.
    spatial_dims: 2 for images (N, C, H, W); 3 for volumes and clips (N, C, D, H, W), where every
        conv, norm and pool is its 3D form and a stride halves depth, height and width.
    conv3d: how a 3D block's 3x3 conv is built (models/ops.py): "full" 3x3x3 (R3D, MedicalNet),
        "mixed" (full in the first stage, 1x3x3 keeping the depth after it: MC3) or "2plus1d"
        (1x3x3 then 3x1x1: R(2+1)D; Tran et al. 2018).
    """

    block: Block
    layers: tuple[int, ...]
    widths: tuple[int, ...] = (64, 128, 256, 512)
    stem: Stem = "imagenet"
    stem_width: int = 64
    shortcut: Shortcut = "B"
    groups: int = 1
    width_per_group: int = 64
    width_factor: int = 1
    preact: bool = False
    avg_down: bool = False
    shortcut_bias: bool = False
    stride_in_1x1: bool = False
    in_chans: int = 3
    num_classes: int = 1000
    zero_init_residual: bool = False
    drop_path_rate: float = 0.0
    drop_rate: float = 0.0
    spatial_dims: int = 2
    conv3d: Conv3d = "full"

    def __post_init__(self) -> None:
        for name in ("layers", "widths"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        _check_types(self)
        _check_values(self)

    @property
    def expansion(self) -> int:
        """Output width of a block divided by its stage width."""
        return 4 if self.block == "bottleneck" else self.width_factor

    @property
    def depth(self) -> int:
        """Weighted layers counted as in the paper: stem conv + block convs + classifier."""
        per_block = 3 if self.block == "bottleneck" else 2
        return 2 + per_block * sum(self.layers)

    @property
    def input_size(self) -> int:
        """The side the net was designed for (timm's default config): 32 for the CIFAR stem,
        224 for the ImageNet and deep stems in 2D; in 3D 112 for video clips (Kinetics) and
        64 for volumes."""
        if self.stem == "cifar":
            return 32
        if self.spatial_dims == 3:
            return 112 if self.stem == "video" else 64
        return 224

    @property
    def input_depth(self) -> int | None:
        """3D: the depth (frames) the net was designed for; 16 for video clips."""
        if self.spatial_dims == 2:
            return None
        return 16 if self.stem == "video" else self.input_size

    def input_extent(self, side: int | None = None, depth: int | None = None) -> tuple[int, ...]:
        """An input's spatial shape: (side, side) in 2D; in 3D (depth, side, side), where a
        volume is a cube unless told and a clip has the net's frames. `side` defaults to
        `input_size`."""
        side = side or self.input_size
        if self.spatial_dims == 2:
            return (side, side)
        return (depth or (self.input_depth if self.stem == "video" else side), side, side)

    @property
    def stem_stride(self) -> int:
        """How much the stem shrinks height and width: 1 for the CIFAR stem, 2 for the video
        stem, 4 for the others."""
        return {"cifar": 1, "video": 2}.get(self.stem, 4)

    @property
    def total_stride(self) -> int:
        """How much the stem and stages shrink the input: the smallest side the net takes
        whole (its last feature map is then 1x1)."""
        return self.stem_stride * 2 ** (len(self.layers) - 1)

    def inner_width(self, stage: int) -> int:
        """Width of the convs inside a block of `stage` (before the expansion)."""
        planes = self.widths[stage]
        if self.block == "basic":
            return planes * self.width_factor
        return planes * self.width_factor * self.width_per_group // 64 * self.groups

    def out_width(self, stage: int) -> int:
        return self.widths[stage] * self.expansion

    def replace(self, **changes: Any) -> ResNetConfig:
        """A copy with some fields changed; unknown field names fail with a suggestion."""
        names = {f.name for f in dataclasses.fields(self)}
        for key in changes:
            if key not in names:
                raise unknown_name("model option", key, names)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResNetConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in names:
                raise unknown_name("model option", key, names)
        return cls(**data)


def _check_types(cfg: ResNetConfig) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        choices = get_args(_LITERALS.get(f.name, ()))
        if choices:
            if value not in choices:
                allowed = ", ".join(repr(c) for c in choices)
                raise ConfigError(f"{f.name}={value!r} is not one of {allowed}")
        elif f.name in ("layers", "widths"):
            if not isinstance(value, tuple) or not all(_is_int(v) and v > 0 for v in value):
                raise ConfigError(f"{f.name} must be a tuple of positive integers, got {value!r}")
        elif f.type == "bool" and not isinstance(value, bool):
            raise ConfigError(f"{f.name} must be true or false, got {value!r}")
        elif f.type == "int" and not _is_int(value):
            raise ConfigError(f"{f.name} must be an integer, got {value!r}")
        elif f.type == "float" and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{f.name} must be a number, got {value!r}")


def _check_values(cfg: ResNetConfig) -> None:
    if not cfg.layers or len(cfg.layers) != len(cfg.widths):
        raise ConfigError(
            f"layers {cfg.layers} and widths {cfg.widths} must be non-empty and of equal length"
        )
    for name in ("stem_width", "groups", "width_per_group", "width_factor", "in_chans"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.num_classes < 0:
        raise ConfigError(f"num_classes must be 0 (no classifier) or more, got {cfg.num_classes}")
    for name in ("drop_path_rate", "drop_rate"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {getattr(cfg, name)}")
    if cfg.block == "basic" and (cfg.groups != 1 or cfg.width_per_group != 64):
        raise ConfigError(
            "basic blocks support only groups=1 and width_per_group=64; "
            "use block='bottleneck' for ResNeXt"
        )
    if cfg.block == "basic" and cfg.stride_in_1x1:
        raise ConfigError("stride_in_1x1 applies to bottleneck blocks only")
    if cfg.block == "bottleneck":
        for stage, planes in enumerate(cfg.widths):
            per_group = planes * cfg.width_factor * cfg.width_per_group
            if per_group % 64:
                raise ConfigError(
                    f"stage {stage + 1} width {planes} is not divisible into {cfg.groups} groups "
                    f"of width {cfg.width_per_group}: {planes} x {cfg.width_per_group} / 64 = "
                    f"{per_group / 64:g} channels per group; use a width that is a multiple of "
                    f"{64 // math.gcd(64, cfg.width_per_group * cfg.width_factor)}"
                )
    _check_dims(cfg)
    if cfg.stem == "deep" and cfg.stem_width % 2:
        raise ConfigError(f"a deep stem needs an even stem_width, got {cfg.stem_width}")
    if cfg.avg_down and cfg.shortcut not in ("B", "C"):
        raise ConfigError(
            f"avg_down needs a projection shortcut ('B' or 'C'), not {cfg.shortcut!r}"
        )
    if cfg.shortcut == "none" and cfg.zero_init_residual:
        raise ConfigError(
            "zero_init_residual needs shortcuts: in a plain network it would zero every block"
        )
    if cfg.shortcut == "none" and cfg.drop_path_rate > 0:
        raise ConfigError("drop_path_rate needs shortcuts: a plain network has no branch to drop")
    if cfg.shortcut == "A":
        widths = [cfg.stem_width] + [cfg.out_width(i) for i in range(len(cfg.widths))]
        for before, after in itertools.pairwise(widths):
            if after < before:
                raise ConfigError(
                    f"shortcut 'A' zero-pads channels and cannot shrink {before} to {after}; "
                    "use shortcut 'B'"
                )


def _check_dims(cfg: ResNetConfig) -> None:
    if cfg.spatial_dims not in (2, 3):
        raise ConfigError(
            f"spatial_dims must be 2 (images) or 3 (volumes, clips), got {cfg.spatial_dims!r}"
        )
    if cfg.spatial_dims == 2 and (cfg.conv3d != "full" or cfg.stem == "video"):
        what = "stem='video'" if cfg.stem == "video" else f"conv3d={cfg.conv3d!r}"
        raise ConfigError(f"{what} is a 3D option; set spatial_dims=3")
    if cfg.conv3d == "2plus1d" and cfg.groups != 1:
        raise ConfigError("conv3d='2plus1d' convs are not grouped; use conv3d='full' for ResNeXt")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_LITERALS = {"block": Block, "stem": Stem, "shortcut": Shortcut, "conv3d": Conv3d}
