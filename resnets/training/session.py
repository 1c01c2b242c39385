"""Building a run: data, model, optimizer, run folder; restoring one for --resume.

`Session` holds everything a run needs; `loop.py` advances it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Loaders, Splits, load_splits, make_loaders
from ..data.augment import MixUpCutMix
from ..data.provenance import read_record, same_data, write_record
from ..errors import TrainingError, UsageError
from ..metrics import Meter, SegmentationMeter
from ..models import ResNet, create_model, create_segmentation_model
from ..models.weights import WeightsMeta
from .checkpoint import Progress, load_checkpoint, progress_of, set_rng_state
from .config import TrainConfig
from .distributed import DistEnv, broadcast_object
from .optim import ModelEMA, Schedule, build_optimizer
from .run import RunFolder, check_folder, default_folder

log = logging.getLogger("resnets")


@dataclass
class Session:
    """Everything one run holds; built by `setup_session`, advanced by `train_epoch`."""

    cfg: TrainConfig
    env: DistEnv
    device: torch.device
    splits: Splits
    loaders: Loaders
    model: nn.Module  # a ResNet, or a SegmentationModel around one
    backbone: ResNet
    ddp: nn.Module
    net: nn.Module
    frozen: list[nn.Module]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: ModelEMA | None
    schedule: Schedule
    criterion: Any
    run: RunFolder
    meta: WeightsMeta
    progress: Progress
    total_steps: int
    epochs: int
    best_state: dict[str, torch.Tensor] | None = None
    partial_meter: torch.Tensor | None = None  # the interrupted epoch's sums so far

    @property
    def segmentation(self) -> bool:
        return self.cfg.task == "segmentation"

    @property
    def score(self) -> str:
        """The validation metric that selects the best weights."""
        return "dice" if self.segmentation else "acc1"

    def meter(self, sums: torch.Tensor | None = None) -> Meter | SegmentationMeter:
        if self.segmentation:
            return SegmentationMeter(self.device, len(self.splits.classes), sums)
        return Meter(self.device, sums)


def setup_session(cfg: TrainConfig, env: DistEnv, device: torch.device) -> Session:
    """Data, model, optimizer and run folder; restores a checkpoint for --resume."""
    seed_everything(cfg.seed + env.rank)
    given, claimed = cfg.resume or cfg.out, []
    if not given and env.main:
        path, claimed = default_folder(cfg)
        given = str(path)
    run = RunFolder(Path(broadcast_object(given)), cfg, env.main, claimed)
    problem = None
    if env.main:  # before any work, so a clash fails at once, on every process
        try:
            check_folder(run.path, cfg)
        except UsageError as e:
            problem = str(e)
    problem = broadcast_object(problem)
    if problem:
        run.abandon()  # a claimed default folder goes again; a given one was not touched
        raise UsageError(problem)
    try:
        return _build_session(cfg, env, device, run)
    except BaseException:
        run.abandon()
        raise


def _build_session(cfg: TrainConfig, env: DistEnv, device: torch.device, run: RunFolder):
    splits = load_splits(cfg, cfg.seed, channels=cfg.in_chans)
    if cfg.resume:  # the same data, or the user accepts the change and keeps the split
        splits = same_data(splits, read_record(run.path), cfg.allow_changed_data)
    check_task(cfg, splits)
    model, backbone, frozen = build_model(cfg, splits, device, env)
    mix = MixUpCutMix(cfg.mixup_alpha, cfg.cutmix_alpha, len(splits.classes), cfg.label_smoothing)
    loaders = make_loaders(
        splits,
        batch_size=cfg.batch_size,
        shard=env.shard(cfg.accum_steps),
        device=device,
        seed=cfg.seed,
        mix=mix,
        channels_last=cfg.channels_last,
        num_workers=cfg.num_workers,
    )
    steps_per_epoch = len(loaders.train)
    total = cfg.steps or cfg.epochs * steps_per_epoch
    schedule = Schedule(cfg, steps_per_epoch, total)
    late = [m for m in schedule.milestones if m >= total] if cfg.schedule == "multistep" else []
    if late:
        note(splits, f"lr drops at step {', '.join(map(str, late))} lie beyond this {total}-step "
             "run and never happen; set --milestones to place them")  # fmt: skip
    ddp = model
    if env.active:
        ids = [device.index] if device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    net = CompileFallback(ddp) if cfg.compile else ddp
    meta = WeightsMeta(
        model=cfg.model,
        config=model.config,
        classes=splits.classes,
        input_size=splits.input_size,
        resize_size=splits.resize_size,
        mean=splits.mean,
        std=splits.std,
        task=cfg.task,
    )
    session = Session(
        cfg=cfg,
        env=env,
        device=device,
        splits=splits,
        loaders=loaders,
        model=model,
        backbone=backbone,
        ddp=ddp,
        net=net,
        frozen=frozen,
        optimizer=build_optimizer(model, cfg, device, backbone),
        scaler=torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16"),
        ema=ModelEMA(model, cfg.ema_decay) if cfg.ema_decay > 0 else None,
        schedule=schedule,
        criterion=make_criterion(cfg, splits, device),
        run=run,
        meta=meta,
        progress=Progress(),
        total_steps=total,
        epochs=math.ceil(total / steps_per_epoch),
    )
    if cfg.resume:
        restore(session, load_checkpoint(run.path / "last.pt", cfg.model))
    session.run.prepare(checkpoint_size(session))
    session.run.write_manifest(run_info(session))  # first: it marks the folder as a run's
    session.run.write_config()
    if not cfg.resume and env.main:
        write_record(run.path, splits)
    return session


def note(splits: Splits, text: str) -> None:
    """A decision or warning for the user: logged now, and kept in the run's summary."""
    log.info("note: %s", text)
    splits.notes.append(text)


def check_task(cfg: TrainConfig, splits: Splits) -> None:
    if cfg.num_classes is not None and cfg.num_classes != len(splits.classes):
        raise UsageError(
            f"num_classes is {cfg.num_classes} but {cfg.data} has {len(splits.classes)} classes "
            f"({', '.join(splits.classes[:10])}{', ...' if len(splits.classes) > 10 else ''})"
        )
    masks = splits.train.labels.ndim == 3 if splits.in_memory else False
    if cfg.task == "segmentation" and not masks:
        raise UsageError(
            f"--task segmentation needs masks: --data shapes or segfolder:PATH, not {cfg.data}"
        )
    if cfg.task == "classification" and masks:
        raise UsageError(f"{cfg.data} holds masks; add --task segmentation")
    if masks and (cfg.mixup_alpha or cfg.cutmix_alpha):
        raise UsageError("MixUp and CutMix apply to classification only")


def build_model(
    cfg: TrainConfig, splits: Splits, device: torch.device, env: DistEnv
) -> tuple[nn.Module, ResNet, list[nn.Module]]:
    """(the model, its ResNet backbone, the frozen parts of that backbone)."""
    options = {
        "pretrained": cfg.pretrained,
        "in_chans": splits.channels,
        "drop_path_rate": cfg.drop_path_rate,
        "zero_init_residual": cfg.zero_init_residual,
    }
    if cfg.task == "segmentation":
        model = create_segmentation_model(cfg.model, len(splits.classes), **options)
        backbone = model.encoder
    else:
        model = create_model(
            cfg.model, num_classes=len(splits.classes), drop_rate=cfg.drop_rate, **options
        )
        backbone = model
    frozen = freeze(backbone, cfg.freeze_stages, cfg.freeze_backbone)
    if cfg.grad_checkpointing:
        backbone.set_grad_checkpointing(True)
    if cfg.sync_bn and env.active:
        if device.type != "cuda":
            raise TrainingError("--sync-bn needs GPUs: PyTorch's SyncBatchNorm runs on CUDA only")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, backbone, frozen


def freeze(model: ResNet, stages: int, backbone: bool) -> list[nn.Module]:
    """Stop gradients to the stem and the first `stages` stages, or the whole backbone.

    Returns the frozen modules: their BN layers keep their statistics (eval mode).
    """
    if stages > len(model.stages):
        raise TrainingError(
            f"--freeze-stages {stages}: {model.name} has {len(model.stages)} stages"
        )
    parts = (
        [model.stem, *model.stages, model.norm]
        if backbone
        else [model.stem, *model.stages[:stages]]
    )
    if stages == 0 and not backbone:
        return []
    for part in parts:
        part.requires_grad_(False)
    return parts


def make_criterion(cfg: TrainConfig, splits: Splits, device: torch.device):
    """Cross-entropy with label smoothing and optional balanced class weights."""
    weight = None
    if cfg.class_weights == "balanced":
        labels = splits.train.labels.flatten()  # per image, or per pixel for masks
        counts = torch.bincount(labels, minlength=len(splits.classes)).float()
        weight = (counts.sum() / (len(counts) * counts.clamp_min(1))).to(device)

    def criterion(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        smoothing = cfg.label_smoothing if target.ndim == 1 else 0.0  # soft targets have it
        return F.cross_entropy(logits.float(), target, weight=weight, label_smoothing=smoothing)

    return criterion


def checkpoint_size(s: Session) -> int:
    """Bytes of one training checkpoint: weights, optimizer state, EMA and best copy."""
    weights = sum(t.numel() * t.element_size() for t in s.model.state_dict().values())
    optimizer_copies = 2 if s.cfg.optimizer == "adamw" else 1
    return weights * (2 + optimizer_copies + (1 if s.ema is not None else 0)) + (1 << 20)


def run_info(s: Session) -> dict[str, Any]:
    return {
        "model": s.cfg.model,
        "data": s.cfg.data,
        "dataset_fingerprint": s.splits.fingerprint,
        "splits": {
            name: len(getattr(s.splits, name)) if getattr(s.splits, name) is not None else 0
            for name in ("train", "val", "test")
        },
        "device": _device_name(s.device),
        "world_size": s.env.world_size,
        "steps_per_epoch": len(s.loaders.train),
        "total_steps": s.total_steps,
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def determinism(enabled: bool):
    """Deterministic kernels (or cuDNN autotuning) for the run; the caller's flags after it."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.benchmark = not enabled
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]


class CompileFallback(nn.Module):
    """torch.compile, falling back to eager (with a message) if compilation fails."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        self.compiled = torch.compile(module)
        self.failed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.failed:
            try:
                return self.compiled(x)
            except Exception as e:  # compilation errors come in many types
                log.warning(
                    "torch.compile failed (%s); continuing without it", str(e).splitlines()[0]
                )
                self.failed = True
        return self.module(x)


def restore(s: Session, data: dict[str, Any]) -> None:
    s.model.load_state_dict(data["model"])
    s.optimizer.load_state_dict(data["optimizer"])
    s.scaler.load_state_dict(data["scaler"])
    if s.ema is not None and data.get("ema") is not None:
        s.ema.load_state_dict(data["ema"])
    s.best_state = data.get("best")
    s.partial_meter = data.get("partial_meter")
    s.progress = progress_of(data)
    set_rng_state(data["rng"])
    log.info("resumed %s at epoch %d, step %d", s.run.path, s.progress.epoch + 1, s.progress.step)
