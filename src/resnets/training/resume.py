"""A classification or segmentation run restored from its last checkpoint for --resume: the
weights, optimizer, scaler, EMA, progress, selected weights and RNG, as they were saved."""

from __future__ import annotations

import logging
from typing import Any

from .checkpoint import load_best, progress_of, set_rng_state
from .optim import Schedule
from .resolve import peak_lr
from .run import Run

log = logging.getLogger("resnets")


def restore(run: Run, data: dict[str, Any]) -> None:
    run.model.raw.load_state_dict(data["model"])
    run.opt.optimizer.load_state_dict(data["optimizer"])
    run.opt.scaler.load_state_dict(data["scaler"])
    if run.model.ema is not None and data.get("ema") is not None:
        run.model.ema.load_state_dict(data["ema"])
    run.progress = progress_of(data)
    run.best_state = load_best(run.folder.path, data, run.env.main)
    run.partial_meter = data.get("partial_meter")
    set_rng_state(data["rng"])
    log.info(
        "resumed %s at epoch %d, step %d",
        run.folder.path,
        run.progress.epoch + 1,
        run.progress.step,
    )
    note_new_length(run, data.get("config") or {})


def note_new_length(run: Run, saved: dict[str, Any]) -> None:
    """A resume that changes --epochs or --steps lays the lr schedule out again over the new
    length, so the lr jumps at the resumed step: said, with both values."""
    per_epoch = len(run.loaders.train)
    before = saved.get("steps") or (saved.get("epochs") or 0) * per_epoch
    if not before or before == run.total_steps:
        return
    step, peak = run.progress.step, peak_lr(run.cfg)
    was = Schedule(run.cfg, per_epoch, before)(step) * peak
    now = run.opt.schedule(step) * peak
    run.note(
        f"the run's length changed from {before} to {run.total_steps} steps: its lr schedule is "
        f"laid out again over the new length, so the lr at step {step} is {now:.3g} where the "
        f"run had reached {was:.3g} (a fresh run with the new length is the clean comparison)"
    )
