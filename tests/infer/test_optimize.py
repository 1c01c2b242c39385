import pytest
import torch
from torch import nn

from resnets import create_model
from resnets.infer.optimize import fold_bn, optimize_for_inference

from ..helpers import randomize_bn


@pytest.mark.parametrize(
    ("name", "left"),
    [
        ("resnet18", 0),
        ("resnet50d", 0),
        ("resnext50_32x4d", 0),
        ("resnet20", 0),
        ("preact_resnet18", 9),  # the BN opening each of 8 blocks, and the final one
        ("preact_resnet164", 55),
    ],
)
def test_folded_model_gives_the_same_outputs(name, left):
    overrides = {"layers": (2, 2, 2)} if name == "preact_resnet164" else {}
    model = randomize_bn(create_model(name, **overrides)).eval()
    folded = fold_bn(model)
    remaining = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert remaining == (7 if name == "preact_resnet164" else left)
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        ref = model(x)
        assert (folded(x) - ref).norm() / ref.norm() < 1e-5
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # original untouched


def test_optimized_channels_last_model_matches():
    model = randomize_bn(create_model("resnet18")).eval()
    fast = optimize_for_inference(model, channels_last=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = fast(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-4)
    assert not any(p.requires_grad for p in fast.parameters())
