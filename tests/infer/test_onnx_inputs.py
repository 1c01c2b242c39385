"""predict and evaluate on .onnx exports: the same answers as the run they came from, the
preprocessing read from the file, and clear refusals where an .onnx cannot be used."""

import json
import shutil

import pytest
import torch
from torch import nn

from resnets import evaluate, predict
from resnets.cli import main
from resnets.errors import UsageError
from resnets.infer.export import export
from resnets.infer.onnx_model import OnnxModel
from resnets.infer.sources import resolve_source

from ..helpers import save_digit_pngs


@pytest.fixture(scope="module")
def onnx_file(digits_run, tmp_path_factory):
    """The run exported as the CLI does by default (fixed batch of one) outside the run."""
    out = tmp_path_factory.mktemp("onnx") / "digits.onnx"
    export(digits_run, "onnx", out=out)
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    paths, _ = save_digit_pngs(tmp_path_factory.mktemp("imgs"), n=7)
    return paths


def test_predict_on_an_export_equals_predict_on_the_run(digits_run, onnx_file, images):
    ours = predict(onnx_file, images, topk=3, batch_size=4)  # batches of 4 on a batch-1 graph
    eager = predict(digits_run, images, topk=3, device="cpu")
    assert len(ours.predictions) == len(images) and not ours.failed
    for a, b in zip(ours.predictions, eager.predictions, strict=True):
        assert a.path == b.path and [c for c, _ in a.top] == [c for c, _ in b.top]
        assert [p for _, p in a.top] == pytest.approx([p for _, p in b.top], abs=1e-4)


def test_the_export_rebuilds_the_weights_metadata(digits_run, onnx_file):
    from resnets import load_model

    model = OnnxModel(onnx_file)
    own = load_model(digits_run / "best.safetensors").weights_meta
    assert (model.channels, model.num_classes, model.batch) == (1, 10, 1)
    assert model.meta.classes == own.classes and model.meta.input_size == own.input_size
    assert (model.meta.mean, model.meta.std, model.meta.task) == (own.mean, own.std, own.task)
    assert model.meta.config.in_chans == 1 and model.meta.config.num_classes == 10


def test_evaluate_an_export_inside_its_run_scores_the_runs_own_split(digits_run, tmp_path):
    run = shutil.copytree(digits_run, tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    export(run, "onnx")  # its default place: RUN/export/model.onnx
    onnx = run / "export" / "model.onnx"
    assert resolve_source(onnx) == (onnx, run)
    ours, eager = evaluate(onnx), evaluate(run, device="cpu")
    assert ours.count == eager.count == 359 and ours.acc1 == eager.acc1
    assert ours.confusion == eager.confusion
    for a, b in zip(ours.per_class, eager.per_class, strict=True):
        for key in ("precision", "recall", "f1", "auc"):
            assert a[key] == pytest.approx(b[key], abs=1e-4)
    saved = json.loads((run / "eval" / "model.onnx" / "eval-test.json").read_text())
    assert saved["acc1"] == ours.acc1  # beside the run's own report, never over it
    assert json.loads((run / "eval" / "eval-test.json").read_text())["acc1"] == eager.acc1


def test_an_onnx_without_resnets_metadata_is_refused_in_one_line(tmp_path, images, capsys):
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    torch.onnx.export(plain.eval(), (torch.randn(1, 1, 8, 8),), dynamo=True).save(
        str(tmp_path / "plain.onnx")
    )
    with pytest.raises(UsageError, match=r"no resnets metadata.*resnets export RUN --format onnx"):
        predict(tmp_path / "plain.onnx", images)
    assert main(["evaluate", str(tmp_path / "plain.onnx"), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no resnets metadata" in err and err.count("\n") == 1


def test_the_json_beside_an_export_stands_in_for_stripped_metadata(onnx_file, images, tmp_path):
    import onnx

    proto = onnx.load(str(onnx_file))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    with pytest.raises(UsageError, match="no resnets metadata"):
        OnnxModel(tmp_path / "bare.onnx")
    shutil.copy(onnx_file.with_name(onnx_file.name + ".json"), tmp_path / "bare.onnx.json")
    first = predict(tmp_path / "bare.onnx", images[:2]).predictions
    assert first == predict(onnx_file, images[:2]).predictions


@pytest.mark.parametrize(
    "options, message",
    [
        ({"device": "cuda"}, "--device cuda: an .onnx export runs on the CPU"),
        ({"device": "cuda:0"}, "--device cuda:0: an .onnx export runs on the CPU"),
        ({"backend": "fast"}, "--backend fast optimizes PyTorch weights"),
        ({"backend": "compile"}, "--backend compile optimizes PyTorch weights"),
    ],
)
def test_gpu_devices_and_pytorch_backends_are_refused(onnx_file, images, options, message):
    with pytest.raises(UsageError, match=message):
        predict(onnx_file, images, **options)
    with pytest.raises(UsageError, match=message):
        evaluate(onnx_file, data="digits", **options)


def test_explain_needs_the_pytorch_weights(onnx_file):
    with pytest.raises(UsageError, match="--explain needs gradients"):
        evaluate(onnx_file, data="digits", explain=2)


def test_the_cli_predicts_with_an_export(onnx_file, images, digits_run, capsys):
    assert main(["predict", str(onnx_file), str(images[0]), "--topk", "1", "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)["predictions"][0]["top"][0]
    assert main(["predict", str(digits_run), str(images[0]), "--topk", "1", "--json"]) == 0
    eager = json.loads(capsys.readouterr().out)["predictions"][0]["top"][0]
    assert ours["class"] == eager["class"] and ours["prob"] == pytest.approx(eager["prob"], 1e-4)
    assert main(["predict", str(onnx_file), str(images[0]), "--backend", "fast"]) == 2
    assert "optimizes PyTorch weights" in capsys.readouterr().err
