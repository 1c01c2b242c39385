"""Inference: evaluate weights on a dataset, predict image files, export."""

from .evaluate import EvalReport, evaluate
from .predict import Prediction, PredictResult, predict

__all__ = ["EvalReport", "PredictResult", "Prediction", "evaluate", "predict"]
