"""resnets: the ResNet family from one declarative config."""

from .classifier import ImageClassifier
from .errors import ResnetsError
from .infer import evaluate, predict
from .models import ResNet, ResNetConfig, create_model, get_config, list_models, register
from .models.weights import load_model, save_weights
from .train import TrainConfig, train

__version__ = "0.1.0"

__all__ = [
    "ImageClassifier",
    "ResNet",
    "ResNetConfig",
    "ResnetsError",
    "TrainConfig",
    "__version__",
    "create_model",
    "evaluate",
    "get_config",
    "list_models",
    "load_model",
    "predict",
    "register",
    "save_weights",
    "train",
]
