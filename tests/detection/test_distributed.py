"""torchrun on CPU (gloo) for detection: two processes train exactly what one process with
two accumulation steps does (the same micro-batches, the gradients summed), as
tests/training/test_distributed.py shows for classification, and for the same reasons each
process, and the single-process twin, use one thread."""

import pytest
import torch

from resnets.training import train
from resnets.training.checkpoint import load_checkpoint

from ..training.test_distributed import one_thread, torchrun

pytestmark = pytest.mark.slow

BASE = {
    "task": "detection",
    "data": "shapes-boxes",
    "synthetic_samples": 96,  # 24 images: 20 to train, in 3 steps of 8 (the last of 4)
    "image_size": 64,
    "batch_size": 8,
    "val_split": 0.0,
    "test_split": 0.15,
    "seed": 2,
    "progress": False,
    "tensorboard": False,
}


def params(run) -> dict[str, torch.Tensor]:
    """The weights a run ended with, less BatchNorm's running statistics (per process)."""
    state = load_checkpoint(run / "last.pt")["model"]
    return {k: v for k, v in state.items() if "running" not in k and "num_batches" not in k}


def test_two_processes_equal_one_process_with_two_accumulation_steps(tmp_path):
    torchrun(2, out=tmp_path / "two", epochs=1, **BASE)
    with one_thread():
        one = train(out=str(tmp_path / "one"), epochs=1, accum_steps=2, **BASE)
        train(out=str(tmp_path / "plain"), epochs=1, **BASE)
    two, twin = params(tmp_path / "two"), params(tmp_path / "one")
    assert one["steps"] == 3 and twin.keys() == two.keys()
    worst = max((two[k] - twin[k]).abs().max().item() for k in two)
    assert worst <= 1e-6, worst
    # and not because nothing moved: the whole batch at once gives other BatchNorm statistics
    alone = params(tmp_path / "plain")
    assert max((alone[k] - twin[k]).abs().max().item() for k in alone) > 1e-4
    assert load_checkpoint(tmp_path / "two" / "last.pt")["progress"]["step"] == 3
