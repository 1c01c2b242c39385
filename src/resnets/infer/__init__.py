"""Inference: evaluate weights on a dataset, predict and explain image files, export."""

from .evaluate import EvalReport, evaluate
from .explain import ExplainResult, Explanation, explain
from .predict import Prediction, PredictResult, predict

__all__ = [
    "EvalReport",
    "ExplainResult",
    "Explanation",
    "PredictResult",
    "Prediction",
    "evaluate",
    "explain",
    "predict",
]
