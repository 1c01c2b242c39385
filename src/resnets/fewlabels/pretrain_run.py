"""A pretraining run as data: its options, the method around the backbone, the optimization,
the views, the loaders, the folder and the progress. pretrain_setup.py builds one;
pretraining.py advances it."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..training.checkpoint import Progress
from ..training.config import TrainConfig
from ..training.distributed import DistEnv
from ..training.optim import Schedule
from ..training.run_folder import RunFolder
from .methods import Method
from .views import TwoViews

log = logging.getLogger("resnets")


@dataclass
class PretrainRun:
    cfg: TrainConfig
    env: DistEnv
    device: torch.device
    method: Method
    trained: torch.nn.Module  # the method, under DDP with several processes
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    views: TwoViews
    loaders: Any  # data/build.py Loaders: train batches unaugmented, val and test in order
    bank: Any  # the training split in order: the kNN monitor's labelled neighbours
    splits: Any
    folder: RunFolder
    meta: Any  # the backbone's WeightsMeta
    total_steps: int
    progress: Progress = field(default_factory=Progress)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if self.env.main:
            log.info("note: %s", text)
        self.notes.append(text)

    @property
    def epochs(self) -> int:
        return math.ceil(self.total_steps / len(self.loaders.train))
