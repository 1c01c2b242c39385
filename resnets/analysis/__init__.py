"""Inspection: model statistics, the paper's experiments, the table of runs.

The names below are imported on first use (PEP 562), so that `resnets runs` reads run folders
without loading PyTorch.
"""

from importlib import import_module

_HOMES = {"LayerStats": "info", "ModelInfo": "info", "model_info": "info"}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'resnets.analysis' has no attribute {name!r}")
    value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
