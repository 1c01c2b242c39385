"""Imbalanced data: --loss focal and --sampler balanced, each changing what it should."""

import csv

import pytest
import torch
import torch.nn.functional as F
import torchvision

from resnets.data import DataOptions, Shard, load_splits, make_loaders
from resnets.data.loaders import GlobalBatches, balanced_weights
from resnets.errors import ConfigError, UsageError
from resnets.tasks import get_task
from resnets.training import train
from resnets.training.config import TrainConfig
from resnets.training.loss import class_weights, focal_loss, make_criterion, sigmoid_focal_loss
from resnets.training.resolve import resolve

from ..helpers import quick

QUICK = quick(epochs=2)
WEIGHT = torch.tensor([0.5, 2.0, 1.0, 4.0])


def logits_and_labels(n: int = 16, classes: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, classes, generator=g) * 3, torch.randint(classes, (n,), generator=g)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("weight", [None, WEIGHT])
def test_focal_loss_is_its_formula(gamma, weight):
    x, y = logits_and_labels()
    p_t = x.softmax(1).gather(1, y[:, None]).squeeze(1)
    per_image = -((1 - p_t) ** gamma) * p_t.log()
    alpha = torch.ones(len(y)) if weight is None else weight[y]
    expected = (alpha * per_image).sum() / alpha.sum()  # cross-entropy's weighted mean
    assert torch.allclose(focal_loss(x, y, gamma, weight), expected, rtol=1e-5, atol=1e-7)


def test_focal_loss_is_its_formula_per_pixel_and_skips_ignored_pixels():
    x = torch.randn(2, 3, 4, 5) * 2
    y = torch.randint(3, (2, 4, 5))
    y[0, 0] = -100
    p_t = x.softmax(1).gather(1, y.clamp_min(0)[:, None]).squeeze(1)
    per_pixel = -((1 - p_t) ** 2) * p_t.log()
    keep = y != -100
    expected = per_pixel[keep].mean()
    assert torch.allclose(focal_loss(x, y, 2.0), expected, rtol=1e-5)


def test_gamma_zero_is_cross_entropy_with_weights_smoothing_soft_targets_and_masks():
    x, y = logits_and_labels()
    for weight in (None, WEIGHT):
        for smoothing in (0.0, 0.1):
            ce = F.cross_entropy(x, y, weight=weight, label_smoothing=smoothing)
            assert torch.allclose(focal_loss(x, y, 0.0, weight, smoothing), ce, rtol=1e-6)
        soft = F.one_hot(y, 4).float() * 0.7 + F.one_hot(y.flip(0), 4).float() * 0.3
        ce = F.cross_entropy(x, soft, weight=weight)
        assert torch.allclose(focal_loss(x, soft, 0.0, weight), ce, rtol=1e-6)
    masks_x, masks_y = torch.randn(2, 4, 3, 3), torch.randint(4, (2, 3, 3))
    masks_y[1, 1] = -100
    ce = F.cross_entropy(masks_x, masks_y, weight=WEIGHT)
    assert torch.allclose(focal_loss(masks_x, masks_y, 0.0, WEIGHT), ce, rtol=1e-6)


def test_soft_targets_are_the_mixture_of_their_hard_labels_focal_losses():
    x, y = logits_and_labels()
    other, lam = y.roll(1), 0.7
    mixed = F.one_hot(y, 4).float() * lam + F.one_hot(other, 4).float() * (1 - lam)
    expected = lam * focal_loss(x, y, 2.0) + (1 - lam) * focal_loss(x, other, 2.0)
    assert torch.allclose(focal_loss(x, mixed, 2.0), expected, rtol=1e-5)
    smoothed = F.one_hot(y, 4).float() * 0.9 + 0.1 / 4  # label smoothing as a soft target
    assert torch.allclose(focal_loss(x, y, 2.0, None, 0.1), focal_loss(x, smoothed, 2.0))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_sigmoid_focal_loss_equals_torchvisions(gamma):
    x = torch.randn(8, 5) * 3
    t = (torch.rand(8, 5) < 0.3).float()
    theirs = torchvision.ops.sigmoid_focal_loss(x, t, alpha=-1, gamma=gamma, reduction="mean")
    assert torch.allclose(sigmoid_focal_loss(x, t, gamma, None), theirs, rtol=1e-5, atol=1e-7)
    pos_weight = torch.tensor([1.0, 3.0, 9.0, 0.5, 2.0])
    if gamma == 0:  # the multilabel task's BCE with its positive weights
        bce = F.binary_cross_entropy_with_logits(x, t, pos_weight=pos_weight)
        assert torch.allclose(sigmoid_focal_loss(x, t, 0.0, pos_weight), bce, rtol=1e-6)


def test_focal_gradients_stay_finite_for_gamma_below_one_on_confident_outputs():
    x = torch.tensor([[40.0, -40.0, 0.3]], requires_grad=True)
    sigmoid_focal_loss(x, torch.tensor([[1.0, 0.0, 1.0]]), 0.5, None).backward()
    assert torch.isfinite(x.grad).all()
    z = torch.tensor([[40.0, 0.0, -3.0]], requires_grad=True)
    focal_loss(z, torch.tensor([0]), 0.5).backward()
    assert torch.isfinite(z.grad).all()


def test_make_criterion_picks_focal_with_class_weights_as_alpha():
    splits = load_splits(DataOptions(), seed=0)
    cfg = TrainConfig(loss="focal", focal_gamma=2.0, class_weights="balanced")
    cpu = torch.device("cpu")
    criterion = make_criterion(get_task("classification"), cfg, splits, cpu, [])
    x, y = logits_and_labels(classes=10)
    weight = class_weights(cfg, splits, cpu)
    assert torch.equal(criterion(x, y), focal_loss(x, y, 2.0, weight))
    plain = make_criterion(get_task("classification"), TrainConfig(), splits, cpu, [])
    assert torch.allclose(plain(x, y), F.cross_entropy(x, y))
    assert not torch.allclose(criterion(x, y), plain(x, y))


IMBALANCED = torch.cat([torch.zeros(1800, dtype=torch.long), torch.ones(200, dtype=torch.long)])


def rare_share(batches: GlobalBatches, epoch: int = 0) -> float:
    drawn = torch.cat([index for _, index in batches.epoch(epoch)])
    assert len(drawn) == len(IMBALANCED)
    return IMBALANCED[drawn].float().mean().item()


def test_balanced_sampler_draws_each_class_equally_often_and_uniform_keeps_9_to_1():
    balanced = GlobalBatches(2000, 100, Shard(), seed=3, weights=balanced_weights(IMBALANCED))
    assert all(abs(rare_share(balanced, epoch) - 0.5) < 0.04 for epoch in range(3))
    assert rare_share(GlobalBatches(2000, 100, Shard(), seed=3)) == pytest.approx(0.1)


def test_balanced_sampler_is_seeded_per_epoch():
    weights = balanced_weights(IMBALANCED)

    def order(seed, epoch):
        return GlobalBatches(2000, 100, Shard(), seed, weights=weights).order(epoch)

    assert torch.equal(order(3, 1), order(3, 1))
    assert not torch.equal(order(3, 1), order(3, 2))
    assert not torch.equal(order(3, 1), order(4, 1))


def batches_of(shard, epoch=0, start=0):
    splits = load_splits(DataOptions(), seed=0)
    cpu = torch.device("cpu")
    loaders = make_loaders(
        splits, batch_size=32, shard=shard, device=cpu, seed=5, sampler="balanced"
    )
    return list(loaders.train.epoch(epoch, start))


def test_balanced_batches_shard_over_processes_and_resume_mid_epoch():
    single = batches_of(Shard())
    rank0, rank1 = batches_of(Shard(0, 2, 1)), batches_of(Shard(1, 2, 1))
    for one, r0, r1 in zip(single, rank0, rank1, strict=True):
        assert torch.equal(torch.cat([r0[0][0], r1[0][0]]), one[0][0])
        assert torch.equal(torch.cat([r0[0][1], r1[0][1]]), one[0][1])
    tail = batches_of(Shard(), start=7)
    assert all(torch.equal(a[0][0], b[0][0]) for a, b in zip(single[7:], tail, strict=True))


def test_refused_combinations_are_one_line_errors_naming_the_options():
    with pytest.raises(ConfigError, match="--sampler balanced and --class-weights balanced") as e:
        resolve({"sampler": "balanced", "class_weights": "balanced"})
    multilabel, masks = torch.zeros(10, 3, dtype=torch.long), torch.zeros(10, 4, 4).long()
    with pytest.raises(UsageError, match=r"--sampler balanced .* multi-label") as m:
        balanced_weights(multilabel)
    with pytest.raises(UsageError, match=r"--sampler balanced .* segmentation") as s:
        balanced_weights(masks)
    assert all("\n" not in str(error.value) for error in (e, m, s))


def train_losses(run) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(row["train_loss"]) for row in csv.DictReader(f)]


@pytest.mark.parametrize("options", [{"loss": "focal"}, {"sampler": "balanced"}])
def test_a_short_run_trains(tmp_path, options):
    s = train(out=str(tmp_path / "run"), **options, **QUICK)
    losses = train_losses(tmp_path / "run")
    assert losses[-1] < 0.8 * losses[0] and s["test_acc1"] > 40
    balanced = any("with replacement" in note for note in s["notes"])
    assert balanced == (options.get("sampler") == "balanced")
