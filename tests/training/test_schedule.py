"""Each recipe's learning rate at its key steps."""

import pytest

from resnets.training.optim import Schedule, peak_lr
from resnets.training.resolve import resolve


def lrs(flags, steps_per_epoch, at):
    cfg = resolve(flags)
    total = cfg.steps or cfg.epochs * steps_per_epoch
    schedule = Schedule(cfg, steps_per_epoch, total)
    return [peak_lr(cfg) * schedule(s) for s in at]


def test_paper_cifar_divides_by_10_at_32k_and_48k():
    # 45k images / 128 = 351 steps per epoch; the milestones are in iterations, not epochs
    got = lrs({"recipe": "paper-cifar"}, 351, [0, 31_999, 32_000, 47_999, 48_000, 63_999])
    assert got == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_paper_cifar_resnet110_holds_0_01_for_400_steps_then_0_1():
    got = lrs({"recipe": "paper-cifar", "model": "resnet110"}, 351, [0, 399, 400, 32_000])
    assert got == pytest.approx([0.01, 0.01, 0.1, 0.01])


def test_paper_imagenet_divides_by_10_every_30_epochs():
    spe = 1_281_167 // 256
    at = [0, 30 * spe - 1, 30 * spe, 60 * spe, 90 * spe - 1]
    got = lrs({"recipe": "paper-imagenet"}, spe, at)
    assert got == pytest.approx([0.1, 0.1, 0.01, 0.001, 0.001])


def test_modern_scales_lr_with_batch_warms_up_linearly_and_ends_near_zero():
    spe = 1000
    cfg = resolve({"recipe": "modern", "batch_size": 256})
    assert peak_lr(cfg) == pytest.approx(0.5 * 256 / 1024)
    got = lrs({"recipe": "modern", "batch_size": 256}, spe, [0, 2500, 5000, 302_500, 600_000 - 1])
    peak = 0.125
    assert got[0] == pytest.approx(0.01 * peak)
    assert got[1] == pytest.approx(peak * (0.01 + 0.99 * 0.5))
    assert got[2] == pytest.approx(peak)
    assert got[3] == pytest.approx(peak * 0.5, rel=1e-3)  # cosine midpoint
    assert got[4] < 1e-6


def test_default_recipe_warms_up_5_epochs_then_cosine():
    got = lrs({}, 10, [0, 25, 50, 175, 299])
    assert got[0] == pytest.approx(0.01) and got[1] == pytest.approx(0.055)
    assert got[2] == pytest.approx(0.1)
    assert got[3] == pytest.approx(0.05)  # cosine midpoint of steps 50..300
    assert got[4] == pytest.approx(0.0, abs=1e-4)


def test_an_epoch_warmup_takes_at_most_half_a_short_run():
    got = lrs({"epochs": 4}, 10, [0, 19, 20])  # 5 warm-up epochs asked, 2 given
    assert got[0] == pytest.approx(0.01) and got[1] < 0.1 and got[2] == pytest.approx(0.1)
    exact = lrs({"epochs": 4, "warmup_steps": 30}, 10, [29, 30])  # steps are taken as given
    assert exact[0] < 0.1 and exact[1] == pytest.approx(0.1)
