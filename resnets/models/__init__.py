"""Models: the config, the blocks, the one ResNet module and the registry of named configs."""

from .config import ResNetConfig
from .registry import MODELS, create_model, get_config, list_models, register
from .resnet import FeatureInfo, ResNet

__all__ = [
    "MODELS",
    "FeatureInfo",
    "ResNet",
    "ResNetConfig",
    "create_model",
    "get_config",
    "list_models",
    "register",
]
