import pytest
import torch

from resnets import create_model
from resnets.errors import UsageError
from resnets.infer.backends import OnnxRuntimePredictor, predictor

from ..conftest import randomize_bn

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

    from .test_predict import save_digit_pngs

    paths, _ = save_digit_pngs(tmp_path / "imgs", n=4)
    eager = predict(digits_run, paths, backend="eager").predictions
    ort = predict(digits_run, paths, backend="onnxruntime").predictions
    for a, b in zip(eager, ort, strict=True):
        assert a.top[0][0] == b.top[0][0] and abs(a.top[0][1] - b.top[0][1]) < 1e-4
