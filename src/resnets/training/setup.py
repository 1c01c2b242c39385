"""Setting up a run: its folder, data, model, optimizer and task, each a small named part
(run.py declares them); and restoring them for --resume. `loop.py` then advances the `Run`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Splits, load_splits, make_loaders
from ..data.augment import MixUpCutMix
from ..data.provenance import write_record
from ..data.python import PythonData
from ..data.sizing import ModelSize
from ..errors import TrainingError, UsageError
from ..models import ResNet, create_model, create_segmentation_model, get_config
from ..models.meta import WeightsMeta
from ..options import SPLITS
from ..precision import PROBE_BATCH, choose_amp, step_seconds
from ..tasks import task_for
from .checkpoint import Progress, load_checkpoint
from .config import TrainConfig
from .distributed import DistEnv, broadcast_object
from .fit import fit_model, fit_to_data
from .loss import check_classes, make_criterion, settle_task
from .optim import ModelEMA, Schedule, build_optimizer, few_steps_advice
from .resolve import pretrained_file, weights_normalization
from .resume import restore
from .run import Model, Optimization, Run
from .run_folder import RunFolder, check_folder, default_folder

log = logging.getLogger("resnets")


def setup(
    cfg: TrainConfig, env: DistEnv, device: torch.device, objects: PythonData | None = None
) -> Run:
    """Folder, data, model, optimizer; restores a checkpoint for --resume. If anything fails
    here, the folder is left as it was."""
    seed_everything(cfg.seed + env.rank)
    folder = claim_folder(cfg, env)
    try:
        return _build(cfg, env, device, folder, objects)
    except BaseException:
        folder.abandon()
        raise


def claim_folder(cfg: TrainConfig, env: DistEnv) -> RunFolder:
    """The run's folder, the same on every process: --resume's, --out, or a new default one
    (claimed by process 0); recovered and checked before any work, so that a clash fails at
    once, on every process."""
    given, claimed = cfg.resume or cfg.out, []
    if not given and env.main:
        path, claimed = default_folder(cfg)
        given = str(path)
    folder = RunFolder(Path(broadcast_object(given)), cfg, env.main, claimed)
    problem = None
    if env.main:
        try:
            folder.recover()
            check_folder(folder.path, cfg)
        except UsageError as e:
            problem = str(e)
    problem = broadcast_object(problem)
    if problem:
        folder.abandon()  # a claimed default folder goes again; a given one was not touched
        raise UsageError(problem)
    return folder


def read_data(cfg: TrainConfig, folder: RunFolder, objects: PythonData | None = None) -> Splits:
    """The run's splits, read as its source reads them and sized for its model; resuming, the
    same data (or, with --allow-changed-data, the run's split kept by file name); with
    --normalize weights, the --pretrained weights' mean and std."""
    config = get_config(cfg.model)
    size = ModelSize(cfg.model, config.input_size, config.total_stride)
    run_made = folder.path if cfg.resume else None
    return load_splits(
        cfg,
        cfg.seed,
        channels=cfg.in_chans,
        model=size,
        run=run_made,
        objects=objects,
        normalization=weights_normalization(cfg),
    )


def _build(cfg: TrainConfig, env: DistEnv, device: torch.device, folder: RunFolder, objects) -> Run:
    splits = read_data(cfg, folder, objects)
    check_classes(cfg, splits)
    notes = list(splits.notes)  # the run's notes begin with what reading the data decided
    if chosen := fit_model(cfg, splits.spatial_dims, clips=splits.name == "video"):
        notes += chosen
        folder.path = Path(broadcast_object(str(folder.rename_default(cfg))))
    notes += fit_to_data(cfg, len(splits.train), env.world_size * cfg.accum_steps)
    task = settle_task(cfg, splits, notes)
    seed_everything(cfg.seed + env.rank)  # initial weights never depend on how data was read
    model = build_model(cfg, splits, device, env)
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
        sampler=cfg.sampler,
    )
    notes += loaders.notes
    steps_per_epoch = len(loaders.train)
    total = cfg.steps or cfg.epochs * steps_per_epoch
    run = Run(
        cfg=cfg,
        env=env,
        device=device,
        task=task,
        splits=splits,
        loaders=loaders,
        model=model,
        opt=build_optimization(cfg, model, device, steps_per_epoch, total),
        criterion=make_criterion(task, cfg, splits, device, notes),
        folder=folder,
        meta=weights_meta(cfg, model, splits),
        progress=Progress(),
        total_steps=total,
        epochs=math.ceil(total / steps_per_epoch),
        notes=notes,
    )
    _note_schedule(run)
    settle_amp(run)
    if cfg.resume:
        restore(run, load_checkpoint(folder.path / "last.pt", cfg.model))  # resume.py
    folder.prepare(checkpoint_size(run))
    folder.write_manifest(run_info(run))  # first: it marks the folder as a run's
    folder.write_config()
    if not cfg.resume and env.main:
        write_record(folder.path, splits)
    return run


def _note_schedule(run: Run) -> None:
    """What the user should know of the lr schedule: drops it never reaches, too few steps."""
    cfg, total = run.cfg, run.total_steps
    late = [m for m in run.opt.schedule.milestones if m >= total]
    if late and cfg.schedule == "multistep":
        run.note(
            f"lr drops at step {', '.join(map(str, late))} lie beyond this {total}-step "
            "run and never happen; set --milestones to place them"
        )
    steps_per_epoch = len(run.loaders.train)
    if advice := few_steps_advice(cfg, run.loaders.train.batches.n, steps_per_epoch, total):
        run.note(advice)


def settle_amp(run: Run) -> None:
    """--amp auto becomes bf16 or none (see precision.py), decided on process 0 (the others
    would only slow its probe down) and written into the config, so that a resumed run
    computes as it began."""
    cfg = run.cfg
    per_process = min(cfg.batch_size // run.env.world_size, PROBE_BATCH)
    shape = (per_process, run.model.backbone.config.in_chans, *run.splits.extent)
    probe = partial(step_seconds, run.model.raw, shape)
    decide = partial(choose_amp, cfg.amp, run.device, probe, cfg.deterministic, len(shape) - 2)
    chosen = decide() if run.env.main else None
    cfg.amp, why = broadcast_object(chosen)
    if why:
        run.note(why)


def build_model(cfg: TrainConfig, splits: Splits, device: torch.device, env: DistEnv) -> Model:
    """The model, moved, frozen where asked, and wrapped for DDP and torch.compile."""
    options = {
        "pretrained": pretrained_file(cfg.pretrained),
        "in_chans": splits.channels,
        "drop_path_rate": cfg.drop_path_rate,
        "zero_init_residual": cfg.zero_init_residual,
    }
    if cfg.task == "segmentation":
        raw = create_segmentation_model(cfg.model, len(splits.classes), **options)
        backbone = raw.backbone
    else:
        raw = create_model(
            cfg.model, num_classes=len(splits.classes), drop_rate=cfg.drop_rate, **options
        )
        backbone = raw
    splits.require_dims(backbone.config.spatial_dims, cfg.model)
    frozen = freeze(backbone, cfg.freeze_stages, cfg.freeze_backbone)
    if cfg.grad_checkpointing:
        backbone.set_grad_checkpointing(True)
    if cfg.sync_bn and env.active:
        if device.type != "cuda":
            raise TrainingError("--sync-bn needs GPUs: PyTorch's SyncBatchNorm runs on CUDA only")
        raw = nn.SyncBatchNorm.convert_sync_batchnorm(raw)
    raw = raw.to(device)
    if cfg.channels_last and backbone.config.spatial_dims == 2:  # a 2D layout; volumes stay
        raw = raw.to(memory_format=torch.channels_last)
    ddp = None
    if env.active:
        ids = [device.index] if device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel(raw, device_ids=ids)
    trained = ddp or raw
    if cfg.compile:
        trained = CompileErrors(torch.compile(trained))
    ema = ModelEMA(raw, cfg.ema_decay) if cfg.ema_decay > 0 else None
    return Model(raw, backbone, trained, ema, frozen, ddp)


class CompileErrors(nn.Module):
    """torch.compile's own failures (no compiler, an unsupported op) stop the run with one line
    that names the flag to turn it off; any other error in the forward pass stays as it is."""

    def __init__(self, compiled: nn.Module):
        super().__init__()
        self.compiled = compiled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.compiled(x)
        except torch._dynamo.exc.TorchDynamoException as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TrainingError(f"torch.compile failed ({first}); run without --compile") from None


def freeze(model: ResNet, stages: int, backbone: bool) -> list[nn.Module]:
    """Stop gradients to the stem and the first `stages` stages, or the whole backbone.

    Returns the frozen modules: their BN layers keep their statistics (eval mode).
    """
    if stages > len(model.stages):
        raise TrainingError(
            f"--freeze-stages {stages}: {model.name} has {len(model.stages)} stages"
        )
    if stages == 0 and not backbone:
        return []
    parts = (
        [model.stem, *model.stages, model.norm]
        if backbone
        else [model.stem, *model.stages[:stages]]
    )
    for part in parts:
        part.requires_grad_(False)
    return parts


def build_optimization(
    cfg: TrainConfig, model: Model, device: torch.device, steps_per_epoch: int, total: int
) -> Optimization:
    return Optimization(
        optimizer=build_optimizer(model.raw, cfg, device, model.backbone),
        scaler=torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16"),
        schedule=Schedule(cfg, steps_per_epoch, total),
        clip_grad=cfg.clip_grad,
    )


def weights_meta(cfg: TrainConfig, model: Model, splits: Splits) -> WeightsMeta:
    """What best.safetensors carries besides the weights: enough to predict with them."""
    return WeightsMeta(
        model=cfg.model,
        config=model.raw.config,
        classes=splits.classes,
        input_size=splits.input_size,
        resize_size=splits.resize_size,
        mean=splits.mean,
        std=splits.std,
        task=task_for(cfg.task, splits.train_labels()).name,
        item_normalize=splits.item_normalize,
        **splits.reading,
    )


def checkpoint_size(run: Run) -> int:
    """Bytes of one training checkpoint and its best weights: weights, optimizer state, EMA,
    and best.safetensors."""
    weights = sum(t.numel() * t.element_size() for t in run.model.raw.state_dict().values())
    optimizer_copies = 2 if run.cfg.optimizer == "adamw" else 1
    return weights * (2 + optimizer_copies + (1 if run.model.ema is not None else 0)) + (1 << 20)


def run_info(run: Run) -> dict[str, Any]:
    splits = run.splits
    device = run.device
    name = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device
    return {
        "model": run.cfg.model,
        "data": run.cfg.data,
        "dataset_fingerprint": splits.fingerprint,
        "splits": {n: len(getattr(splits, n) or []) for n in SPLITS},
        "device": str(name),
        "world_size": run.env.world_size,
        "steps_per_epoch": len(run.loaders.train),
        "total_steps": run.total_steps,
    }


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
