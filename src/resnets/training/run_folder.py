"""The run folder: everything needed to resume, inspect or reproduce a run.

    config.yaml        the resolved options
    manifest.json      versions, git revision, device, dataset fingerprint, command
    splits.json.gz     the data's fingerprint and each split's files (see data/provenance.py)
    metrics.csv        one row per epoch
    tensorboard/       event files
    curves.png         loss and top-1, train and validation
    last.pt            the training state (see checkpoint.py); step-*.pt with --save-every-steps
    best.safetensors   the selected weights with the metadata needed to predict (and to resume)
    summary.json       best_val_acc1, test_acc1, test_acc5, epochs, train_seconds, ...
    FAILED.json        the error that ended a run after its first checkpoint (cleared on resume)

Only process 0 writes.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from ..errors import TrainingError, UsageError
from ..files import atomic_write_json, atomic_write_text, remove_stale_temporaries
from ..options import split_spec
from .config import TrainConfig, to_dict
from .environment import environment

log = logging.getLogger("resnets")
FAILED = "FAILED.json"  # written when a run with a checkpoint ends in an error


def default_folder(cfg: TrainConfig) -> tuple[Path, list[Path]]:
    """runs/MODEL-DATA-TIME, claimed by creating it: a second run started in the same second
    (or at the same time elsewhere) gets MODEL-DATA-TIME-2, and so on. Returns the folder and
    the folders created for it (to remove again if the run fails before it starts)."""
    data = cfg.data.split(":", 1)[0]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{cfg.model}-{data}-{stamp}"
    made = [] if base.parent.exists() else [base.parent]
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path, [path, *made]
    raise TrainingError(f"could not find a free run folder name beside {base}; pass --out")


START_FILES = ("config.yaml", "manifest.json", "splits.json.gz", "curves.png", ".write-test")


def is_run_folder(path: Path) -> bool:
    """A folder resnets made: it holds the manifest a run writes first."""
    return (path / "manifest.json").is_file()


def never_trained(path: Path) -> bool:
    """A folder left by a run that stopped before its first checkpoint: nothing to lose.
    (The manifest is written first; before it, only the write probe or temporaries.)"""
    names = {p.name for p in path.iterdir()} if path.is_dir() else set()
    if all(n == ".write-test" or (n.startswith(".") and n.endswith(".tmp")) for n in names):
        return bool(names)
    return is_run_folder(path) and not names & {"last.pt", "best.pt", "best.safetensors"}


def check_folder(path: Path, cfg: TrainConfig) -> None:
    """Refuse to clobber: an existing run needs --resume or --overwrite, and --overwrite
    replaces only a folder resnets made; anything else is an error. Changes nothing."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"run folder {path} is a file; choose another --out")
    kind, root = split_spec(cfg.data)
    if kind in ("imagefolder", "segfolder") and root:
        root_path = Path(root).expanduser().resolve()
        if path.resolve() == root_path or root_path in path.resolve().parents:
            raise UsageError(
                f"run folder {path} is inside the data folder {root}: its files would become "
                "part of the data; choose an --out elsewhere"
            )
    if cfg.resume:
        if not (path / "last.pt").is_file():
            raise UsageError(f"{path} holds no run to resume (no last.pt)")
        return
    if not path.is_dir() or not any(path.iterdir()) or never_trained(path):
        return
    if not cfg.overwrite:
        raise UsageError(
            f"run folder {path} already exists; pass --resume {path} to continue it, "
            "--overwrite to replace it, or another --out"
        )
    if not is_run_folder(path):
        raise UsageError(
            f"{path} is not a resnets run folder (it has no manifest.json), so --overwrite will "
            "not replace it; choose another --out"
        )


def _remove_start_files(path: Path) -> None:
    """What a run writes before its first checkpoint, and nothing else."""
    for name in START_FILES:
        (path / name).unlink(missing_ok=True)
    shutil.rmtree(path / "tensorboard", ignore_errors=True)
    remove_stale_temporaries(path)


class RunFolder:
    """Writes the run's files; a no-op on processes other than 0."""

    def __init__(self, path: Path, cfg: TrainConfig, main: bool, claimed: list[Path] = ()):
        """`claimed`: folders created just now to reserve the default name."""
        self.path, self.cfg, self.main = path, cfg, main
        self._tb = None
        self._claimed = list(claimed)
        self._existed = path.is_dir() and not claimed
        self._previous: Path | None = None  # the replaced run, until this one has a checkpoint
        self._prepared = False  # nothing in the folder is touched before prepare()
        self.saved = False  # this run has written a checkpoint here

    def prepare(self, checkpoint_bytes: int) -> None:
        """Create the folder; prove it is writable and has room. With --overwrite, the old
        run is moved aside, and deleted only once this run has saved a checkpoint.

        `checkpoint_bytes` is the size of one training checkpoint with its best weights; a run
        keeps last.pt, best.safetensors and --keep-last step files, each written beside its
        predecessor before replacing it.
        """
        if not self.main:
            return
        self._prepared = True
        try:
            if self.cfg.overwrite and is_run_folder(self.path) and not never_trained(self.path):
                self._previous = self.path.with_name(f".{self.path.name}.replaced-{os.getpid()}")
                self.path.rename(self._previous)
                log.info(
                    "moved the run in %s aside to %s; it is deleted once this run saves its "
                    "first checkpoint, and put back if this run fails before that",
                    self.path,
                    self._previous,
                )
            missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
            self.path.mkdir(parents=True, exist_ok=True)
            self._claimed += [p for p in missing if p not in self._claimed]
            remove_stale_temporaries(self.path)
            probe = self.path / ".write-test"
            probe.write_bytes(b"\0" * 4096)
            probe.unlink()
        except OSError as e:
            self.abandon()
            raise TrainingError(
                f"cannot write to run folder {self.path} ({e.strerror or e})"
            ) from None
        files = 4 + (self.cfg.keep_last if self.cfg.save_every_steps else 0)
        needed, free = files * checkpoint_bytes, shutil.disk_usage(self.path).free
        if free < needed:
            self.abandon()
            raise TrainingError(
                f"only {free / 2**20:,.0f} MiB free in {self.path}; this run's checkpoints need "
                f"about {needed / 2**20:,.0f} MiB. Free some space or choose another --out"
            )

    def commit(self) -> None:
        """This run has a checkpoint: the run it replaced can go."""
        self.saved = True
        if self._previous is not None and (self.path / "last.pt").is_file():
            shutil.rmtree(self._previous, ignore_errors=True)
            self._previous = None

    def rename_default(self, cfg: TrainConfig) -> Path:
        """A default folder claimed under a model that the data then replaced (fit.py) is
        claimed again under the run's model; nothing is in it yet. Returns the path (process
        0's is the one to broadcast); a given folder keeps its name."""
        if not self.main or not self._claimed or self._prepared:
            return self.path
        old, (path, _) = self.path, default_folder(cfg)
        if old.is_dir() and not any(old.iterdir()):
            old.rmdir()
        self.path, self._claimed = path, [path, *self._claimed[1:]]  # runs/ if this run made it
        return path

    def abandon(self) -> None:
        """The run failed. Before its first checkpoint, leave things as they were: remove
        what it wrote (our files only) and put a replaced run back."""
        self.close()
        if not self.main:
            return
        if not self._prepared:
            for folder in self._claimed:  # a default name reserved, and runs/ if we made it
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            return
        if (self.path / "last.pt").is_file():
            self.commit()
            return
        if self.path.is_dir():
            _remove_start_files(self.path)
            if (not self._existed or self._previous) and not any(self.path.iterdir()):
                self.path.rmdir()
        if self._previous is not None:
            if self.path.exists():
                log.warning(
                    "the replaced run stays in %s (%s is not empty)", self._previous, self.path
                )
            else:
                self._previous.rename(self.path)
            self._previous = None
        for folder in self._claimed:  # parents this run made, runs/ among them, if empty
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def mark_failed(self, error: Exception) -> None:
        """A run with checkpoints ended by an error: FAILED.json says which (a resume or a
        finish clears it), so that `resnets runs` need not guess from file times."""
        ours = self.saved or self.cfg.resume  # not a replaced run that was put back
        if self.main and ours and (self.path / "last.pt").is_file():
            text = str(error).splitlines()[0] if str(error) else ""
            failure = {"error": f"{type(error).__name__}: {text}".rstrip(": "), "at": _now()}
            with contextlib.suppress(OSError):  # the error being raised matters more
                atomic_write_json(self.path / FAILED, failure)

    @property
    def replacing(self) -> bool:
        """An --overwrite run that has not saved its first checkpoint yet."""
        return self._previous is not None

    def recover(self) -> None:
        """A run killed while replacing another left that one aside as .NAME.replaced-PID:
        put it back, unless a run with a checkpoint has taken its place since."""
        for old in sorted(self.path.parent.glob(f".{self.path.name}.replaced-*")):
            if self.path.is_dir() and never_trained(self.path):
                _remove_start_files(self.path)
                if not any(self.path.iterdir()):
                    self.path.rmdir()
            if self.path.exists():
                log.warning("a run that was being replaced is still in %s", old)
                continue
            old.rename(self.path)
            log.warning("put back the run in %s: a run that was replacing it was killed", self.path)

    def write_config(self) -> None:
        if self.main:
            text = yaml.safe_dump(to_dict(self.cfg), sort_keys=False)
            atomic_write_text(self.path / "config.yaml", text)

    def write_manifest(self, info: dict[str, Any]) -> None:
        if not self.main:
            return
        (self.path / FAILED).unlink(missing_ok=True)  # a resume starts over
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


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")
