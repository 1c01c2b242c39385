"""Training: config and recipes, the loop, checkpoints, run folders, distributed setup.

The names below are imported on first use (PEP 562): the CLI reads `training.config` to build
its flags without loading PyTorch through the loop.
"""

from importlib import import_module

_HOMES = {"TrainConfig": "config", "resolve": "config", "RECIPES": "recipes", "train": "loop"}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'resnets.training' has no attribute {name!r}")
    value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
