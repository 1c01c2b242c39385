"""Optimizer, learning-rate schedule (a pure function of the step) and EMA of weights."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .config import TrainConfig
from .fit import MIN_STEPS, batch_for_steps
from .resolve import peak_lr


class Schedule:
    """The lr factor at any optimizer step: warm-up, then cosine, multistep or constant."""

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, total_steps: int):
        self.cfg, self.total = cfg, total_steps
        # An epoch-based warm-up takes at most half the run, so short runs reach full lr.
        self.warmup = (
            cfg.warmup_steps
            if cfg.warmup_steps is not None
            else min(round(cfg.warmup_epochs * steps_per_epoch), total_steps // 2)
        )
        scale = steps_per_epoch if cfg.milestone_unit == "epoch" else 1
        self.milestones = [m * scale for m in cfg.milestones]
        self.min_factor = cfg.min_lr / peak_lr(cfg)

    def __call__(self, step: int) -> float:
        cfg = self.cfg
        if step < self.warmup:
            if cfg.warmup_style == "constant":
                return cfg.warmup_factor
            return cfg.warmup_factor + (1 - cfg.warmup_factor) * step / self.warmup
        if cfg.schedule == "cosine":
            progress = (step - self.warmup) / max(self.total - self.warmup, 1)
            return self.min_factor + (1 - self.min_factor) * 0.5 * (
                1 + math.cos(math.pi * progress)
            )
        if cfg.schedule == "multistep":
            return cfg.lr_gamma ** sum(step >= m for m in self.milestones)
        return 1.0


def param_groups(model: nn.Module, cfg: TrainConfig, backbone: nn.Module) -> list[dict]:
    """Backbone and head groups (for --lr-backbone), each split by weight decay.

    The head is the classifier (or a segmentation decoder): what `backbone` does not hold."""
    lr = peak_lr(cfg)
    backbone_lr = lr * (cfg.lr_backbone / cfg.lr) if cfg.lr_backbone is not None else lr
    in_backbone = {id(p) for n, p in backbone.named_parameters() if not n.startswith("fc.")}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        head = id(p) not in in_backbone
        no_decay = not cfg.decay_norm_bias and p.ndim <= 1
        groups.setdefault((head, no_decay), []).append(p)
    out = []
    for (head, no_decay), params in groups.items():
        group_lr = lr if head else backbone_lr
        out.append(
            {
                "params": params,
                "lr": group_lr,
                "base_lr": group_lr,
                "weight_decay": 0.0 if no_decay else cfg.weight_decay,
            }
        )
    return out


def build_optimizer(
    model: nn.Module, cfg: TrainConfig, device: torch.device, backbone: nn.Module | None = None
) -> torch.optim.Optimizer:
    """SGD or AdamW; fused kernels on CUDA, foreach (multi-tensor) elsewhere."""
    groups = param_groups(model, cfg, backbone if backbone is not None else model)
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, betas=(cfg.momentum, 0.999), **fast)
    return torch.optim.SGD(
        groups, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0, **fast
    )


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


class ModelEMA:
    """Exponential moving average of a model's weights (buffers copied as they are).

    The decay warms up as min(decay, (1 + n) / (10 + n)) so short runs are not dominated by
    the random initialization.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_p = [p for p in self.module.parameters()]
        src_p = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_p, src_p, 1 - d)
        for e, b in zip(self.module.buffers(), model.buffers(), strict=True):
            e.copy_(b)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = state["updates"]


def few_steps_advice(
    cfg: TrainConfig, samples: int, steps_per_epoch: int, total: int
) -> str | None:
    """A note for a run too short to train well (the default batch of 128 on a few hundred
    images): the batch that gives 8 steps an epoch (never below fit.py's MIN_BATCH), with the
    lr scaled to it, or more epochs where the batch is already that small."""
    if steps_per_epoch >= MIN_STEPS or total >= 200:
        return None
    said = f"only {total} optimizer steps ({steps_per_epoch} per epoch at batch {cfg.batch_size})"
    batch = batch_for_steps(samples)  # the batch a fitted run would take
    if batch >= cfg.batch_size:
        return f"{said}: a set this small needs more --epochs to train well"
    return (
        f"{said}: {samples} training images usually train better with --batch-size {batch} "
        f"and --lr {cfg.lr * batch / cfg.batch_size:.2g} (the lr per image kept)"
    )
