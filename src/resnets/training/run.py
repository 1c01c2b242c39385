"""A training run as data: the model in its forms, the optimization, the checkpoint clock and
the `Run` that holds them with the data, task, folder and progress. setup.py builds one;
loop.py advances it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data import Loaders, Splits
from ..models import ResNet
from ..models.meta import WeightsMeta
from ..tasks import Task
from .checkpoint import Progress
from .config import TrainConfig
from .distributed import DistEnv
from .optim import ModelEMA, Schedule
from .run_folder import RunFolder

log = logging.getLogger("resnets")


@dataclass
class Model:
    """The model in its forms. `raw` as built (its state_dict is what is saved); `trained`
    what the step calls: `raw` under DDP and/or torch.compile; `ema` its moving average."""

    raw: nn.Module  # a ResNet, or a SegmentationModel around one
    backbone: ResNet  # the ResNet inside `raw`: what freezing and the backbone lr act on
    trained: nn.Module
    ema: ModelEMA | None
    frozen: list[nn.Module]  # parts whose BN statistics stay fixed (eval mode) in training
    ddp: nn.parallel.DistributedDataParallel | None

    @property
    def selected(self) -> nn.Module:
        """The weights that are evaluated, selected and saved: the EMA when on."""
        return self.ema.module if self.ema is not None else self.raw

    def train(self, mode: bool = True) -> None:
        self.raw.train(mode)
        for part in self.frozen:
            part.eval()


@dataclass
class Optimization:
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler  # loss scaling for fp16; a pass-through otherwise
    schedule: Schedule  # the lr factor at any step
    clip_grad: float | None


@dataclass
class SaveClock:
    """When epoch checkpoints were last written and how long that took (see saving.py)."""

    written_at: float | None = None
    seconds: float = 0.0
    best_pending: bool = False


@dataclass
class Run:
    """One training run: its options, parts, folder and progress."""

    cfg: TrainConfig
    env: DistEnv
    device: torch.device
    task: Task
    splits: Splits
    loaders: Loaders
    model: Model
    opt: Optimization
    criterion: Any
    folder: RunFolder
    meta: WeightsMeta
    progress: Progress
    total_steps: int
    epochs: int
    best_state: dict[str, torch.Tensor] | None = None
    partial_meter: torch.Tensor | None = None  # an interrupted epoch's metric sums so far
    saves: SaveClock = field(default_factory=lambda: SaveClock())
    notes: list[str] = field(default_factory=list)  # the data's, then the run's own decisions

    def meter(self, sums: torch.Tensor | None = None, keep: bool = False):
        return self.task.meter(self.device, len(self.splits.classes), sums, keep)

    def note(self, text: str) -> None:
        """A decision or warning for the user: logged now, and kept in the run's summary."""
        log.info("note: %s", text)
        self.notes.append(text)
