"""`--task detection`: the boxes read and split, a detector built on the chosen ResNet, trained
with torchvision's detection recipe scaled to the batch, selected on validation mAP, and
scored once on the test split; through the same run folder as classification (config.yaml,
manifest.json, metrics.csv, curves.png, last.pt, best.safetensors, summary.json).

A checkpoint is written after each epoch; a resumed run continues at the next epoch with the
RNG, optimizer and sampling order restored, so it ends where an uninterrupted run ends."""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from tqdm import tqdm

from ..errors import TrainingError, UsageError
from ..logs import interactive
from ..training.config import TrainConfig
from ..training.distributed import DistEnv
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
    if env.world_size > 1:
        raise UsageError("--task detection trains in one process for now; run it without torchrun")
    torch.manual_seed(cfg.seed)
    run = setup_detection(cfg, device)
    try:
        with StopRequest() as stop:
            summary = fit(run, stop)
    except BaseException as e:
        run.folder.abandon()
        if isinstance(e, Exception) and not isinstance(e, Interrupted):
            run.folder.mark_failed(e)
        raise
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
        if run.splits.val:
            scores, _ = evaluate_split(run.model, run.val_set, run.device, run.splits.boxes.classes)
            row |= {"val_map": scores.summary["map"], "val_map50": scores.summary["map50"]}
            improved = scores.summary["map"] > p.best_score
        else:
            improved = True
        p.history.append(row)
        log.info(epoch_line(row, epochs))
        if improved:
            p.best_score = row.get("val_map", 0.0)
            p.best_epoch, p.bad_epochs = p.epoch, 0
            run.best_state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
        else:
            p.bad_epochs += 1
        p.epoch, p.epoch_step = p.epoch + 1, 0
        save(run, improved)
        run.folder.log_epoch(p.history)
        if cfg.early_stop and p.bad_epochs >= cfg.early_stop:
            log.info("early stop: no improvement in %d epochs", cfg.early_stop)
            break
        if stop.requested and p.epoch < epochs:
            raise Interrupted(
                f"stopped after epoch {p.epoch}; saved {run.folder.path / 'last.pt'}. Resume "
                f"with: resnets train --resume {run.folder.path}"
            )
    return finish(run)


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
    cfg = run.cfg
    micro = [batch[i :: cfg.accum_steps] for i in range(cfg.accum_steps)]
    micro = [m for m in micro if m]
    totals: dict[str, float] = {}
    for part in micro:
        images, targets = collate([run.train_set[i] for i in part])
        images = [im.to(run.device) for im in images]
        targets = [{k: v.to(run.device) for k, v in t.items()} for t in targets]
        with autocast(cfg, run.device):
            losses = run.model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the detection loss became {float(loss)} at step {run.progress.step}; lower --lr"
            )
        (loss * len(part) / len(batch)).backward()
        share = len(part) / len(batch)
        for k, v in [*losses.items(), ("loss", loss)]:
            name = k.removeprefix("loss_")
            totals[name] = totals.get(name, 0.0) + float(v.detach()) * share
    if cfg.clip_grad:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip_grad)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return totals
