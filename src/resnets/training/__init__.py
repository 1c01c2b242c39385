"""Training: config and recipes, the loop, checkpoints, run folders, distributed setup.

The names below are imported on first use (PEP 562): the CLI reads `training.config` to build
its flags without loading PyTorch through the loop.
"""

from ..lazy import lazy_names

_HOMES = {"TrainConfig": "config", "resolve": "config", "RECIPES": "recipes", "train": "loop"}

__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_names(__name__, _HOMES)
