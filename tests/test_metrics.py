"""Metrics computed by resnets equal scikit-learn's on the same predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from resnets.metrics import average_precision, best_thresholds, f1_scores, roc_auc


@pytest.mark.parametrize("seed", range(5))
def test_auc_ap_and_f1_equal_scikit_learn_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    targets = (torch.rand(200, 4, generator=g) < 0.3).float()
    scores = (torch.rand(200, 4, generator=g) * 10).round() / 10 + targets * 0.2  # many ties
    for j in range(4):
        t, s = targets[:, j].numpy(), scores[:, j].numpy()
        assert roc_auc(scores[:, j], targets[:, j]) == pytest.approx(roc_auc_score(t, s), abs=1e-12)
        ap = average_precision(scores[:, j], targets[:, j])
        assert ap == pytest.approx(average_precision_score(t, s), abs=1e-12)
    cut = torch.tensor([0.3, 0.5, 0.7, 0.9])
    ours = f1_scores(scores, targets, cut).numpy()
    theirs = [f1_score(targets[:, j], scores[:, j] >= cut[j]) for j in range(4)]
    assert np.allclose(ours, theirs)


def test_undefined_metrics_are_nan_and_thresholds_maximise_f1():
    assert math.isnan(roc_auc(torch.rand(5), torch.ones(5)))
    assert math.isnan(average_precision(torch.rand(5), torch.zeros(5)))
    probs = torch.tensor([[0.1], [0.35], [0.4], [0.8]])
    targets = torch.tensor([[0.0], [1.0], [1.0], [1.0]])
    cut = best_thresholds(probs, targets)
    assert 0.1 < float(cut[0]) <= 0.35  # all three positives, no negative
    assert f1_scores(probs, targets, cut).item() == 1.0
