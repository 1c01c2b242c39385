import math

import pytest
import timm
import torch
import torchvision
from PIL import Image
from torchvision.transforms.v2.functional import pil_to_tensor

from resnets import create_model, predict, save_weights
from resnets.cli import main
from resnets.errors import DataError, UsageError
from resnets.infer import convert as convert_module
from resnets.infer.convert import convert
from resnets.infer.export import ExportError
from resnets.models import load_model
from resnets.models.meta import WeightsMeta

from ..helpers import randomize_bn


@pytest.fixture
def r20(tmp_path):
    """A resnets weights file of a small model (no torchvision or timm twin: round trip)."""
    save_weights(randomize_bn(create_model("resnet20")), tmp_path / "r20.safetensors")
    return tmp_path / "r20.safetensors"


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


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


def test_a_cifar_model_without_a_library_twin_checks_the_round_trip(r20, tmp_path):
    report = convert(r20, tmp_path / "r20.pth")
    assert (
        report.passed
        and report.checked_against == "resnets (round trip)"
        and report.max_abs_diff == 0
    )


@pytest.mark.parametrize("to", ["torchvision", "timm"])
def test_the_output_suffix_picks_the_format_for_library_layouts(tmp_path, to):
    from safetensors.torch import load_file

    tv = randomize_bn(torchvision.models.resnet18(num_classes=3)).eval()
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    convert(tmp_path / "tv.pth", tmp_path / "ours.safetensors", model="resnet18")
    report = convert(tmp_path / "ours.safetensors", tmp_path / f"{to}.safetensors", to=to)
    assert report.passed and report.checked_against == to and report.max_rel_diff < 1e-5
    state = load_file(str(tmp_path / f"{to}.safetensors"))  # a real safetensors file
    theirs = tv if to == "torchvision" else timm.create_model("resnet18", num_classes=3)
    theirs.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (theirs.eval()(x) - tv(x)).abs().max() < 1e-5
    convert(tmp_path / "ours.safetensors", tmp_path / f"{to}.bin", to=to)
    assert torch.load(tmp_path / f"{to}.bin", weights_only=True).keys() == state.keys()


def test_resnets_layout_as_pt_is_a_torch_file(r20, tmp_path):
    convert(r20, tmp_path / "r20.pt")
    state = torch.load(tmp_path / "r20.pt", weights_only=True)
    assert torch.equal(state["fc.weight"], load_model(r20).state_dict()["fc.weight"])


@pytest.mark.parametrize("name", ["r20.onnx", "r20", "r20.safetensor"])
def test_an_unknown_output_suffix_is_refused_before_anything_is_written(r20, tmp_path, name):
    with pytest.raises(UsageError, match=r"suffix .*; use one of .safetensors, .pth, .pt, .bin"):
        convert(r20, tmp_path / name)
    assert _snapshot(tmp_path).keys() == {"r20.safetensors"}


def test_an_existing_output_is_replaced_only_with_overwrite(r20, tmp_path):
    convert(r20, tmp_path / "out.pth")
    before = _snapshot(tmp_path)
    with pytest.raises(UsageError, match=r"out.pth already exists; pass --overwrite"):
        convert(r20, tmp_path / "out.pth", to="resnets")
    assert _snapshot(tmp_path) == before
    assert convert(r20, tmp_path / "out.pth", overwrite=True).passed
    with pytest.raises(UsageError, match="is the source itself"):
        convert(r20, r20, overwrite=True)
    assert _snapshot(tmp_path) == before


def test_a_failed_check_or_a_crash_leaves_no_file_and_the_earlier_one_intact(
    r20, tmp_path, monkeypatch
):
    convert(r20, tmp_path / "out.safetensors")
    before = _snapshot(tmp_path)
    with pytest.raises(ExportError, match=r"differ from resnets \(round trip\).*not written"):
        convert(r20, tmp_path / "out.safetensors", tolerance=-1.0, overwrite=True)
    with pytest.raises(ExportError, match=r"new.pth was not written"):
        convert(r20, tmp_path / "new.pth", tolerance=-1.0)

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(convert_module, "library_model", crash)
    with pytest.raises(RuntimeError, match="boom"):
        convert(r20, tmp_path / "out.safetensors", overwrite=True)
    assert _snapshot(tmp_path) == before  # and no temporary files left behind


def test_a_missing_output_folder_is_a_one_line_usage_error(r20, tmp_path, capsys):
    with pytest.raises(UsageError, match=r"the folder .*nope does not exist"):
        convert(r20, tmp_path / "nope" / "x.safetensors")
    code = main(["convert", str(r20), "/nonexistent/x.safetensors"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: the folder /nonexistent does not exist")
    assert err.count("\n") == 1
    assert _snapshot(tmp_path).keys() == {"r20.safetensors"}


def test_the_check_is_relative_to_the_logits_scale(tmp_path, monkeypatch):
    tv = randomize_bn(torchvision.models.resnet18(num_classes=4)).eval()
    with torch.no_grad():
        tv.fc.weight.mul_(1e4)  # logits in the thousands
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    real = convert_module.library_model

    def library_off_by(factor: float) -> None:
        def build(*args):
            model = real(*args)
            forward = model.forward
            model.forward = lambda x: forward(x) * factor
            return model

        monkeypatch.setattr(convert_module, "library_model", build)

    library_off_by(1 + 1e-6)  # float32 rounding noise, in proportion to the logits
    report = convert(tmp_path / "tv.pth", tmp_path / "ours.safetensors", model="resnet18")
    assert report.passed and report.max_abs_diff > 1e-4 and report.max_rel_diff < 1e-5
    assert "relative" in report.text()
    library_off_by(1 + 1e-3)  # a real disagreement
    with pytest.raises(ExportError, match=r"relative \S+ > 0.0001"):
        convert(tmp_path / "tv.pth", tmp_path / "bad.safetensors", model="resnet18")
    assert not (tmp_path / "bad.safetensors").exists()


def _photo(path, size=(300, 220)):
    """A smooth RGB image (upscaled noise), so resizing differences stay small."""
    noise = torch.randint(0, 256, (12, 9, 3), dtype=torch.uint8).numpy()
    Image.fromarray(noise).resize(size, Image.BILINEAR).save(path)
    return path


def _reference_top(model, image, prepare):
    """(top class index, its probability) from the library's own model and preprocessing."""
    x = prepare(pil_to_tensor(Image.open(image).convert("RGB")))[None]
    with torch.no_grad():
        probs = model.eval()(x).softmax(1)[0]
    return int(probs.argmax()), float(probs.max())


IMAGENET = torchvision.models.ResNet18_Weights.IMAGENET1K_V1


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_torchvision_imagenet_weights_predict_with_imagenet_names(tmp_path, suffix):
    tv = randomize_bn(torchvision.models.resnet18(weights=None)).eval()  # 1000 outputs
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    out = tmp_path / f"ours{suffix}"
    report = convert(tmp_path / "tv.pth", out, model="resnet18")
    assert report.passed and "classes: ImageNet-1k (1000 outputs" in report.text()
    assert "torchvision's resnet18 IMAGENET1K_V1: 224 px centre crop" in report.metadata
    meta = load_model(out).weights_meta
    categories = IMAGENET.meta["categories"]
    assert meta.classes == categories and (meta.input_size, meta.resize_size) == (224, 256)
    assert (meta.mean, meta.std) == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    if suffix == ".pth":  # the metadata goes beside a plain state_dict
        assert (tmp_path / "ours.pth.json").is_file()
        assert torch.load(out, weights_only=True).keys() == load_model(out).state_dict().keys()
    image = _photo(tmp_path / "photo.png")
    index, prob = _reference_top(tv, image, IMAGENET.transforms())
    (name, p), *_ = predict(out, [image]).predictions[0].top
    assert name == categories[index] and p == pytest.approx(prob, abs=1e-4)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("resnet18d", "resnet18d"),  # crop_pct 0.875: 256 px
        pytest.param("preact_resnet50", "resnetv2_50", marks=pytest.mark.slow),  # 0.95, mean 0.5
    ],
)
def test_timm_imagenet_weights_take_timms_preprocessing(tmp_path, ours, theirs):
    from torchvision.transforms import v2

    model = randomize_bn(timm.create_model(theirs)).eval()  # 1000 outputs
    torch.save(model.state_dict(), tmp_path / "timm.pth")
    report = convert(tmp_path / "timm.pth", tmp_path / "ours.safetensors", model=ours)
    cfg = timm.models.get_pretrained_cfg(theirs)
    resize = math.floor(224 / cfg.crop_pct)  # 256 for crop_pct 0.875, 235 for 0.95
    assert report.passed and f"timm's {theirs}.{cfg.tag} (crop_pct {cfg.crop_pct})" in report.text()
    meta = load_model(tmp_path / "ours.safetensors").weights_meta
    assert meta.classes == IMAGENET.meta["categories"]
    assert (meta.input_size, meta.resize_size) == (cfg.input_size[-1], resize) == (224, resize)
    assert (meta.mean, meta.std) == (list(cfg.mean), list(cfg.std))
    image = _photo(tmp_path / "photo.png")
    prepare = v2.Compose(
        [
            v2.Resize(resize, antialias=True),
            v2.CenterCrop(224),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(cfg.mean, cfg.std),
        ]
    )
    index, prob = _reference_top(model, image, prepare)
    (name, p), *_ = predict(tmp_path / "ours.safetensors", [image]).predictions[0].top
    assert name == IMAGENET.meta["categories"][index] and p == pytest.approx(prob, abs=1e-4)


@pytest.mark.parametrize(
    ("num_classes", "found"), [(7, "7 outputs on 3 channels"), (None, "no fc")]
)
def test_other_class_counts_get_no_assumed_names_or_preprocessing(tmp_path, num_classes, found):
    state = torchvision.models.resnet18(num_classes=num_classes or 1000).state_dict()
    if num_classes is None:  # a backbone without its classifier
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    torch.save(state, tmp_path / "tv.pth")
    report = convert(tmp_path / "tv.pth", tmp_path / "ours.safetensors", model="resnet18")
    assert f"none assumed ({found}, not ImageNet-1k's 1000 outputs on RGB)" in report.text()
    meta = load_model(tmp_path / "ours.safetensors").weights_meta
    assert meta.classes is None and meta.input_size is None and meta.mean is None
    with pytest.raises(DataError, match="lacks preprocessing metadata"):
        predict(tmp_path / "ours.safetensors", [_photo(tmp_path / "photo.png")])


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_the_sources_own_metadata_is_kept(tmp_path, suffix):
    model = create_model("resnet20")
    meta = WeightsMeta(
        "resnet20", model.config, [f"c{i}" for i in range(10)], 32, None, [0.5] * 3, [0.25] * 3
    )
    save_weights(model, tmp_path / "r20.safetensors", meta)
    report = convert(tmp_path / "r20.safetensors", tmp_path / f"out{suffix}")
    assert report.metadata == f"classes and preprocessing: kept from {tmp_path / 'r20.safetensors'}"
    assert load_model(tmp_path / f"out{suffix}").weights_meta == meta
    top = predict(tmp_path / f"out{suffix}", [_photo(tmp_path / "p.png", (40, 40))]).predictions
    assert top[0].top[0][0].startswith("c")


def test_a_pth_output_does_not_replace_a_metadata_file_without_overwrite(r20, tmp_path):
    (tmp_path / "out.pth.json").write_text("{}")
    with pytest.raises(UsageError, match=r"out.pth.json already exists; pass --overwrite"):
        convert(r20, tmp_path / "out.pth")
    assert not (tmp_path / "out.pth").exists()
    convert(r20, tmp_path / "out.pth", overwrite=True)
    assert load_model(tmp_path / "out.pth").weights_meta == load_model(r20).weights_meta
