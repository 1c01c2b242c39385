"""What a run optimizes: its task (classification, multi-label or segmentation, settled
from the options and the data) and its loss, with class or positive weights."""

from __future__ import annotations

import torch

from ..data import Splits
from ..errors import UsageError
from ..tasks import Task, get_task
from .config import TrainConfig


def train_labels(splits: Splits) -> torch.Tensor | None:
    """The training split's labels (a folder that streams has them too; masks only when
    decoded)."""
    decoded = splits.tensors("train")
    return decoded.labels if decoded is not None else getattr(splits.train, "labels", None)


def task_name(cfg: TrainConfig, splits: Splits) -> str:
    """The task asked for; classification data with several labels per image is multi-label."""
    labels = train_labels(splits)
    several = labels is not None and labels.ndim == 2
    return "multilabel" if cfg.task == "classification" and several else cfg.task


def settle_task(cfg: TrainConfig, splits: Splits) -> Task:
    task = get_task(task_name(cfg, splits))
    if task.name != cfg.task:
        splits.notes.append(
            "task: multilabel (several labels per image): sigmoid outputs, binary cross-entropy"
        )
    task.check_data(cfg.data, train_labels(splits), bool(cfg.mixup_alpha or cfg.cutmix_alpha))
    if task.multilabel and cfg.label_smoothing:
        splits.notes.append("label smoothing does not apply to multi-label targets: not used")
    return task


def check_classes(cfg: TrainConfig, splits: Splits) -> None:
    if cfg.num_classes is not None and cfg.num_classes != len(splits.classes):
        raise UsageError(
            f"num_classes is {cfg.num_classes} but {cfg.data} has {len(splits.classes)} classes "
            f"({', '.join(splits.classes[:10])}{', ...' if len(splits.classes) > 10 else ''})"
        )


def make_criterion(task: Task, cfg: TrainConfig, splits: Splits, device: torch.device):
    """The training loss: the task's, with label smoothing and class weights as asked;
    multi-label: each label's positives weighted by its negatives / positives."""
    if task.multilabel:
        return task.criterion(weight=positive_weights(splits, device))
    return task.criterion(cfg.label_smoothing, class_weights(cfg, splits, device))


def positive_weights(splits: Splits, device: torch.device) -> torch.Tensor:
    """BCE's pos_weight: negatives / positives of each label in the training split (capped at
    100), so that rare labels are not learnt as "always absent"."""
    labels = train_labels(splits).double()
    pos = labels.sum(0)
    weight = ((len(labels) - pos) / pos.clamp_min(1)).clamp(max=100)
    low, high = float(weight.min()), float(weight.max())
    splits.notes.append(
        f"positive weights per label (negatives / positives): {low:.2f} to {high:.2f}"
    )
    return weight.float().to(device)


def class_weights(cfg: TrainConfig, splits: Splits, device: torch.device) -> torch.Tensor | None:
    """--class-weights balanced: each class weighted by its inverse frequency."""
    if cfg.class_weights != "balanced":
        return None
    labels = splits.train.labels.flatten()  # per image, or per pixel for masks
    counts = torch.bincount(labels, minlength=len(splits.classes)).float()
    return (counts.sum() / (len(counts) * counts.clamp_min(1))).to(device)
