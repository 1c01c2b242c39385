"""What a run learns, decided in one place. A `Task` says how outputs are scored (its meter
and loss), which validation number selects the best weights, what the summary reports, and
how its outputs are written. Training, evaluate and predict ask the task named in the config
or in the weights' metadata; nothing guesses it from the shape of the labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UsageError, unknown_name
from .metrics import BinaryMeter, Meter, MultiLabelMeter, SegmentationMeter
from .options import TASKS as TASK_NAMES


@dataclass(frozen=True)
class Task:
    name: str
    score: str  # the validation metric that selects the best weights
    label: str  # how that metric is printed
    test_keys: tuple[str, ...]  # what the summary reports of the test split
    masks: bool  # labels and outputs are per pixel
    multilabel: bool = False  # labels are multi-hot rows: one sigmoid decision per label
    boxes: bool = False  # outputs are boxes with a class and a score (detection/)

    def meter(
        self,
        device: torch.device,
        num_classes: int,
        sums: torch.Tensor | None = None,
        keep: bool = False,
    ) -> Meter | SegmentationMeter | MultiLabelMeter:
        """The metric sums; `keep`: an evaluation, where multi-label and two-class scoring
        keep every output (for AUC and a chosen threshold)."""
        if self.masks:
            return SegmentationMeter(device, num_classes, sums)
        if self.multilabel:
            return MultiLabelMeter(device, sums, keep)
        if num_classes == 2:
            return BinaryMeter(device, sums, keep)
        return Meter(device, sums)

    def criterion(self, label_smoothing: float = 0.0, weight: torch.Tensor | None = None):
        """Cross-entropy in float32 (autocast's logits may be bf16), per image or per pixel;
        multi-label: binary cross-entropy per label, `weight` its positives' weight."""

        def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(
                logits.float(), target.float(), pos_weight=weight
            )

        def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            smoothing = label_smoothing if target.ndim == 1 else 0.0  # soft targets have it
            return F.cross_entropy(logits.float(), target, weight=weight, label_smoothing=smoothing)

        return bce if self.multilabel else loss

    def check_data(self, data: str, labels: torch.Tensor | None, mixing: bool) -> None:
        """The data fits the task: masks for segmentation, a class per image otherwise."""
        has_masks = labels is not None and labels.ndim >= 3  # a folder stream has no masks
        several = labels is not None and labels.ndim == 2
        if self.multilabel and not several:
            raise UsageError(
                f"--task multilabel needs several labels per image ('a|b' in a CSV label "
                f"column, or 0/1 columns); {data} has one"
            )
        if self.multilabel and mixing:
            raise UsageError("MixUp and CutMix apply to single-label classification only")
        if self.masks and not has_masks:
            raise UsageError(
                f"--task segmentation needs masks: --data shapes or segfolder:PATH, not {data}"
            )
        if not self.masks and has_masks:
            raise UsageError(f"{data} holds masks; add --task segmentation")
        if self.masks and mixing:
            raise UsageError("MixUp and CutMix apply to classification only")


CLASSIFICATION = Task("classification", "acc1", "top-1", ("acc1", "acc5", "loss"), masks=False)
SEGMENTATION = Task("segmentation", "dice", "Dice", ("dice", "iou", "pixel_acc", "loss"), True)
MULTILABEL = Task("multilabel", "auc", "macro AUC", ("auc", "map", "f1", "loss"), False, True)
# Detection trains and scores through detection/ (torchvision's detectors compute their own
# losses); its meter is COCO mAP there, selected on mAP@[.5:.95].
DETECTION = Task("detection", "map", "mAP", ("map", "map50", "map75"), False, boxes=True)
TASKS = {t.name: t for t in (CLASSIFICATION, SEGMENTATION, MULTILABEL, DETECTION)}
assert tuple(TASKS) == TASK_NAMES, "options.py names the tasks"


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise unknown_name("task", name, TASKS)
    return TASKS[name]


def task_for(asked: str, labels: torch.Tensor | None) -> Task:
    """The task asked for, unless the labels say more: classification data with several
    labels per image (0/1 rows) is multi-label."""
    several = labels is not None and labels.ndim == 2
    return get_task("multilabel" if asked == "classification" and several else asked)


def write_mask(mask: torch.Tensor, path: Path, num_classes: int) -> Path:
    """A class-index mask [H, W] as a grey PNG: class c at c x 255 / (classes - 1); a
    volume's [D, H, W] as .npy of class indices (the PNG name's suffix replaced)."""
    from PIL import Image

    if mask.ndim == 3:
        path = path.with_suffix(".npy")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, mask.to(torch.uint8).cpu().numpy())
        return path

    scale = 255 // max(num_classes - 1, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((mask.to(torch.uint8) * scale).cpu().numpy()).save(path)
    return path
