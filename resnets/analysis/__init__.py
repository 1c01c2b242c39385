"""Inspection: model statistics, the paper's experiments and plots."""

from .info import LayerStats, ModelInfo, model_info

__all__ = ["LayerStats", "ModelInfo", "model_info"]
