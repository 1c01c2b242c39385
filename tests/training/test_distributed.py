"""torchrun on CPU (gloo): two processes train exactly what one process with the same global
batch does, and a two-process run resumes on one process.

BatchNorm normalizes with per-process statistics under DDP (SyncBatchNorm runs on GPUs only),
so the single-process twin uses two accumulation steps: its micro-batches are the very
halves the two processes see. Each torchrun process uses one thread; the twin must too, as a
different thread count changes the order of float sums in the convolutions, and early
training amplifies such 1e-8 differences to 1e-2 within an epoch.
"""

import contextlib
import os
import subprocess
import sys

import pytest
import torch

from resnets.training import train
from resnets.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

BASE = {
    "data": "digits",
    "batch_size": 32,
    "seed": 4,
    "deterministic": True,
    "schedule": "constant",
    "warmup_epochs": 0,
    "progress": False,
    "tensorboard": False,
    "log_every": 5,
}


def flags(options: dict) -> list[str]:
    out = []
    for k, v in options.items():
        flag = "--" + k.replace("_", "-")
        out += ([flag] if v else ["--no-" + flag[2:]]) if isinstance(v, bool) else [flag, str(v)]
    return out


def torchrun(nproc: int, **options) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "resnets", "train", "--nproc", str(nproc), *flags(options)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@contextlib.contextmanager
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def params(run) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run / "last.pt")
    return {
        k: v for k, v in state["model"].items() if "running" not in k and "num_batches" not in k
    }


def assert_close(a, b, tol=1e-5):
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= tol, worst


def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    torchrun(2, out=tmp_path / "ddp", epochs=1, **BASE)
    with one_thread():
        train(out=str(tmp_path / "one"), epochs=1, accum_steps=2, **BASE)
    ddp, one = params(tmp_path / "ddp"), params(tmp_path / "one")
    assert_close(ddp, one)
    first = train(out=str(tmp_path / "start"), steps=1, **BASE)  # not a no-op
    assert first["steps"] == 1 and not torch.equal(
        params(tmp_path / "start")["fc.weight"], one["fc.weight"]
    )


def test_a_two_process_run_resumes_on_one_process(tmp_path):
    torchrun(2, out=tmp_path / "full", epochs=2, **BASE)
    torchrun(2, out=tmp_path / "cut", epochs=1, **BASE)
    with one_thread():
        summary = train(resume=str(tmp_path / "cut"), epochs=2, accum_steps=2, progress=False)
    assert summary["epochs"] == 2 and summary["world_size"] == 1
    assert_close(params(tmp_path / "full"), params(tmp_path / "cut"))
