"""Metrics computed by resnets equal scikit-learn's on the same predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score, recall_score, roc_auc_score

from resnets.metrics import (
    average_precision,
    best_thresholds,
    binary_accuracy,
    expected_calibration_error,
    f1_scores,
    macro,
    one_vs_rest_auc,
    roc_auc,
    sensitivity_specificity,
    shown_cut,
    youden_threshold,
)

from .helpers import numpy_ece


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


def _softmax_outputs(n: int, classes: int, seed: int, sharp: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    logits = torch.randn(n, classes, generator=g) * sharp
    logits[torch.arange(n), labels] += 1.0  # better than chance, not perfect
    return logits.softmax(1), labels


@pytest.mark.parametrize("seed", range(3))
def test_one_vs_rest_auc_equals_scikit_learn(seed):
    probs, labels = _softmax_outputs(300, 5, seed)
    auc = one_vs_rest_auc(probs, labels)
    for c in range(5):
        assert auc[c] == pytest.approx(roc_auc_score(labels == c, probs[:, c]), abs=1e-12)
    theirs = roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    assert macro(auc) == pytest.approx(theirs, abs=1e-12)


def test_one_vs_rest_auc_of_a_class_absent_from_the_labels_is_undefined():
    probs, labels = _softmax_outputs(100, 4, 0)
    labels[labels == 3] = 0
    auc = one_vs_rest_auc(probs, labels)
    assert math.isnan(auc[3]) and not any(math.isnan(a) for a in auc[:3])
    with pytest.raises(ValueError):  # scikit-learn refuses such a split outright
        roc_auc_score(labels, probs, multi_class="ovr")


@pytest.mark.parametrize("seed", range(3))
def test_ece_equals_the_formula_computed_directly(seed):
    probs, labels = _softmax_outputs(500, 6, seed)
    p, y = probs.double().numpy(), labels.numpy()
    for bins in (15, 10):
        ours = expected_calibration_error(probs, labels, bins)
        assert ours == pytest.approx(numpy_ece(p, y, bins), abs=1e-12)
    assert expected_calibration_error(probs, labels) == pytest.approx(numpy_ece(p, y), abs=1e-12)


def test_ece_is_large_for_an_over_confident_model_and_small_for_a_calibrated_one():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (2000,), generator=g)
    guess = torch.randint(0, 4, (2000,), generator=g)  # right a quarter of the time
    sure = torch.full((2000, 4), 0.01 / 3).scatter_(1, guess[:, None], 0.99)
    ece = expected_calibration_error(sure, labels)
    assert ece == pytest.approx(numpy_ece(sure.double().numpy(), labels.numpy()), abs=1e-12)
    assert ece > 0.6  # 99 % sure, about 25 % right
    probs, _ = _softmax_outputs(20000, 4, 1)
    honest = torch.multinomial(probs, 1, generator=g)[:, 0]  # labels drawn from the outputs
    assert expected_calibration_error(probs, honest) < 0.03


def test_sensitivity_and_specificity_equal_the_recall_of_each_class():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (300,), generator=g)
    positive = (torch.rand(300, generator=g) + 0.3 * labels).clamp(max=1)
    for cut in (0.3, 0.5, 0.8):
        said = (positive >= cut).numpy()
        sensitivity, specificity = sensitivity_specificity(positive, labels, cut)
        assert sensitivity == pytest.approx(recall_score(labels, said, pos_label=1), abs=1e-12)
        assert specificity == pytest.approx(recall_score(labels, said, pos_label=0), abs=1e-12)
    assert math.isnan(sensitivity_specificity(positive, torch.zeros(300), 0.5)[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_youden_threshold_reaches_the_best_j_of_scikit_learns_roc_curve(seed):
    from sklearn.metrics import roc_curve

    gen = torch.Generator().manual_seed(seed)
    labels = (torch.rand(300, generator=gen) < 0.3).long()
    scores = (torch.rand(300, generator=gen) + 0.4 * labels).clamp(0, 1)
    scores = (scores * 20).round() / 20  # ties, as a model's outputs have
    fpr, tpr, _ = roc_curve(labels.numpy(), scores.numpy())
    cut = youden_threshold(scores, labels)
    said = (scores >= cut).numpy()
    j = recall_score(labels, said, pos_label=1) + recall_score(labels, said, pos_label=0) - 1
    assert j == pytest.approx(float(np.max(tpr - fpr)))
    assert cut not in set(scores.tolist())  # half-way between two outputs, not on one
    accuracy, balanced = binary_accuracy(scores, labels, cut)
    assert balanced == pytest.approx((j + 1) / 2)
    assert accuracy == pytest.approx(float((said == labels.numpy()).mean()))


def test_youden_threshold_is_one_half_without_both_classes():
    assert youden_threshold(torch.rand(10), torch.ones(10, dtype=torch.long)) == 0.5


@pytest.mark.parametrize(
    ("cut", "shown"),
    [(0.5, "0.500"), (0.001, "0.001"), (0.00012, "1.20e-04"), (0.99995, "1 - 5.00e-05")],
)
def test_a_threshold_near_0_or_1_is_printed_with_the_digits_that_tell_it_apart(cut, shown):
    assert shown_cut(cut) == shown
