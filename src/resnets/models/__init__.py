"""Models: the config, the blocks, the one ResNet module, the registry of named configs, and
the factory that builds them (with weights, or around a task head)."""

from .config import ResNetConfig
from .factory import create_model, create_segmentation_model, load_model
from .registry import MODELS, get_config, list_models, register
from .resnet import FeatureInfo, ResNet

__all__ = [
    "MODELS",
    "FeatureInfo",
    "ResNet",
    "ResNetConfig",
    "create_model",
    "create_segmentation_model",
    "get_config",
    "list_models",
    "load_model",
    "register",
]
