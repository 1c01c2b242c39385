"""Scoring multi-label weights: per label ROC-AUC, average precision and F1 at the thresholds
chosen on validation (stored with the weights), and their macro means."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import UsageError
from ..metrics import label_metrics, macro
from .backends import Predictor
from .report import Report


@dataclass
class MultiLabelReport(Report):
    split: str
    count: int
    auc: float  # macro means over the labels where each is defined, in %
    ap: float
    f1: float
    tta_flip: bool
    labels: list[str]
    per_label: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def table(self) -> str:
        lines = [
            f"{self.split}: {self.count} images" + (" (flip TTA)" if self.tta_flip else ""),
            f"macro ROC-AUC {self.auc:.2f} %   mAP {self.ap:.2f} %   macro F1 {self.f1:.2f} %",
            "",
            f"{'label':<20} {'AUC':>7} {'AP':>7} {'F1':>7} {'thresh':>7} {'pos':>6}",
        ]
        for row in self.per_label:
            lines.append(
                f"{row['label'][:20]:<20} {row['auc']:>7.4f} {row['ap']:>7.4f} "
                f"{row['f1']:>7.4f} {row['threshold']:>7.3f} {row['positives']:>6}"
            )
        lines += [f"{k}: {v}" for k, v in self.files.items()]
        return "\n".join(lines)


def sigmoid_outputs(infer: Predictor, loader, tta_flip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    probs, targets = [], []
    for x, y in loader:
        p = infer(x).float().sigmoid()
        if tta_flip:
            p = (p + infer(x.flip(3)).float().sigmoid()) / 2
        probs.append(p.cpu())
        targets.append(y.cpu())
    return torch.cat(probs), torch.cat(targets)


def evaluate_labels(
    infer: Predictor,
    loader,
    split: str,
    remap: torch.Tensor,
    thresholds: list[float] | None,
    tta_flip: bool,
) -> MultiLabelReport:
    """The data's labels (`loader.classes`), each scored on the weights' output `remap[j]`."""
    probs, targets = sigmoid_outputs(infer, loader, tta_flip)
    if targets.ndim != 2:
        raise UsageError("multi-label weights need multi-label data (several labels per image)")
    probs = probs[:, remap]
    cut = torch.tensor(thresholds)[remap] if thresholds else torch.full((len(remap),), 0.5)
    m = label_metrics(probs, targets, cut)
    per_label = [
        {
            "label": name,
            "auc": m["auc"][j],
            "ap": m["ap"][j],
            "f1": m["f1"][j],
            "threshold": float(cut[j]),
            "positives": int(targets[:, j].sum()),
        }
        for j, name in enumerate(loader.classes)
    ]
    return MultiLabelReport(
        split=split,
        count=len(targets),
        auc=100 * macro(m["auc"]),
        ap=100 * macro(m["ap"]),
        f1=100 * macro(m["f1"]),
        tta_flip=tta_flip,
        labels=list(loader.classes),
        per_label=per_label,
    )
