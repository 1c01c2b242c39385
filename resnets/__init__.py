"""resnets: the ResNet family from one declarative config."""

from .errors import ResnetsError
from .models import ResNet, ResNetConfig, create_model, get_config, list_models, register

__version__ = "0.1.0"

__all__ = [
    "ResNet",
    "ResNetConfig",
    "ResnetsError",
    "__version__",
    "create_model",
    "get_config",
    "list_models",
    "register",
]
