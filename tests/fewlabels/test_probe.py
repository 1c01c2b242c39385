"""resnets probe: N labels per class, scored as mean ± 95 % CI over seeded draws; and the
pretrained backbone as train's --pretrained, its own mean and std kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

import resnets
from resnets.fewlabels.probe import _draw, probe
from tests.helpers import QUIET


@pytest.fixture(scope="module")
def backbone_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("probe") / "simclr"
    resnets.pretrain("simclr", out=str(run), epochs=2, seed=0, batch_size=64, threads=1, **QUIET)
    return run


def test_draws_are_seeded_and_take_n_per_class():
    labels = torch.arange(4).repeat_interleave(10)
    first, again = _draw(labels, 3, 2, 0, list("abcd")), _draw(labels, 3, 2, 0, list("abcd"))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], first[1])
    for index in first:
        assert torch.bincount(labels[index]).tolist() == [3, 3, 3, 3]


def test_the_pixel_baseline_is_scikit_learns_logistic_regression_on_the_same_draws(
    backbone_run, tmp_path
):
    from sklearn.linear_model import LogisticRegression

    from resnets.data import load_splits
    from resnets.fewlabels.features import run_options
    from resnets.models import load_model

    report = probe(backbone_run, per_class=(1, 5), draws=3, train_models=False, out=tmp_path)
    assert set(report.results) == {"linear", "pixels"}
    assert all(len(r["accuracies"]) == 3 for by in report.results.values() for r in by.values())
    meta = load_model(backbone_run / "best.safetensors").weights_meta
    opts = run_options(backbone_run, None, meta)
    splits = load_splits(opts, seed=0, normalization=(meta.mean, meta.std))
    train, test = splits.tensors("train"), splits.tensors("test")

    def pixels(t):  # normalized as the loaders normalize, then L2
        x = (t.images.float() / 255 - meta.mean[0]) / meta.std[0]
        return F.normalize(x.flatten(1).double(), dim=1).numpy()

    x, xt = pixels(train), pixels(test)
    for index, ours in zip(
        _draw(train.labels, 5, 3, 0, splits.classes),
        report.results["pixels"][5]["accuracies"],
        strict=True,
    ):
        head = LogisticRegression(C=1.0, max_iter=1000, tol=1e-8).fit(x[index], train.labels[index])
        assert np.mean(head.predict(xt) == test.labels.numpy()) == pytest.approx(
            ours, abs=2 / len(xt)
        )
    again = probe(backbone_run, per_class=(1, 5), draws=3, train_models=False, out=tmp_path)
    assert again.results["linear"] == report.results["linear"]


def test_fine_tune_and_scratch_train_on_the_drawn_labels(backbone_run, tmp_path):
    report = probe(backbone_run, per_class=(2,), draws=1, epochs=2, out=tmp_path)
    assert set(report.results) == {"linear", "pixels", "finetune", "scratch"}
    for name in ("finetune", "scratch"):
        assert 0 < report.results[name][2]["accuracies"][0] <= 1


def test_train_from_a_pretrain_run_keeps_its_mean_and_std(backbone_run, tmp_path):
    summary = resnets.train(
        pretrained=str(backbone_run), out=str(tmp_path / "t"), epochs=1, **QUIET
    )
    assert "normalization: the weights' own mean and std" in summary["notes"]
    saved = yaml.safe_load((tmp_path / "t" / "config.yaml").read_text())
    assert saved["normalize"] == "weights"
    tuned = resnets.load_model(tmp_path / "t" / "best.safetensors").weights_meta
    own = resnets.load_model(backbone_run / "best.safetensors").weights_meta
    assert tuned.mean == own.mean and tuned.std == own.std


def test_evaluate_refuses_a_backbone_and_says_what_to_do(backbone_run):
    with pytest.raises(resnets.ResnetsError, match=r"backbone without a classifier.*--pretrained"):
        resnets.evaluate(backbone_run)
