"""What data a run was made from, and whether it is still the same.

A run records its splits in `splits.json.gz`: the fingerprint of all three splits and, for
data read from files (image folders and tables, segmentation folders, volumes, clips), each
split's files (path relative to the data's folder, and size). `--resume` and `evaluate`
rebuild the splits from the options and compare: if the data changed, re-splitting could move
test images into training, so they refuse and say what changed, unless the user accepts the
change. Then the run's own split is kept by file name: a file stays in the split it was in,
removed files drop out, and new files are left out.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import DataError
from ..options import SPLITS
from .datasets import ImageTensors
from .imagefolder import ImageFolderDataset

if TYPE_CHECKING:
    from .splits import ReadSplits

RECORD = "splits.json.gz"


def fingerprint(splits: ReadSplits) -> str:
    """One hash over the three splits' contents (images and labels, or files and sizes)."""
    h = hashlib.sha256()
    for name in SPLITS:
        data = getattr(splits, name)
        h.update(name.encode())
        if isinstance(data, ImageFolderDataset):
            for rel, size in _files(data, splits.root).items():
                h.update(f"{rel}:{size}\n".encode())
        elif data is not None:
            h.update(data.images.contiguous().numpy().tobytes())
            h.update(data.labels.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def record(splits: ReadSplits) -> dict[str, Any]:
    """What `splits.json.gz` holds for these splits."""
    out: dict[str, Any] = {"data": splits.name, "fingerprint": splits.fingerprint}
    out["classes"] = list(splits.classes)
    out["counts"] = {n: len(getattr(splits, n)) if getattr(splits, n) else 0 for n in SPLITS}
    if named(splits):
        out["files"] = {n: _files(d, splits.root) for n in SPLITS if (d := getattr(splits, n))}
    elif splits.in_memory:
        out["items"] = {n: item_digests(d.images) for n in SPLITS if (d := getattr(splits, n))}
    return out


def item_digests(images: torch.Tensor) -> list[str]:
    """A short digest of each uint8 item, by which `evaluate` tells the run's own training
    items among data given again as Python objects (48 bits: a chance collision among a
    million items is about 2 in a million)."""
    return [
        hashlib.blake2b(x.contiguous().numpy().tobytes(), digest_size=6).hexdigest() for x in images
    ]


def named(splits: ReadSplits) -> bool:
    """Whether every split's items came from files, so that they can be kept by name."""
    present = [getattr(splits, n) for n in SPLITS if getattr(splits, n) is not None]
    return splits.root is not None and all(d.files is not None for d in present)


def write_record(folder: Path, splits: ReadSplits) -> None:
    from ..files import atomic_path

    with atomic_path(folder / RECORD) as tmp:
        tmp.write_bytes(gzip.compress(json.dumps(record(splits)).encode(), mtime=0))


def read_record(folder: Path) -> dict[str, Any] | None:
    """The run's record, or None for a run made before runs kept one."""
    path = folder / RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path} is unreadable ({e}); the run's data cannot be checked") from None


def same_data(splits: ReadSplits, saved: dict[str, Any] | None, accept_change: bool) -> ReadSplits:
    """`splits` if they are the data the run was made from; otherwise refuse, or with
    `accept_change` keep the run's own split by file name (folders) and note it."""
    if saved is None:
        splits.notes.append("the run predates data records: its data could not be checked")
        return splits
    if saved["fingerprint"] == splits.fingerprint:
        return splits
    what = _changes(splits, saved)
    if list(saved.get("classes", splits.classes)) != list(splits.classes):
        raise DataError(
            f"the classes of {splits.name} changed since the run was made ({what}); "
            "the weights cannot score them: start a new run"
        )
    if not accept_change:
        raise DataError(
            f"{splits.name} changed since the run was made ({what}); re-splitting it could move "
            "test images into training. Pass --allow-changed-data to keep the run's split by "
            "file name, or start a new run"
        )
    if not named(splits) or "files" not in saved:
        splits.notes.append(f"data changed ({what}); accepted, split by position as before")
        return splits
    pool: dict[str, tuple[ImageFolderDataset | ImageTensors, int]] = {}
    for name in SPLITS:
        data = getattr(splits, name)
        for i, f in enumerate(data.files if data is not None else []):
            pool[_name(f, splits.root)] = (data, i)
    for name in SPLITS:
        rels = [r for r in saved["files"].get(name, {}) if r in pool]
        setattr(splits, name, _gather([pool[r] for r in rels]) if rels else None)
    counts = ", ".join(f"{n} {len(getattr(splits, n) or [])}" for n in SPLITS)
    splits.notes = [n for n in splits.notes if not n.startswith(("test split", "validation"))]
    splits.notes.append(
        f"data changed ({what}); accepted: kept the run's split by file name ({counts}; "
        "new files left out)"
    )
    return splits


def _gather(items: list[tuple[ImageFolderDataset | ImageTensors, int]]):
    """One split of the (split, index) items, in their order: a folder dataset of their files,
    or their decoded tensors."""
    like = items[0][0]
    files = [data.files[i] for data, i in items]
    labels = torch.stack([data.labels[i] for data, i in items])
    if isinstance(like, ImageFolderDataset):
        return ImageFolderDataset(
            files, labels, like.transform, like.channels, like.seed, like.strict
        )
    images = torch.stack([data.images[i] for data, i in items])
    return ImageTensors(images, labels, like.classes, files)


def _changes(splits: ReadSplits, saved: dict[str, Any]) -> str:
    """A short account of what differs: files added, removed, resized; or counts."""
    if not named(splits) or "files" not in saved:
        now = record(splits)["counts"]
        return f"images differ; split sizes then {saved.get('counts')}, now {now}"
    before = {r: s for files in saved["files"].values() for r, s in files.items()}
    after: dict[str, int] = {}
    for name in SPLITS:
        if getattr(splits, name) is not None:
            after |= _files(getattr(splits, name), splits.root)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    resized = sorted(r for r in set(before) & set(after) if before[r] != after[r])
    parts = []
    for label, items in (("added", added), ("removed", removed), ("changed", resized)):
        if items:
            parts.append(f"{len(items)} {label}, e.g. {items[0]}")
    return "; ".join(parts) or "the same files, split differently"


def _files(data: ImageFolderDataset | ImageTensors, root: Path) -> dict[str, int]:
    """Each file's name and size (a DICOM series or a folder of frames: its files' sizes)."""
    return {_name(f, root): _size(f) for f in data.files}


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def _name(file: Path, root: Path) -> str:
    """How the record names a file: relative to the data's folder, or absolute when it lies
    outside it (a label table may list files anywhere)."""
    return str(file.relative_to(root)) if file.is_relative_to(root) else str(file)
