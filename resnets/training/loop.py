"""The training loop, top to bottom: data, model, optimizer, then epochs of steps.

The fast path is in `train_epoch`: autocast, channels_last batches, DDP's no_sync between
micro-batches, fused/foreach optimizer, metrics summed on the device and read only every
`log_every` steps. Everything else (checkpoints, metrics files, plots) is a small function
it calls.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data import Loaders
from ..errors import TrainingError
from ..metrics import Meter
from ..models.weights import save_weights
from .checkpoint import save_checkpoint
from .config import TrainConfig, resolve, resume_config, to_dict
from .distributed import any_rank, cleanup, setup
from .optim import set_lr
from .session import Session, determinism, setup_session
from .signals import StopRequest

log = logging.getLogger("resnets")


class Interrupted(TrainingError):
    """Stopped by SIGINT/SIGTERM after saving; the message says how to resume."""

    exit_code = 130


def train(config: TrainConfig | str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Train a model and return the run summary (also in RUN/summary.json).

    `options` are the CLI flags with underscores (model="resnet20", data="digits", ...);
    `config` is a YAML/TOML file that they override, or a ready TrainConfig.
    """
    cfg = config if isinstance(config, TrainConfig) else resolve(options, config)
    if cfg.resume:
        cfg = resume_config(cfg, options)
    env, device = setup(cfg.device)
    try:
        with determinism(cfg.deterministic):
            session = setup_session(cfg, env, device)
            try:
                with StopRequest() as stop:
                    return run_session(session, stop)
            except BaseException:
                session.run.abandon()  # before the first checkpoint: as if it never ran
                raise
    finally:
        cleanup()


def set_train_mode(session: Session, training: bool) -> None:
    session.model.train(training)
    for part in session.frozen:
        part.eval()


def train_epoch(s: Session, epoch: int, stop: StopRequest) -> dict[str, float]:
    """One epoch of optimizer steps (resuming mid-epoch at s.progress.epoch_step)."""
    cfg, p = s.cfg, s.progress
    meter = s.meter(s.partial_meter)
    s.partial_meter = None
    set_train_mode(s, True)
    amp = autocast(s)
    steps = min(len(s.loaders.train), s.total_steps - epoch * len(s.loaders.train))
    bar = tqdm(
        total=steps, initial=p.epoch_step, desc=f"epoch {epoch + 1}/{s.epochs}", leave=False,
        disable=not (cfg.progress and s.env.main), dynamic_ncols=True,
    )  # fmt: skip
    start = time.perf_counter()
    for micro in s.loaders.train.epoch(epoch, p.epoch_step):
        if p.epoch_step >= steps:
            break
        set_lr(s.optimizer, s.schedule(p.step))
        outputs = []
        for k, (x, y) in enumerate(micro):
            last = k == len(micro) - 1
            sync = contextlib.nullcontext() if last or s.ddp is s.model else s.ddp.no_sync()
            with sync, amp:
                logits = s.net(x)
                loss = s.criterion(logits, y)
            s.scaler.scale(loss / len(micro)).backward()
            outputs.append((loss.detach(), logits.detach(), y))
        if not cfg.max_bad_batches or all_finite(s, outputs):
            for out in outputs:
                meter.update(*out)
            if cfg.clip_grad:
                s.scaler.unscale_(s.optimizer)
                nn.utils.clip_grad_norm_(s.model.parameters(), cfg.clip_grad)
            s.scaler.step(s.optimizer)
            s.scaler.update()
            if s.ema is not None:
                s.ema.update(s.model)
        s.optimizer.zero_grad(set_to_none=True)
        p.step, p.epoch_step = p.step + 1, p.epoch_step + 1
        bar.update(1)
        boundary = p.step % cfg.log_every == 0 or p.epoch_step == steps
        if boundary:
            check_finite(s, meter)
            lr = s.optimizer.param_groups[0]["lr"]
            bar.set_postfix(loss=f"{meter.read()['loss']:.3f}", lr=f"{lr:.3g}")
        if cfg.save_every_steps and p.step % cfg.save_every_steps == 0 and p.epoch_step < steps:
            save_step_checkpoint(s, meter)
        # One process may see a signal first: processes agree at log boundaries.
        if any_rank(stop.requested, s.device) if s.env.active and boundary else stop.requested:
            bar.close()
            interrupt(s, meter)
    bar.close()
    p.train_seconds += time.perf_counter() - start
    meter.reduce()
    return {f"train_{k}": v for k, v in meter.read().items() if k != "count"}


def autocast(s: Session) -> torch.autocast:
    """The --amp setting as an autocast context (disabled for "none")."""
    dtype = torch.float16 if s.cfg.amp == "fp16" else torch.bfloat16
    return torch.autocast(s.device.type, dtype=dtype, enabled=s.cfg.amp != "none")


def all_finite(s: Session, outputs: list[tuple[torch.Tensor, ...]]) -> bool:
    """With --max-bad-batches: is this step's loss finite? (One host sync per step.)"""
    if torch.isfinite(torch.stack([out[0] for out in outputs])).all().item():
        return True
    s.progress.bad_batches += 1
    log.warning("skipped a batch with a non-finite loss (%d so far)", s.progress.bad_batches)
    if s.progress.bad_batches > s.cfg.max_bad_batches:
        raise_diverged(s, f"after skipping {s.cfg.max_bad_batches} bad batches")
    return False


def check_finite(s: Session, meter: Meter) -> None:
    if not torch.isfinite(meter.sums[0]).item():
        raise_diverged(s, f"at step {s.progress.step}")


def raise_diverged(s: Session, when: str) -> None:
    last = s.run.path / "last.pt"
    kept = f"the last good checkpoint {last} is intact" if last.is_file() else "nothing was saved"
    raise TrainingError(
        f"the loss became NaN or infinite {when}; {kept}. Try a lower --lr, --clip-grad 1.0, "
        f"--amp bf16 instead of fp16, or --max-bad-batches N"
    )


@torch.no_grad()
def evaluate(s: Session, loader) -> dict[str, float]:
    """Loss, top-1 and top-5 of the selected weights (EMA when on), summed over processes."""
    model = s.ema.module if s.ema is not None else s.model
    model.eval()
    meter = s.meter()
    amp = autocast(s)
    for x, y in loader:
        with amp:
            logits = model(x)
        meter.update(F.cross_entropy(logits.float(), y), logits, y)
    meter.reduce()
    return meter.read()


def run_session(s: Session, stop: StopRequest) -> dict[str, Any]:
    cfg, p = s.cfg, s.progress
    while p.epoch < s.epochs and p.step < s.total_steps:
        epoch = p.epoch
        row = {"epoch": epoch + 1, "step": p.step}
        row |= train_epoch(s, epoch, stop)
        row["lr"] = s.optimizer.param_groups[0]["lr"]
        if s.loaders.val is not None:
            row |= {f"val_{k}": v for k, v in evaluate(s, s.loaders.val).items() if k != "count"}
        p.history.append(row)
        if s.env.main:
            log.info(epoch_line(row, s.epochs, s.score))
        improved = select_best(s, row)
        p.epoch, p.epoch_step = epoch + 1, 0
        save_epoch_checkpoints(s, improved)
        s.run.log_epoch(p.history)
        if cfg.early_stop and p.bad_epochs >= cfg.early_stop:
            log.info("early stop: no improvement in %d epochs", cfg.early_stop)
            break
    return finish(s)


def epoch_line(row: dict[str, float], epochs: int, score: str) -> str:
    label = {"acc1": "top-1", "dice": "Dice"}[score]
    parts = [f"epoch {row['epoch']:>3}/{epochs}", f"loss {row['train_loss']:.4f}"]
    parts.append(f"train {label} {row[f'train_{score}']:6.2f} %")
    if f"val_{score}" in row:
        parts += [f"val loss {row['val_loss']:.4f}", f"val {label} {row[f'val_{score}']:6.2f} %"]
    return "  ".join(parts) + f"  lr {row['lr']:.4g}"


def select_best(s: Session, row: dict[str, float]) -> bool:
    """Model selection on the validation score (top-1, or Dice for segmentation) only;
    without validation, the last epoch wins."""
    p = s.progress
    score = row.get(f"val_{s.score}")
    if score is None or score > p.best_score:
        p.best_score, p.best_epoch, p.bad_epochs = (
            (score if score is not None else -1.0),
            row["epoch"],
            0,
        )
        weights = s.ema.module if s.ema is not None else s.model
        s.best_state = {k: v.detach().clone() for k, v in weights.state_dict().items()}
        return True
    p.bad_epochs += 1
    return False


def finish(s: Session) -> dict[str, Any]:
    """Evaluate the selected weights once on the test set; write summary and plots."""
    p = s.progress
    target = s.ema.module if s.ema is not None else s.model
    if s.best_state is not None:
        target.load_state_dict(s.best_state)
    test = evaluate(s, s.loaders.test) if s.loaders.test is not None else {}
    test_keys = ("dice", "iou", "pixel_acc", "loss") if s.segmentation else ("acc1", "acc5", "loss")
    seen = p.step * s.cfg.batch_size
    summary = {
        "model": s.cfg.model,
        "data": s.cfg.data,
        "task": s.cfg.task,
        "run": str(s.run.path),
        f"best_val_{s.score}": p.best_score if p.best_score >= 0 else None,
        "best_epoch": p.best_epoch,
        **{f"test_{k}": test.get(k) for k in test_keys},
        "test_images": test.get("count") if not s.segmentation else _count(s.splits.test),
        "epochs": p.epoch,
        "steps": p.step,
        "train_seconds": round(p.train_seconds, 2),
        "images_per_second": round(seen / p.train_seconds, 1) if p.train_seconds else None,
        "device": str(s.device),
        "world_size": s.env.world_size,
        **unreadable_images(s.loaders),
        "notes": s.splits.notes,
    }
    if s.env.main:
        save_best_weights(s)  # the file always matches the weights the summary reports
        if s.segmentation and s.splits.test is not None:
            summary["predictions"] = str(save_masks(s, target))
    s.run.write_summary(summary)
    s.run.plot(p.history, s.score)
    s.run.close()
    return summary


def _count(split) -> int | None:
    return None if split is None else len(split)


@torch.no_grad()
def save_masks(s: Session, model: nn.Module) -> Path:
    """The test split's predicted masks as PNG (class index x 255 / (classes - 1))."""
    from PIL import Image

    from ..data.build import eval_loader

    folder = s.run.path / "predictions"
    folder.mkdir(exist_ok=True)
    scale = 255 // max(len(s.splits.classes) - 1, 1)
    model.eval()
    n = 0
    for x, _ in eval_loader(s.splits, "test", 64, s.device):
        for mask in model(x).argmax(1).to(torch.uint8).cpu():
            Image.fromarray((mask * scale).numpy()).save(folder / f"{n:05d}.png")
            n += 1
    return folder


def unreadable_images(loaders: Loaders) -> dict[str, Any]:
    """Unreadable files met in any split, each counted once (folders only)."""
    files = []
    for loader in (loaders.train, loaders.val, loaders.test):
        files += loader.files() if hasattr(loader, "files") else []
    return {"skipped_images": len(files), "unreadable": files[:20]}


# ---- checkpoints -------------------------------------------------------------------------


def checkpoint_payload(s: Session, meter: Meter | None = None) -> dict[str, Any]:
    return {
        "model_name": s.cfg.model,
        "config": to_dict(s.cfg),
        "resnets_meta": s.meta.to_json(),
        "model": s.model.state_dict(),
        "optimizer": s.optimizer.state_dict(),
        "scaler": s.scaler.state_dict(),
        "ema": s.ema.state_dict() if s.ema is not None else None,
        "best": s.best_state,
        "partial_meter": meter.sums.cpu() if meter is not None else None,
    }


def save_epoch_checkpoints(s: Session, improved: bool) -> None:
    if not s.env.main:
        return
    payload = checkpoint_payload(s)
    if improved:  # best before last: a kill in between re-runs the epoch and rewrites both
        save_checkpoint(s.run.path / "best.pt", payload, s.progress)
        save_best_weights(s)
    save_checkpoint(s.run.path / "last.pt", payload, s.progress)
    s.run.commit()


def save_best_weights(s: Session) -> None:
    """best.safetensors from the selected weights (EMA when on), for evaluate and predict."""
    source = s.ema.module if s.ema is not None else s.model
    try:
        save_weights(source, s.run.path / "best.safetensors", s.meta, state=s.best_state)
    except OSError as e:
        raise TrainingError(f"could not save best.safetensors ({e.strerror or e})") from None


def save_step_checkpoint(s: Session, meter: Meter) -> None:
    """A mid-epoch checkpoint: last.pt, linked as step-N.pt; the newest --keep-last stay."""
    if not s.env.main:
        return
    last = s.run.path / "last.pt"
    save_checkpoint(last, checkpoint_payload(s, meter), s.progress)
    s.run.commit()
    step_file = s.run.path / f"step-{s.progress.step:08d}.pt"
    try:
        os.link(last, step_file)  # last.pt is replaced by a rename later, so this copy stays
    except OSError:
        shutil.copy2(last, step_file)
    for old in sorted(s.run.path.glob("step-*.pt"))[: -s.cfg.keep_last]:
        old.unlink(missing_ok=True)


def interrupt(s: Session, meter: Meter) -> None:
    """Save where we are and stop; the message says how to resume."""
    if s.env.main:
        save_checkpoint(s.run.path / "last.pt", checkpoint_payload(s, meter), s.progress)
        s.run.commit()
    raise Interrupted(
        f"stopped at step {s.progress.step}; saved {s.run.path / 'last.pt'}. "
        f"Resume with: resnets train --resume {s.run.path}"
    )
