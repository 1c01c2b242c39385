"""Pretraining: every method learns, a collapse stops the run, a resumed run equals an
uninterrupted one, and the backbone file reproduces its kNN figure."""

from __future__ import annotations

import functools

import pytest
import torch
from safetensors.torch import load_file

import resnets
from resnets.errors import TrainingError
from resnets.fewlabels import methods, pretrain_setup, pretraining
from resnets.fewlabels.features import run_options, source_features
from resnets.fewlabels.monitor import knn_top1
from resnets.models import load_model
from tests.helpers import QUIET

SMALL = {"data": "digits", "classes": "0,1,2,3,4", "batch_size": 64, "threads": 1, **QUIET}


@pytest.mark.parametrize("method", ["simclr", "moco", "byol", "simsiam", "barlow", "vicreg"])
def test_every_method_learns_features_the_knn_monitor_sees(method, tmp_path):
    summary = resnets.pretrain(method, out=str(tmp_path / method), epochs=4, seed=0, **SMALL)
    history = [r for r in _rows(tmp_path / method)]
    assert len(history) == 4 and summary["epochs"] == 4
    assert float(history[-1]["train_loss"]) < float(history[0]["train_loss"])
    assert summary["val_knn"] > 60  # 5 classes: chance is 20 %
    assert summary["spread"] > 0.05
    weights = load_file(tmp_path / method / "best.safetensors")
    assert not any(k.startswith(("fc.", "projector", "online")) for k in weights)


def _rows(run):
    import csv

    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_simsiam_without_its_stop_gradient_collapses_and_is_stopped(tmp_path, monkeypatch):
    broken = functools.partial(pretrain_setup.Method, stop_gradient=False)
    monkeypatch.setattr(pretrain_setup, "Method", broken)
    with pytest.raises(TrainingError, match="collapsed"):
        resnets.pretrain("simsiam", out=str(tmp_path / "r"), epochs=10, lr=0.3, **SMALL)
    assert (tmp_path / "r" / "last.pt").is_file()  # what it learnt until then is kept


class StopAfterFirstEpoch(pretraining.StopRequest):
    @property
    def requested(self):
        return True

    @requested.setter
    def requested(self, value):
        pass


@pytest.mark.parametrize("method", ["moco", "byol"])
def test_a_resumed_run_equals_the_uninterrupted_one(method, tmp_path, monkeypatch):
    """MoCo and BYOL: the momentum encoder, the queue and the views all resume."""
    options = {"epochs": 3, "seed": 1, **SMALL}
    whole = resnets.pretrain(method, out=str(tmp_path / "whole"), **options)
    with monkeypatch.context() as m:
        m.setattr(pretraining, "StopRequest", StopAfterFirstEpoch)
        with pytest.raises(resnets.ResnetsError, match="stopped after epoch 1"):
            resnets.pretrain(method, out=str(tmp_path / "cut"), **options)
    resumed = resnets.pretrain(resume=str(tmp_path / "cut"), **QUIET)
    assert resumed["val_knn"] == whole["val_knn"]
    a, b = (torch.load(tmp_path / n / "last.pt", weights_only=True) for n in ("whole", "cut"))
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [r["train_loss"] for r in _rows(tmp_path / "whole")] == [
        r["train_loss"] for r in _rows(tmp_path / "cut")
    ]


def test_the_backbone_file_reproduces_the_knn_figure(tmp_path):
    run = tmp_path / "r"
    summary = resnets.pretrain("simclr", out=str(run), epochs=2, seed=0, **SMALL)
    backbone = load_model(run / "best.safetensors")
    assert backbone.config.num_classes == 0
    meta = backbone.weights_meta
    device = torch.device("cpu")
    bank = source_features(backbone, meta, run_options(run, None, meta), device, splits=("train",))
    val = source_features(backbone, meta, run_options(run, None, meta), device, splits=("val",))
    found = knn_top1(bank.vectors, bank.labels, val.vectors, val.labels, 200)
    assert found == pytest.approx(summary["val_knn"], abs=100 / len(val.labels) + 1e-9)


def _chunked(self, x):
    """One process's forward with BatchNorm over each half of the batch: what each of two
    torchrun processes computes (BatchNorm is per process there)."""
    return torch.cat([self.projector(self.features(part)) for part in x.chunk(2)])


@pytest.mark.slow
@pytest.mark.parametrize(("method", "steps"), [("simclr", 2), ("moco", 2), ("barlow", 1)])
def test_two_processes_pretrain_as_one_with_the_same_global_batch(
    method, steps, tmp_path, monkeypatch
):
    """The negatives (SimCLR), the queue's keys (MoCo) and the batch statistics (Barlow
    Twins) are gathered from both processes, with their gradients: the same weights to 1e-7
    after two steps (the second reads MoCo's queue of the first's keys), where BatchNorm over
    the whole batch instead of its halves differs by 1e-2 (measured). Later steps drift apart
    by float rounding, amplified most by Barlow Twins (8e-3 after its second step)."""
    from tests.training.test_distributed import assert_close, one_thread, params, torchrun

    options = {"method": method, "steps": steps, "seed": 2, "deterministic": True, **SMALL}
    options.pop("threads")
    torchrun(2, out=tmp_path / "two", **options)
    monkeypatch.setattr(methods.Encoder, "forward", _chunked)
    with one_thread():
        resnets.pretrain(out=str(tmp_path / "one"), **options)
    two, one = params(tmp_path / "two"), params(tmp_path / "one")
    assert two.keys() == one.keys()
    assert_close(two, one, tol=1e-5)
