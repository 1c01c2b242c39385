"""Few-shot episodes: drawn reproducibly, classified inductively, scored over episodes."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F

from resnets import fewshot, train
from resnets.errors import UsageError
from resnets.fewlabels.classifiers import logistic, nearest_prototype, prototypes, simpleshot
from resnets.fewlabels.episodes import draw_episodes
from resnets.fewlabels.features import embed
from resnets.models import create_model
from tests.helpers import QUIET

CLASSIFIERS = {
    "protonet": nearest_prototype,
    "simpleshot": simpleshot(torch.full((6,), 0.3)),
    "simpleshot-support": simpleshot(None),
    "logistic": logistic,
}


def test_episodes_are_reproducible_and_well_formed():
    labels = torch.arange(7).repeat_interleave(30)
    first = draw_episodes(labels, way=5, shot=3, queries=4, count=20, seed=1)
    again = draw_episodes(labels, way=5, shot=3, queries=4, count=20, seed=1)
    other = draw_episodes(labels, way=5, shot=3, queries=4, count=20, seed=2)
    assert all(torch.equal(a.query, b.query) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a.query, b.query) for a, b in zip(first, other, strict=True))
    for e in first:
        assert len(set(e.classes)) == 5 and len(e.support) == 15 and len(e.query) == 20
        assert not set(e.support.tolist()) & set(e.query.tolist())
        drawn = torch.tensor(e.classes)
        assert torch.equal(labels[e.support], drawn[e.support_labels])
        assert torch.equal(labels[e.query], drawn[e.query_labels])


def test_prototypes_by_hand():
    support = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [12.0, 10.0]]])
    labels = torch.tensor([[0, 0, 1, 1]])
    assert torch.equal(prototypes(support, labels), torch.tensor([[[1.0, 0.0], [11.0, 10.0]]]))
    query = torch.tensor([[[5.0, 4.0], [7.0, 6.0], [1.0, 1.0]]])  # 5,4 is nearer (1, 0)
    assert nearest_prototype(support, labels, query).tolist() == [[0, 1, 0]]


def _episodes(count: int, seed: int = 0):
    """`count` 5-way 2-shot episodes of 6-d features, 25 queries each."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(5).repeat_interleave(2).expand(count, -1)
    support = torch.randn(count, 10, 6, generator=g) + labels[..., None]
    return support, labels, torch.randn(count, 25, 6, generator=g) * 2


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_a_query_answer_ignores_the_other_queries_and_episodes(name):
    classify = CLASSIFIERS[name]
    support, labels, query = _episodes(3)
    together = classify(support, labels, query)
    order = torch.randperm(25)
    assert torch.equal(classify(support, labels, query[:, order]), together[:, order])
    alone = torch.cat([classify(support, labels, query[:, i : i + 1]) for i in range(25)], 1)
    assert torch.equal(alone, together)
    assert torch.equal(classify(support[1:2], labels[1:2], query[1:2]), together[1:2])


def test_logistic_regression_predicts_as_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    support, labels, query = _episodes(20, seed=3)
    ours = logistic(support, labels, query)
    for e in range(20):
        s, q = (F.normalize(t[e], dim=1).double().numpy() for t in (support, query))
        head = LogisticRegression(C=1.0, max_iter=1000, tol=1e-8).fit(s, labels[e].numpy())
        assert head.predict(q).tolist() == ours[e].tolist()


def test_features_of_an_image_do_not_depend_on_its_batch():
    model = create_model("resnet20", num_classes=5, in_chans=1)
    for m in model.modules():  # BN statistics that are not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(8, 1, 16, 16)
    batch, _, _ = embed(model, [(x, torch.zeros(8, dtype=torch.long))])
    alone = torch.cat([embed(model, [(x[i : i + 1], torch.zeros(1))])[0] for i in range(8)])
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)
    assert model.training is False


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("fewshot") / "base"
    train(out=str(run), classes="0,1,2,3,4", epochs=2, seed=0, threads=1, **QUIET)
    return run


def test_fewshot_on_novel_digits_writes_every_episode_and_repeats(base_run, tmp_path):
    report = fewshot(base_run, episodes=40, shot=(1, 5), out=tmp_path / "a")
    assert report.classes == ["5", "6", "7", "8", "9"] and report.base[:2] == ["0", "1"]
    with open(tmp_path / "a" / "episodes.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 2 * 40  # methods x shots x episodes
    for method, by in report.results.items():
        for shot, r in by.items():
            accs = [
                float(x["accuracy"])
                for x in rows
                if (x["method"], x["shot"]) == (method, str(shot))
            ]
            assert r["mean"] == pytest.approx(100 * sum(accs) / len(accs), abs=1e-4)
    again = fewshot(base_run, episodes=40, shot=(1, 5), out=tmp_path / "b")
    first = json.loads((tmp_path / "a" / "fewshot.json").read_text())
    assert (
        first["accuracy"] == json.loads((tmp_path / "b" / "fewshot.json").read_text())["accuracy"]
    )
    assert again.results["pixels"][5]["mean"] > again.results["pixels"][1]["mean"]


def test_fewshot_on_seen_classes_is_said_and_bad_requests_refused(base_run, tmp_path):
    report = fewshot(base_run, classes="3,4,5,6,7", episodes=5, methods=("protonet",), out=tmp_path)
    assert any("trained on 3, 4" in n and "not novel" in n for n in report.notes)
    with pytest.raises(UsageError, match="--way 6, but the data has 5 classes"):
        fewshot(base_run, way=6, episodes=5, out=tmp_path)
    with pytest.raises(UsageError, match="lower --queries"):
        fewshot(base_run, queries=400, episodes=5, out=tmp_path)
    with pytest.raises(UsageError, match="unknown method"):
        fewshot(base_run, methods=("protonets",), out=tmp_path)
