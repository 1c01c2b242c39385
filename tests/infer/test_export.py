import json
import warnings

import pytest
import torch

from resnets.cli import main
from resnets.infer.export import ExportError, export


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_export_passes_its_parity_check_on_the_runs_test_images(digits_run, tmp_path, fmt):
    out = tmp_path / f"model.{fmt}"
    report = export(digits_run, fmt, out=out, dynamic_batch=fmt != "safetensors")
    assert report.passed and report.max_abs_diff <= 1e-4 and report.top1_agreement == 100.0
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


def test_a_failing_parity_check_fails_loudly_and_removes_the_export(digits_run, tmp_path, capsys):
    with pytest.raises(ExportError, match=r"differs from the model .*removed"):
        export(digits_run, "onnx", out=tmp_path / "m.onnx", tolerance=1e-12)
    assert not (tmp_path / "m.onnx").exists()
    assert (
        main(["export", str(digits_run), "--out", str(tmp_path / "x.onnx"), "--tolerance", "1e-12"])
        == 1
    )
    assert capsys.readouterr().err.startswith("error: the onnx export differs")


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
