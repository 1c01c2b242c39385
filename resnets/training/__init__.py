"""Training: config and recipes, the loop, checkpoints, run folders, distributed setup."""

from .config import TrainConfig, resolve
from .loop import train
from .recipes import RECIPES

__all__ = ["RECIPES", "TrainConfig", "resolve", "train"]
