"""`--task detection`: the boxes read and split, a detector built on the chosen ResNet, trained
with torchvision's detection recipe scaled to the batch, selected on validation mAP, and
scored once on the test split; through the same run folder as classification (config.yaml,
manifest.json, metrics.csv, curves.png, last.pt, best.safetensors, summary.json).

A checkpoint is written after each epoch; a resumed run continues at the next epoch with the
RNG, optimizer and sampling order restored, so it ends where an uninterrupted run ends."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from ..errors import TrainingError
from ..logs import interactive
from ..training.config import TrainConfig
from ..training.distributed import DistEnv, any_rank, broadcast_object
from ..training.optim import set_lr
from ..training.saving import Interrupted
from ..training.signals import StopRequest
from .checkpoints import save
from .dataset import collate
from .infer import evaluate_split
from .run import DetectionRun
from .setup import setup_detection
from .summary import epoch_line, finish, summary_text

log = logging.getLogger("resnets")


def train_detector(cfg: TrainConfig, env: DistEnv, device: torch.device) -> dict[str, Any]:
    """Train a detector as `cfg` says and return the run's summary."""
    torch.manual_seed(cfg.seed)  # the same initial weights on every process
    run = setup_detection(cfg, env, device)
    try:
        with StopRequest() as stop:
            summary = fit(run, stop)
    except BaseException as e:
        run.folder.abandon()
        if isinstance(e, Exception) and not isinstance(e, Interrupted):
            run.folder.mark_failed(e)
        raise
    if env.main:
        log.info("%s", summary_text(summary))
    return summary


def fit(run: DetectionRun, stop: StopRequest) -> dict[str, Any]:
    """Epochs until --epochs (or --steps, or an early stop); a Ctrl-C or SIGTERM ends the epoch
    under way, saves, and stops (a detector is checkpointed at epoch ends only)."""
    cfg, p = run.cfg, run.progress
    epochs = cfg.epochs if cfg.steps is None else -(-cfg.steps // run.steps_per_epoch)
    while p.epoch < epochs:
        start = time.perf_counter()
        row = {"epoch": p.epoch + 1, **train_epoch(run, p.epoch, epochs)}
        p.train_seconds += time.perf_counter() - start
        row["lr"] = run.optimizer.param_groups[0]["lr"]
        row |= broadcast_object(validate(run) if run.env.main else None)
        improved = row.get("val_map", 0.0) > p.best_score if run.splits.val else True
        p.history.append(row)
        if run.env.main:
            log.info(epoch_line(row, epochs))
        if improved:
            p.best_score = row.get("val_map", 0.0)
            p.best_epoch, p.bad_epochs = p.epoch, 0
            if run.env.main:  # process 0 saves and tests the selected weights
                run.best_state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
        else:
            p.bad_epochs += 1
        p.epoch, p.epoch_step = p.epoch + 1, 0
        if run.env.main:
            save(run, improved)
        run.folder.log_epoch(p.history)
        if cfg.early_stop and p.bad_epochs >= cfg.early_stop:
            if run.env.main:
                log.info("early stop: no improvement in %d epochs", cfg.early_stop)
            break
        if any_rank(stop.requested, run.device) and p.epoch < epochs:
            raise Interrupted(
                f"stopped after epoch {p.epoch}; saved {run.folder.path / 'last.pt'}. Resume "
                f"with: resnets train --resume {run.folder.path}"
            )
    summary = finish(run) if run.env.main else {}
    return broadcast_object(summary)  # the others wait for the test scores, then return them


def validate(run: DetectionRun) -> dict[str, float]:
    """Validation mAP and mAP50 of the weights now; {} without a validation split. Process 0
    alone validates (BatchNorm's running statistics differ between processes) and shares the
    scores, so that every process selects and stops alike."""
    if not run.splits.val:
        return {}
    scores, _ = evaluate_split(run.model, run.val_set, run.device, run.splits.boxes.classes)
    return {"val_map": scores.summary["map"], "val_map50": scores.summary["map50"]}


def autocast(cfg: TrainConfig, device: torch.device):
    """bf16 or fp16 autocast when asked (auto: bf16 on CUDA); fp32 on a CPU by default."""
    amp = cfg.amp
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" else "none"
    if amp == "none":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def train_epoch(run: DetectionRun, epoch: int, epochs: int) -> dict[str, float]:
    """One epoch: the training images in an order drawn from the seed and the epoch, in
    batches of --batch-size (in --accum-steps micro-batches), one optimizer step each."""
    cfg, p, data = run.cfg, run.progress, run.train_set
    data.epoch = epoch
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed + epoch))
    batches = order.split(cfg.batch_size)
    run.model.train()
    sums: dict[str, float] = {}
    bar = tqdm(
        total=len(batches),
        desc=f"epoch {epoch + 1}/{epochs}",
        leave=False,
        disable=not (cfg.progress and interactive()),
        dynamic_ncols=True,
    )
    steps = 0
    for batch in batches:
        if p.step >= run.schedule.total:
            break
        set_lr(run.optimizer, run.schedule(p.step))
        losses = train_step(run, batch.tolist())
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
        p.step, p.epoch_step, steps = p.step + 1, p.epoch_step + 1, steps + 1
        bar.update()
        bar.set_postfix(loss=f"{losses['loss']:.3f}")
    bar.close()
    return {f"train_{k}": v / max(steps, 1) for k, v in sums.items()}


def train_step(run: DetectionRun, batch: list[int]) -> dict[str, float]:
    """One optimizer step on a global batch: cut into world size x --accum-steps
    micro-batches, this process's share run forward and backward one after another, the
    gradients summed over processes, clipped, and stepped. Every process steps alike, and W
    processes compute what one process does with W x the accumulation steps."""
    cfg, env = run.cfg, run.env
    count = env.world_size * cfg.accum_steps
    parts = [batch[i::count] for i in range(count)]
    mine = parts[env.rank * cfg.accum_steps : (env.rank + 1) * cfg.accum_steps]
    totals: dict[str, float] = {}
    for index, part in enumerate(mine, start=env.rank * cfg.accum_steps):
        if not part:
            continue
        # the samplers of proposals and RoIs draw from torch's global generator: seeded by
        # the step and the micro-batch, they draw alike however the batch is shared out
        torch.manual_seed(draw_seed(cfg.seed, run.progress.step, index))
        losses = micro_step(run, part, len(batch))
        share = len(part) / len(batch)
        for k, v in [*losses.items(), ("loss", sum(losses.values()))]:
            name = k.removeprefix("loss_")
            totals[name] = totals.get(name, 0.0) + float(v) * share
    if env.active:
        sum_gradients(run.model, run.device)
        totals = summed(totals)
    if not math.isfinite(totals["loss"]):  # on every process, before the weights change
        raise TrainingError(
            f"the detection loss became {totals['loss']} at step {run.progress.step}; lower --lr"
        )
    if cfg.clip_grad:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip_grad)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return totals


def draw_seed(seed: int, step: int, micro_batch: int) -> int:
    """The global generator's seed for one micro-batch of one step."""
    return int(np.random.SeedSequence([seed, step, micro_batch]).generate_state(1)[0])


def summed(totals: dict[str, float]) -> dict[str, float]:
    """The step's losses summed over the processes (process 0 always has a share, so its
    names are every name)."""
    names = broadcast_object(list(totals))
    values = torch.tensor([totals.get(n, 0.0) for n in names], dtype=torch.float64)
    dist.all_reduce(values)
    return dict(zip(names, values.tolist(), strict=True))


def micro_step(run: DetectionRun, part: list[int], batch: int) -> dict[str, torch.Tensor]:
    """Forward and backward on the images `part` of a `batch`-image step, the loss weighted
    by its share of the step; the detector's losses, detached."""
    images, targets = collate([run.train_set[i] for i in part])
    images = [im.to(run.device) for im in images]
    targets = [{k: v.to(run.device) for k, v in t.items()} for t in targets]
    with autocast(run.cfg, run.device):
        losses = run.model(images, targets)
    loss = sum(losses.values())
    (loss * len(part) / batch).backward()
    return {k: v.detach() for k, v in losses.items()}


def sum_gradients(model: torch.nn.Module, device: torch.device) -> None:
    """Every trainable parameter's gradient summed over the processes, in one all-reduce (a
    process whose share of a short last batch was empty contributes zeros)."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads]).to(device)
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n
