import json

import pytest
import torch

from resnets import evaluate, load_model
from resnets.cli import main
from resnets.data import DataOptions, load_splits
from resnets.errors import UsageError


def test_evaluate_a_run_reproduces_its_test_accuracy(digits_run):
    summary = json.loads((digits_run / "summary.json").read_text())
    report = evaluate(digits_run)
    assert report.count == summary["test_images"] == 359
    assert report.acc1 == pytest.approx(summary["test_acc1"], abs=1e-9)
    assert sum(sum(r) for r in report.confusion) == 359
    assert sum(r["support"] for r in report.per_class) == 359
    assert (digits_run / "eval" / "confusion-test.png").stat().st_size > 1000


def test_per_class_numbers_match_a_direct_computation(digits_run):
    report = evaluate(digits_run, split="val")
    model = load_model(digits_run / "best.safetensors").eval()
    splits = load_splits(DataOptions(), seed=0)
    x = (splits.val.images.float() / 255 - model.weights_meta.mean[0]) / model.weights_meta.std[0]
    with torch.no_grad():
        pred = model(x).argmax(1)
    y = splits.val.labels
    for c, row in enumerate(report.per_class):
        tp = ((pred == c) & (y == c)).sum().item()
        assert row["recall"] == pytest.approx(tp / (y == c).sum().item())
        assert row["precision"] == pytest.approx(tp / max((pred == c).sum().item(), 1))


def test_flip_tta_and_weights_file_with_data(digits_run, tmp_path):
    report = evaluate(digits_run / "best.safetensors", data="digits", tta_flip=True, out=tmp_path)
    assert report.tta_flip and 0 < report.acc1 <= 100
    assert (tmp_path / "eval-test.json").is_file()


def test_evaluate_cli_json_and_errors(digits_run, capsys, tmp_path):
    assert main(["evaluate", str(digits_run), "--json", "--out", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["split"] == "test" and len(data["per_class"]) == 10
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "neither a run folder nor a weights file" in capsys.readouterr().err
    with pytest.raises(UsageError, match="need --data"):
        evaluate(digits_run / "best.safetensors")
