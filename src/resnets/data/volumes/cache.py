"""The decoded tensors of a folder of volumes or clips, kept on disk between runs.

Reading NIfTI, DICOM series or video and resampling them is the slow part of a 3D run; its
result (uint8 volumes, labels, classes and the notes on what was read) depends only on the
files and on the reading options. So it is stored once under the cache folder (data/cache.py's
`cache_dir`), keyed by every file's path, size and modification time and by the options, and
read back by later runs with the same files and options. `--cache none` or `memory` skips it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

from ..cache import cache_dir
from ..datasets import ImageTensors

FORMAT = 2  # bump when what a loader produces changes (2: the files each item came from)
log = logging.getLogger(__name__)
Read = tuple[ImageTensors, list[str]]  # a folder's tensors and the notes on how it was read


def folder_key(root: Path, options: tuple) -> str:
    """What the decoded folder depends on: each file under `root` (path, size, mtime) and
    the reading `options`."""
    h = hashlib.sha256(f"{FORMAT}|{root.resolve()}|{options!r}".encode())
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def cached(root: Path, options: tuple, mode: str, load: Callable[[], Read]) -> Read:
    """`load()`'s result, from the disk cache when it holds this folder read with these
    `options`; else loaded and (unless `mode` is "none" or "memory") stored for next time."""
    if mode in ("none", "memory") or not root.is_dir():
        return load()
    path = cache_dir() / f"folder-{folder_key(root, options)}.pt"
    if path.is_file():
        try:
            saved = torch.load(path, weights_only=True)
            files = [root / f for f in saved["files"]] if saved.get("files") else None
            data = ImageTensors(saved["images"], saved["labels"], list(saved["classes"]), files)
            return data, [*saved["notes"], f"decoded tensors read from the disk cache {path}"]
        except Exception as e:  # a damaged cache file is rebuilt, never trusted
            log.warning("the disk cache %s is unreadable (%s); reading the files again", path, e)
    data, notes = load()
    if _store(path, root, data, notes):
        notes = [
            *notes,
            f"decoded once and kept in the disk cache {path} for the next run on "
            "these files (--cache none: not kept)",
        ]
    return data, notes


def _store(path: Path, root: Path, data: ImageTensors, notes: list[str]) -> bool:
    """Written to a temporary name, then renamed: a half-written cache is never read. A cache
    that cannot be written (a full or read-only disk) only costs the next run the reading."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.pt")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "images": data.images,
            "labels": data.labels,
            "classes": data.classes,
            "files": [str(f.relative_to(root)) for f in data.files or []],
            "notes": notes,
        }
        torch.save(state, tmp)
        tmp.replace(path)
        return True
    except OSError as e:
        log.warning("could not write the disk cache %s (%s); the files will be read again", path, e)
        return False
    finally:
        tmp.unlink(missing_ok=True)
