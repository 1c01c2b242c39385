"""torch.compile: its own failures stop the run with one line; nothing falls back silently;
and gradient checkpointing keeps BatchNorm's statistics right on the compiled path."""

import pytest
import torch
from torch import nn

from resnets import create_model, train
from resnets.errors import TrainingError

from ..helpers import quick

QUICK = quick()


class Fails(nn.Module):
    def __init__(self, error: Exception):
        super().__init__()
        self.error = error

    def forward(self, x):
        raise self.error


def test_a_compile_failure_is_one_line_naming_the_flag(tmp_path, monkeypatch):
    error = torch._dynamo.exc.TorchRuntimeError("no C++ compiler found\nlong details")
    monkeypatch.setattr(torch, "compile", lambda module: Fails(error))
    with pytest.raises(TrainingError, match=r"^torch.compile failed \(no C\+\+ compiler found\); "):
        train(out=str(tmp_path / "run"), compile=True, **QUICK)
    assert not (tmp_path / "run").exists()  # failed before its first checkpoint


def test_other_errors_under_compile_are_not_swallowed(tmp_path, monkeypatch):
    """An out-of-memory or a real bug keeps its own type: no silent switch to eager mode."""
    monkeypatch.setattr(torch, "compile", lambda module: Fails(MemoryError("out of memory")))
    with pytest.raises(MemoryError, match="out of memory"):
        train(out=str(tmp_path / "run"), compile=True, **QUICK)


@pytest.mark.slow
def test_grad_checkpointing_updates_bn_statistics_once_when_compiled():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 32, 32)
    reference, checkpointed = create_model("resnet20"), create_model("resnet20")
    checkpointed.load_state_dict(reference.state_dict())
    checkpointed.set_grad_checkpointing(True)
    reference.train()(x).sum().backward()
    torch.compile(checkpointed.train())(x).sum().backward()
    for (name, a), b in zip(reference.named_buffers(), checkpointed.buffers(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name  # a second update would move them
