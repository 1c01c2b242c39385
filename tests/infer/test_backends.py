import pytest
import torch

from resnets import create_model
from resnets.errors import UsageError
from resnets.infer.backends import OnnxRuntimePredictor, predictor

from ..helpers import randomize_bn

CPU = torch.device("cpu")


@pytest.mark.parametrize("backend", ["eager", "fast", "onnxruntime", "auto"])
def test_every_backend_computes_the_same_function(backend):
    model = randomize_bn(create_model("resnet20", num_classes=7)).eval()
    run = predictor(model, CPU, backend)
    for batch in (1, 3):  # the ONNX graph has a dynamic batch dimension
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            ref = model(x)
        out = run(x)
        assert out.dtype == torch.float32 and out.shape == (batch, 7)
        assert (out - ref).norm() / ref.norm() < 1e-5
    if backend == "eager":
        assert torch.equal(out, ref)
    if backend == "auto":
        assert isinstance(run, OnnxRuntimePredictor)  # fastest on the CPU (RESULTS.md)


def test_unknown_backend_and_wrong_device():
    with pytest.raises(UsageError, match="unknown backend 'tensorrt'"):
        predictor(create_model("resnet20"), CPU, "tensorrt")
    with pytest.raises(UsageError, match="runs on the CPU"):
        predictor(create_model("resnet20"), torch.device("cuda"), "onnxruntime")


def test_predict_with_the_onnxruntime_backend_agrees_with_eager(digits_run, tmp_path):
    from resnets import predict

    from ..helpers import save_digit_pngs

    paths, _ = save_digit_pngs(tmp_path / "imgs", n=4)
    eager = predict(digits_run, paths, backend="eager").predictions
    ort = predict(digits_run, paths, backend="onnxruntime").predictions
    for a, b in zip(eager, ort, strict=True):
        assert a.top[0][0] == b.top[0][0] and abs(a.top[0][1] - b.top[0][1]) < 1e-4


def _fake_cpu(monkeypatch, bf16: bool, times: dict[str, float] | None = None):
    """A CPU with or without native bf16, whose probe measures `times` per dtype."""
    from resnets.infer import backends

    monkeypatch.setattr(backends, "native_bf16", lambda device: (bf16, "a test CPU"))
    if times is not None:
        dtype_of = {torch.float32: "fp32", torch.bfloat16: "bf16"}
        monkeypatch.setattr(backends, "_seconds", lambda run, x: times[dtype_of[run.dtype]])


@pytest.mark.parametrize(
    ("bf16", "times", "picked"),
    [
        (False, None, "onnxruntime"),
        (True, {"fp32": 1.0, "bf16": 0.5}, "fast bf16"),
        (True, {"fp32": 1.0, "bf16": 0.95}, "onnxruntime"),  # within the 1.1x margin
        (True, {"fp32": 1.0, "bf16": 2.0}, "onnxruntime"),
    ],
)
def test_auto_picks_bf16_only_on_native_hardware_where_measured_faster(
    monkeypatch, bf16, times, picked
):
    from resnets.infer.backends import choose_backend

    _fake_cpu(monkeypatch, bf16, times)
    model = create_model("resnet20", num_classes=3)
    chosen, why = choose_backend(model, torch.device("cpu"), batch=4)
    assert chosen == picked
    assert ("probe at batch 4" in why) == bf16
