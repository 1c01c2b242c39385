"""The classification report of `evaluate`: top-1/5 and balanced accuracy, per-class precision,
recall, F1 and one-vs-rest ROC-AUC, calibration (ECE over confidence bins) and, for two
classes, sensitivity and specificity at a threshold."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import WeightsError
from ..files import atomic_write_json
from ..metrics import (
    POSITIVE,
    binary_accuracy,
    calibration_bins,
    expected_calibration_error,
    macro,
    one_vs_rest_auc,
    sensitivity_specificity,
    shown_cut,
    topk_correct,
)
from ..plots import confusion_matrix, reliability_diagram

# where a two-class threshold came from, as the report says it
THRESHOLD_FROM = {"weights": "the weights', chosen on validation", "default": "default"}
ECE_BINS = 15  # equal-width bins of the top-1 probability, as in Guo et al. 2017


class Report:
    """What every report of `evaluate` offers, whatever the task: its numbers as a dict, saved
    as eval-SPLIT.json, and as the text the command prints."""

    split: str
    files: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, folder: Path) -> Path:
        """eval-SPLIT.json in `folder`, written atomically; its path joins `files`."""
        path = folder / f"eval-{self.split}.json"
        self.files["report"] = str(path)
        atomic_write_json(path, self.to_dict())
        return path

    def text(self) -> str:
        return self.table()

    def table(self) -> str:
        raise NotImplementedError


@dataclass
class SegmentationReport(Report):
    """Dice, IoU (means over the classes present) and pixel accuracy, in %."""

    split: str
    count: int
    dice: float
    iou: float
    pixel_acc: float
    unit: str = "images"  # or volumes
    files: dict[str, str] = field(default_factory=dict)

    def table(self) -> str:
        lines = [
            f"{self.split}: {self.count} {self.unit}",
            f"Dice {self.dice:.2f} %   IoU {self.iou:.2f} %   "
            f"pixel accuracy {self.pixel_acc:.2f} %",
        ]
        return "\n".join(lines + [f"{k}: {v}" for k, v in self.files.items()])


@dataclass
class EvalReport(Report):
    """Accuracies and ECE in %; precision, recall, F1, AUC, sensitivity and specificity in
    [0, 1]; None where a metric is undefined (the AUC of a class absent from the split)."""

    split: str
    count: int
    acc1: float
    acc5: float
    macro_f1: float
    tta_flip: bool
    classes: list[str]
    balanced_acc: float = 0.0  # mean recall over the classes present
    macro_auc: float | None = None  # mean one-vs-rest ROC-AUC over the classes where defined
    ece: float = 0.0  # expected calibration error over calibration["bins"] bins
    binary: dict[str, Any] | None = None  # two classes: threshold, sensitivity, specificity
    per_class: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)  # per bin: count, acc, confidence
    confusion: list[list[int]] = field(default_factory=list)
    skipped: int = 0
    left_out: int = 0  # items given that the run trained or validated on (not scored)
    mistakes: list[dict[str, Any]] = field(default_factory=list)  # evaluate(explain=K)
    files: dict[str, str] = field(default_factory=dict)

    def table(self) -> str:
        top5 = f"   top-5 {self.acc5:.2f} %" if len(self.classes) > 5 else ""  # else 100 %
        lines = [
            f"{self.split}: {self.count} images" + (" (flip TTA)" if self.tta_flip else ""),
            f"top-1 {self.acc1:.2f} %{top5}   macro F1 {self.macro_f1:.4f}",
            f"balanced accuracy {self.balanced_acc:.2f} %   macro ROC-AUC "
            f"{_four_places(self.macro_auc)}   ECE {self.ece:.2f} % "
            f"({self.calibration.get('bins', ECE_BINS)} confidence bins)",
        ]
        if self.binary:
            b = self.binary
            lines.append(
                f"positive class {b['positive_class']!r} (output {b['positive_index']}), threshold "
                f"{shown_cut(b['threshold'])} ({THRESHOLD_FROM[b['threshold_from']]}): sensitivity "
                f"{_four_places(b['sensitivity'])}   specificity {_four_places(b['specificity'])}"
            )
            if b["threshold_from"] == "weights" and "accuracy" in b:
                lines.append(
                    f"at that threshold: accuracy {b['accuracy']:.2f} %   balanced accuracy "
                    f"{b['balanced_accuracy']:.2f} % (top-1 and the balanced accuracy above "
                    "take the more likely class, a threshold of 0.5)"
                )
        header = f"{'class':<20} {'acc %':>7} {'prec':>7} {'recall':>7} {'F1':>7} {'AUC':>7}"
        lines += ["", f"{header} {'n':>6}"]
        for row in self.per_class:
            lines.append(
                f"{row['class'][:20]:<20} {row['accuracy']:>7.2f} {row['precision']:>7.4f} "
                f"{row['recall']:>7.4f} {row['f1']:>7.4f} {_four_places(row['auc']):>7} "
                f"{row['support']:>6}"
            )
        if self.skipped:
            lines.append(f"\n{self.skipped} unreadable images skipped")
        if self.left_out:
            lines.append(f"\n{self.left_out} images left out: the run trained or validated on them")
        lines += [f"{k}: {v}" for k, v in self.files.items()]
        return "\n".join(lines)


def _four_places(value: float | None) -> str:
    """A metric with four decimals; "n/a" where it is undefined."""
    return "n/a" if value is None else f"{value:.4f}"


def _defined(value: float) -> float | None:
    """NaN (undefined) as None, which JSON can hold."""
    return None if math.isnan(value) else value


def classification_report(
    probs: torch.Tensor,
    labels: torch.Tensor,
    classes: list[str],
    split: str,
    tta: bool,
    thresholds: list[float] | None = None,
) -> EvalReport:
    """Everything `evaluate` reports on softmax `probs` (images x classes) against `labels`
    (the weights' output indices); `thresholds`: the weights' own, used for two classes."""
    n = len(classes)
    hits = topk_correct(probs, labels, (1, 5)).tolist()
    pred = probs.argmax(1)
    cm = torch.bincount(labels * n + pred, minlength=n * n).view(n, n)
    tp = cm.diag().double()
    support, predicted = cm.sum(1).double(), cm.sum(0).double()
    precision = tp / predicted.clamp_min(1)
    recall = tp / support.clamp_min(1)
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    auc = one_vs_rest_auc(probs, labels)
    per_class = [
        {
            "class": classes[i],
            "accuracy": 100 * recall[i].item(),
            "precision": precision[i].item(),
            "recall": recall[i].item(),
            "f1": f1[i].item(),
            "auc": _defined(auc[i]),
            "support": int(support[i]),
        }
        for i in range(n)
    ]
    present = support > 0
    return EvalReport(
        split=split,
        count=len(labels),
        acc1=100 * hits[0] / len(labels),
        acc5=100 * hits[1] / len(labels),
        macro_f1=f1[present].mean().item() if present.any() else 0.0,
        tta_flip=tta,
        classes=classes,
        balanced_acc=100 * recall[present].mean().item() if present.any() else 0.0,
        macro_auc=_defined(macro(auc)),
        ece=100 * expected_calibration_error(probs, labels, ECE_BINS),
        binary=binary_rates(probs, labels, classes, thresholds) if n == 2 else None,
        per_class=per_class,
        calibration=calibration(probs, labels),
        confusion=cm.tolist(),
    )


def calibration(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """The reliability diagram's numbers: per confidence bin (lo, hi], its image count, top-1
    accuracy and mean top-1 probability (None where the bin is empty)."""
    b = calibration_bins(probs, labels, ECE_BINS)
    count = [int(c) for c in b["count"]]
    return {
        "bins": ECE_BINS,
        "count": count,
        "accuracy": [a if c else None for a, c in zip(b["accuracy"].tolist(), count, strict=True)],
        "confidence": [
            p if c else None for p, c in zip(b["confidence"].tolist(), count, strict=True)
        ],
    }


def binary_rates(
    probs: torch.Tensor, labels: torch.Tensor, classes: list[str], thresholds: list[float] | None
) -> dict[str, Any]:
    """Sensitivity (recall of output 1, the positive class) and specificity (recall of output
    0) for "positive if its probability >= threshold": the weights' threshold if they carry
    one (a single value, or one per class), else 0.5."""
    if thresholds and len(thresholds) > 2:
        raise WeightsError(
            f"two-class weights carry {len(thresholds)} thresholds; one, or one per class, fits"
        )
    threshold = float(thresholds[-1]) if thresholds else 0.5
    sensitivity, specificity = sensitivity_specificity(probs[:, POSITIVE], labels, threshold)
    accuracy, balanced = binary_accuracy(probs[:, POSITIVE], labels, threshold)
    return {
        "positive_class": classes[POSITIVE],
        "positive_index": POSITIVE,
        "threshold": threshold,
        "threshold_from": "weights" if thresholds else "default",
        "sensitivity": _defined(sensitivity),
        "specificity": _defined(specificity),
        "accuracy": 100 * accuracy,
        "balanced_accuracy": 100 * balanced,
    }


def write_report(report: EvalReport, folder: Path) -> EvalReport:
    """eval-SPLIT.json, the confusion matrix and the reliability diagram (PNGs) into `folder`,
    their paths in `report.files`."""
    split, bins = report.split, report.calibration
    matrix = torch.tensor(report.confusion)
    png = confusion_matrix(matrix, report.classes, folder / f"confusion-{split}.png")
    title = f"reliability, {split}: ECE {report.ece:.2f} % ({bins['bins']} bins, images per bar)"
    curve = reliability_diagram(
        bins["count"], bins["accuracy"], folder / f"reliability-{split}.png", title
    )
    report.files = {"confusion matrix": str(png), "reliability diagram": str(curve)}
    if report.mistakes:
        report.files["most confident mistakes"] = str(Path(report.mistakes[0]["png"]).parent)
    report.save(folder)
    return report
