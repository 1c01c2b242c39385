"""A detection training run as data: its options, boxes and splits, the detector and its spec,
the optimization, the folder and the progress. setup.py builds one; train.py advances it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..models.meta import WeightsMeta
from ..training.checkpoint import Progress
from ..training.config import TrainConfig
from ..training.distributed import DistEnv
from ..training.optim import Schedule
from ..training.run_folder import RunFolder
from .dataset import BoxDataset, BoxSplits

log = logging.getLogger("resnets")


@dataclass
class DetectionRun:
    cfg: TrainConfig
    env: DistEnv
    device: torch.device
    splits: BoxSplits
    spec: dict[str, Any]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    folder: RunFolder
    meta: WeightsMeta
    train_set: BoxDataset
    val_set: BoxDataset
    steps_per_epoch: int
    progress: Progress = field(default_factory=Progress)
    best_state: dict[str, torch.Tensor] | None = None
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if self.env.main:
            log.info("note: %s", text)
        self.notes.append(text)
