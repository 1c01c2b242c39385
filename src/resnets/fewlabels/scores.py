"""Accuracies over repeated draws (episodes, sets of labelled images) as their users read
them: the mean with a 95 % confidence interval over the draws, 1.96 x the standard deviation
/ sqrt(draws), in percent."""

from __future__ import annotations

import math

import torch


def mean_ci(accuracies: list[float]) -> dict:
    """{"mean", "ci95", "accuracies"}: `accuracies` (fractions) in percent."""
    t = torch.tensor(accuracies, dtype=torch.float64) * 100
    ci = 1.96 * float(t.std()) / math.sqrt(len(t)) if len(t) > 1 else float("nan")
    return {"mean": float(t.mean()), "ci95": ci, "accuracies": list(accuracies)}


def cell(result: dict | None) -> str:
    """'85.2 ± 2.2 %', or nothing where there is no result."""
    return "" if result is None else f"{result['mean']:.1f} ± {result['ci95']:.1f} %"
