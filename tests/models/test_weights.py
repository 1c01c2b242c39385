"""Interchange with torchvision (and timm) weights, file formats, and adaptation."""

import logging
import os
import pickle

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from resnets import create_model
from resnets.errors import WeightsError
from resnets.models import load_model
from resnets.models.keys import to_torchvision
from resnets.models.weights import TORCHVISION_NAMES, adapt_input_conv, read_weights, save_weights

from ..helpers import randomize_bn

HEAVY = {"resnext101_32x8d", "wide_resnet101_2", "resnext101_64x4d", "resnet152"}


def torchvision_model(name: str) -> torch.nn.Module:
    return randomize_bn(getattr(torchvision.models, TORCHVISION_NAMES[name])()).eval()


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in TORCHVISION_NAMES],
)
def test_torchvision_weights_give_the_same_outputs(name, tmp_path):
    tv = torchvision_model(name)
    path = tmp_path / "tv.pth"
    torch.save(tv.state_dict(), path)
    ours = create_model(name, pretrained=path).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - tv(x)).abs().max() <= 1e-5
    back = to_torchvision(ours.state_dict(), ours.config)
    assert list(back) == list(tv.state_dict())
    assert all(torch.equal(back[k], v) for k, v in tv.state_dict().items())


def test_safetensors_and_wrapped_ddp_checkpoints_load(tmp_path):
    tv = torchvision_model("resnet18")
    state = {k: v.contiguous() for k, v in tv.state_dict().items()}
    save_file(state, tmp_path / "tv.safetensors")
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ddp.pth")
    x = torch.randn(1, 3, 32, 32)
    for file in ("tv.safetensors", "ddp.pth"):
        ours = create_model("resnet18", pretrained=tmp_path / file).eval()
        with torch.no_grad():
            assert torch.equal(ours(x), tv(x))


def test_other_num_classes_reinitializes_the_classifier_and_says_so(tmp_path, caplog):
    tv = torchvision_model("resnet18")
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    with caplog.at_level(logging.INFO, logger="resnets"):
        ours = create_model("resnet18", pretrained=tmp_path / "tv.pth", num_classes=10)
    assert "classifier re-initialized" in caplog.text and "1000 classes" in caplog.text
    assert ours.fc.weight.shape == (10, 512)
    assert torch.equal(ours.stem.conv.weight, tv.conv1.weight)


def test_one_channel_adaptation_sums_rgb(tmp_path):
    tv = torchvision_model("resnet18")
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    gray = create_model("resnet18", pretrained=tmp_path / "tv.pth", in_chans=1).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(gray(x), tv(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_more_channels_repeat_and_rescale_so_outputs_are_unchanged():
    w = torch.randn(8, 3, 3, 3)
    w6 = adapt_input_conv(w, 6)
    x = torch.randn(1, 3, 5, 5)
    y = torch.nn.functional.conv2d(x, w)
    y6 = torch.nn.functional.conv2d(torch.cat([x, x], 1), w6)
    torch.testing.assert_close(y6, y)
    assert adapt_input_conv(w, 4).shape == (8, 4, 3, 3)


def test_weights_for_another_architecture_list_the_mismatched_keys(tmp_path):
    torch.save(torchvision_model("resnet50").state_dict(), tmp_path / "r50.pth")
    with pytest.raises(WeightsError, match=r"does not fit resnet18: .*unexpected \(.*conv3") as e:
        create_model("resnet18", pretrained=tmp_path / "r50.pth")
    assert "shape mismatches (" in str(e.value)


def test_our_safetensors_round_trip_with_metadata(tmp_path):
    model = randomize_bn(create_model("resnet20", in_chans=1, num_classes=4)).eval()
    save_weights(model, tmp_path / "w.safetensors")
    again = load_model(tmp_path / "w.safetensors").eval()
    assert again.name == "resnet20" and again.config == model.config
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary file


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_that_carries_code_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("evil.pth", "wb") as f:
        pickle.dump({"conv1.weight": RunsCode()}, f)
    with pytest.raises(WeightsError, match="refused to load"):
        read_weights("evil.pth")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04truncated"])
def test_truncated_or_foreign_files_fail_with_one_line(tmp_path, content):
    for suffix in (".pth", ".safetensors"):
        path = tmp_path / f"bad{suffix}"
        path.write_bytes(content)
        with pytest.raises(
            WeightsError, match=r"cannot read|holds no|not a plain tensor file"
        ) as e:
            read_weights(path)
        assert "\n" not in str(e.value)


def test_timm_deep_stem_layout_maps_onto_resnet_d():
    ours = create_model("resnet50d")
    theirs = to_torchvision(ours.state_dict(), ours.config)
    assert {
        "conv1.0.weight",
        "conv1.6.weight",
        "bn1.weight",
        "layer2.0.downsample.1.weight",
    } <= set(theirs)
    again = create_model("resnet50d")
    from resnets.models.weights import load_state

    load_state(again, theirs, None, "timm layout")
    assert all(
        torch.equal(a, b)
        for a, b in zip(again.state_dict().values(), ours.state_dict().values(), strict=True)
    )
