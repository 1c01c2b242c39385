"""Options decided from the data (fit.py) and the --time budget (budget.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from resnets import train
from resnets.data.datasets import load_digits
from resnets.errors import ConfigError
from resnets.training import budget as budget_module
from resnets.training import loop
from resnets.training.config import TrainConfig, parse_duration
from resnets.training.fit import fit_model, fit_to_data
from resnets.training.optim import few_steps_advice
from resnets.training.resolve import resolve

from ..helpers import QUIET


@pytest.mark.parametrize(
    ("images", "batch", "lr"),
    [(100, 16, 0.0125), (500, 32, 0.025), (546, 64, 0.05), (1023, 64, 0.05), (5000, 128, 0.1)],
)
def test_the_batch_and_lr_follow_the_number_of_training_images(images, batch, lr):
    cfg = resolve({})
    notes = fit_to_data(cfg, images, per_step=1)
    assert (cfg.batch_size, cfg.lr) == (batch, pytest.approx(lr))
    assert images // cfg.batch_size >= 8 or cfg.batch_size == 16
    if batch == 128:
        assert notes == []
    else:
        (note,) = notes
        assert note.startswith(f"batch {batch} (not 128): {images} training images give")
        assert f"lr {lr:g} (the lr per image kept)" in note


def test_the_batch_is_a_multiple_of_the_processes_and_accumulation_steps():
    cfg = resolve({})
    fit_to_data(cfg, 500, per_step=3)
    assert cfg.batch_size == 33 and cfg.batch_size % 3 == 0


@pytest.mark.parametrize(
    "flags",
    [{"batch_size": 128}, {"recipe": "paper-cifar"}, {"task": "detection", "data": "shapes-boxes"}],
)
def test_an_explicit_batch_or_a_recipe_is_never_changed(flags):
    cfg = resolve(flags)
    before = (cfg.batch_size, cfg.lr)
    assert fit_to_data(cfg, 300, per_step=1) == []
    assert (cfg.batch_size, cfg.lr) == before


def test_an_explicit_lr_is_kept_and_linear_scaling_needs_no_change(tmp_path):
    cfg = resolve({"lr": 0.2})
    (note,) = fit_to_data(cfg, 500, per_step=1)
    assert (cfg.batch_size, cfg.lr) == (32, 0.2) and "your --lr 0.2 is kept" in note

    file = tmp_path / "run.yaml"
    file.write_text("lr_scaling: linear\n")
    cfg = resolve({}, file)
    (note,) = fit_to_data(cfg, 500, per_step=1)
    assert (cfg.batch_size, cfg.lr) == (32, 0.1) and "--lr-scaling linear" in note

    file.write_text("batch_size: 128\n")  # a config file's batch is the user's too
    cfg = resolve({}, file)
    assert fit_to_data(cfg, 500, per_step=1) == [] and cfg.batch_size == 128


def test_a_config_built_by_hand_is_taken_as_it_is():
    cfg = TrainConfig()
    assert fit_to_data(cfg, 100, per_step=1) == [] and cfg.batch_size == 128


@pytest.mark.parametrize(("clips", "model"), [(False, "resnet10_3d"), (True, "r3d_18")])
def test_3d_data_chooses_a_3d_model_when_none_was_given(clips, model):
    cfg = resolve({})
    (note,) = fit_model(cfg, spatial_dims=3, clips=clips)
    assert cfg.model == model
    assert note.startswith(f"model {model} (not resnet20, a 2D model): the data holds ")
    assert note.endswith("--model decides")


@pytest.mark.parametrize(
    ("flags", "dims"),
    [
        ({}, 2),
        ({"model": "resnet18_3d"}, 3),
        ({"model": "resnet20"}, 3),
        ({"model": "resnet18"}, 2),
    ],
)
def test_a_given_model_or_2d_data_keeps_the_model(flags, dims):
    cfg = resolve(flags)
    before = cfg.model
    assert fit_model(cfg, spatial_dims=dims, clips=False) == []
    assert cfg.model == before  # a 2D model given for volumes is refused by the data, by name


def test_a_hand_built_config_keeps_its_model_for_volumes():
    cfg = TrainConfig()
    assert fit_model(cfg, spatial_dims=3, clips=False) == [] and cfg.model == "resnet20"


def test_volumes_with_no_model_train_resnet10_3d_in_a_folder_named_after_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = train(data="shapes3d", synthetic_samples=256, image_size=16, steps=1, **QUIET)
    run = tmp_path / summary["run"]
    assert summary["model"] == "resnet10_3d"
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run.name]  # no resnet20-... left
    assert run.name.startswith("resnet10_3d-shapes3d-")
    assert yaml.safe_load((run / "config.yaml").read_text())["model"] == "resnet10_3d"


def test_the_few_steps_advice_names_no_batch_below_the_one_fitted_runs_stop_at():
    small = few_steps_advice(TrainConfig(batch_size=16), samples=58, steps_per_epoch=3, total=3)
    assert small == (
        "only 3 optimizer steps (3 per epoch at batch 16): a set this small needs more --epochs "
        "to train well"
    )
    given = few_steps_advice(TrainConfig(batch_size=128), samples=500, steps_per_epoch=3, total=90)
    assert "--batch-size 32 and --lr 0.025" in given


def _digits(n: int):
    d = load_digits()
    return d.images[:n], d.labels[:n]


def test_a_small_run_trains_at_the_fitted_batch_and_saves_it_for_resume(tmp_path):
    run = tmp_path / "run"
    summary = train(data=_digits(300), epochs=1, out=str(run), amp="none", **QUIET)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    train_images = manifest["splits"]["train"]
    assert saved["batch_size"] == 16 and saved["lr"] == pytest.approx(0.0125)
    assert summary["steps"] == (train_images // 16)
    assert any(n.startswith("batch 16 (not 128)") for n in summary["notes"])

    # the saved batch, not fitted again
    resumed = train(data=_digits(300), resume=str(run), epochs=2, **QUIET)
    assert resumed["steps"] == 2 * (train_images // 16)
    assert not any(n.startswith("batch 16") for n in resumed["notes"][-3:])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1.5h", 5400), (" 2M ", 120), ("5min", 300), ("2 sec", 2)],
)
def test_durations_read_with_their_unit(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5", "0s", "five minutes", "-3m", "1d"])
def test_a_duration_without_a_known_unit_is_refused(text):
    with pytest.raises(ConfigError, match=r"--time must be a duration such as 90s, 5m or 1\.5h"):
        resolve({"time": text})


def test_time_and_steps_exclude_each_other():
    with pytest.raises(ConfigError, match="--time and --steps both set"):
        resolve({"time": "1m", "steps": 100})


def test_time_is_refused_for_detection_rather_than_ignored():
    with pytest.raises(ConfigError, match="--time does not fit detection runs yet"):
        resolve({"time": "1m", "task": "detection", "data": "shapes-boxes"})


STEP = 0.125  # seconds an optimizer step takes on the fake clock (exact in binary)


class FakeClock:
    """perf_counter that advances STEP seconds per optimizer step and at nothing else: the budget's
    decisions, without depending on this machine's speed."""

    def __init__(self):
        self.now, self.steps = 1000.0, 0
        self.slow_after = math.inf  # steps after this take twice as long

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """The fake clock in place of perf_counter, advanced by each optimizer step."""
    fake, real_step = FakeClock(), loop.train_step

    def step(*args, **kwargs):
        fake.steps += 1
        fake.now += STEP * (2 if fake.steps > fake.slow_after else 1)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(budget_module.time, "perf_counter", fake)
    monkeypatch.setattr(loop, "train_step", step)
    return fake


def test_a_time_budget_ends_within_it_with_the_lr_at_its_floor(tmp_path, clock):
    run = tmp_path / "run"
    summary = train(data="digits", time="6s", out=str(run), amp="none", **QUIET)
    spent = clock.now - 1000.0
    per_epoch = json.loads((run / "manifest.json").read_text())["steps_per_epoch"]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert spent <= 6.0 and spent >= 6.0 - 2 * STEP * per_epoch  # within, and most of it used
    assert summary["epochs"] == saved["epochs"] and summary["steps"] == per_epoch * saved["epochs"]
    rows = (run / "metrics.csv").read_text().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    final_lr = float(last[header.index("lr")])
    assert final_lr < 0.01 * 0.1  # the cosine ran its course: the lr ended near 0
    assert any(n.startswith("--time 6s: ") and "fit, at" in n for n in summary["notes"])


def test_a_budget_with_epochs_runs_at_most_those_epochs(tmp_path, clock):
    out = str(tmp_path / "r")
    summary = train(data="digits", time="1h", epochs=2, out=out, amp="none", **QUIET)
    assert summary["epochs"] == 2
    assert torch.isfinite(torch.tensor(summary["test_acc1"]))


def test_a_pace_that_slows_near_the_end_still_ends_on_the_schedule(tmp_path, clock):
    clock.slow_after = 24  # the third epoch on: twice as slow, past what the plan assumed
    run = tmp_path / "run"
    summary = train(data="digits", time="6s", out=str(run), amp="none", **QUIET)
    per_epoch = json.loads((run / "manifest.json").read_text())["steps_per_epoch"]
    assert clock.now - 1000.0 <= 6.0 + 2 * STEP * per_epoch  # at most one (slow) epoch late
    rows = (run / "metrics.csv").read_text().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    assert float(last[header.index("lr")]) < 0.01 * 0.1  # the lr still reached its floor
    assert summary["steps"] == per_epoch * summary["epochs"]
