"""The runs under a folder as one table: the API of `resnets runs` (compare.py: two runs side
by side, `resnets runs --compare`).

Read from the files of each run folder (training/run_folder.py lists them): manifest.json,
config.yaml, metrics.csv, summary.json, and when each was written. Nothing records a run's
state; it is derived from those files, in this order:
  finished     summary.json covers every row of metrics.csv (a run resumed after finishing
               has more rows than its old summary: it goes on below).
  interrupted  last.pt is newer than metrics.csv and the last start (manifest.json), and is
               no --save-every-steps file: only a stop on Ctrl-C or SIGTERM saves so, then ends.
  failed       FAILED.json: the run wrote the error that ended it (after a checkpoint).
  running      else, if the folder was written within twice the run's time per epoch (at
               least 10 minutes; an hour before the first epoch ends). A guess: a live run
               and one killed a minute ago look the same.
  failed       else: no summary and no save on the way out: a kill, a second Ctrl-C.
  unreadable   a file is missing, cannot be read or does not parse; `reason` names it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError
from ..training.run_folder import is_run_folder

# Each task's validation score and the test numbers the table shows, as resnets.tasks
# defines them (that module imports PyTorch; a test keeps the two in step).
SCORES = {
    "classification": "acc1",
    "segmentation": "dice",
    "multilabel": "auc",
    "detection": "map",
}
TEST_SHOWN = {
    "classification": ("acc1",),
    "segmentation": ("dice", "iou"),
    "multilabel": ("auc", "map"),
    "detection": ("map", "map50"),
}
LABELS = {
    "acc1": "top-1",
    "dice": "Dice",
    "iou": "IoU",
    "auc": "AUC",
    "map": "mAP",
    "map50": "mAP50",
}
IGNORED = ("out", "resume", "overwrite", "progress", "tensorboard", "log_every")  # not the math
RUNNING_MIN_SECONDS = 600  # a run written this recently may still be running
FIRST_EPOCH_SECONDS = 3600  # ... and one with no epoch done yet, this long after its start


@dataclass
class RunRow:
    """One run folder as the table shows it; None where the files do not say."""

    path: Path
    state: str  # finished | interrupted | running | failed | unreadable
    reason: str = ""  # the evidence for the state, or what could not be read
    model: str | None = None
    data: str | None = None
    task: str | None = None
    epochs: int | None = None  # done: rows of metrics.csv
    planned: int | None = None  # the latest start's total_steps / steps_per_epoch
    best: float | None = None  # best validation score, in %
    metric: str | None = None  # its name: acc1, dice or auc
    test: dict[str, float] = field(default_factory=dict)  # the summary's test numbers
    seconds: float | None = None  # wall time from the first start to the last write
    started: datetime | None = None
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    history: list[dict[str, float | None]] = field(default_factory=list, repr=False)

    @property
    def test_score(self) -> float | None:
        """The task's main test number: top-1, Dice or AUC (finished runs only)."""
        keys = TEST_SHOWN.get(self.task or "", ())
        return self.test.get(keys[0]) if keys else None


class _Unreadable(Exception):
    """A file of a run folder that is missing or does not parse (the message names it)."""


def _parse(path: Path, parse: Callable[[str], Any], mapping: bool = True) -> Any:
    try:
        value = parse(path.read_text())
    except OSError as e:
        raise _Unreadable(f"{path.name}: {e.strerror or e}") from None
    except (ValueError, yaml.YAMLError, csv.Error) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise _Unreadable(f"{path.name}: {first}") from None
    if mapping and not isinstance(value, dict):
        raise _Unreadable(f"{path.name}: not a mapping of names to values")
    return value


def _number(text: str | None) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _metrics(text: str) -> list[dict[str, float | None]]:
    return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(text.splitlines())]


def read_run(path: str | Path) -> RunRow:
    """One run folder as a row; one that cannot be read is a row too, state "unreadable"."""
    path = Path(path)
    try:
        return _read(path)
    except (_Unreadable, OSError, ValueError) as e:  # OSError: listing the folder
        return RunRow(path, "unreadable", reason=getattr(e, "strerror", None) or str(e))


def _read(path: Path) -> RunRow:
    manifest = _parse(path / "manifest.json", json.loads)
    config = _parse(path / "config.yaml", yaml.safe_load)
    if not all(isinstance(config.get(k), str) for k in ("model", "data")):
        raise _Unreadable("config.yaml: no model or data name")
    stamps = _stamps(path)
    history = _parse(path / "metrics.csv", _metrics, False) if "metrics.csv" in stamps else []
    summary = _parse(path / "summary.json", json.loads) if "summary.json" in stamps else None
    task = str(config.get("task", "classification"))
    try:  # the first start; a resumed run's later ones are in manifest["resumed"]
        started = datetime.fromisoformat(manifest["started"])
    except (KeyError, TypeError, ValueError):
        started = None
    row = RunRow(
        path,
        "",
        model=config.get("model"),
        data=config.get("data"),
        task=task,
        epochs=len(history),
        planned=config.get("epochs"),
        metric=SCORES.get(task),
        started=started,
        config=config,
        history=history,
    )
    latest = (manifest.get("resumed") or [manifest])[-1]  # a resume may change --epochs
    with contextlib.suppress(KeyError, TypeError, ZeroDivisionError):
        row.planned = math.ceil(latest["total_steps"] / latest["steps_per_epoch"])
    if started is not None:
        row.seconds = max(s.st_mtime for s in stamps.values()) - started.timestamp()
    row.state, row.reason = _state(row, stamps, summary)
    if row.state == "finished":
        row.best = _number(summary.get(f"best_val_{row.metric}"))
        tests = {
            k.removeprefix("test_"): _number(v)
            for k, v in summary.items()
            if k.startswith("test_") and k != "test_images"
        }
        row.test = {k: v for k, v in tests.items() if v is not None}
    else:
        scores = [r.get(f"val_{row.metric}") for r in history]
        row.best = max((s for s in scores if s is not None), default=None)
    return row


def _stamps(folder: Path) -> dict[str, os.stat_result]:
    """Each file's times; a temporary renamed away meanwhile (a save in progress) is left out."""
    stamps = {}
    for entry in os.scandir(folder):
        with contextlib.suppress(FileNotFoundError):
            if entry.is_file(follow_symlinks=False):
                stamps[entry.name] = entry.stat(follow_symlinks=False)
    return stamps


def _state(row: RunRow, stamps: dict[str, os.stat_result], summary: dict | None) -> tuple[str, str]:
    """(state, the evidence for it): the rules in this module's docstring."""
    if summary is not None and summary.get("epochs") == row.epochs:
        return "finished", f"summary.json covers all {row.epochs} epochs"
    if "FAILED.json" in stamps:  # written by the run itself as an error ended it
        failure = _parse(row.path / "FAILED.json", json.loads)
        return "failed", f"{failure.get('error', 'an error')}; last.pt resumes it"
    last = stamps.get("last.pt")
    steps = sorted(n for n in stamps if n.startswith("step-") and n.endswith(".pt"))
    step = stamps[steps[-1]] if steps else None  # a link to last.pt, or a copy (same time)
    is_step = bool(last and step) and last.st_mtime_ns == step.st_mtime_ns
    before = [stamps[n].st_mtime_ns for n in ("metrics.csv", "manifest.json") if n in stamps]
    if last is not None and not is_step and all(last.st_mtime_ns > t for t in before):
        return "interrupted", f"stopped on request; resume with: resnets train --resume {row.path}"
    newest = max(s.st_mtime for s in stamps.values())
    pace = row.seconds / row.epochs if row.epochs and row.seconds is not None else None
    window = FIRST_EPOCH_SECONDS if pace is None else max(RUNNING_MIN_SECONDS, 2 * pace)
    age = time.time() - newest
    if age < window:
        return "running", f"written {age:.0f} s ago, within {window:.0f} s of its pace"
    kept = "last.pt resumes it" if last is not None else "it saved no checkpoint"
    return "failed", f"no summary and no save on the way out (an error or a kill); {kept}"


def list_runs(root: str | Path = "runs") -> list[RunRow]:
    """Every run folder under `root` (or `root` itself), one row each, in path order.
    Hidden folders are skipped: a run moved aside by --overwrite lives in .NAME.replaced-PID."""
    root = Path(root)
    if root.is_file():
        raise UsageError(f"{root} is a file; give the folder that holds the runs")
    return [read_run(p) for p in _find(root, is_run_folder)]


def _find(folder: Path, is_run: Callable[[Path], bool]) -> list[Path]:
    try:
        if is_run(folder):
            return [folder]
        found = [
            Path(e.path)
            for e in os.scandir(folder)
            if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
        ]
    except OSError:  # missing, or not ours to list
        return []
    return [run for child in sorted(found) for run in _find(child, is_run)]


SORTS: dict[str, tuple[Callable[[RunRow], Any], bool]] = {  # key, descending
    "start": (lambda r: r.started.timestamp() if r.started else None, False),
    "model": (lambda r: r.model, False),
    "data": (lambda r: r.data, False),
    "best": (lambda r: r.best, True),
    "test": (lambda r: r.test_score, True),
    "time": (lambda r: r.seconds, False),
}


def sort_runs(rows: list[RunRow], sort: str = "start") -> list[RunRow]:
    """Rows ordered by `sort` (best and test highest first); rows without that value last."""
    if sort not in SORTS:
        raise UsageError(f"cannot sort runs by {sort!r}; sort by one of {', '.join(SORTS)}")
    key, descending = SORTS[sort]
    known = sorted((r for r in rows if key(r) is not None), key=key, reverse=descending)
    return known + [r for r in rows if key(r) is None]


def _score(value: float | None, metric: str | None) -> str:
    return "-" if value is None else f"{value:.2f} {LABELS.get(metric, metric)}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    return f"{s // 60}m{s % 60:02d}s" if s < 3600 else f"{s // 3600}h{s // 60 % 60:02d}m"


def _short_data(data: str | None) -> str:
    """imagefolder:/home/me/data/pets -> imagefolder:pets; the full spec is in the row."""
    kind, _, where = (data or "-").partition(":")
    return f"{kind}:{Path(where).name}" if "/" in where else data or "-"


def cells(r: RunRow) -> list[str]:
    epochs = "-" if r.epochs is None else f"{r.epochs}/{r.planned}"
    test = " / ".join(
        _score(r.test.get(k), k) for k in TEST_SHOWN.get(r.task or "", ()) if k in r.test
    )
    started = r.started.astimezone().strftime("%Y-%m-%d %H:%M") if r.started else "-"
    return [
        str(r.path),
        r.model or "-",
        _short_data(r.data),
        epochs,
        _score(r.best, r.metric),
        test or "-",
        _duration(r.seconds),
        r.state,
        started,
    ]


HEADER = ["run", "model", "data", "epochs", "best val", "test", "time", "state", "started"]
RIGHT = {"epochs", "best val", "test", "time"}


def align(lines: list[list[str]], header: list[str], right: Collection[str] = ()) -> list[str]:
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    return [
        "  ".join(
            c.rjust(w) if h in right else c.ljust(w)
            for c, w, h in zip(line, widths, header, strict=True)
        ).rstrip()
        for line in [header, *lines]
    ]


def runs_table(rows: list[RunRow], sort: str = "start", root: str | Path = "runs") -> str:
    """The rows as aligned text, sorted by `sort` (see SORTS); the reasons of unreadable
    folders below it. No rows: one line saying so, and how to make a run."""
    rows = sort_runs(rows, sort)
    if not rows:
        return f"no runs found under {root}; make one with: resnets train --out {root}/NAME"
    lines = align([cells(r) for r in rows], HEADER, RIGHT)
    lines += [f"unreadable: {r.path}: {r.reason}" for r in rows if r.state == "unreadable"]
    return "\n".join(lines)
