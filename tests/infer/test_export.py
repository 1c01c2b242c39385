import json
import warnings

import pytest
import torch

from resnets.cli import main
from resnets.errors import UsageError
from resnets.infer import export as export_module
from resnets.infer.export import ExportError, export
from resnets.models import load_model
from resnets.models.weights import save_weights

SIDECARS = ("", ".json", ".parity.json")


def _break_folding(monkeypatch, delta: float) -> None:
    """Make graph exports wrong by `delta` on one logit (a bug in BN folding, say)."""
    real = export_module.fold_bn

    def broken(model):
        folded = real(model)
        with torch.no_grad():
            folded.fc.bias[0] += delta
        return folded

    monkeypatch.setattr(export_module, "fold_bn", broken)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_export_passes_its_parity_check_on_the_runs_test_images(digits_run, tmp_path, fmt):
    out = tmp_path / f"model.{fmt}"
    report = export(digits_run, fmt, out=out, dynamic_batch=fmt != "safetensors")
    assert report.passed and report.max_rel_diff <= 1e-4 and report.top1_agreement == 100.0
    assert report.images == 16 and "test-split images" in report.inputs
    pre = json.loads((tmp_path / f"model.{fmt}.json").read_text())
    assert (
        pre["input_size"] == 8 and pre["classes"][:3] == ["0", "1", "2"] and len(pre["mean"]) == 1
    )
    saved = json.loads((tmp_path / f"model.{fmt}.parity.json").read_text())
    assert saved["passed"] and saved["max_abs_diff"] == report.max_abs_diff


def test_onnx_file_carries_the_preprocessing_and_folded_bn(digits_run, tmp_path):
    import onnx

    export(digits_run, "onnx", out=tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["resnets"])["model"] == "resnet20"
    ops = {n.op_type for n in proto.graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops


def test_a_failing_parity_check_fails_loudly_and_writes_nothing(
    digits_run, tmp_path, monkeypatch, capsys
):
    _break_folding(monkeypatch, 1.0)
    with pytest.raises(ExportError, match=r"differs from the model .*; not written; report in"):
        export(digits_run, "onnx", out=tmp_path / "m.onnx")
    assert _snapshot(tmp_path).keys() == {"m.onnx.parity-failed.json"}
    failed = json.loads((tmp_path / "m.onnx.parity-failed.json").read_text())
    assert not failed["passed"] and failed["max_abs_diff"] >= 0.5
    assert main(["export", str(digits_run), "--out", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the onnx export differs") and err.count("\n") == 1
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_failed_export_leaves_the_earlier_one_and_its_sidecars_untouched(
    digits_run, tmp_path, monkeypatch, fmt
):
    out = tmp_path / f"m.{fmt}"
    export(digits_run, fmt, out=out)
    before = _snapshot(tmp_path)
    assert set(before) == {out.name + s for s in SIDECARS}
    _break_folding(monkeypatch, 1.0)
    with pytest.raises(ExportError, match=rf"the earlier m.{fmt} is untouched"):
        export(digits_run, fmt, out=out, overwrite=True)
    after = _snapshot(tmp_path)
    assert after.pop(f"m.{fmt}.parity-failed.json")  # the failing report, beside the good one
    assert after == before  # byte for byte, and no temporary files left behind
    monkeypatch.undo()
    assert export(digits_run, fmt, out=out, overwrite=True).passed
    assert set(_snapshot(tmp_path)) == set(before)  # the stale failure report is gone


def test_an_existing_export_is_replaced_only_with_overwrite(digits_run, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    export(digits_run, "onnx", out=out)
    before = _snapshot(tmp_path)
    with pytest.raises(UsageError, match=r"m.onnx already exists; pass --overwrite .* --out"):
        export(digits_run, "onnx", out=out)
    assert _snapshot(tmp_path) == before
    assert main(["export", str(digits_run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already exists" in err and err.count("\n") == 1
    report = export(digits_run, "onnx", out=out, overwrite=True, dynamic_batch=True)
    assert report.passed and _snapshot(tmp_path).keys() == before.keys()
    assert _snapshot(tmp_path)[out.name] != before[out.name]  # dynamic axes: a new file


def test_an_export_never_replaces_its_source_or_takes_a_wrong_suffix(digits_run, tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes((digits_run / "best.safetensors").read_bytes())
    with pytest.raises(UsageError, match="is the source itself"):
        export(weights, "safetensors", out=weights, overwrite=True)
    with pytest.raises(UsageError, match=r"needs a name ending in \.safetensors, got w\.pth"):
        export(weights, "safetensors", out=tmp_path / "w.pth")
    assert _snapshot(tmp_path).keys() == {"w.safetensors"}


def test_parity_is_relative_to_the_logits_scale(digits_run, tmp_path, monkeypatch):
    model = load_model(digits_run / "best.safetensors").eval()
    with torch.no_grad():
        x = torch.randn(64, 1, 8, 8)
        scale = 3000 / model(x).abs().max()
        model.fc.weight.mul_(scale)
        model.fc.bias.mul_(scale)
    save_weights(model, tmp_path / "big.safetensors")
    report = export(tmp_path / "big.safetensors", "torchscript", out=tmp_path / "big.pt")
    assert report.passed and report.tolerance == 1e-4
    assert report.max_abs_diff > 1e-4  # float32 noise that an absolute 1e-4 would reject
    assert report.max_rel_diff < 1e-5 and "relative" in report.text()
    _break_folding(monkeypatch, 3.0)  # about 1e-3 of the largest logit: a real error
    with pytest.raises(ExportError, match=r"relative .* > 0.0001"):
        export(tmp_path / "big.safetensors", "torchscript", out=tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


def test_export_cli_with_given_images(digits_run, tmp_path, capsys):
    from PIL import Image

    Image.new("L", (30, 30), 128).save(tmp_path / "a.png")
    out, image = str(tmp_path / "m.pt"), str(tmp_path / "a.png")
    code = main(
        ["export", str(digits_run), "--format", "torchscript", "--out", out, "--images", image]
    )
    assert code == 0
    assert "parity on 1 given images" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated from 2.14
        module = torch.jit.load(str(tmp_path / "m.pt"))
    assert module(torch.randn(3, 1, 8, 8)).shape == (3, 10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tolerance", "nan"], "must be in"),
        (["--tolerance", "-1"], "must be in"),
        (["--format", "onnx", "--out", "m.pt"], "needs a name ending in .onnx"),
        (["--format", "torchscript", "--out", "m.onnx"], "needs a name ending in .pt"),
    ],
)
def test_export_options_that_cannot_be_meant_are_refused(
    digits_run, tmp_path, capsys, args, message
):
    from resnets.cli import main

    out = [a if not a.startswith("m.") else str(tmp_path / a) for a in args]
    assert main(["export", str(digits_run), *out]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_an_onnx_file_given_as_weights_says_what_it_is(digits_run, tmp_path):
    from resnets.errors import WeightsError
    from resnets.models.weights import read_weights

    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(WeightsError, match="is an ONNX export"):
        read_weights(tmp_path / "model.onnx")
