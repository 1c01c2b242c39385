"""Detection scores through a maintained implementation: torchmetrics' MeanAveragePrecision on
pycocotools' COCOeval (mAP@[.5:.95], mAP50, mAP75, AR@100, small / medium / large, per class),
and from its precision-recall tables, per class, AP50 and the precision and recall at the score
threshold of the best F1 (Ultralytics' P and R). The confusion matrix at IoU 0.5 with a
background row and column is our own (no maintained one scores boxes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torchvision.ops import box_iou

from ..errors import UsageError

Detections = list[dict[str, torch.Tensor]]  # per image: boxes [N, 4], scores [N], labels [N]
Targets = list[dict[str, torch.Tensor]]  # per image: boxes [M, 4], labels [M]
SUMMARY = {  # our plain names: torchmetrics' keys
    "map": "map",
    "map50": "map_50",
    "map75": "map_75",
    "map_small": "map_small",
    "map_medium": "map_medium",
    "map_large": "map_large",
    "ar100": "mar_100",
}


def mean_average_precision():
    try:
        from torchmetrics.detection import MeanAveragePrecision
    except ImportError:
        raise UsageError(
            "detection scores need torchmetrics and pycocotools: pip install 'resnets[detection]'"
        ) from None
    return MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
        class_metrics=True,
        extended_summary=True,
        sync_on_compute=False,  # one process scores every image (torchrun: process 0)
    )


@dataclass
class BoxScores:
    """A split's detection scores: the COCO summary, and per class AP, AP50, P and R."""

    summary: dict[str, float]
    per_class: list[dict[str, Any]]
    images: int
    boxes: int
    pr_curves: dict[str, list[list[float]]] = field(default_factory=dict)  # class: [R, P] @ .5
    confusion: list[list[int]] | None = None  # rows true, columns predicted; last: background
    confusion_threshold: float | None = None
    title: str = ""

    def table(self) -> str:
        return table(self, self.title)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary,
            "images": self.images,
            "boxes": self.boxes,
            "per_class": self.per_class,
            "confusion": self.confusion,
            "confusion_threshold": self.confusion_threshold,
        }


def score_boxes(
    detections: Detections, targets: Targets, classes: list[str], confusion: bool = False
) -> BoxScores:
    """COCO scores of `detections` against `targets` (labels: class index + 1 in both)."""
    metric = mean_average_precision()
    metric.update(
        [
            {k: d[k].detach().cpu().float() if k != "labels" else d[k].cpu() for k in d}
            for d in detections
        ],
        [{"boxes": t["boxes"].cpu().float(), "labels": t["labels"].cpu()} for t in targets],
    )
    out = metric.compute()
    summary = {name: float(out[key]) for name, key in SUMMARY.items()}
    precision, scores = out["precision"], out["scores"]  # [T=10, R=101, K, A=4, M=3]
    listed = out["classes"].tolist()
    listed = [listed] if isinstance(listed, int) else listed
    per_class, curves = [], {}
    ap = out["map_per_class"].reshape(-1).tolist()
    counts = torch.bincount(
        torch.cat([t["labels"].cpu() for t in targets] + [torch.zeros(0, dtype=torch.long)]),
        minlength=len(classes) + 1,
    )
    for k, label in enumerate(listed):
        if not 1 <= label <= len(classes):
            continue
        p50 = precision[0, :, k, 0, -1]
        valid = p50 >= 0
        ap50 = float(p50[valid].mean()) if valid.any() else -1.0
        recall = torch.linspace(0, 1, p50.numel())
        f1 = torch.where(
            valid, 2 * p50 * recall / (p50 + recall).clamp_min(1e-12), torch.tensor(-1.0)
        )
        best = int(f1.argmax())
        row = {
            "class": classes[label - 1],
            "boxes": int(counts[label]),
            "ap": ap[k],
            "ap50": ap50,
            "precision": float(p50[best]) if valid.any() else 0.0,
            "recall": float(recall[best]) if valid.any() else 0.0,
            "threshold": float(scores[0, best, k, 0, -1]) if valid.any() else None,
        }
        per_class.append(row)
        curves[classes[label - 1]] = [recall[valid].tolist(), p50[valid].tolist()]
    n_boxes = int(sum(len(t["labels"]) for t in targets))
    result = BoxScores(summary, per_class, len(targets), n_boxes, curves)
    if confusion:
        threshold = best_f1_threshold(per_class)
        result.confusion = confusion_matrix(detections, targets, len(classes), threshold)
        result.confusion_threshold = threshold
    return result


def best_f1_threshold(per_class: list[dict[str, Any]]) -> float:
    """The score threshold for the confusion matrix: the median of the classes' best-F1 ones
    (0.25, Ultralytics' default, when none has one)."""
    found = sorted(r["threshold"] for r in per_class if r["threshold"] is not None)
    return found[len(found) // 2] if found else 0.25


def confusion_matrix(
    detections: Detections, targets: Targets, num_classes: int, threshold: float, iou: float = 0.5
) -> list[list[int]]:
    """[K + 1, K + 1] counts: rows the true class, columns the predicted one, the last row and
    column the background (a missed box; a detection of nothing). Detections at or above the
    score threshold are matched to boxes greedily by IoU >= `iou`, whatever their classes."""
    bg = num_classes
    matrix = torch.zeros(num_classes + 1, num_classes + 1, dtype=torch.long)
    for det, tgt in zip(detections, targets, strict=True):
        keep = det["scores"] >= threshold
        boxes, labels = det["boxes"][keep].cpu().float(), det["labels"][keep].cpu() - 1
        truth, true_labels = tgt["boxes"].cpu().float(), tgt["labels"].cpu() - 1
        matched_pred, matched_true = set(), set()
        if len(boxes) and len(truth):
            overlaps = box_iou(truth, boxes)
            pairs = (overlaps >= iou).nonzero().tolist()
            pairs.sort(key=lambda p: -float(overlaps[p[0], p[1]]))
            for t, p in pairs:
                if t in matched_true or p in matched_pred:
                    continue
                matched_true.add(t)
                matched_pred.add(p)
                matrix[true_labels[t], labels[p]] += 1
        for t in range(len(truth)):
            if t not in matched_true:
                matrix[true_labels[t], bg] += 1
        for p in range(len(boxes)):
            if p not in matched_pred:
                matrix[bg, labels[p]] += 1
    return matrix.tolist()


def table(scores: BoxScores, title: str = "") -> str:
    """Ultralytics' per-class table: images, boxes, P, R, mAP50, mAP50-95."""
    head = f"{'class':<16}{'boxes':>8}{'P':>8}{'R':>8}{'mAP50':>8}{'mAP50-95':>10}"
    lines = [title] if title else []
    lines.append(head)
    s = scores.summary
    p = [r["precision"] for r in scores.per_class]
    r = [r["recall"] for r in scores.per_class]
    mean_p = sum(p) / len(p) if p else 0.0
    mean_r = sum(r) / len(r) if r else 0.0
    lines.append(
        f"{'all':<16}{scores.boxes:>8}{mean_p:>8.3f}{mean_r:>8.3f}{s['map50']:>8.3f}{s['map']:>10.3f}"
    )
    for row in scores.per_class:
        lines.append(
            f"{row['class'][:15]:<16}{row['boxes']:>8}{row['precision']:>8.3f}{row['recall']:>8.3f}"
            f"{row['ap50']:>8.3f}{row['ap']:>10.3f}"
        )
    lines.append(
        f"mAP75 {s['map75']:.3f}  AR@100 {s['ar100']:.3f}  small / medium / large mAP "
        f"{s['map_small']:.3f} / {s['map_medium']:.3f} / {s['map_large']:.3f} "
        f"({scores.images} images)"
    )
    return "\n".join(lines)
