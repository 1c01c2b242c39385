"""Inspection: model statistics, the paper's experiments, the table of runs.

The names below are imported on first use (PEP 562), so that `resnets runs` reads run folders
without loading PyTorch.
"""

from ..lazy import lazy_names

_HOMES = {"LayerStats": "info", "ModelInfo": "info", "model_info": "info"}

__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_names(__name__, _HOMES)
