"""State-dict key conversion between our layout and torchvision's / timm's.

torchvision and timm's `resnet.py` share one layout (`conv1`, `bn1`, `layer1.0.conv1`,
`downsample.0`, `fc`); timm adds `conv1.0/.1/.3/.4/.6` for the deep stem and shifts
`downsample` indices by one for the average-pool shortcut. timm's pre-activation
`resnetv2.py` uses `stages.0.blocks.0.norm1`, `downsample.conv`, `norm`, `head.fc`. Ours is
`stem`, `stages.0.0`, `shortcut.conv/bn`, `norm.bn`, `fc`. torchvision's video ResNets
(`r3d_18`, `mc3_18`, `r2plus1d_18`) wrap each conv with its BN in a Sequential (`stem.0/.1`,
`layer1.0.conv1.0/.1`; a (2+1)D conv is itself `conv1.0.0/.1/.3`). MONAI's 3D ResNets use
torchvision's 2D names. The rules below are the whole mapping, in both directions.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from ..errors import WeightsError
from .config import ResNetConfig

StateDict = dict[str, torch.Tensor]

_OURS_BLOCK = re.compile(r"^stages\.(\d+)\.(\d+)\.(.*)$")
_THEIRS_BLOCK = re.compile(r"^layer(\d+)\.(\d+)\.(.*)$")
_TIMM_V2_BLOCK = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.(.*)$")

# timm resnetv2 (pre-activation) -> ours, inside a block and outside the stages.
_TIMM_V2_IN_BLOCK = {
    "norm1.": "bn1.",
    "norm2.": "bn2.",
    "norm3.": "bn3.",
    "downsample.": "shortcut.",
}
_TIMM_V2_OUTSIDE = {"stem.conv.": "stem.conv.", "norm.": "norm.bn.", "head.fc.": "fc."}


def _stem_rules(cfg: ResNetConfig) -> dict[str, str]:
    if cfg.stem == "deep":
        return {
            "stem.conv1.": "conv1.0.",
            "stem.bn1.": "conv1.1.",
            "stem.conv2.": "conv1.3.",
            "stem.bn2.": "conv1.4.",
            "stem.conv3.": "conv1.6.",
            "stem.bn3.": "bn1.",
        }
    return {"stem.conv.": "conv1.", "stem.bn.": "bn1."}


def _shortcut_rules(cfg: ResNetConfig) -> dict[str, str]:
    first = 1 if cfg.avg_down else 0  # timm puts the pool at downsample.0
    return {"shortcut.conv.": f"downsample.{first}.", "shortcut.bn.": f"downsample.{first + 1}."}


def _video_stem_rules(cfg: ResNetConfig) -> dict[str, str]:
    if cfg.conv3d == "2plus1d":
        return {
            "stem.conv.spatial.": "stem.0.",
            "stem.conv.bn.": "stem.1.",
            "stem.conv.temporal.": "stem.3.",
            "stem.bn.": "stem.4.",
        }
    return {"stem.conv.": "stem.0.", "stem.bn.": "stem.1."}


def _video_block_rules(cfg: ResNetConfig) -> dict[str, str]:
    """Ours -> torchvision's inside a video block: convI.0 is the conv, convI.1 its BN."""
    rules = {}
    factored = (2,) if cfg.block == "bottleneck" else (1, 2)  # the 3x3 convs
    for i in (1, 2, 3) if cfg.block == "bottleneck" else (1, 2):
        if cfg.conv3d == "2plus1d" and i in factored:
            rules |= {
                f"conv{i}.spatial.": f"conv{i}.0.0.",
                f"conv{i}.bn.": f"conv{i}.0.1.",
                f"conv{i}.temporal.": f"conv{i}.0.3.",
            }
        else:
            rules[f"conv{i}."] = f"conv{i}.0."
        rules[f"bn{i}."] = f"conv{i}.1."
    return rules | {"shortcut.conv.": "downsample.0.", "shortcut.bn.": "downsample.1."}


def _rename(key: str, rules: dict[str, str]) -> str | None:
    for src, dst in rules.items():
        if key.startswith(src):
            return dst + key[len(src) :]
    return None


def layout_of(state_dict: StateDict) -> str:
    """'resnets', 'torchvision' (also timm's resnet.py and MONAI's 3D ResNets), 'timm-v2'
    (timm's resnetv2.py) or 'torchvision-video' (torchvision.models.video)."""
    keys = list(state_dict)
    if any(_TIMM_V2_BLOCK.match(k) for k in keys):
        return "timm-v2"
    if "stem.0.weight" in state_dict and any(k.startswith("layer1.") for k in keys):
        return "torchvision-video"
    if any(k.startswith("stages.") for k in keys) and any(k.startswith("stem.") for k in keys):
        return "resnets"
    if any(k.startswith("layer1.") for k in keys):
        return "torchvision"
    shown = ", ".join(keys[:4]) or "no tensors at all"
    raise WeightsError(f"not a ResNet state_dict: keys start with {shown}")


def from_torchvision(state_dict: StateDict, cfg: ResNetConfig) -> StateDict:
    """torchvision / timm ResNet keys -> ours."""
    if cfg.preact:
        raise WeightsError("torchvision and timm's resnet.py have no pre-activation ResNet")
    stem = {v: k for k, v in _stem_rules(cfg).items()} | {"fc.": "fc."}
    shortcut = {v: k for k, v in _shortcut_rules(cfg).items()}
    out: StateDict = {}
    for key, value in state_dict.items():
        m = _THEIRS_BLOCK.match(key)
        if m:
            stage, block, rest = int(m[1]) - 1, m[2], m[3]
            rest = _rename(rest, shortcut) or rest
            out[f"stages.{stage}.{block}.{rest}"] = value
        else:
            out[_rename(key, stem) or key] = value
    return out


def to_torchvision(state_dict: StateDict, cfg: ResNetConfig) -> StateDict:
    """Our keys -> torchvision's (with timm's names for the deep stem and avg-pool shortcut;
    torchvision.models.video's for nets with the video stem)."""
    if cfg.preact:
        raise WeightsError("torchvision and timm's resnet.py have no pre-activation ResNet")
    if cfg.stem == "video":
        return to_torchvision_video(state_dict, cfg)
    stem = _stem_rules(cfg) | {"fc.": "fc."}
    return _map_keys(
        state_dict,
        _OURS_BLOCK,
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.",
        _shortcut_rules(cfg),
        stem,
        "torchvision counterpart",
    )


def from_torchvision_video(state_dict: StateDict, cfg: ResNetConfig) -> StateDict:
    """torchvision video ResNet keys -> ours."""
    _check_video(cfg)
    in_block = {v: k for k, v in _video_block_rules(cfg).items()}
    outside = {v: k for k, v in _video_stem_rules(cfg).items()} | {"fc.": "fc."}
    return _map_keys(
        state_dict,
        _THEIRS_BLOCK,
        lambda m: f"stages.{int(m[1]) - 1}.{m[2]}.",
        in_block,
        outside,
        "counterpart in our layout",
    )


def to_torchvision_video(state_dict: StateDict, cfg: ResNetConfig) -> StateDict:
    """Our keys -> torchvision video ResNet's."""
    _check_video(cfg)
    return _map_keys(
        state_dict,
        _OURS_BLOCK,
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.",
        _video_block_rules(cfg),
        _video_stem_rules(cfg) | {"fc.": "fc."},
        "torchvision video counterpart",
    )


def _check_video(cfg: ResNetConfig) -> None:
    if cfg.stem != "video" or cfg.preact:
        raise WeightsError(
            "torchvision's video layout holds 3D nets with the video stem "
            "(r3d_18, mc3_18, r2plus1d_18 and their kin)"
        )


def from_timm_v2(state_dict: StateDict, cfg: ResNetConfig) -> StateDict:
    """timm resnetv2 (pre-activation) keys -> ours; its classifier is a 1x1 conv."""
    out = _map_keys(
        state_dict,
        _TIMM_V2_BLOCK,
        lambda m: f"stages.{m[1]}.{m[2]}.",
        _TIMM_V2_IN_BLOCK,
        _TIMM_V2_OUTSIDE,
        "counterpart in the other layout",
    )
    if "fc.weight" in out:
        out["fc.weight"] = out["fc.weight"].flatten(1)
    return out


def to_timm_v2(state_dict: StateDict, cfg: ResNetConfig) -> StateDict:
    """Our pre-activation keys -> timm resnetv2's."""
    if not cfg.preact or cfg.stem != "imagenet":
        raise WeightsError("timm's resnetv2 layout holds pre-activation nets with the 7x7 stem")
    in_block = {v: k for k, v in _TIMM_V2_IN_BLOCK.items()}
    outside = {v: k for k, v in _TIMM_V2_OUTSIDE.items()}
    out = _map_keys(
        state_dict,
        _OURS_BLOCK,
        lambda m: f"stages.{m[1]}.blocks.{m[2]}.",
        in_block,
        outside,
        "counterpart in the other layout",
    )
    if "head.fc.weight" in out:
        out["head.fc.weight"] = out["head.fc.weight"][:, :, None, None]
    return out


def _map_keys(
    state_dict: StateDict,
    block: re.Pattern[str],
    block_prefix: Callable[[re.Match[str]], str],
    in_block: dict[str, str],
    outside: dict[str, str],
    missing: str,
) -> StateDict:
    """Rename every key: block keys to `block_prefix(match)` plus their renamed rest, other
    keys by the `outside` rules; a key no rule covers has no `missing` (an error)."""
    out: StateDict = {}
    for key, value in state_dict.items():
        m = block.match(key)
        if m:
            out[block_prefix(m) + (_rename(m[3], in_block) or m[3])] = value
        else:
            renamed = _rename(key, outside)
            if renamed is None:
                raise WeightsError(f"key {key!r} has no {missing}")
            out[renamed] = value
    return out


def to_resnets(state_dict: StateDict, cfg: ResNetConfig) -> StateDict:
    """Any supported layout -> ours."""
    layout = layout_of(state_dict)
    if layout == "timm-v2":
        return from_timm_v2(state_dict, cfg)
    if layout == "torchvision":
        return from_torchvision(state_dict, cfg)
    if layout == "torchvision-video":
        return from_torchvision_video(state_dict, cfg)
    return dict(state_dict)
