"""Crash-safe file writing shared by weights, checkpoints, exports and run-folder files,
and the staging of outputs that are checked before they replace anything."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import UsageError


def _default_mode() -> int:
    """What open() would give a new file: 0o666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _default_mode()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`.

    A crash or an exception at any moment leaves the previous `path` untouched, and the
    temporary file is removed on failure.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _MODE)  # mkstemp makes files private; the result should read like any file
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_output(target: Path, source: Path, overwrite: bool, elsewhere: str) -> None:
    """Refuse an output that is a folder, is the source itself, or exists without overwrite."""
    if target.is_dir():
        raise UsageError(f"{target} is a folder; give a file name")
    if not target.exists():
        return
    if source.exists() and os.path.samefile(target, source):
        raise UsageError(f"{target} is the source itself; {elsewhere}")
    if not overwrite:
        raise UsageError(f"{target} already exists; pass --overwrite to replace it, or {elsewhere}")


@contextlib.contextmanager
def staging(target: Path) -> Iterator[Path]:
    """A temporary folder beside `target` where files are written and checked under their final
    names before `publish` moves them into place; it is removed whatever happens."""
    try:
        folder = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise UsageError(f"cannot write to {target.parent}: {e.strerror or e}") from None
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def publish(staged: Path, final: Path) -> None:
    """Move a checked file from `staging` over `final` in one rename, fsynced by atomic_path."""
    with atomic_path(final) as tmp:
        os.replace(staged, tmp)


def publish_with_sidecars(stage: Path, target: Path, report: dict, pre: dict) -> None:
    """An export's preprocessing sidecar (TARGET.json), its parity report (TARGET.parity.json)
    and the export itself, moved from `stage` beside each other, the export last: it is what
    users look for."""
    sidecar = target.with_name(target.name + ".json")
    parity = target.with_name(target.name + ".parity.json")
    atomic_write_json(stage / sidecar.name, pre)
    atomic_write_json(stage / parity.name, report)
    for final in (sidecar, parity, target):
        publish(stage / final.name, final)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporary files a killed save left behind (`.NAME.XXXX.tmp`)."""
    stale = list(folder.glob(".*.tmp"))
    for f in stale:
        f.unlink(missing_ok=True)
    return len(stale)
