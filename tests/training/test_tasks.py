"""Segmentation training, and fine-tuning from pretrained weights."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from resnets import evaluate, load_model, predict, train
from resnets.data import DataOptions, load_splits
from resnets.errors import UsageError
from resnets.models.segmentation import SegmentationModel

from ..helpers import QUIET


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("seg") / "run"
    opts = {"task": "segmentation", "data": "shapes", "model": "resnet20", "image_size": 32}
    summary = train(
        out=str(run),
        synthetic_samples=192,
        batch_size=32,
        epochs=10,
        warmup_epochs=1,
        amp="bf16",  # trained in bf16, the test Dice is still the fp32 weights' (evaluate's)
        **opts,
        **QUIET,
    )
    return run, summary


def test_segmentation_learns_and_saves_masks(seg_run):
    run, s = seg_run
    assert s["task"] == "segmentation" and s["test_dice"] > 40 and s["test_iou"] > 25
    assert s["test_images"] == 48
    masks = sorted((run / "test-masks").glob("*.png"))
    assert len(masks) == 48
    mask = np.asarray(Image.open(masks[0]))
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 127, 254}
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_dice", "val_dice", "val_iou"} <= set(header)
    assert json.loads((run / "summary.json").read_text())["best_val_dice"] == s["best_val_dice"]


def test_segmentation_weights_evaluate_and_predict(seg_run, tmp_path):
    run, s = seg_run
    model = load_model(run / "best.safetensors")
    assert isinstance(model, SegmentationModel) and model.num_classes == 3
    report = evaluate(run)
    assert report.dice == pytest.approx(s["test_dice"], abs=1e-6)
    splits = load_splits(DataOptions(data="shapes", image_size=32, synthetic_samples=192), seed=0)
    Image.fromarray(splits.test.images[0, 0].numpy()).save(tmp_path / "shape.png")
    result = predict(run, [tmp_path / "shape.png"], masks_out=tmp_path / "masks")
    assert result.predictions[0].mask == str(tmp_path / "masks" / "shape.png.png")
    truth = splits.test.labels[0]
    pred = torch.from_numpy(np.asarray(Image.open(tmp_path / "masks" / "shape.png.png")) // 127)
    assert ((pred > 0) == (truth > 0)).float().mean() > 0.8


def test_segfolder_of_images_and_masks(tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (tmp_path / "seg" / sub).mkdir(parents=True)
    for i in range(24):
        mask = np.zeros((40, 40), np.uint8)
        y, x = rng.integers(5, 25, 2)
        mask[y : y + 12, x : x + 12] = 255
        img = (rng.normal(60, 20, (40, 40)) + (mask > 0) * 120).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(tmp_path / "seg" / "images" / f"{i}.png")
        Image.fromarray(mask).save(tmp_path / "seg" / "masks" / f"{i}.png")
    s = train(
        task="segmentation",
        data=f"segfolder:{tmp_path / 'seg'}",
        image_size=32,
        batch_size=8,
        epochs=2,
        out=str(tmp_path / "run"),
        **QUIET,
    )
    assert s["test_images"] == 5 and s["test_dice"] is not None


def test_task_and_data_must_agree(tmp_path):
    with pytest.raises(UsageError, match="--task segmentation needs masks"):
        train(task="segmentation", data="digits", out=str(tmp_path / "a"), **QUIET)
    with pytest.raises(UsageError, match="holds masks; add --task segmentation"):
        train(data="shapes", out=str(tmp_path / "b"), **QUIET)


def write_even_odd(root, per_class: int, offset: int) -> None:
    """Digits as PNGs in two new classes, even and odd: a task the digits weights did not see."""
    splits = load_splits(DataOptions(), seed=0)
    data = splits.test
    counts = {"even": 0, "odd": 0}
    for img, label in zip(data.images[offset:], data.labels[offset:], strict=False):
        cls = "even" if int(label) % 2 == 0 else "odd"
        if counts[cls] >= per_class:
            continue
        (root / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0].numpy()).save(root / cls / f"{counts[cls]}.png")
        counts[cls] += 1


@pytest.mark.slow
def test_fine_tuning_beats_training_from_scratch_on_a_small_set(digits_run, tmp_path):
    write_even_odd(tmp_path / "small" / "train", per_class=12, offset=0)
    write_even_odd(tmp_path / "small" / "test", per_class=60, offset=100)
    common = {
        "data": f"imagefolder:{tmp_path / 'small'}",
        "image_size": 8,
        "batch_size": 8,
        "epochs": 15,
        "num_workers": 0,
        "val_split": 0.2,
        "seed": 0,
        **QUIET,
    }
    scratch = train(out=str(tmp_path / "scratch"), **common)
    tuned = train(
        out=str(tmp_path / "tuned"),
        pretrained=str(digits_run / "best.safetensors"),
        lr_backbone=0.01,
        **common,
    )
    frozen = train(
        out=str(tmp_path / "frozen"),
        pretrained=str(digits_run / "best.safetensors"),
        freeze_backbone=True,
        **common,
    )
    assert tuned["test_acc1"] >= scratch["test_acc1"] + 10, (
        tuned["test_acc1"],
        scratch["test_acc1"],
    )
    assert frozen["test_acc1"] >= scratch["test_acc1"] + 10
