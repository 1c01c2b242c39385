"""Decode once: a folder's images, decoded at the training size, held as uint8 tensors.

On two cores, decoding the same small PNGs every epoch takes a core from training. When the
decoded splits fit a memory budget (a quarter of the available RAM), they are decoded once,
in parallel, and train through the in-memory path; `--cache disk` keeps them in a uint8 array
file keyed by the files (path, size, modification time), the size and the channels, which
later runs and `evaluate` reuse (`cache_key`: the one key of the disk cache, whose 3D
folders volumes/cache.py keeps beside). A cached image is exactly what the stream's worker would
have produced for it, so batches are the same either way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import DataError, UsageError
from ..files import atomic_path, atomic_write_text
from .datasets import ImageTensors
from .imagefolder import ImageFolderDataset, collate, worker_errors
from .sizing import SAMPLE, even_sample

if TYPE_CHECKING:
    from .splits import ReadSplits

log = logging.getLogger("resnets")

CACHE_MODES = ("auto", "memory", "disk", "none")
FORMAT = 3  # bump when what any cache file holds changes (3: one key for 2D and 3D)


def available_memory() -> int:
    """Bytes of RAM available now (MemAvailable on Linux; total RAM elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_budget() -> int:
    return available_memory() // 4


def cache_dir() -> Path:
    """$RESNETS_CACHE, else $XDG_CACHE_HOME/resnets, else ~/.cache/resnets; then decoded/."""
    root = (
        os.environ.get("RESNETS_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "resnets"
    )
    return Path(root).expanduser() / "decoded"


def gigabytes(n: int) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**27 else f"{n / 2**20:.1f} MB"


def choose(mode: str, nbytes: int, why_not: str | None) -> tuple[str, str]:
    """("memory" | "disk" | "stream", the reason) for `nbytes` of decoded images.

    `why_not` says why this data cannot be cached (e.g. random-resized crops), or is None."""
    if mode not in CACHE_MODES:
        raise UsageError(f"--cache must be one of {', '.join(CACHE_MODES)}, not {mode!r}")
    if mode == "none":
        return "stream", "decoded every epoch (--cache none)"
    if why_not:
        if mode != "auto":
            raise UsageError(f"--cache {mode} is not possible here: {why_not}")
        return "stream", f"decoded every epoch: {why_not}"
    budget = memory_budget()
    size = gigabytes(nbytes)
    if mode == "disk":
        return "disk", f"decoded once into a {size} disk cache under {cache_dir()}"
    if mode == "memory" or nbytes <= budget:
        return "memory", f"decoded once into memory ({size}; budget {gigabytes(budget)})"
    return "stream", (
        f"decoded every epoch: the decoded images ({size}) exceed the memory budget "
        f"({gigabytes(budget)}, a quarter of the available RAM); --cache disk keeps them on disk"
    )


def cache_key(kind: str, options: object, files: Iterable[tuple[Path, object]]) -> str:
    """The one key of every disk-cache file, 2D split or 3D folder: its `kind`, the reading
    `options`, and each file's path, size and modification time with what it stands for (its
    label, for a 2D split). Any change to one of them is another file."""
    h = hashlib.sha256(f"{FORMAT}|{kind}|{options!r}".encode())
    for f, meaning in files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}|{meaning}\n".encode())
    return f"{kind}-{h.hexdigest()[:24]}"


def split_key(data: ImageFolderDataset, size: int) -> str:
    """A 2D split's key: its files and labels, the image size, channels and transform."""
    options = (size, data.channels, repr(data.transform))
    return cache_key("split", options, zip(data.files, data.labels.tolist(), strict=True))


@dataclass
class Decoded:
    """A split decoded once: its tensors, the files left out as unreadable, and how long the
    decoding took (0 when read back from the disk cache)."""

    tensors: ImageTensors
    skipped: list[str]
    seconds: float


def decode_into(
    images: torch.Tensor, data: ImageFolderDataset, what: str, workers: int
) -> torch.Tensor:
    """Fill `images` [N, C, S, S] with every image of `data`, decoded by `workers` processes
    (0: this one); returns the mask of the files that decoded."""
    kept = torch.ones(len(data), dtype=torch.bool)
    batches = [list(range(i, min(i + 256, len(data)))) for i in range(0, len(data), 256)]
    loader = DataLoader(data, batch_sampler=batches, num_workers=workers, collate_fn=collate)
    with _progress(len(data), f"decoding {what}") as bar, worker_errors():
        for index, (x, _, bad) in zip(batches, loader, strict=True):
            unreadable = set(bad)
            if len(bad) < len(index):  # a batch of unreadable files only gives no images
                images[[i for i in index if i not in unreadable]] = x
            kept[bad] = False
            bar.update(len(index))
    return kept


def _progress(total: int, desc: str):
    from tqdm import tqdm

    from ..logs import interactive

    return tqdm(total=total, desc=desc, unit="img", disable=not interactive(), leave=False)


def decode_split(
    data: ImageFolderDataset, classes: list[str], size: int, what: str, workers: int, disk: bool
) -> Decoded:
    """The decoded split: from the disk cache when there is one for exactly these files,
    else decoded now, into memory or (with `disk`) into a new cache file."""
    shape = (len(data), data.channels, size, size)
    if disk:
        array = cache_dir() / f"{split_key(data, size)}.npy"
        seconds = 0.0
        if not (array.is_file() and array.with_suffix(".json").is_file()):
            seconds = _write_cache(array, data, shape, what, workers)
        else:
            log.debug("%s: decoded images read from the disk cache %s", what, array)
        images = torch.from_numpy(np.load(array, mmap_mode="c"))  # copy-on-write: file kept
        kept = torch.tensor(json.loads(array.with_suffix(".json").read_text())["kept"])
    else:
        images = torch.empty(shape, dtype=torch.uint8)
        start = time.perf_counter()
        kept = decode_into(images, data, what, workers)
        seconds = _report(what, len(data), start)
    skipped = [str(data.files[i]) for i in (~kept).nonzero().flatten().tolist()]
    if skipped:
        images = images[kept]  # a copy: unreadable files are rare
    files = [f for f, k in zip(data.files, kept.tolist(), strict=True) if k]
    return Decoded(ImageTensors(images, data.labels[kept], classes, files), skipped, seconds)


def _report(what: str, n: int, start: float) -> float:
    seconds = time.perf_counter() - start
    log.debug("decoded %d %s images in %.1f s (%.0f/s)", n, what, seconds, n / max(seconds, 1e-9))
    return seconds


def _write_cache(array: Path, data: ImageFolderDataset, shape, what: str, workers: int) -> float:
    """Decode straight into a new cache file (so a split larger than RAM fits); the array is
    renamed into place last, after its record, so a half-written cache is never read."""
    array.parent.mkdir(parents=True, exist_ok=True)
    free, need = shutil.disk_usage(array.parent).free, math.prod(shape)
    if free < need * 1.1:
        raise DataError(
            f"the disk cache needs {gigabytes(need)} but {array.parent} has {gigabytes(free)} "
            "free; set RESNETS_CACHE to a folder on a larger disk, or pass --cache none"
        )
    with atomic_path(array) as tmp:
        mapped = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        start = time.perf_counter()
        kept = decode_into(torch.from_numpy(mapped), data, what, workers)
        mapped.flush()
        del mapped
        atomic_write_text(array.with_suffix(".json"), json.dumps({"kept": kept.tolist()}))
    return _report(what, shape[0], start)


def decode_once(splits: ReadSplits, mode: str, names: tuple[str, ...], workers: int) -> None:
    """Decode the folder splits in `names` once, into memory or the disk cache, when `mode`
    and the budget allow; say in the notes how the images are read and why."""
    present = [n for n in names if getattr(splits, n) is not None]
    count = sum(len(getattr(splits, n)) for n in present)
    nbytes = count * splits.channels * splits.input_size**2
    how, reason = choose(mode, nbytes, splits.stream_only)
    splits.notes.append(f"images: {reason}")
    if how == "stream":
        return
    seconds, decoded = 0.0, 0  # splits read back from the disk cache took no decoding
    for name in present:
        data = getattr(splits, name)
        done = decode_split(data, splits.classes, splits.input_size, name, workers, how == "disk")
        if name == "train":
            check_classes_decoded(data, done, splits.classes)
        splits.decoded[name] = done.tensors
        splits.unreadable += done.skipped
        seconds, decoded = seconds + done.seconds, decoded + (len(data) if done.seconds else 0)
    if seconds:
        splits.notes.append(
            f"decoding {decoded} images took {seconds:.1f} s ({decoded / seconds:.0f} images/s)"
        )
    if splits.unreadable:
        splits.notes.append(
            f"{len(splits.unreadable)} unreadable images left out, e.g. {splits.unreadable[0]}"
        )


def check_classes_decoded(data: ImageFolderDataset, done: Decoded, classes: list[str]) -> None:
    """Refuse a training split in which a class kept no image: every one of its files failed
    to decode (their headers opened, so the scan let them through)."""
    if data.labels.ndim != 1:
        return
    kept = torch.bincount(done.tensors.labels, minlength=len(classes))
    had = torch.bincount(data.labels, minlength=len(classes))
    skipped = set(done.skipped)
    for c in ((kept == 0) & (had > 0)).nonzero().flatten().tolist():
        example = next(
            str(f)
            for f, y in zip(data.files, data.labels.tolist(), strict=True)
            if y == c and str(f) in skipped
        )
        raise DataError(
            f"class {classes[c]}: none of its {int(had[c])} training images could be decoded "
            f"(e.g. {example}); replace them with readable images or remove the class"
        )


def sample_images(data: ImageFolderDataset, size: int, workers: int, sample: int = SAMPLE):
    """uint8 images of an even sample of `data` (at most `sample`), e.g. for its mean/std."""
    index = even_sample(len(data), sample)
    part = ImageFolderDataset(
        [data.files[i] for i in index],
        data.labels[index],
        data.transform,
        data.channels,
        data.seed,
        strict=False,
    )
    images = torch.empty(len(index), data.channels, size, size, dtype=torch.uint8)
    kept = decode_into(images, part, "a sample", workers)
    return images[kept]
