"""Detection scores equal pycocotools' COCOeval run by hand on the same detections, with an
image that has no boxes and a class that is never predicted; the confusion matrix counts."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from resnets.detection.metrics import confusion_matrix, score_boxes

CLASSES = ["a", "b", "c"]


def scene(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    detections, targets = [], []
    for i in range(12):
        n = 0 if i == 3 else int(torch.randint(1, 5, (), generator=g))  # image 3: no boxes
        xy = torch.rand(n, 2, generator=g) * 80
        wh = torch.rand(n, 2, generator=g) * 60 + 8
        truth = torch.cat([xy, xy + wh], 1)
        labels = torch.randint(1, 3, (n,), generator=g)  # class "c" (3) is never in the boxes
        jitter = torch.randn(n, 4, generator=g) * 4
        boxes = torch.cat([truth + jitter, torch.rand(2, 4, generator=g).sort(1).values * 100])
        pred_labels = torch.cat([labels, torch.tensor([1, 3])])  # "c": a false positive
        if i % 4 == 1:
            pred_labels[0] = 3 - pred_labels[0] if n else pred_labels[0]  # a wrong class
        scores = torch.rand(len(boxes), generator=g)
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        detections.append({"boxes": boxes, "scores": scores, "labels": pred_labels})
        targets.append({"boxes": truth, "labels": labels})
    return detections, targets


def cocoeval(detections, targets):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, results = [], [], []
    for i, (det, tgt) in enumerate(zip(detections, targets, strict=True)):
        images.append({"id": i, "width": 200, "height": 200})
        for box, label in zip(tgt["boxes"].tolist(), tgt["labels"].tolist(), strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": label,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        for box, label, score in zip(
            det["boxes"].tolist(), det["labels"].tolist(), det["scores"].tolist(), strict=True
        ):
            results.append(
                {
                    "image_id": i,
                    "category_id": label,
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                    "score": score,
                }
            )
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": k + 1, "name": c} for k, c in enumerate(CLASSES)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def test_scores_equal_cocoeval_by_hand():
    detections, targets = scene()
    ours = score_boxes(detections, targets, CLASSES, confusion=True)
    ev = cocoeval(detections, targets)
    for name, k in {"map": 0, "map50": 1, "map75": 2, "ar100": 8}.items():
        assert ours.summary[name] == pytest.approx(ev.stats[k], abs=1e-6), name
    by_class = {r["class"]: r for r in ours.per_class}
    for k, name in enumerate(CLASSES[:2]):
        p = ev.eval["precision"][:, :, k, 0, -1]
        assert by_class[name]["ap"] == pytest.approx(float(np.mean(p[p > -1])), abs=1e-6)
        p50 = p[0]
        assert by_class[name]["ap50"] == pytest.approx(float(np.mean(p50[p50 > -1])), abs=1e-6)
    assert by_class["a"]["boxes"] + by_class["b"]["boxes"] == ours.boxes
    assert ours.images == 12


def test_confusion_matrix_counts_hits_misses_and_false_alarms():
    truth = {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]])}
    truth["labels"] = torch.tensor([1, 2, 2])
    det = {
        "boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 31], [80, 80, 90, 90], [0, 0, 9, 9]]),
        "labels": torch.tensor([1, 1, 2, 1]),
        "scores": torch.tensor([0.9, 0.8, 0.7, 0.1]),  # the last is below the threshold
    }
    matrix = confusion_matrix([det], [truth], 2, threshold=0.5)
    # rows: true a, b, background; columns: predicted a, b, background
    assert matrix == [[1, 0, 0], [1, 0, 1], [0, 1, 0]]
