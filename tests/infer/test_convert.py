import pytest
import timm
import torch
import torchvision

from resnets.infer.convert import convert
from resnets.models.weights import load_model

from ..conftest import randomize_bn


def test_torchvision_to_resnets_and_back(tmp_path):
    tv = randomize_bn(torchvision.models.resnet18(num_classes=7)).eval()
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    report = convert(tmp_path / "tv.pth", tmp_path / "ours.safetensors", model="resnet18")
    assert report.passed and report.checked_against == "torchvision" and report.max_abs_diff < 1e-5
    ours = load_model(tmp_path / "ours.safetensors").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - tv(x)).abs().max() < 1e-5
    back = convert(tmp_path / "ours.safetensors", tmp_path / "back.pth", to="torchvision")
    assert back.passed
    again = torchvision.models.resnet18(num_classes=7)
    again.load_state_dict(torch.load(tmp_path / "back.pth", weights_only=True))
    assert all(
        torch.equal(a, b)
        for a, b in zip(again.state_dict().values(), tv.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize(
    ("ours", "theirs"), [("resnet50d", "resnet50d"), ("preact_resnet50", "resnetv2_50")]
)
def test_timm_layouts_convert_with_logit_parity(tmp_path, ours, theirs):
    model = randomize_bn(timm.create_model(theirs, num_classes=5)).eval()
    torch.save(model.state_dict(), tmp_path / "timm.pth")
    report = convert(tmp_path / "timm.pth", tmp_path / "ours.safetensors", model=ours)
    assert report.passed and report.checked_against == "timm"
    out = convert(tmp_path / "ours.safetensors", tmp_path / "timm2.pth", to="timm")
    assert out.passed and out.max_abs_diff < 1e-4


def test_a_cifar_model_without_a_library_twin_checks_the_round_trip(tmp_path):
    from resnets import create_model, save_weights

    save_weights(randomize_bn(create_model("resnet20")), tmp_path / "r20.safetensors")
    report = convert(tmp_path / "r20.safetensors", tmp_path / "r20.pth")
    assert (
        report.passed
        and report.checked_against == "resnets (round trip)"
        and report.max_abs_diff == 0
    )
