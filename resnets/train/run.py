"""The run folder: everything needed to resume, inspect or reproduce a run.

    config.yaml        the resolved options
    manifest.json      versions, git revision, device, dataset fingerprint, command
    metrics.csv        one row per epoch
    tensorboard/       event files
    curves.png         loss and top-1, train and validation
    last.pt, best.pt   full training state (see checkpoint.py); step-*.pt with --save-every-steps
    best.safetensors   the selected weights with the metadata needed to predict
    summary.json       best_val_acc1, test_acc1, test_acc5, epochs, train_seconds, ...

Only process 0 writes.
"""

from __future__ import annotations

import csv
import datetime
import io
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from ..errors import TrainingError, UsageError
from ..io import atomic_write_json, atomic_write_text
from .checkpoint import remove_stale_temporaries
from .config import TrainConfig, to_dict


def default_folder(cfg: TrainConfig) -> Path:
    data = cfg.data.split(":", 1)[0]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.model}-{data}-{stamp}"


def check_folder(path: Path, cfg: TrainConfig) -> None:
    """Refuse to clobber: an existing run needs --resume or --overwrite; a file is an error."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"run folder {path} is a file; choose another --out")
    if cfg.resume:
        if not (path / "last.pt").is_file():
            raise UsageError(f"{path} holds no run to resume (no last.pt)")
        return
    if path.is_dir() and any(path.iterdir()) and not cfg.overwrite:
        raise UsageError(
            f"run folder {path} already exists; pass --resume {path} to continue it, "
            "--overwrite to replace it, or another --out"
        )


class RunFolder:
    """Writes the run's files; a no-op on processes other than 0."""

    def __init__(self, path: Path, cfg: TrainConfig, main: bool):
        self.path, self.cfg, self.main = path, cfg, main
        self._tb = None

    def prepare(self, checkpoint_bytes: int) -> None:
        """Create (or empty, with --overwrite) the folder; prove it is writable and has room.

        `checkpoint_bytes` is the size of one training checkpoint; a run keeps last.pt,
        best.pt, best.safetensors and --keep-last step files, each written beside its
        predecessor before replacing it.
        """
        if not self.main:
            return
        try:
            if self.cfg.overwrite and self.path.is_dir():
                shutil.rmtree(self.path)
            self.path.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.path)
            probe = self.path / ".write-test"
            probe.write_bytes(b"\0" * 4096)
            probe.unlink()
        except OSError as e:
            raise TrainingError(
                f"cannot write to run folder {self.path} ({e.strerror or e})"
            ) from None
        files = 4 + (self.cfg.keep_last if self.cfg.save_every_steps else 0)
        needed, free = files * checkpoint_bytes, shutil.disk_usage(self.path).free
        if free < needed:
            raise TrainingError(
                f"only {free / 2**20:,.0f} MiB free in {self.path}; this run's checkpoints need "
                f"about {needed / 2**20:,.0f} MiB. Free some space or choose another --out"
            )

    def write_config(self) -> None:
        if self.main:
            text = yaml.safe_dump(to_dict(self.cfg), sort_keys=False)
            atomic_write_text(self.path / "config.yaml", text)

    def write_manifest(self, info: dict[str, Any]) -> None:
        if not self.main:
            return
        path = self.path / "manifest.json"
        manifest = {**environment(), **info, "command": sys.argv, "started": _now()}
        if path.is_file() and self.cfg.resume:
            import json

            old = json.loads(path.read_text())
            old.setdefault("resumed", []).append(manifest)
            manifest = old
        atomic_write_json(path, manifest)

    def log_epoch(self, history: list[dict[str, float]]) -> None:
        """Rewrite metrics.csv from the history (so a resumed run has no duplicate rows)."""
        if not self.main:
            return
        keys = list(dict.fromkeys(k for row in history for k in row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())
        if self.cfg.tensorboard:
            self._tensorboard(history[-1])

    def _tensorboard(self, row: dict[str, float]) -> None:
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.path / "tensorboard"))
        step = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch" and value is not None:
                split, _, metric = key.partition("_")
                self._tb.add_scalar(f"{metric or split}/{split}", value, step)
        self._tb.flush()

    def plot(self, history: list[dict[str, float]], score: str = "acc1") -> None:
        if self.main and history:
            from ..plots import training_curves

            title = f"{self.cfg.model} on {self.cfg.data}"
            training_curves(history, self.path / "curves.png", title=title, score=score)

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.main:
            atomic_write_json(self.path / "summary.json", summary)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def environment() -> dict[str, Any]:
    import numpy
    import torch
    import torchvision

    from .. import __version__

    return {
        "versions": {
            "resnets": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": numpy.__version__,
        },
        "git_revision": _git_revision(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def _git_revision() -> str | None:
    src = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
    )
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")
