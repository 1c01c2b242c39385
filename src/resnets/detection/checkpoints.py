"""A detection run's checkpoints, written at the end of each epoch: best.safetensors when
validation improved (the previous one kept aside until last.pt records the new selection, as
training/saving.py does), then last.pt; and a run restored from them for --resume."""

from __future__ import annotations

from ..models.weights import save_weights
from ..training.checkpoint import (
    BEST,
    PREVIOUS_BEST,
    STAMP,
    best_stamp,
    load_best,
    load_checkpoint,
    progress_of,
    save_checkpoint,
    set_rng_state,
)
from ..training.config import to_dict
from ..training.saving import set_aside_best
from .run import DetectionRun


def save(run: DetectionRun, improved: bool) -> None:
    """best.safetensors when validation improved (the previous one kept aside until last.pt
    records the new selection), then last.pt."""
    folder = run.folder.path
    if improved:
        set_aside_best(folder)
        stamp = {STAMP: best_stamp(run.progress)}
        save_weights(run.model, folder / BEST, run.meta, state=run.best_state, extra=stamp)
    payload = {
        "model_name": run.cfg.model,
        "config": to_dict(run.cfg),
        "resnets_meta": run.meta.to_json(),
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
    }
    save_checkpoint(folder / "last.pt", payload, run.progress)
    (folder / PREVIOUS_BEST).unlink(missing_ok=True)
    run.folder.commit()


def restore(run: DetectionRun) -> None:
    data = load_checkpoint(run.folder.path / "last.pt", run.cfg.model)
    run.model.load_state_dict(data["model"])
    run.optimizer.load_state_dict(data["optimizer"])
    run.progress = progress_of(data)
    run.best_state = load_best(run.folder.path, data, True)
    set_rng_state(data["rng"])
    run.note(f"resumed {run.folder.path} after epoch {run.progress.epoch}")
