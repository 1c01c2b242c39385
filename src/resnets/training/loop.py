"""The training loop, top to bottom: `train` sets up a run and calls `fit`; `fit` loops over
epochs (validate, keep the best, save); `train_epoch` loops over steps (log, checkpoint,
stop); `train_step` is one optimizer step, fast path inline.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..data.python import take_objects
from ..errors import TrainingError
from ..logs import default_logging, interactive
from ..threads import choose_threads
from .budget import Budget, start_budget
from .config import TrainConfig
from .distributed import any_rank, cleanup, setup_distributed
from .optim import set_lr
from .resolve import resolve, resume_config
from .run import Model, Optimization, Run
from .saving import (
    Interrupted,
    save_epoch_checkpoints,
    save_interrupted,
    save_step_checkpoint,
)
from .setup import determinism, setup
from .signals import StopRequest
from .summary import finish, summary_text

log = logging.getLogger("resnets")

Batch = tuple[torch.Tensor, torch.Tensor]


def train(config: TrainConfig | str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Train a model and return the run summary (also in RUN/summary.json). Epoch lines,
    notes and the summary go to the `resnets` logger (stderr unless logging is configured).

    `options` are the CLI flags with underscores (model="resnet20", data="digits", ...);
    `config` is a YAML/TOML file that they override, or a ready TrainConfig. `data` may also be
    Python objects (a Dataset, DataLoader, arrays (x, y), ...: see data/python.py), with
    `val_data` and `test_data` beside it.
    """
    default_logging()
    objects = take_objects(options)
    cfg = config if isinstance(config, TrainConfig) else resolve(options, config)
    if cfg.resume:
        cfg = resume_config(cfg, options)
    env, device = setup_distributed(cfg.device)
    threads_before = torch.get_num_threads()
    try:
        with determinism(cfg.deterministic):
            threads = choose_threads(cfg.threads, device, cfg.deterministic)  # before any work
            if cfg.method is not None:  # self-supervised pretraining: its own loop
                from ..fewlabels.pretraining import pretrain_model

                return pretrain_model(cfg, env, device)
            if cfg.task == "detection":  # torchvision's detectors: their own loop
                from ..detection.train import train_detector

                if threads.note:
                    log.info("note: %s", threads.note)
                return train_detector(cfg, env, device)
            return _train(cfg, env, device, objects, threads.note)
    finally:
        torch.set_num_threads(threads_before)  # the caller's, for what it does next
        cleanup()


def _train(cfg: TrainConfig, env, device, objects, threads_note: str | None) -> dict[str, Any]:
    """Classification, segmentation and multi-label: set up, fit, summarize; a run that
    fails leaves its folder as before its first checkpoint, or marked failed after it."""
    run = setup(cfg, env, device, objects)
    if threads_note:  # said once the run stands: bad input stays one line
        run.note(threads_note)
    try:
        with StopRequest() as stop:
            summary = fit(run, stop)
        if run.env.main:
            log.info("%s", summary_text(summary))
        return summary
    except BaseException as e:
        run.folder.abandon()  # before the first checkpoint: as if it never ran
        if isinstance(e, Exception) and not isinstance(e, Interrupted):
            run.folder.mark_failed(e)  # after it: `resnets runs` says why it ended
        raise


def fit(run: Run, stop: StopRequest) -> dict[str, Any]:
    """Epochs until the step budget (or early stop): train, validate, keep the best, save."""
    cfg, p = run.cfg, run.progress
    budget = start_budget(run)
    while p.epoch < run.epochs and p.step < run.total_steps:
        row = {"epoch": p.epoch + 1}
        row |= {f"train_{k}": v for k, v in train_epoch(run, p.epoch, stop, budget).items()}
        row |= {"step": p.step, "lr": run.opt.optimizer.param_groups[0]["lr"]}  # at its end
        if run.loaders.val is not None:
            val = validate(run, run.loaders.val)
            row |= {f"val_{k}": v for k, v in val.items() if k != "count"}
        p.history.append(row)
        if run.env.main:
            log.info(epoch_line(row, run.epochs, run.task.score, run.task.label))
        improved = select_best(run, row)
        p.epoch, p.epoch_step = p.epoch + 1, 0
        stopping = bool(cfg.early_stop and p.bad_epochs >= cfg.early_stop)
        final = stopping or p.epoch >= run.epochs or p.step >= run.total_steps
        save_epoch_checkpoints(run, improved, final)
        run.folder.log_epoch(p.history)
        if budget is not None and not final:
            budget.after_epoch(run)
        if stopping:
            log.info("early stop: no improvement in %d epochs", cfg.early_stop)
            break
    return finish(run, measure)


def train_epoch(
    run: Run, epoch: int, stop: StopRequest, budget: Budget | None = None
) -> dict[str, float]:
    """One epoch of optimizer steps (resuming mid-epoch at progress.epoch_step); `budget`
    (--time) fits the run's length once its first steps are timed."""
    cfg, p = run.cfg, run.progress
    meter, run.partial_meter = run.meter(run.partial_meter), None
    run.model.train()
    steps = epoch_steps(run, epoch)
    bar = tqdm(
        total=steps,
        initial=p.epoch_step,
        desc=f"epoch {epoch + 1}/{run.epochs}",
        leave=False,
        disable=not (cfg.progress and run.env.main and interactive()),
        dynamic_ncols=True,
    )
    start = time.perf_counter()
    for micro in run.loaders.train.epoch(epoch, p.epoch_step):
        if p.epoch_step >= steps:
            break
        outputs = train_step(
            run.model,
            run.opt,
            micro,
            p.step,
            run.criterion,
            autocast(run),
            check=cfg.max_bad_batches > 0,
        )
        if outputs is None:
            count_bad_batch(run)
        else:
            for out in outputs:
                meter.update(*out)
        p.step, p.epoch_step = p.step + 1, p.epoch_step + 1
        bar.update(1)
        if budget is not None and not budget.fitted:
            budget.after_step(run)
            steps = bar.total = epoch_steps(run, epoch)  # the run's length is fixed now
        boundary = p.step % cfg.log_every == 0 or p.epoch_step == steps
        if boundary:  # the only host syncs of the epoch: reading the loss
            check_finite(run, meter.sums[0])
            lr = run.opt.optimizer.param_groups[0]["lr"]
            bar.set_postfix(loss=f"{meter.read()['loss']:.3f}", lr=f"{lr:.3g}")
        if cfg.save_every_steps and p.step % cfg.save_every_steps == 0 and p.epoch_step < steps:
            save_step_checkpoint(run, meter)
        # One process may see a signal first: processes agree at log boundaries.
        if any_rank(stop.requested, run.device) if run.env.active and boundary else stop.requested:
            bar.close()
            save_interrupted(run, meter)
    bar.close()
    p.train_seconds += time.perf_counter() - start
    meter.reduce()
    return {k: v for k, v in meter.read().items() if k != "count"}


def epoch_steps(run: Run, epoch: int) -> int:
    """Optimizer steps in epoch `epoch`: a whole one, or what is left of the run's length."""
    per_epoch = len(run.loaders.train)
    return min(per_epoch, run.total_steps - epoch * per_epoch)


def train_step(
    model: Model,
    opt: Optimization,
    micro: list[Batch],
    step: int,
    criterion,
    amp: torch.autocast,
    check: bool = False,
) -> list[tuple[torch.Tensor, ...]] | None:
    """One optimizer step over the micro-batches of one global batch (already augmented and
    normalized on the device by the loader). Returns each micro-batch's (loss, logits,
    labels), or None when `check` found a non-finite loss and the step was skipped."""
    set_lr(opt.optimizer, opt.schedule(step))  # the schedule is a pure function of the step
    outputs = []
    for k, (x, y) in enumerate(micro):
        # DDP all-reduces gradients in backward: only the last micro-batch needs to
        sync = model.ddp.no_sync() if model.ddp and k < len(micro) - 1 else contextlib.nullcontext()
        with sync, amp:
            logits = model.trained(x)
            loss = criterion(logits, y)
        # the mean over the global batch: each micro-batch is 1/len(micro) of it
        opt.scaler.scale(loss / len(micro)).backward()
        outputs.append((loss.detach(), logits.detach(), y))
    # with --max-bad-batches, one host sync per step to skip a non-finite loss
    finite = not check or bool(torch.isfinite(torch.stack([o[0] for o in outputs])).all())
    if finite:
        if opt.clip_grad:
            opt.scaler.unscale_(opt.optimizer)  # clip the true gradient, not the scaled one
            nn.utils.clip_grad_norm_(model.raw.parameters(), opt.clip_grad)
        opt.scaler.step(opt.optimizer)  # skips the step if fp16 gradients overflowed
        opt.scaler.update()
        if model.ema is not None:
            model.ema.update(model.raw)
    opt.optimizer.zero_grad(set_to_none=True)  # frees the gradients' memory until backward
    return outputs if finite else None


def autocast(run: Run) -> torch.autocast:
    """The --amp setting as an autocast context (disabled for "none")."""
    dtype = torch.float16 if run.cfg.amp == "fp16" else torch.bfloat16
    return torch.autocast(run.device.type, dtype=dtype, enabled=run.cfg.amp != "none")


def count_bad_batch(run: Run) -> None:
    run.progress.bad_batches += 1
    log.warning("skipped a batch with a non-finite loss (%d so far)", run.progress.bad_batches)
    if run.progress.bad_batches > run.cfg.max_bad_batches:
        raise_diverged(run, f"after skipping {run.cfg.max_bad_batches} bad batches")


def check_finite(run: Run, loss_sum: torch.Tensor) -> None:
    if not torch.isfinite(loss_sum).item():
        raise_diverged(run, f"at step {run.progress.step}")


def raise_diverged(run: Run, when: str) -> None:
    last = run.folder.path / "last.pt"
    kept = f"the last good checkpoint {last} is intact" if last.is_file() else "nothing was saved"
    amp = {"fp16": "--amp bf16 instead of fp16, ", "bf16": "--amp none (fp32), "}
    raise TrainingError(
        f"the loss became NaN or infinite {when}; {kept}. Try a lower --lr, --clip-grad 1.0, "
        f"{amp.get(run.cfg.amp, '')}or --max-bad-batches N"
    )


def validate(run: Run, loader) -> dict[str, float]:
    """The task's metrics of the selected weights (EMA when on), summed over processes."""
    return measure(run, loader).read()


@torch.no_grad()
def measure(run: Run, loader, full_precision: bool = False):
    """The task's meter over a split, reduced over processes (multi-label: with every
    output, and F1 at the chosen thresholds once there are some). `full_precision`: without
    autocast, as `evaluate` and `predict` compute the saved weights."""
    model = run.model.selected
    model.eval()
    meter, loss = run.meter(keep=True), run.task.criterion()  # unweighted
    amp = contextlib.nullcontext() if full_precision else autocast(run)
    if run.meta.thresholds is not None:
        meter.thresholds = torch.tensor(run.meta.thresholds)
    for x, y in loader:
        with amp:
            logits = model(x)
        meter.update(loss(logits, y), logits, y)
    meter.reduce()
    return meter


def select_best(run: Run, row: dict[str, float]) -> bool:
    """Model selection on the validation score (top-1, or Dice), ties going to the lower
    validation loss (small validation sets reach 100 % long before training ends); without
    validation, the last epoch wins."""
    p = run.progress
    score, loss = row.get(f"val_{run.task.score}"), row.get("val_loss", math.inf)
    loss = loss if math.isfinite(loss) else math.inf
    if score is not None and (score, -loss) <= (p.best_score, -p.best_loss):
        p.bad_epochs += 1
        return False
    p.best_score = score if score is not None else -1.0
    p.best_loss = loss if score is not None else math.inf
    p.best_epoch, p.bad_epochs = row["epoch"], 0
    run.best_state = {k: v.detach().clone() for k, v in run.model.selected.state_dict().items()}
    return True


def epoch_line(row: dict[str, float], epochs: int, score: str, label: str) -> str:
    parts = [f"epoch {row['epoch']:>3}/{epochs}", f"loss {row['train_loss']:.4f}"]
    if f"train_{score}" in row:  # multi-label scores need every output: validation only
        parts.append(f"train {label} {row[f'train_{score}']:6.2f} %")
    if f"val_{score}" in row:
        parts += [f"val loss {row['val_loss']:.4f}", f"val {label} {row[f'val_{score}']:6.2f} %"]
    return "  ".join(parts) + f"  lr {row['lr']:.4g}"
