"""Named configs: the registry maps a model name to a `ResNetConfig` literal (data, not code)."""

from __future__ import annotations

import fnmatch

from ..deprecation import renamed
from ..errors import UsageError, unknown_name
from .config import ResNetConfig

_B = "bottleneck"

# ImageNet models (He et al. 2015, Table 1), torchvision's v1.5 bottleneck (stride on the 3x3).
_IMAGENET: dict[str, ResNetConfig] = {
    "resnet18": ResNetConfig(block="basic", layers=(2, 2, 2, 2)),
    "resnet34": ResNetConfig(block="basic", layers=(3, 4, 6, 3)),
    "resnet50": ResNetConfig(block=_B, layers=(3, 4, 6, 3)),
    "resnet101": ResNetConfig(block=_B, layers=(3, 4, 23, 3)),
    "resnet152": ResNetConfig(block=_B, layers=(3, 8, 36, 3)),
}
_R = _IMAGENET

# CIFAR models (He et al. 2015, section 4.2): 6n+2 layers, 16/32/64 filters, option A shortcuts.
_CIFAR = ResNetConfig(
    block="basic",
    layers=(3, 3, 3),
    widths=(16, 32, 64),
    stem="cifar",
    stem_width=16,
    shortcut="A",
    num_classes=10,
)
_CIFAR_N = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18, 1202: 200}

# Pre-activation bottleneck nets for CIFAR (He et al. 2016): 9n+2 layers.
_PREACT_CIFAR = _CIFAR.replace(block=_B, shortcut="B", preact=True)

# Wide ResNets for CIFAR (Zagoruyko & Komodakis 2016): WRN-d-k, (d-4)/6 pre-act blocks per stage.
_WRN = _CIFAR.replace(shortcut="B", preact=True)

# 3D ResNets for volumes (CT, MRI): MedicalNet's layouts (Chen et al. 2019; MONAI's
# resnet10..200 with conv1_t_stride=2, bias_downsample=False): 7x7x7/2 stem + max-pool, every
# layer 3D. 400 outputs, as MONAI's default (Kinetics); training sets the data's count.
_VOLUME_LAYERS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3),
                  101: (3, 4, 23, 3), 152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}  # fmt: skip
_VOLUMES = {
    f"resnet{d}_3d": ResNetConfig(
        block="basic" if d < 50 else _B, layers=n, spatial_dims=3, num_classes=400
    )
    for d, n in _VOLUME_LAYERS.items()
}

# Video ResNets (Tran et al. 2018; torchvision.models.video): the 3x7x7 video stem, basic
# blocks; full 3D convs (R3D), full then 1x3x3 (MC3), or factored 1x3x3 + 3x1x1 (R(2+1)D).
_R3D = _R["resnet18"].replace(stem="video", spatial_dims=3, num_classes=400)
_VIDEO = {
    "r3d_18": _R3D,
    "mc3_18": _R3D.replace(conv3d="mixed"),
    "r2plus1d_18": _R3D.replace(conv3d="2plus1d"),
}

MODELS: dict[str, ResNetConfig] = {
    **_IMAGENET,
    "resnext50_32x4d": _R["resnet50"].replace(groups=32, width_per_group=4),
    "resnext101_32x8d": _R["resnet101"].replace(groups=32, width_per_group=8),
    "resnext101_64x4d": _R["resnet101"].replace(groups=64, width_per_group=4),
    "wide_resnet50_2": _R["resnet50"].replace(width_factor=2),
    "wide_resnet101_2": _R["resnet101"].replace(width_factor=2),
    # Bag of Tricks (He et al. 2019): B = stride on the 3x3, C = deep stem,
    # D = C + average-pool shortcut.
    "resnet50b": _R["resnet50"],
    "resnet50c": _R["resnet50"].replace(stem="deep"),
    "resnet50d": _R["resnet50"].replace(stem="deep", avg_down=True),
    "resnet18d": _R["resnet18"].replace(stem="deep", avg_down=True),
    "resnet34d": _R["resnet34"].replace(stem="deep", avg_down=True),
    "resnet101d": _R["resnet101"].replace(stem="deep", avg_down=True),
    # The paper's plain ImageNet baselines (Table 2).
    "plain18": _R["resnet18"].replace(shortcut="none"),
    "plain34": _R["resnet34"].replace(shortcut="none"),
    **{f"preact_{n}": c.replace(preact=True) for n, c in _IMAGENET.items()},
    **{f"resnet{d}": _CIFAR.replace(layers=(n,) * 3) for d, n in _CIFAR_N.items()},
    **{
        f"plain{d}": _CIFAR.replace(layers=(n,) * 3, shortcut="none")
        for d, n in _CIFAR_N.items()
        if d != 1202  # the paper trains no plain-1202
    },
    "preact_resnet164": _PREACT_CIFAR.replace(layers=(18,) * 3),
    "preact_resnet1001": _PREACT_CIFAR.replace(layers=(111,) * 3),
    "wrn16_8": _WRN.replace(layers=(2,) * 3, width_factor=8),
    "wrn28_10": _WRN.replace(layers=(4,) * 3, width_factor=10),
    "wrn40_4": _WRN.replace(layers=(6,) * 3, width_factor=4),
    **_VOLUMES,
    **_VIDEO,
}


@renamed(name="model")
def register(model: str, config: ResNetConfig, *, overwrite: bool = False) -> None:
    """Add `config` to the registry as the model named `model` (user-defined variants)."""
    if model in MODELS and not overwrite:
        raise UsageError(
            f"model {model!r} is already registered; pass overwrite=True to replace it"
        )
    MODELS[model] = config


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern, e.g. 'resnet*' or '*wide*'."""
    return sorted(n for n in MODELS if fnmatch.fnmatch(n, pattern))


@renamed(name="model")
def get_config(model: str) -> ResNetConfig:
    """The config of the registered model named `model`."""
    if model not in MODELS:
        raise unknown_name("model", model, MODELS)
    return MODELS[model]
