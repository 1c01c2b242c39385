"""What a run optimizes: its task (classification, multi-label or segmentation, settled
from the options and the data) and its loss, cross-entropy or focal, with class or positive
weights."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from ..data import Splits
from ..data.colours import IGNORE_INDEX
from ..errors import UsageError
from ..tasks import Task, task_for
from .config import TrainConfig


def settle_task(cfg: TrainConfig, splits: Splits, notes: list[str]) -> Task:
    """The run's task (`tasks.task_for`), checked against its data and noted in `notes` where
    the labels decided it."""
    task = task_for(cfg.task, splits.train_labels())
    if task.name != cfg.task:
        notes.append(
            "task: multilabel (several labels per image): sigmoid outputs, binary cross-entropy"
        )
    task.check_data(cfg.data, splits.train_labels(), bool(cfg.mixup_alpha or cfg.cutmix_alpha))
    if task.multilabel and cfg.label_smoothing:
        notes.append("label smoothing does not apply to multi-label targets: not used")
    return task


def check_classes(cfg: TrainConfig, splits: Splits) -> None:
    if cfg.num_classes is not None and cfg.num_classes != len(splits.classes):
        raise UsageError(
            f"num_classes is {cfg.num_classes} but {cfg.data} has {len(splits.classes)} classes "
            f"({', '.join(splits.classes[:10])}{', ...' if len(splits.classes) > 10 else ''})"
        )


def make_criterion(
    task: Task, cfg: TrainConfig, splits: Splits, device: torch.device, notes: list[str]
):
    """The training loss: the task's cross-entropy or --loss focal, with label smoothing and
    class weights as asked; multi-label: each label's positives weighted by its negatives /
    positives (noted in `notes`)."""
    if task.multilabel:
        weight = positive_weights(splits, device, notes)
        if cfg.loss == "focal":
            return partial(sigmoid_focal_loss, gamma=cfg.focal_gamma, pos_weight=weight)
        return task.criterion(weight=weight)
    weight = class_weights(cfg, splits, device)
    if cfg.loss == "focal":
        gamma, smoothing = cfg.focal_gamma, cfg.label_smoothing

        def focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            smooth = smoothing if target.ndim == 1 else 0.0  # as the task's cross-entropy
            return focal_loss(logits, target, gamma, weight, smooth)

        return focal
    return task.criterion(cfg.label_smoothing, weight)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Softmax focal loss (Lin et al. 2017), per image or per pixel: -w_c (1 - p_c)^gamma
    log p_c, summed over classes c weighted by the target distribution. A soft target (label
    smoothing, MixUp, CutMix) is a mixture of hard labels, so its loss is their mixture of focal
    losses. Averaged as F.cross_entropy averages (by the weights of the targets' classes for
    class indices, by the count for soft targets): gamma 0 is cross-entropy exactly."""
    logp = F.log_softmax(logits.float(), dim=1)
    # (1 - p) from expm1, kept off 0 so that gamma < 1 has a finite gradient at p = 1
    terms = (-torch.expm1(logp)).clamp_min(1e-12).pow(gamma) * -logp
    if weight is not None:
        terms = terms * weight.view(-1, *[1] * (logits.ndim - 2))
    if target.is_floating_point():
        return (terms * target).sum(1).mean()
    valid = target != IGNORE_INDEX
    index = target.masked_fill(~valid, 0)
    per = terms.gather(1, index.unsqueeze(1)).squeeze(1)
    if label_smoothing:
        per = (1 - label_smoothing) * per + label_smoothing / logits.shape[1] * terms.sum(1)
    alpha = weight[index] if weight is not None else torch.ones_like(per)
    return (per * valid).sum() / (alpha * valid).sum()


def sigmoid_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float, pos_weight: torch.Tensor | None
) -> torch.Tensor:
    """Multi-label focal loss: torchvision.ops.sigmoid_focal_loss with alpha off (the same
    values), each label's positives weighted by `pos_weight` as BCE weights them: gamma 0 is
    the task's BCE. Written out because torchvision's gradient is NaN for 0 < gamma < 1 once a
    logit saturates ((1 - p_t) is then 0)."""
    logits, target = logits.float(), target.float()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    miss = target * torch.sigmoid(-logits) + (1 - target) * torch.sigmoid(logits)  # 1 - p_t
    loss = miss.clamp_min(1e-12).pow(gamma) * bce
    if pos_weight is not None:
        loss = loss * (1 + (pos_weight - 1) * target)
    return loss.mean()


def positive_weights(splits: Splits, device: torch.device, notes: list[str]) -> torch.Tensor:
    """BCE's pos_weight: negatives / positives of each label in the training split (capped at
    100), so that rare labels are not learnt as "always absent"."""
    labels = splits.train_labels().double()
    pos = labels.sum(0)
    weight = ((len(labels) - pos) / pos.clamp_min(1)).clamp(max=100)
    low, high = float(weight.min()), float(weight.max())
    notes.append(f"positive weights per label (negatives / positives): {low:.2f} to {high:.2f}")
    return weight.float().to(device)


def class_weights(cfg: TrainConfig, splits: Splits, device: torch.device) -> torch.Tensor | None:
    """--class-weights balanced: each class weighted by its inverse frequency."""
    if cfg.class_weights != "balanced":
        return None
    labels = splits.train.labels.flatten()  # per image, or per pixel for masks
    counts = torch.bincount(labels, minlength=len(splits.classes)).float()
    return (counts.sum() / (len(counts) * counts.clamp_min(1))).to(device)
