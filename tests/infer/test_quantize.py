import json
import math
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from resnets.errors import UsageError
from resnets.infer import quantize
from resnets.infer.evaluate import run_split_loader
from resnets.infer.export import ExportError, export
from resnets.models import load_model

SIDECARS = ("", ".json", ".parity.json")


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _test_logits(path, run) -> tuple[np.ndarray, np.ndarray]:
    """Logits of an .onnx on the run's test split by ONNX Runtime, one image at a time."""
    meta = load_model(run / "best.safetensors").weights_meta
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits, labels = [], []
    for x, y in run_split_loader(run, meta, 1, "test", batch_size=64):
        logits += [session.run(None, {name: image[None]})[0][0] for image in x.numpy()]
        labels += y.tolist()
    return np.stack(logits), np.array(labels)


def _count_calibration_images(monkeypatch) -> list[int]:
    """Record how many images each `quantize_static` call is given to calibrate on."""
    real, seen = quantize.quantize_static, []

    def counting(model_in, model_out, reader, **kwargs):
        batches = list(iter(reader.get_next, None))
        seen.append(sum(len(next(iter(b.values()))) for b in batches))
        reader.batches = iter(batches)
        return real(model_in, model_out, reader, **kwargs)

    monkeypatch.setattr(quantize, "quantize_static", counting)
    return seen


def test_int8_export_keeps_top1_and_runs_in_onnxruntime(digits_run, tmp_path):
    run = shutil.copytree(digits_run, tmp_path / "run", ignore=shutil.ignore_patterns("export"))
    report = export(run, "onnx", int8=True)
    target = run / "export" / "model.int8.onnx"
    assert report.path == str(target) and report.passed
    assert set(_snapshot(run / "export")) == {target.name + s for s in SIDECARS}  # no model.onnx
    assert report.drop <= 1.0 and report.top1_agreement >= 95.0
    assert report.calibration_images == 300 and "training images" in report.calibrated_on
    assert report.fp32_max_rel_diff <= 1e-4
    logits, labels = _test_logits(target, run)
    top1 = 100.0 * (logits.argmax(1) == labels).sum() / len(labels)
    assert len(labels) == report.test_images and math.isclose(top1, report.int8_top1)
    assert logits.dtype == np.float32 and len(np.unique(logits)) > 256  # float logits: no ties
    proto = onnx.load(str(target))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "BatchNormalization" not in ops
    stored = json.loads({p.key: p.value for p in proto.metadata_props}["resnets"])
    sidecar = json.loads((run / "export" / "model.int8.onnx.json").read_text())
    assert stored == sidecar and sidecar["input_size"] == 8 and len(sidecar["mean"]) == 1
    assert sidecar["quantization"]["calibration_images"] == 300
    saved = json.loads((run / "export" / "model.int8.onnx.parity.json").read_text())
    assert saved["passed"] and saved["int8_top1"] == report.int8_top1
    text = report.text()
    assert "tolerance does not apply to INT8" in text and f"{report.int8_top1:.2f} %" in text


def test_evaluate_reads_the_int8_export_as_a_model(digits_run, tmp_path):
    from resnets.infer.evaluate import evaluate

    run = shutil.copytree(digits_run, tmp_path / "run", ignore=shutil.ignore_patterns("export"))
    report = export(run, "onnx", int8=True, calibration=32)
    assert evaluate(run / "export" / "model.int8.onnx").acc1 == pytest.approx(report.int8_top1)


def test_a_drop_beyond_max_drop_fails_and_leaves_the_earlier_export(digits_run, tmp_path):
    out = tmp_path / "m.int8.onnx"
    export(digits_run, "onnx", out=out, int8=True, calibration=32)
    before = _snapshot(tmp_path)
    with pytest.raises(
        ExportError, match=r"loses .* points .*; the earlier m.int8.onnx is untouched"
    ):
        export(digits_run, "onnx", out=out, int8=True, calibration=32, max_drop=-1, overwrite=True)
    after = _snapshot(tmp_path)
    failed = json.loads(after.pop("m.int8.onnx.parity-failed.json"))
    assert after == before and not failed["passed"] and failed["max_drop"] == -1


def test_a_broken_quantizer_fails_and_writes_nothing(digits_run, tmp_path, monkeypatch):
    real = quantize.quantize_static

    def blank(model_in, model_out, reader, **kwargs):  # ranges measured on blank images
        reader.batches = iter([{k: v * 0 for k, v in b.items()} for b in reader.batches])
        return real(model_in, model_out, reader, **kwargs)

    monkeypatch.setattr(quantize, "quantize_static", blank)
    with pytest.raises(ExportError, match=r"the INT8 export loses .*; not written; report in"):
        export(digits_run, "onnx", out=tmp_path / "m.int8.onnx", int8=True, calibration=16)
    assert set(_snapshot(tmp_path)) == {"m.int8.onnx.parity-failed.json"}


@pytest.mark.parametrize("dynamic_batch", [False, True])
def test_the_calibration_count_is_honoured(digits_run, tmp_path, monkeypatch, dynamic_batch):
    seen = _count_calibration_images(monkeypatch)
    monkeypatch.setattr(quantize, "needs_reduce_range", lambda: (True, "no VNNI (test)"))
    out = tmp_path / "m.onnx"
    report = export(digits_run, out=out, dynamic_batch=dynamic_batch, int8=True, calibration=16)
    assert seen == [16] and report.calibration_images == 16
    assert report.quantization["reduce_range"] and "7-bit" in report.text()
    assert json.loads((tmp_path / "m.onnx.json").read_text())["quantization"]["reduce_range"]


def test_given_images_calibrate_instead_of_the_training_split(digits_run, tmp_path, monkeypatch):
    from PIL import Image

    rng = np.random.default_rng(0)
    files = [tmp_path / f"{i}.png" for i in range(3)]
    for f in files:
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(f)
    seen = _count_calibration_images(monkeypatch)
    report = export(
        digits_run, out=tmp_path / "m.onnx", images=files, int8=True, calibration=2, max_drop=100
    )
    assert seen == [2] and report.calibrated_on == "given images"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"calibration": 0}, r"--calibration is a number of images, at least 1, got 0"),
        ({"calibration": 2.5}, r"--calibration .* got 2.5"),
        ({"max_drop": float("nan")}, r"--max-drop"),
        ({"fmt": "torchscript"}, r"--int8 quantizes an ONNX export; use --format onnx"),
    ],
)
def test_bad_int8_options_are_one_line_usage_errors(digits_run, tmp_path, kwargs, message):
    kwargs = {"fmt": "onnx"} | kwargs
    with pytest.raises(UsageError, match=message) as caught:
        export(digits_run, out=tmp_path / "m.onnx", int8=True, **kwargs)
    assert "\n" not in str(caught.value) and not any(tmp_path.iterdir())


def test_int8_needs_a_run_for_its_test_split(digits_run, tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes((digits_run / "best.safetensors").read_bytes())
    with pytest.raises(UsageError, match=r"--int8 checks top-1 on a run's test split"):
        export(weights, int8=True)
    assert set(_snapshot(tmp_path)) == {"w.safetensors"}


def test_reduce_range_follows_the_cpus_vnni(monkeypatch):
    monkeypatch.setattr(quantize.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(quantize, "cpu_features", lambda: {"vnni": False})
    assert quantize.needs_reduce_range() == (True, "the CPU has no VNNI (avx512_vnni or avx_vnni)")
    monkeypatch.setattr(quantize, "cpu_features", lambda: {"vnni": True})
    assert quantize.needs_reduce_range()[0] is False
    monkeypatch.setattr(quantize.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(quantize, "cpu_features", lambda: {"vnni": False})
    assert quantize.needs_reduce_range()[0] is False
