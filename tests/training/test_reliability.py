"""No lost work: kills at any moment, signals, failing saves, unsafe or foreign checkpoints."""

import errno
import os
import pickle
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from resnets.errors import TrainingError, WeightsError
from resnets.models.weights import read_weights
from resnets.training import checkpoint, run_folder, train
from resnets.training.checkpoint import load_checkpoint

RUN = [
    "--epochs", "2", "--deterministic", "--seed", "0", "--save-every-steps", "1",
    "--keep-last", "2", "--no-progress", "--no-tensorboard", "--log-every", "1",
]  # fmt: skip


def command(out, *extra) -> list[str]:
    return [sys.executable, "-m", "resnets", "-q", "train", "--out", str(out), *RUN, *extra]


def every_file_readable(folder) -> None:
    for f in folder.glob("*.pt"):
        load_checkpoint(f)  # raises WeightsError if unreadable
    if (folder / "best.safetensors").exists():
        read_weights(folder / "best.safetensors")


def wait_for(condition, proc, timeout=120.0, poll=0.0005) -> bool:
    """Poll until `condition()` or the process ends; True if the condition came first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_equals_the_uninterrupted_run(tmp_path):
    subprocess.run(command(tmp_path / "ref"), check=True, timeout=600)
    folder, rng = tmp_path / "run", random.Random(7)
    mid_write = 0
    for attempt in range(5):
        resume = ["--resume", str(folder)] if (folder / "last.pt").exists() else []
        extra = resume or (["--overwrite"] if folder.exists() else [])
        proc = subprocess.Popen(command(folder, *extra), stderr=subprocess.DEVNULL)
        if attempt % 2 == 0:  # the moment a checkpoint is being written
            hit = wait_for(lambda: any(folder.glob(".*.tmp")), proc)
        else:  # any moment once training runs
            hit = wait_for(lambda: (folder / "last.pt").exists(), proc)
            time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        mid_write += hit and attempt % 2 == 0 and any(folder.glob(".*.tmp"))
        every_file_readable(folder)  # no checkpoint is ever unreadable
    assert mid_write >= 1, "no kill landed during a checkpoint write"
    done = subprocess.run(command(folder, "--resume", str(folder)), timeout=600)
    assert done.returncode == 0
    assert not list(folder.glob(".*.tmp"))  # stale temporaries were cleared on resume
    ref, got = load_checkpoint(tmp_path / "ref" / "last.pt"), load_checkpoint(folder / "last.pt")
    assert ref["progress"]["step"] == got["progress"]["step"] == 20
    assert all(torch.equal(ref["model"][k], got["model"][k]) for k in ref["model"])
    best_ref, _ = read_weights(tmp_path / "ref" / "best.safetensors")
    best_got, _ = read_weights(folder / "best.safetensors")
    assert all(torch.equal(best_ref[k], best_got[k]) for k in best_ref)


@pytest.mark.slow
def test_sigterm_finishes_the_step_saves_and_says_how_to_resume(tmp_path):
    folder = tmp_path / "run"
    proc = subprocess.Popen(command(folder), stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (folder / "last.pt").exists(), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert f"Resume with: resnets train --resume {folder}" in err
    assert "error" not in err.splitlines()[-1]  # a stop asked for is not an error
    state = load_checkpoint(folder / "last.pt")
    assert 0 < state["progress"]["step"] < 20
    assert subprocess.run(command(folder, "--resume", str(folder)), timeout=600).returncode == 0


@pytest.mark.slow
def test_a_second_ctrl_c_exits_at_once_and_loses_nothing(tmp_path):
    folder = tmp_path / "run"
    proc = subprocess.Popen(command(folder), stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (folder / "last.pt").exists(), proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.monotonic() - start < 30
    every_file_readable(folder)


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    real, calls = torch.save, {"n": 0}

    def disk_full_after_first(obj, f, *args, **kwargs):
        # epoch 1 and the last epoch are always written; epoch 2 only when the clock allows
        # (saving.SAVE_SHARE): every write after the first fails, whichever comes next
        calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", disk_full_after_first)
    folder = tmp_path / "run"
    opts = {"epochs": 3, "progress": False, "tensorboard": False, "val_split": 0.0}
    with pytest.raises(
        TrainingError, match=r"could not save .*No space left.*previous one is intact"
    ):
        train(out=str(folder), **opts)
    assert load_checkpoint(folder / "last.pt")["progress"]["epoch"] >= 1
    assert not list(folder.glob(".*.tmp"))


def test_unwritable_or_full_run_folders_fail_before_training(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrainingError, match="cannot write to run folder"):
        train(out=str(tmp_path / "file" / "run"), epochs=1, progress=False)

    class Tiny:
        free = 1 << 20

    monkeypatch.setattr(run_folder.shutil, "disk_usage", lambda path: Tiny())
    with pytest.raises(TrainingError, match=r"only 1 MiB free .* need about"):
        train(out=str(tmp_path / "full"), epochs=1, progress=False)
    assert not (tmp_path / "full" / "last.pt").exists()


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('PWN_MARKER', '/tmp/pwned')}",))


@pytest.fixture
def finished_run(tmp_path):
    folder = tmp_path / "run"
    train(out=str(folder), epochs=1, progress=False, tensorboard=False, val_split=0.0)
    return folder


def test_a_checkpoint_that_carries_code_is_refused_and_never_run(
    finished_run, tmp_path, monkeypatch
):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PWN_MARKER", str(marker))
    with open(finished_run / "last.pt", "wb") as f:
        pickle.dump({"kind": "resnets-train-state", "model": RunsCode()}, f, protocol=2)
    with pytest.raises(WeightsError, match=r"refused to load .*never run"):
        train(resume=str(finished_run))
    assert not marker.exists()


def test_newer_or_truncated_checkpoints_name_the_problem(finished_run):
    state = torch.load(finished_run / "last.pt", weights_only=True)
    state["format_version"] = 99
    torch.save(state, finished_run / "last.pt")
    with pytest.raises(WeightsError, match="format 99; this resnets reads up to 1: upgrade"):
        train(resume=str(finished_run))
    data = (finished_run / "last.pt").read_bytes()
    (finished_run / "last.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="unreadable or truncated"):
        train(resume=str(finished_run))
