"""Building models: a registered name with config overrides and weights, a segmentation model
around one, or whatever a resnets weights file describes. The task heads' modules hold only
their layers; this is where models are put together."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from torch import nn

from ..deprecation import renamed
from ..errors import WeightsError
from .registry import get_config
from .resnet import ResNet
from .segmentation import SegmentationModel
from .weights import load_pretrained, load_state, read_weights


@renamed(name="model")
def create_model(
    model: str, pretrained: str | Path | None = None, *, strict: bool = True, **overrides: Any
) -> ResNet:
    """Build the registered model named `model`; `overrides` change config fields
    (num_classes, in_chans, ...).

    `pretrained` is a weights file (.pth, .pt, .safetensors) in torchvision's, timm's or our
    own key layout, or "torchvision" to download torchvision's ImageNet weights. A different
    num_classes re-initializes the classifier; a different in_chans adapts the first conv.
    """
    net = ResNet(get_config(model).replace(**overrides), name=model)
    if pretrained is not None:
        load_pretrained(net, pretrained, strict=strict)
    return net


@renamed(name="model")
def create_segmentation_model(
    model: str, num_classes: int, *, pretrained: str | Path | None = None, **overrides: Any
) -> SegmentationModel:
    """A registered ResNet as backbone (classification weights load into it) + U-Net decoder."""
    backbone = create_model(model, pretrained=pretrained, num_classes=0, **overrides)
    return SegmentationModel(backbone, num_classes)


def load_model(path: str | Path, **overrides: Any) -> nn.Module:
    """Rebuild the model a resnets weights file describes, with its weights.

    A classifier is a `ResNet`; weights trained with --task segmentation give a
    `SegmentationModel` (the metadata says which)."""
    state, meta = read_weights(path)
    if meta is None:
        raise WeightsError(
            f"{path} carries no resnets metadata; use create_model(NAME, pretrained={str(path)!r})"
        )
    backbone = ResNet(meta.config.replace(**overrides), name=meta.model)
    if meta.task != "segmentation":
        load_state(backbone, state, meta, str(path))
        return backbone
    model = SegmentationModel(backbone, len(meta.classes or []))
    # files from before the backbone had one name called it the encoder
    state = {re.sub(r"^encoder\.", "backbone.", k): v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise WeightsError(f"{path} does not fit {meta.model} segmentation: {first}") from None
    model.weights_meta = meta
    return model
