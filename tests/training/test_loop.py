"""Training end to end: learning, run folders, resume, determinism, and failures."""

import csv
import json
from collections.abc import Callable

import pytest
import torch
from safetensors.torch import load_file

from resnets.errors import DataError, TrainingError, UsageError, WeightsError
from resnets.training import loop, setup, train
from resnets.training.checkpoint import load_checkpoint
from resnets.training.saving import Interrupted
from resnets.training.signals import StopRequest

from ..helpers import QUIET, StopAtStep, quick, write_cifar, write_image_folder

QUICK = quick(epochs=2)


def read_csv(path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def weights(run) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "last.pt")["model"]


@pytest.mark.slow
def test_default_job_reaches_97_percent_on_held_out_digits(tmp_path):
    summary = train(out=str(tmp_path / "run"), progress=False)
    assert summary["test_acc1"] >= 97.0, summary
    assert summary["epochs"] == 30 and summary["model"] == "resnet20"


def test_short_run_learns_and_fills_the_run_folder(tmp_path):
    run = tmp_path / "run"
    s = train(out=str(run), epochs=4, progress=False)
    rows = read_csv(run / "metrics.csv")
    assert len(rows) == 4
    assert float(rows[-1]["train_loss"]) < 0.6 * float(rows[0]["train_loss"])  # loss falls
    assert s["test_acc1"] > 60 and s["best_val_acc1"] is not None
    files = ("config.yaml", "manifest.json", "curves.png", "last.pt", "best.safetensors")
    for name in files:
        assert (run / name).is_file(), name
    assert not list(run.glob("best.pt")) and not list(run.glob(".best-previous*"))  # one state
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["versions"]["torch"] == torch.__version__ and manifest["dataset_fingerprint"]
    summary = json.loads((run / "summary.json").read_text())
    assert {"best_val_acc1", "test_acc1", "test_acc5", "epochs", "train_seconds"} <= set(summary)
    meta = load_file(run / "best.safetensors")
    assert "stem.conv.weight" in meta


def test_resume_mid_epoch_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    opts = {**QUICK, "epochs": 3, "deterministic": True, "seed": 3}
    opts |= {"ema_decay": 0.9, "drop_path_rate": 0.1}
    full = train(out=str(tmp_path / "full"), **opts)
    monkeypatch.setattr(loop, "StopRequest", lambda: StopAtStep(13))
    with pytest.raises(Interrupted, match=r"stopped at step 13; .*resnets train --resume"):
        train(out=str(tmp_path / "cut"), **opts)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["progress"]["epoch_step"] == 3
    monkeypatch.setattr(loop, "StopRequest", StopRequest)
    resumed = train(resume=str(tmp_path / "cut"), progress=False)
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    for key in ("test_acc1", "best_val_acc1", "steps", "epochs"):
        assert full[key] == resumed[key]
    rows = [read_csv(tmp_path / r / "metrics.csv") for r in ("full", "cut")]
    assert [r["train_loss"] for r in rows[0]] == [r["train_loss"] for r in rows[1]]


def test_the_best_weights_live_once_and_a_kill_between_their_writes_loses_nothing(
    tmp_path, monkeypatch
):
    """last.pt holds no second copy of the weights: the selected ones are best.safetensors,
    stamped. A kill after a new best.safetensors but before last.pt leaves the previous one
    aside; the resumed run takes the one last.pt selected and ends as the uninterrupted run."""
    from resnets.models import create_model
    from resnets.models.weights import save_weights
    from resnets.training.checkpoint import PREVIOUS_BEST, STAMP

    opts = {**QUICK, "epochs": 3, "deterministic": True, "seed": 3}
    full = train(out=str(tmp_path / "full"), **opts)
    state = load_checkpoint(tmp_path / "full" / "last.pt")
    assert "best" not in state and not (tmp_path / "full" / "best.pt").exists()
    monkeypatch.setattr(loop, "StopRequest", lambda: StopAtStep(13))
    with pytest.raises(Interrupted):
        train(out=str(tmp_path / "cut"), **opts)
    cut = tmp_path / "cut"
    (cut / "best.safetensors").rename(cut / PREVIOUS_BEST)  # as if killed between the writes:
    save_weights(create_model("resnet20"), cut / "best.safetensors", extra={STAMP: "[9, 1, 0]"})
    monkeypatch.setattr(loop, "StopRequest", StopRequest)
    resumed = train(resume=str(cut), progress=False)
    assert not (cut / PREVIOUS_BEST).exists()
    a, b = load_file(tmp_path / "full" / "best.safetensors"), load_file(cut / "best.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for key in ("test_acc1", "best_val_acc1", "best_epoch", "steps"):
        assert full[key] == resumed[key]


def test_deterministic_runs_are_bit_identical(tmp_path):
    for name in ("a", "b"):
        train(out=str(tmp_path / name), deterministic=True, seed=1, **QUICK)
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.are_deterministic_algorithms_enabled()  # the caller's setting is back


def test_an_existing_run_is_never_overwritten_unasked(tmp_path):
    run = tmp_path / "run"
    train(out=str(run), epochs=1, progress=False, tensorboard=False)
    before = (run / "last.pt").read_bytes()
    with pytest.raises(UsageError, match="already exists; pass --resume"):
        train(out=str(run), **QUICK)
    assert (run / "last.pt").read_bytes() == before
    train(out=str(run), overwrite=True, **QUICK)
    assert load_checkpoint(run / "last.pt")["progress"]["epoch"] == 2
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        train(out=str(tmp_path / "file"), **QUICK)


def test_resume_refuses_another_architecture(tmp_path):
    run = tmp_path / "run"
    train(out=str(run), epochs=1, progress=False, tensorboard=False)
    with pytest.raises(UsageError, match="cannot change model"):
        train(resume=str(run), model="resnet32")
    with pytest.raises(WeightsError, match="trained as 'resnet20', not 'resnet32'"):
        load_checkpoint(run / "last.pt", "resnet32")


def test_a_resume_that_changes_the_length_says_the_lr_jumps(tmp_path):
    """64 synthetic images: 54 train in 3 steps of 16 per epoch, so 2 epochs are 6 steps."""
    run, data = tmp_path / "run", {"data": "synthetic", "synthetic_samples": 64, "batch_size": 16}
    train(out=str(run), **quick(epochs=2, image_size=16, **data))
    resumed = train(resume=str(run), epochs=3, progress=False)
    said = [n for n in resumed["notes"] if "the run's length changed" in n]
    assert len(said) == 1 and "changed from 6 to 9 steps" in said[0], resumed["notes"]
    assert "lr at step 6 is" in said[0] and "where the run had reached" in said[0]


def nan_losses(monkeypatch, bad: Callable[[int], bool]) -> None:
    """Make the n-th loss of the next run NaN wherever bad(n) holds (n counts from 1)."""
    real = setup.make_criterion
    calls = {"n": 0}

    def poisoned(task, cfg, splits, device, notes):
        criterion = real(task, cfg, splits, device, notes)

        def f(logits, y):
            calls["n"] += 1
            return criterion(logits, y) * (float("nan") if bad(calls["n"]) else 1.0)

        return f

    monkeypatch.setattr(setup, "make_criterion", poisoned)


def test_nan_loss_stops_clearly_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    nan_losses(monkeypatch, lambda n: n > 12)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"NaN or infinite .*last\.pt is intact.*--clip-grad"):
        train(out=str(run), log_every=1, **QUICK)
    state = load_checkpoint(run / "last.pt")
    assert state["progress"]["epoch"] == 1 and state["progress"]["step"] == 10
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_skipping_bad_batches_keeps_training(tmp_path, monkeypatch):
    nan_losses(monkeypatch, lambda n: n in (3, 7))
    s = train(out=str(tmp_path / "run"), max_bad_batches=2, **QUICK)
    assert s["steps"] == 20 and s["test_acc1"] > 30


def test_modern_options_together(tmp_path):
    s = train(
        out=str(tmp_path / "run"),
        recipe="modern",
        epochs=2,
        batch_size=64,
        ema_decay=0.99,
        accum_steps=2,
        clip_grad=1.0,
        class_weights="balanced",
        amp="bf16",
        channels_last=True,
        grad_checkpointing=True,
        **QUIET,
    )
    assert s["steps"] == 2 * (1295 // 64) and s["test_acc1"] is not None


def test_image_folder_and_cifar_archive_train_end_to_end(tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=40, size=16)
    (root / "circle" / "bad.jpg").write_bytes(b"corrupt")
    folder = {"data": f"imagefolder:{root}", "image_size": 16, "batch_size": 16, "num_workers": 0}
    s = train(out=str(tmp_path / "f"), **folder, **QUICK)
    assert s["skipped_images"] == 1 and s["unreadable"][0].endswith("bad.jpg")
    assert s["test_images"] in (15, 16)  # 16 held out, one of them may be the broken file
    write_cifar(tmp_path / "cifar", per_batch=40)
    cifar = {"data": f"cifar10:{tmp_path / 'cifar'}", "batch_size": 32}
    s = train(out=str(tmp_path / "c"), **cifar, epochs=1, progress=False)
    assert s["test_images"] == 40


def test_early_stop_ends_a_run_that_stopped_improving(tmp_path):
    # a frozen backbone and a vanishing lr: validation accuracy cannot move after epoch 1
    opts = {**QUICK, "epochs": 6, "early_stop": 1, "freeze_backbone": True, "lr": 1e-12}
    s = train(out=str(tmp_path / "run"), **opts)
    assert s["epochs"] == 2 and s["best_epoch"] == 1


@pytest.mark.parametrize("workers", [0, 2])
def test_strict_fails_on_an_unreadable_image_with_one_line(tmp_path, workers):
    root = write_image_folder(tmp_path / "shapes", per_class=20, size=16)
    for cls in ("circle", "square"):
        for i in range(4):
            (root / cls / f"{i}.jpg").write_bytes(b"not a jpeg")
    opts = {"data": f"imagefolder:{root}", "image_size": 16, "batch_size": 8, "strict": True}
    with pytest.raises(DataError, match=r"^cannot decode .*\.jpg .*fix or remove it$") as e:
        train(out=str(tmp_path / "run"), num_workers=workers, **opts, **QUICK)
    assert "\n" not in str(e.value)


def test_a_folder_of_one_small_size_trains_and_evaluates_at_that_size(tmp_path):
    from PIL import Image

    from resnets import evaluate

    rng = torch.Generator().manual_seed(0)
    for c, name in enumerate(("dark", "light")):
        (tmp_path / "set" / name).mkdir(parents=True)
        for i in range(40):
            pixels = (torch.rand(20, 20, generator=rng) * 100 + 120 * c).to(torch.uint8)
            Image.fromarray(pixels.numpy(), "L").save(tmp_path / "set" / name / f"{i}.png")
    data = {"data": f"imagefolder:{tmp_path / 'set'}", "batch_size": 16, "num_workers": 0}
    s = train(out=str(tmp_path / "run"), model="resnet20", **data, **QUICK)
    assert s["input_size"] == 20 and any("images are 20x20" in n for n in s["notes"])
    assert any("decoded once into memory" in n for n in s["notes"])
    report = evaluate(tmp_path / "run", out=tmp_path / "eval")  # the run's own test split
    assert report.count == s["test_images"] and report.acc1 == pytest.approx(s["test_acc1"])
