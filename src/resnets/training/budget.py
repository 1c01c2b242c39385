"""--time: a run fitted to a wall-clock budget. The training loop (epochs, validation,
checkpoints; not reading the data before it nor the test after it) gets as many epochs as
fit, measured on the run's own first steps, and its lr schedule is laid out over them, so
that the run still ends with the lr at its floor. Each epoch's end measures again and lays
the schedule out anew if fewer (or more) epochs fit than planned; a run whose pace slows in
its last epoch may end up to that epoch late, never cut short of its schedule.
"""

from __future__ import annotations

import logging
import math
import time

from .config import parse_duration
from .distributed import broadcast_object
from .optim import Schedule
from .run import Run
from .setup import run_info

log = logging.getLogger("resnets")

PROBE_STEPS = 10  # the first optimizer steps, timed before the run's length is fixed
MAX_EPOCHS = 10_000  # the most a budget gives when --epochs is not set too
SLACK = 0.1  # a plan that would leave more than this share of the budget unused grows


class Budget:
    """The clock of a --time run: when the loop started, and each finished epoch's seconds."""

    def __init__(self, seconds: float, most_epochs: int):
        self.seconds, self.most = seconds, most_epochs
        self.start = time.perf_counter()
        self.fitted = False  # the first fit happens after PROBE_STEPS steps
        self.epoch_seconds: list[float] = []
        self.epoch_start = self.start
        self.refits, self.refit_note = 0, None
        self.first_step = 0.0  # seconds into the loop when the first step ended

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def after_step(self, run: Run) -> None:
        """After PROBE_STEPS steps past the first (which pays the kernels' warm-up, 2 to 3
        times a later one): the run's length from their pace."""
        p = run.progress
        if p.step == 1:
            self.first_step = self.elapsed()
        if self.fitted or p.step < min(PROBE_STEPS + 1, len(run.loaders.train)):
            return
        self.fitted = True
        timed = self.elapsed() - (self.first_step if p.step > 1 else 0.0)
        per_step = timed / max(p.step - 1, 1)
        epoch = per_step * len(run.loaders.train) * (1 + validation_share(run))
        left = self.seconds - self.elapsed() - epoch * (1 - p.epoch_step / len(run.loaders.train))
        epochs = broadcast_object(self._fit(1 + math.floor(left / epoch)))  # process 0's
        lay_out(run, epochs)
        run.note(
            f"--time {run.cfg.time}: {epochs} epochs ({run.total_steps} steps) fit, at "
            f"{per_step * 1000:.0f} ms a step measured on steps 2 to {p.step} "
            f"(about {epoch:.1f} s an epoch with validation); the lr schedule is laid out over "
            "them and measured again after each epoch"
        )

    def after_epoch(self, run: Run) -> None:
        """At an epoch's end: the length laid out again only when, at the pace of the epochs
        done, the planned ones would overrun the budget or leave more than SLACK of it idle
        (each new layout moves the lr a little: they are kept few)."""
        now = time.perf_counter()
        self.epoch_seconds.append(now - self.epoch_start)
        self.epoch_start = now
        done = run.progress.epoch
        if not self.fitted or done >= run.epochs:
            return
        timed = self.epoch_seconds[1:] or self.epoch_seconds  # the first pays the warm-up
        pace = sum(timed) / len(timed)
        left = self.seconds - self.elapsed()
        planned = (run.epochs - done) * pace
        epochs = done + math.floor(left / pace)
        if not (planned > left or planned < left - SLACK * self.seconds):
            epochs = run.epochs
        # at least one more epoch: the run always ends on its schedule's last step, with the
        # lr at its floor, even when the pace slows near the end (at most that epoch late)
        epochs = broadcast_object(max(self._fit(epochs), done + 1))  # process 0's decision
        if epochs == run.epochs:
            return
        before = run.epochs
        lay_out(run, epochs)
        self.refits += 1
        text = (
            f"--time {run.cfg.time}: after epoch {done}, at {pace:.1f} s an epoch, {epochs} "
            f"epochs fit where {before} were planned; the lr schedule was laid out again over "
            f"them ({self.refits} time{'s' * (self.refits > 1)} in this run)"
        )
        log.info("note: %s", text)
        if self.refit_note is None:
            self.refit_note = len(run.notes)
            run.notes.append(text)
        run.notes[self.refit_note] = text  # one note: the latest layout

    def _fit(self, epochs: int) -> int:
        return max(1, min(epochs, self.most))


def validation_share(run: Run) -> float:
    """Validation's time as a share of a training epoch's: forward passes only (about a third
    of a training step's work per image) over the validation images."""
    val = run.loaders.val
    if val is None:
        return 0.0
    images = len(run.splits.val or [])
    return images / max(run.loaders.train.batches.n, 1) / 3


def lay_out(run: Run, epochs: int) -> None:
    """The run's length set to `epochs` (written into its config, so a resume keeps it) and
    its lr schedule laid out over it."""
    per_epoch = len(run.loaders.train)
    run.cfg.epochs, run.epochs = epochs, epochs
    run.total_steps = epochs * per_epoch
    run.opt.schedule = Schedule(run.cfg, per_epoch, run.total_steps)
    run.folder.write_manifest(run_info(run))
    run.folder.write_config()


def start_budget(run: Run) -> Budget | None:
    """The --time clock of a fresh run; a resumed one keeps the length its config saved."""
    cfg = run.cfg
    if not cfg.time:
        return None
    if cfg.resume:
        run.note(f"--time {cfg.time}: resumed with the {run.epochs} epochs the run was fitted to")
        return None
    chosen = getattr(cfg, "given", None) or frozenset()
    return Budget(parse_duration(cfg.time), cfg.epochs if "epochs" in chosen else MAX_EPOCHS)
