"""Multi-label tables: several labels per image, sigmoid outputs, per-label thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from resnets import ImageClassifier, evaluate, load_model, predict, train
from resnets.data import DataOptions, load_splits
from resnets.errors import UsageError

from ..helpers import QUIET

CORNERS = ("bl", "br", "tl", "tr")


def write_corners(root, n=240, size=16, seed=0, columns=False):
    """Grey images with a bright square in some of the four corners; each corner present is a
    label. A table with a `labels` column ("tl|br") or one 0/1 column per corner."""
    rng = np.random.default_rng(seed)
    (root / "imgs").mkdir(parents=True)
    half = size // 2
    place = {"tl": (0, 0), "tr": (0, half), "bl": (half, 0), "br": (half, half)}
    rows = ["path," + (",".join(CORNERS) if columns else "labels")]
    for i in range(n):
        img = rng.integers(0, 60, (size, size)).astype(np.uint8)
        present = [c for c in CORNERS if rng.random() < (0.15 if c == "tr" else 0.4)]
        for c in present:
            y, x = place[c]
            img[y + 2 : y + half - 2, x + 2 : x + half - 2] = 220
        Image.fromarray(img).save(root / "imgs" / f"{i}.png")
        labels = (
            ",".join("1" if c in present else "0" for c in CORNERS)
            if columns
            else "|".join(present)
        )
        rows.append(f"imgs/{i}.png,{labels}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


@pytest.mark.parametrize("columns", [False, True])
def test_a_table_with_several_labels_per_image_is_multi_label(tmp_path, columns):
    table = write_corners(tmp_path, n=40, columns=columns)
    splits = load_splits(DataOptions(data=f"csv:{table}", num_workers=0, image_size=16), 0)
    assert splits.classes == list(CORNERS)
    labels = splits.tensors("train").labels
    assert labels.shape[1] == 4 and set(labels.unique().tolist()) <= {0.0, 1.0}
    assert any("multi-label" in n for n in splits.notes)
    assert sum(len(getattr(splits, n)) for n in ("train", "val", "test")) == 40


@pytest.fixture(scope="module")
def corners_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("corners")
    table = write_corners(root)
    summary = train(
        data=f"csv:{table}",
        model="resnet20",
        epochs=3,
        batch_size=32,
        **QUIET,
        out=str(root / "run"),
        num_workers=0,
        seed=0,
        amp="bf16",
    )
    return root, summary


def test_multi_label_trains_with_bce_and_picks_thresholds_on_validation(corners_run):
    root, summary = corners_run
    assert summary["task"] == "multilabel" and summary["test_auc"] > 90
    assert any("positive weights per label" in n for n in summary["notes"])
    meta = load_model(root / "run" / "best.safetensors").weights_meta
    assert meta.task == "multilabel" and len(meta.thresholds) == 4
    assert any("thresholds (best F1 on validation)" in n for n in summary["notes"])


def test_evaluate_reports_per_label_auc_equal_to_scikit_learn(corners_run):
    root, summary = corners_run
    report = evaluate(root / "run", out=root / "eval")
    assert report.count == summary["test_images"]
    assert report.auc == pytest.approx(summary["test_auc"], abs=1e-6)
    # the same test images, predicted one by one through predict(): sklearn's AUC on them
    splits = json.loads((root / "eval" / "eval-test.json").read_text())
    model = load_model(root / "run" / "best.safetensors").eval()
    from resnets.infer.evaluate import run_split_loader

    loader = run_split_loader(root / "run", model.weights_meta, 1, "test", 64)
    with torch.no_grad():
        probs = torch.cat([model(x).sigmoid() for x, _ in loader]).numpy()
    targets = torch.cat([y for _, y in loader]).numpy()
    for j, row in enumerate(splits["per_label"]):
        assert row["auc"] == pytest.approx(roc_auc_score(targets[:, j], probs[:, j]), abs=1e-9)


def test_predict_returns_the_labels_above_their_thresholds(corners_run, tmp_path):
    root, _ = corners_run
    img = np.full((16, 16), 30, np.uint8)
    img[2:6, 2:6] = 220  # top left
    img[10:14, 10:14] = 220  # bottom right
    Image.fromarray(img).save(tmp_path / "two.png")
    result = predict(root / "run", [tmp_path / "two.png"])
    clf = ImageClassifier.load(root / "run" / "best.safetensors")
    probs, cut = clf.predict_proba(tmp_path / "two.png"), clf.model.weights_meta.thresholds
    above = [j for j in range(4) if probs[j] >= cut[j]]
    assert clf.predict(tmp_path / "two.png") == above
    assert {name for name, _ in result.predictions[0].top} == {CORNERS[j] for j in above}
    assert {"br", "tl"} <= {CORNERS[j] for j in above}


def test_python_items_with_0_1_vectors_are_multi_label(tmp_path):
    from resnets.data.python import PythonData, python_splits

    g = torch.Generator().manual_seed(0)
    items = [
        (torch.rand(1, 8, 8, generator=g), torch.tensor([i % 2, 1, i % 3 == 0])) for i in range(40)
    ]
    splits = python_splits(PythonData(items), DataOptions(data="python"), None, None)
    assert splits.classes == ["0", "1", "2"] and splits.train.labels.shape[1] == 3
    summary = train(data=items, epochs=1, batch_size=8, progress=False, out=str(tmp_path / "r"))
    assert summary["task"] == "multilabel" and summary["test_auc"] is not None


def test_multilabel_refuses_single_label_data():
    with pytest.raises(UsageError, match="needs several labels per image"):
        train(task="multilabel", data="digits", epochs=1, progress=False, out=None)
