"""Training-state checkpoints: everything needed to continue a run exactly.

A checkpoint (last.pt) holds only tensors and plain Python values, so it is read back with
`torch.load(weights_only=True)`; it is written atomically (temporary file, fsync, rename),
so a crash during a save leaves the previous checkpoint intact. It carries the model name,
config and a format version, checked on load. The selected (best) weights are not in it: they
are best.safetensors, stamped with the selection they are (`best_stamp`), which a resumed
run reads back; the previous best file stays as .best-previous.safetensors until last.pt
records the new selection, so a kill between the two writes loses neither.
"""

from __future__ import annotations

import json
import pickle
import random
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import TrainingError, WeightsError
from ..files import atomic_path

FORMAT_VERSION = 1
KIND = "resnets-train-state"
BEST = "best.safetensors"
PREVIOUS_BEST = ".best-previous.safetensors"
STAMP = "resnets_selection"  # best.safetensors metadata: which selection its weights are


@dataclass
class Progress:
    """Where a run stands; with the tensors in a checkpoint, all that resuming needs."""

    epoch: int = 0  # the epoch in progress
    epoch_step: int = 0  # optimizer steps done within it
    step: int = 0  # optimizer steps done in total
    best_score: float = -1.0
    best_loss: float = float("inf")  # the selected epoch's validation loss: breaks score ties
    best_epoch: int = -1
    bad_epochs: int = 0
    bad_batches: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


def save_checkpoint(path: Path, payload: dict[str, Any], progress: Progress) -> None:
    """Write `payload` (model, optimizer, ... state dicts) with progress, RNG and version.

    A failed write (disk full, permissions) raises TrainingError; `path` keeps its old content.
    """
    data = {"format_version": FORMAT_VERSION, "kind": KIND, **payload}
    data["progress"] = asdict(progress)
    data["rng"] = rng_state()
    try:
        with atomic_path(path) as tmp:
            torch.save(data, tmp)
    except OSError as e:
        kept = "the previous one is intact" if path.exists() else "no checkpoint exists yet"
        raise TrainingError(f"could not save {path} ({e.strerror or e}); {kept}") from None


def load_checkpoint(path: Path, model_name: str | None = None) -> dict[str, Any]:
    """Read a checkpoint safely and check it is ours, of a known version, for `model_name`."""
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(
            f"refused to load {path}: it holds Python objects beyond tensors and plain values; "
            "a checkpoint that carries code is never run"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise WeightsError(f"checkpoint {path} is unreadable or truncated ({e})") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise WeightsError(f"{path} is not a resnets training checkpoint")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise WeightsError(
            f"{path} has checkpoint format {version}; this resnets reads up to {FORMAT_VERSION}: "
            "upgrade resnets"
        )
    if model_name is not None and data.get("model_name") != model_name:
        raise WeightsError(
            f"{path} was trained as {data.get('model_name')!r}, not {model_name!r}; "
            f"pass --model {data.get('model_name')} or another checkpoint"
        )
    return data


def progress_of(data: dict[str, Any]) -> Progress:
    return Progress(**data["progress"])


def best_stamp(progress: Progress) -> str:
    """The selection a best.safetensors holds: its epoch and the validation score and loss it
    was selected by."""
    return json.dumps([progress.best_epoch, progress.best_score, progress.best_loss])


def load_best(folder: Path, data: dict[str, Any], main: bool) -> dict[str, torch.Tensor] | None:
    """The selected weights a checkpoint refers to: best.safetensors (or, after a kill between
    writing it and last.pt, the previous one, which process 0 then puts back as
    best.safetensors) whose stamp matches; a checkpoint from before best weights left it
    holds them itself."""
    if "best" in data:
        return data["best"]
    progress = progress_of(data)
    if progress.best_epoch < 0:
        return None
    from safetensors import safe_open

    want = best_stamp(progress)
    for name in (PREVIOUS_BEST, BEST):  # the previous first: it is renamed to BEST once kept
        path = folder / name
        if not path.is_file():
            continue
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get(STAMP) != want:
                continue
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        if main and name == PREVIOUS_BEST:  # the newer file belongs to no checkpoint
            path.replace(folder / BEST)
        return state
    raise TrainingError(
        f"{folder / BEST} does not hold the weights last.pt selected (epoch "
        f"{progress.best_epoch}); the run cannot finish as it began: start it again"
    )
