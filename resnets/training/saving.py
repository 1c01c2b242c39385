"""Checkpoints of a run in progress: after each epoch (last.pt, and best.pt with
best.safetensors when validation improved), every N steps, and when asked to stop."""

from __future__ import annotations

import os
import shutil
from typing import Any

from ..errors import TrainingError
from ..metrics import Meter
from ..models.weights import save_weights
from .checkpoint import save_checkpoint
from .config import to_dict
from .setup import Run


class Interrupted(TrainingError):
    """Stopped by SIGINT/SIGTERM after saving; the message says how to resume."""

    exit_code = 130


def checkpoint_payload(run: Run, meter: Meter | None = None) -> dict[str, Any]:
    return {
        "model_name": run.cfg.model,
        "config": to_dict(run.cfg),
        "resnets_meta": run.meta.to_json(),
        "model": run.model.raw.state_dict(),
        "optimizer": run.opt.optimizer.state_dict(),
        "scaler": run.opt.scaler.state_dict(),
        "ema": run.model.ema.state_dict() if run.model.ema is not None else None,
        "best": run.best_state,
        "partial_meter": meter.sums.cpu() if meter is not None else None,
    }


def save_epoch_checkpoints(run: Run, improved: bool) -> None:
    if not run.env.main:
        return
    payload = checkpoint_payload(run)
    if improved:  # best before last: a kill in between re-runs the epoch and rewrites both
        save_checkpoint(run.folder.path / "best.pt", payload, run.progress)
        save_best_weights(run)
    save_checkpoint(run.folder.path / "last.pt", payload, run.progress)
    run.folder.commit()


def save_best_weights(run: Run) -> None:
    """best.safetensors from the selected weights (EMA when on), for evaluate and predict."""
    try:
        save_weights(
            run.model.selected, run.folder.path / "best.safetensors", run.meta,
            state=run.best_state,
        )  # fmt: skip
    except OSError as e:
        raise TrainingError(f"could not save best.safetensors ({e.strerror or e})") from None


def save_step_checkpoint(run: Run, meter: Meter) -> None:
    """A mid-epoch checkpoint: last.pt, linked as step-N.pt; the newest --keep-last stay."""
    if not run.env.main:
        return
    last = run.folder.path / "last.pt"
    save_checkpoint(last, checkpoint_payload(run, meter), run.progress)
    run.folder.commit()
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
        save_checkpoint(run.folder.path / "last.pt", checkpoint_payload(run, meter), run.progress)
        run.folder.commit()
    raise Interrupted(
        f"stopped at step {run.progress.step}; saved {run.folder.path / 'last.pt'}. "
        f"Resume with: resnets train --resume {run.folder.path}"
    )
