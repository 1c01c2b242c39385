"""Checkpoints of a run in progress: after each epoch (last.pt, and best.safetensors first when
validation improved), every N steps, and when asked to stop. One full training state is kept,
not two: the best weights live in best.safetensors alone (see checkpoint.py)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from ..errors import TrainingError
from ..metrics import Meter
from ..models.weights import save_weights
from .checkpoint import BEST, PREVIOUS_BEST, STAMP, best_stamp, save_checkpoint
from .config import to_dict
from .run import Run


class Interrupted(TrainingError):
    """Stopped by SIGINT/SIGTERM after saving; the message says how to resume. Asked for, so
    not printed as an error."""

    exit_code = 130
    prefix = ""


def checkpoint_payload(run: Run, meter: Meter | None = None) -> dict[str, Any]:
    return {
        "model_name": run.cfg.model,
        "config": to_dict(run.cfg),
        "resnets_meta": run.meta.to_json(),
        "model": run.model.raw.state_dict(),
        "optimizer": run.opt.optimizer.state_dict(),
        "scaler": run.opt.scaler.state_dict(),
        "ema": run.model.ema.state_dict() if run.model.ema is not None else None,
        "partial_meter": meter.sums.cpu() if meter is not None else None,
    }


def save_last(run: Run, meter: Meter | None = None) -> None:
    """last.pt; when the selection changed since the last write, best.safetensors before it,
    with the previous best kept aside until last.pt records the new one."""
    folder = run.folder.path
    if run.saves.best_pending:
        set_aside_best(folder)
        save_best_weights(run)
    save_checkpoint(folder / "last.pt", checkpoint_payload(run, meter), run.progress)
    (folder / PREVIOUS_BEST).unlink(missing_ok=True)
    run.saves.best_pending = False
    run.folder.commit()


def set_aside_best(folder: Path) -> None:
    """Keep best.safetensors as .best-previous.safetensors while a new one is written; the
    caller removes it once last.pt records the new selection (see checkpoint.load_best)."""
    best, previous = folder / BEST, folder / PREVIOUS_BEST
    if best.is_file():
        previous.unlink(missing_ok=True)
        try:
            os.link(best, previous)  # best.safetensors is replaced by a rename: this stays
        except OSError:
            shutil.copy2(best, previous)


SAVE_SHARE = 0.1  # epoch checkpoints may take at most about this share of the run's time


def save_epoch_checkpoints(run: Run, improved: bool, final: bool = False) -> None:
    """last.pt (and best.pt with best.safetensors when validation improved) after an epoch.

    Short epochs would spend more time writing than training (resnet18 on 1k small images:
    0.8 s of writing per 2 s epoch), so after the first epoch a write waits until the time
    since the last one is 1 / SAVE_SHARE times what that write took; the final epoch is
    always written, and Ctrl-C / SIGTERM save at once as before. A kill loses at most those
    epochs; the resumed run is the same either way."""
    clock = run.saves
    clock.best_pending |= improved
    now = time.perf_counter()
    due = clock.written_at is None or now - clock.written_at >= clock.seconds / SAVE_SHARE
    if not run.env.main or not (due or final):
        return
    save_last(run)
    clock.written_at = time.perf_counter()
    clock.seconds = clock.written_at - now


def save_best_weights(run: Run) -> None:
    """best.safetensors from the selected weights (EMA when on), for evaluate and predict."""
    try:
        stamp = {STAMP: best_stamp(run.progress)}
        path = run.folder.path / BEST
        save_weights(run.model.selected, path, run.meta, state=run.best_state, extra=stamp)
    except OSError as e:
        raise TrainingError(f"could not save best.safetensors ({e.strerror or e})") from None


def save_step_checkpoint(run: Run, meter: Meter) -> None:
    """A mid-epoch checkpoint: last.pt, linked as step-N.pt; the newest --keep-last stay."""
    if not run.env.main:
        return
    last = run.folder.path / "last.pt"
    save_last(run, meter)
    step_file = run.folder.path / f"step-{run.progress.step:08d}.pt"
    try:
        os.link(last, step_file)  # last.pt is replaced by a rename later, so this copy stays
    except OSError:
        shutil.copy2(last, step_file)
    for old in sorted(run.folder.path.glob("step-*.pt"))[: -run.cfg.keep_last]:
        old.unlink(missing_ok=True)


def save_interrupted(run: Run, meter: Meter) -> None:
    """Save where we are and stop; the message says how to resume. An --overwrite run
    stopped before its first checkpoint saves nothing: the run it was replacing comes back."""
    if run.folder.replacing:
        raise Interrupted(
            f"stopped at step {run.progress.step}, before this run's first checkpoint; "
            f"the run it was replacing is back in {run.folder.path}"
        )
    if run.env.main:
        save_last(run, meter)
    raise Interrupted(
        f"stopped at step {run.progress.step}; saved {run.folder.path / 'last.pt'}. "
        f"Resume with: resnets train --resume {run.folder.path}"
    )
