"""The decoded tensors of a folder of volumes or clips, kept on disk between runs.

Reading NIfTI, DICOM series or video and resampling them is the slow part of a 3D run; its
result (uint8 volumes, labels, classes and the notes on what was read) depends only on the
files and on the reading options. So it is stored once under the cache folder (data/cache.py's
`cache_dir`), keyed by every file's path, size and modification time and by the options, and
read back by later runs with the same files and options. `--cache none` or `memory` skips it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from ...files import atomic_path
from ..cache import cache_dir, cache_key
from ..datasets import ImageTensors

VERSION = 2  # bump when what a loader produces changes (2: the files each item came from)
log = logging.getLogger(__name__)
Read = tuple[ImageTensors, list[str]]  # a folder's tensors and the notes on how it was read


def folder_key(root: Path, options: tuple) -> str:
    """A folder's key (data/cache.py's `cache_key`): each file under `root` and the reading
    `options`."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return cache_key("folder", (str(root.resolve()), VERSION, options), ((f, "") for f in files))


def cached(root: Path, options: tuple, mode: str, load: Callable[[], Read]) -> Read:
    """`load()`'s result, from the disk cache when it holds this folder read with these
    `options`; else loaded and (unless `mode` is "none" or "memory") stored for next time."""
    if mode in ("none", "memory") or not root.is_dir():
        return load()
    path = cache_dir() / f"{folder_key(root, options)}.pt"
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
    """Written whole, then renamed into place (files.atomic_path): a half-written cache is
    never read. A cache that cannot be written (a full or read-only disk) only costs the next
    run the reading."""
    state = {
        "images": data.images,
        "labels": data.labels,
        "classes": data.classes,
        "files": [str(f.relative_to(root)) for f in data.files or []],
        "notes": notes,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return True
    except OSError as e:
        log.warning("could not write the disk cache %s (%s); the files will be read again", path, e)
        return False
