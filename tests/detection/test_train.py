"""Training, resuming, evaluating and predicting a detector on the bundled box set."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import resnets
from resnets.detection import train as detection_train
from resnets.errors import UsageError
from resnets.training.saving import Interrupted
from tests.helpers import QUIET, StopAtStep

TINY = {
    "task": "detection",
    "data": "shapes-boxes",
    "synthetic_samples": 96,  # 24 images: 17 train (5 steps of 4), 2 val, 5 test
    "batch_size": 4,
    "seed": 0,
    **QUIET,
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("det") / "run"
    summary = resnets.train(out=str(out), epochs=2, **TINY)
    return out, summary


def test_a_run_folder_like_classification(trained):
    out, summary = trained
    for name in ("config.yaml", "last.pt", "best.safetensors", "metrics.csv", "summary.json"):
        assert (out / name).is_file(), name
    for name in ("eval-test.json", "pr-test.png", "confusion-test.png"):
        assert (out / "eval" / name).is_file(), name
    assert (out / "val-predictions.png").is_file()
    saved = json.loads((out / "summary.json").read_text())
    assert saved["test_map50"] == summary["test_map50"]
    assert 0.0 <= summary["test_map"] <= summary["test_map50"] <= 1.0
    assert summary["epochs"] == 2 and summary["steps"] == 2 * 5
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "val_map" in rows[0]
    assert any("kept as negatives" in n for n in summary["notes"])


def test_resume_equals_an_uninterrupted_run(tmp_path, trained, monkeypatch):
    out, _ = trained
    first = tmp_path / "resumed"
    monkeypatch.setattr(detection_train, "StopRequest", lambda: StopAtStep(1))  # after epoch 1
    with pytest.raises(Interrupted, match="after epoch 1"):
        resnets.train(out=str(first), epochs=2, **TINY)
    monkeypatch.undo()
    resnets.train(resume=str(first), **QUIET)
    whole, resumed = load_file(out / "best.safetensors"), load_file(first / "best.safetensors")
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    a = json.loads((out / "summary.json").read_text())
    b = json.loads((first / "summary.json").read_text())
    assert a["test_map"] == b["test_map"]


def test_evaluate_and_predict_the_trained_detector(trained, tmp_path):
    out, summary = trained
    report = resnets.evaluate(out)
    assert report.summary["map"] == pytest.approx(summary["test_map"], abs=1e-9)
    assert [r["class"] for r in report.per_class] == ["circle", "square", "triangle"]
    from PIL import Image

    from resnets.detection.shapes import shapes_boxes

    pixels = shapes_boxes(2, seed=7).found
    Image.fromarray(pixels[0].pixels).save(tmp_path / "rgb.jpg")
    Image.fromarray(pixels[1].pixels[:, :, 0]).resize((200, 150)).save(tmp_path / "grey.png")
    result = resnets.predict(out, [tmp_path], masks_out=tmp_path / "drawn", score_threshold=0.0)
    assert sorted(p.path.rsplit("/", 1)[1] for p in result.predictions) == ["grey.png", "rgb.jpg"]
    grey = next(p for p in result.predictions if p.path.endswith("grey.png"))
    assert all(0 <= b[0] <= b[2] <= 200 and 0 <= b[1] <= b[3] <= 150 for b in grey.boxes)
    assert (tmp_path / "drawn" / "rgb.jpg.png").is_file()  # named as predict names masks
    with pytest.raises(UsageError, match="exists; pass --overwrite"):
        resnets.predict(out, [tmp_path / "rgb.jpg"], masks_out=tmp_path / "drawn")
    coco = json.loads((tmp_path / "drawn" / "coco-results.json").read_text())
    assert len(coco) == sum(len(p.boxes) for p in result.predictions)


def test_evaluate_on_other_boxes_scores_each_image_once(trained, tmp_path):
    from PIL import Image

    from resnets.detection.shapes import shapes_boxes

    out, _ = trained
    root = tmp_path / "voc"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    found = shapes_boxes(6, seed=3).found
    for i, item in enumerate(found):
        Image.fromarray(item.pixels).save(root / "JPEGImages" / f"{i}.png")
        objects = "".join(
            f"<object><name>{label}</name><bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            for (x1, y1, x2, y2), label in zip(item.boxes, item.labels, strict=True)
        )
        xml = f"<annotation><filename>{i}.png</filename>{objects}</annotation>"
        (root / "Annotations" / f"{i}.xml").write_text(xml)
    (root / "ImageSets/Main/train.txt").write_text("0\n1\n2\n3\n")
    (root / "ImageSets/Main/test.txt").write_text("4\n5\n")
    every = resnets.evaluate(out, data=f"voc:{root}")
    assert every.images == 6 and every.boxes == sum(len(f.boxes) for f in found)
    assert resnets.evaluate(out, data=f"voc:{root}", split="test").images == 2


def test_detection_needs_boxes(tmp_path):
    with pytest.raises(UsageError, match="reads boxes"):
        resnets.train(task="detection", data="digits", out=str(tmp_path / "r"), **QUIET)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("head", ["retinanet", "fcos", "fasterrcnn-c5"])
def test_every_head_trains_a_step(tmp_path, head):
    options = TINY | {"synthetic_samples": 32, "steps": 1, "head": head}
    summary = resnets.train(out=str(tmp_path / head), **options)
    assert summary["steps"] == 1 and summary["head"] == head


def test_export_onnx_finds_what_the_detector_finds(trained, tmp_path):
    """The published ONNX file, run here in ONNX Runtime on an image of another size than the
    export's example, gives the eager detector's boxes, labels and scores."""
    import onnxruntime as ort

    from resnets.detection.infer import load_detector, read_file

    out, _ = trained
    report = resnets.export(out, out=tmp_path / "det.onnx")
    assert report.passed and report.same_counts and report.images == 5
    assert json.loads((tmp_path / "det.onnx.json").read_text())["task"] == "detection"
    model, meta, _, _ = load_detector(out, torch.device("cpu"))
    image = tmp_path / "wide.png"
    from PIL import Image

    pixels = (torch.rand(40, 90, 3) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(image)
    _, x, _ = read_file(image, meta.detector)
    assert x.shape[1:] != (meta.detector["size"],) * 2  # not the square the export was made at
    session = ort.InferenceSession(str(tmp_path / "det.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model([x])[0]
    got = dict(zip(ref, session.run(None, {"image": x.numpy()}), strict=True))
    assert len(got["boxes"]) == len(ref["boxes"]) > 0
    assert torch.allclose(torch.from_numpy(got["boxes"]), ref["boxes"], atol=1e-3)
    assert torch.allclose(torch.from_numpy(got["scores"]), ref["scores"], atol=1e-4)
    assert torch.equal(torch.from_numpy(got["labels"]), ref["labels"])
    with pytest.raises(UsageError, match="detector's ONNX export"):  # not a classifier's
        resnets.predict(tmp_path / "det.onnx", [image])


@pytest.mark.parametrize(
    ("options", "message"), [({"fmt": "torchscript"}, "ONNX only"), ({"int8": True}, "fp32")]
)
def test_export_refuses_what_a_detector_cannot_be(trained, tmp_path, options, message):
    out, _ = trained
    target = tmp_path / ("det.pt" if options.get("fmt") else "det.onnx")
    with pytest.raises(UsageError, match=message):
        resnets.export(out, out=target, **options)
    assert not target.exists()


@pytest.mark.slow
def test_faster_rcnn_learns_the_bundled_boxes_from_scratch(tmp_path):
    """The issue's bar: test mAP50 >= 0.9 on the bundled set (512 images) from random weights,
    with the default recipe at 96 px and 32 sampled RoIs per image (measured on the 2-core
    CPU, one thread: 0.913 in 5 epochs, 176 s of training, with resnet20's 128-wide pyramid;
    256 wide it took 330 s)."""
    summary = resnets.train(
        out=str(tmp_path / "run"),
        task="detection",
        data="shapes-boxes",
        epochs=5,
        image_size=96,
        rois_per_image=32,
        seed=0,
        **QUIET,
    )
    assert summary["test_images"] == 102
    assert summary["test_map50"] >= 0.9, summary["test_per_class"]


def test_a_nan_loss_stops_the_run_with_a_plain_error(tmp_path, monkeypatch):
    from resnets.errors import TrainingError

    real = detection_train.micro_step

    def poisoned(run, part, batch):
        return {k: v * float("nan") for k, v in real(run, part, batch).items()}

    monkeypatch.setattr(detection_train, "micro_step", poisoned)
    with pytest.raises(TrainingError, match="loss became nan at step 0; lower --lr"):
        resnets.train(out=str(tmp_path / "run"), epochs=1, **TINY)
