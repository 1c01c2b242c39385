import json

import pytest
import torch

from resnets import evaluate, load_model
from resnets.cli import main
from resnets.data import DataOptions, load_splits
from resnets.errors import UsageError

from ..helpers import QUIET


def test_evaluate_a_run_reproduces_its_test_accuracy(digits_run):
    summary = json.loads((digits_run / "summary.json").read_text())
    report = evaluate(digits_run)
    assert report.count == summary["test_images"] == 359
    assert report.acc1 == pytest.approx(summary["test_acc1"], abs=1e-9)
    assert sum(sum(r) for r in report.confusion) == 359
    assert sum(r["support"] for r in report.per_class) == 359
    assert (digits_run / "eval" / "confusion-test.png").stat().st_size > 1000
    assert (digits_run / "eval" / "reliability-test.png").stat().st_size > 10000
    saved = json.loads((digits_run / "eval" / "eval-test.json").read_text())
    assert saved["balanced_acc"] == report.balanced_acc and saved["ece"] == report.ece
    assert saved["calibration"]["bins"] == 15 and sum(saved["calibration"]["count"]) == 359
    assert saved["macro_auc"] == report.macro_auc and saved["binary"] is None
    assert all(0.5 < row["auc"] <= 1 for row in saved["per_class"])


def test_per_class_numbers_match_a_direct_computation(digits_run):
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from ..helpers import numpy_ece

    report = evaluate(digits_run, split="val")
    model = load_model(digits_run / "best.safetensors").eval()
    splits = load_splits(DataOptions(), seed=0)
    x = (splits.val.images.float() / 255 - model.weights_meta.mean[0]) / model.weights_meta.std[0]
    with torch.no_grad():
        probs = model(x).softmax(1)
    pred, y = probs.argmax(1), splits.val.labels
    for c, row in enumerate(report.per_class):
        tp = ((pred == c) & (y == c)).sum().item()
        assert row["recall"] == pytest.approx(tp / (y == c).sum().item())
        assert row["precision"] == pytest.approx(tp / max((pred == c).sum().item(), 1))
        assert row["auc"] == pytest.approx(roc_auc_score(y == c, probs[:, c]), abs=1e-6)
    assert report.macro_auc == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"), abs=1e-6)
    assert report.balanced_acc == pytest.approx(100 * balanced_accuracy_score(y, pred))
    assert report.ece == pytest.approx(100 * numpy_ece(probs.numpy(), y.numpy()), abs=1e-4)


def test_a_class_absent_from_the_split_has_no_auc_and_is_left_out_of_the_means():
    import warnings

    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from resnets.infer.report import classification_report

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (200,), generator=g)  # class 3 ("d") never occurs
    probs = (torch.randn(200, 4, generator=g) + 2 * torch.eye(4)[labels]).softmax(1)
    report = classification_report(probs, labels, ["a", "b", "c", "d"], "test", False)
    assert report.per_class[3]["auc"] is None and report.per_class[3]["support"] == 0
    present = [roc_auc_score(labels == c, probs[:, c]) for c in range(3)]
    assert report.macro_auc == pytest.approx(sum(present) / 3, abs=1e-12)
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": left out too
        warnings.simplefilter("ignore")
        balanced = balanced_accuracy_score(labels, probs.argmax(1))
    assert report.balanced_acc == pytest.approx(100 * balanced, abs=1e-9)
    table = report.table()
    assert "balanced accuracy" in table and "ECE" in table and "(15 confidence bins)" in table
    assert table.splitlines()[-1].split()[-2:] == ["n/a", "0"]


def test_flip_tta_and_weights_file_with_data(digits_run, tmp_path):
    report = evaluate(digits_run / "best.safetensors", data="digits", tta_flip=True, out=tmp_path)
    assert report.tta_flip and 0 < report.acc1 <= 100
    assert (tmp_path / "eval-test.json").is_file()


def test_evaluate_cli_json_and_errors(digits_run, capsys, tmp_path):
    assert main(["evaluate", str(digits_run), "--json", "--out", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["split"] == "test" and len(data["per_class"]) == 10
    assert {"balanced_acc", "macro_auc", "ece", "calibration", "binary"} <= set(data)
    assert "auc" in data["per_class"][0] and data["calibration"]["bins"] == 15
    assert data["files"]["reliability diagram"] == str(tmp_path / "reliability-test.png")
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "neither a run folder nor a weights file" in capsys.readouterr().err
    own = evaluate(digits_run / "best.safetensors")  # a run's weights find the run's data
    assert own.acc1 == data["acc1"] and own.count == data["count"]
    alone = tmp_path / "alone.safetensors"
    alone.write_bytes((digits_run / "best.safetensors").read_bytes())
    with pytest.raises(UsageError, match="need --data"):
        evaluate(alone)


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A short run on an image folder with three named classes."""
    from resnets import train

    from ..helpers import write_image_folder

    root = tmp_path_factory.mktemp("folder_run")
    data = write_image_folder(root / "shapes", classes=("circle", "square", "tri"), per_class=10)
    run = root / "run"
    train(
        data=f"imagefolder:{data}",
        image_size=16,
        batch_size=8,
        epochs=1,
        num_workers=0,
        out=str(run),
        **QUIET,
    )
    return run, data


def test_classes_are_matched_by_name_not_position(folder_run, tmp_path):
    import shutil

    run, data = folder_run
    other = tmp_path / "other"
    for name in ("square", "tri"):  # a subset: positions 0, 1 here are 1, 2 in the weights
        shutil.copytree(data / name, other / name)
    report = evaluate(run / "best.safetensors", data=f"imagefolder:{other}", out=tmp_path)
    support = {row["class"]: row["support"] for row in report.per_class}
    assert support["circle"] == 0 and support["square"] > 0 and support["tri"] > 0
    assert report.classes == ["circle", "square", "tri"]


def test_a_folder_with_classes_the_weights_lack_is_refused(folder_run, tmp_path):
    import shutil

    run, data = folder_run
    other = tmp_path / "other"
    shutil.copytree(data / "circle", other / "circle")
    shutil.copytree(data / "tri", other / "triangle")
    with pytest.raises(UsageError, match="do not know: triangle; the weights know: circle, square"):
        evaluate(run / "best.safetensors", data=f"imagefolder:{other}", out=tmp_path)


def test_evaluate_refuses_data_that_changed_unless_accepted(folder_run, tmp_path):
    import shutil

    from resnets.errors import DataError

    run, data = folder_run
    copy_run, copy_data = tmp_path / "run", tmp_path / "shapes"
    shutil.copytree(run, copy_run)
    shutil.copytree(data, copy_data)
    config = (copy_run / "config.yaml").read_text().replace(str(data), str(copy_data))
    (copy_run / "config.yaml").write_text(config)
    original = evaluate(copy_run, out=tmp_path / "a")
    (copy_data / "tri" / "0.jpg").rename(copy_data / "tri" / "renamed.jpg")
    with pytest.raises(DataError, match=r"1 added, e\.g\. tri/renamed\.jpg; 1 removed"):
        evaluate(copy_run, out=tmp_path / "b")
    kept = evaluate(copy_run, out=tmp_path / "c", allow_changed_data=True)
    was_test = "tri/0.jpg" in _test_files(copy_run)
    assert kept.count == original.count - was_test  # the same split, less the file that went


def _test_files(run) -> set:
    import gzip

    return set(json.loads(gzip.decompress((run / "splits.json.gz").read_bytes()))["files"]["test"])


def test_segmentation_classes_are_matched_by_name():
    from resnets.infer.evaluate import class_map

    remap = class_map(["value 0", "value 255"], ["value 0", "value 128", "value 255"], True)
    assert remap.tolist() == [0, 2]  # by position, 255 would have been scored as 128


def test_unicode_class_names_match_in_any_normal_form():
    from resnets.infer.evaluate import class_map

    assert class_map(["tw\u006f\u0301"], ["one", "tw\u00f3"], True).tolist() == [1]


def test_weights_and_data_of_different_tasks_are_refused(digits_run, tmp_path):
    with pytest.raises(UsageError, match="classification weights need class labels"):
        evaluate(digits_run / "best.safetensors", data="shapes", out=tmp_path)


def test_a_report_on_other_data_never_replaces_the_runs_own(digits_run):
    import shutil
    import tempfile
    from pathlib import Path

    run = Path(tempfile.mkdtemp()) / "run"
    shutil.copytree(digits_run, run)
    evaluate(run)
    own = (run / "eval" / "eval-test.json").read_bytes()
    (run / "eval" / "eval-test.json").write_bytes(own + b" ")  # to tell it apart
    evaluate(run, data="digits", split="val")
    assert (run / "eval" / "eval-test.json").read_bytes() == own + b" "
    assert (run / "eval" / "digits" / "eval-val.json").is_file()


def test_split_all_scores_every_image_once(digits_run, tmp_path):
    every = evaluate(digits_run, split="all", out=tmp_path)
    parts = [evaluate(digits_run, split=s, out=tmp_path) for s in ("train", "val", "test")]
    assert every.count == sum(p.count for p in parts) == 1797  # the whole digits set
    right = sum(p.acc1 * p.count for p in parts) / 100
    assert every.acc1 == pytest.approx(100 * right / every.count, abs=1e-9)
    assert (tmp_path / "eval-all.json").is_file()
    with pytest.raises(UsageError, match="split must be one of train, val, test, all"):
        evaluate(digits_run, split="everything")


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    """A short two-class run on synthetic images: outputs that separate the classes, not
    perfectly."""
    from resnets import train

    run = tmp_path_factory.mktemp("binary") / "run"
    train(
        data="synthetic",
        synthetic_classes=2,
        synthetic_samples=128,
        image_size=16,
        batch_size=16,
        lr=0.02,
        epochs=2,
        out=str(run),
        **QUIET,
        seed=0,
    )
    return run


def _test_outputs(run) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax outputs and labels of a run's test split, computed here with the model."""
    from resnets.infer.evaluate import run_split_loader

    model = load_model(run / "best.safetensors").eval()
    loader = run_split_loader(run, model.weights_meta, model.config.in_chans, "test", 256)
    with torch.no_grad():
        pairs = [(model(x).softmax(1), y) for x, y in loader]
    return torch.cat([p for p, _ in pairs]), torch.cat([y for _, y in pairs])


def _assert_rates(binary: dict, probs: torch.Tensor, labels: torch.Tensor) -> None:
    from sklearn.metrics import recall_score

    said = (probs[:, 1] >= binary["threshold"]).numpy()
    assert binary["sensitivity"] == pytest.approx(recall_score(labels, said, pos_label=1))
    assert binary["specificity"] == pytest.approx(recall_score(labels, said, pos_label=0))


def test_two_classes_give_sensitivity_and_specificity_at_the_threshold(binary_run, tmp_path):
    import dataclasses
    import shutil

    from sklearn.metrics import roc_auc_score

    from resnets.models.weights import save_weights

    probs, labels = _test_outputs(binary_run)
    run = tmp_path / "run"
    shutil.copytree(binary_run, run)
    model = load_model(run / "best.safetensors")

    def carrying(thresholds):
        meta = dataclasses.replace(model.weights_meta, thresholds=thresholds)
        save_weights(model, run / "best.safetensors", meta)
        return evaluate(run, out=tmp_path / str(thresholds))

    report = carrying(None)  # weights without a threshold: 0.5
    assert report.binary["positive_class"] == "class1" and report.binary["threshold"] == 0.5
    assert report.binary["threshold_from"] == "default"
    _assert_rates(report.binary, probs, labels)
    assert report.macro_auc == pytest.approx(roc_auc_score(labels, probs[:, 1]), abs=1e-6)
    assert "threshold 0.500 (default): sensitivity" in report.table()

    s = probs[:, 1].sort().values  # weights that carry a threshold: half way up the outputs
    cut = float((s[len(s) // 2 - 1] + s[len(s) // 2]) / 2)
    own = carrying([cut])
    assert own.binary["threshold"] == cut and own.binary["threshold_from"] == "weights"
    _assert_rates(own.binary, probs, labels)
    said = (probs[:, 1] >= cut).long()
    assert own.binary["accuracy"] == pytest.approx(100 * (said == labels).double().mean().item())
    assert own.binary != report.binary and f"threshold {cut:.3f} (the weights'" in own.table()


def test_two_class_weights_with_thresholds_for_more_classes_are_refused():
    from resnets.errors import WeightsError
    from resnets.infer.report import binary_rates

    with pytest.raises(WeightsError, match="carry 3 thresholds"):
        binary_rates(torch.rand(4, 2), torch.tensor([0, 1, 0, 1]), ["a", "b"], [0.5, 0.5, 0.5])


def test_other_data_is_scored_whole_and_the_runs_own_on_its_test_split(digits_run, tmp_path):
    own = evaluate(digits_run, data="digits", out=tmp_path / "own")  # the run's own spec
    assert (own.split, own.count) == ("test", 359)
    alone = tmp_path / "alone.safetensors"
    alone.write_bytes((digits_run / "best.safetensors").read_bytes())
    other = evaluate(alone, data="digits", out=tmp_path / "other")  # no run: other data
    assert (other.split, other.count) == ("all", 1797)


def test_a_two_class_run_keeps_the_threshold_chosen_on_validation(binary_run, tmp_path):
    from PIL import Image
    from sklearn.metrics import roc_auc_score

    from resnets import predict
    from resnets.infer.evaluate import run_split_loader
    from resnets.metrics import binary_accuracy, youden_threshold

    model = load_model(binary_run / "best.safetensors").eval()
    meta = model.weights_meta
    (cut,) = meta.thresholds

    def outputs(split):
        loader = run_split_loader(binary_run, meta, model.config.in_chans, split, 256)
        with torch.no_grad():
            pairs = [(model(x).softmax(1)[:, 1], y) for x, y in loader]
        return torch.cat([p for p, _ in pairs]), torch.cat([y for _, y in pairs])

    assert cut == pytest.approx(youden_threshold(*outputs("val")), abs=1e-6)
    summary = json.loads((binary_run / "summary.json").read_text())
    scores, labels = outputs("test")
    accuracy, balanced = binary_accuracy(scores, labels, cut)
    assert summary["test_threshold"] == pytest.approx(cut)
    assert summary["test_acc_cut"] == pytest.approx(100 * accuracy, abs=1e-6)
    assert summary["test_balanced_acc_cut"] == pytest.approx(100 * balanced, abs=1e-6)
    assert summary["test_auc"] == pytest.approx(100 * roc_auc_score(labels, scores), abs=1e-4)

    # predict decides by the weights' threshold, not by the larger probability
    images = torch.rand(12, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray((img * 255).byte().numpy()).save(paths[-1])
    result = predict(binary_run, paths, topk=1)
    for p in result.predictions:
        probs = dict(predict(binary_run, [p.path], topk=2).predictions[0].top)
        assert p.top[0][0] == ("class1" if probs["class1"] >= cut else "class0")
        assert p.threshold == cut
    assert f"(threshold {cut:.3f})" in result.table()
