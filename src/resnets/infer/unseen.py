"""What a run has seen: the items it trained or validated on, found by the digests its record
keeps (data/provenance.py), and left out of a score on data that repeats them, since scoring
training items reports a number that looks like a test score and is not."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import torch

from ..data.datasets import ImageTensors
from ..data.provenance import item_digests, read_record
from ..errors import UsageError

log = logging.getLogger("resnets")


def held_out(tensors: ImageTensors, run: Path | None) -> tuple[ImageTensors, str, int]:
    """The items of `tensors` that `run` neither trained nor validated on, by their digests in
    its record, the report's split name ("test" when they are exactly the run's test split,
    else "data") and how many were left out. Scoring training items would report a number
    that looks like a test score and is not; what is left out is said."""
    saved = read_record(run) if run is not None else None
    if not saved or "items" not in saved:
        return tensors, "data", 0
    keep = _unused(tensors, saved)
    n, kept = len(keep), sum(keep)
    if kept == 0:
        raise UsageError(
            f"all {n} items given were used to train or validate {run}; scoring them would not "
            "be a test: give held-out data (or the same data: its held-out part is scored)"
        )
    test = Counter(saved["items"].get("test", []))
    digests = item_digests(tensors.images)
    own_test = Counter(d for d, k in zip(digests, keep, strict=True) if k) == test
    split = "test" if own_test else "data"
    if kept == n:
        return tensors, split, 0
    what = "the run's test split" if own_test else "the rest"
    _note_left_out(n - kept, n, "items given", f"{what} ({kept} items) is scored")
    return tensors.subset(torch.tensor(keep).nonzero().flatten()), split, n - kept


def _unused(tensors: ImageTensors, saved: dict) -> list[bool]:
    """For each item, whether the run recorded in `saved` neither trained nor validated on it
    (a test item's image may also stand in training, as duplicates do: it is kept)."""
    used = {d for n in ("train", "val") for d in saved["items"].get(n, [])}
    left = Counter(saved["items"].get("test", []))
    keep = []
    for d in item_digests(tensors.images):
        keep.append(left[d] > 0 or d not in used)
        left[d] -= 1
    return keep


def _note_left_out(left: int, n: int, what: str, scored: str) -> None:
    log.info(
        "note: evaluate: %d of the %d %s were used to train or validate this run and are left "
        "out; %s",
        left,
        n,
        what,
        scored,
    )


def leave_out_trained(
    splits, names: tuple[str, ...], run: Path, data: str, asked: bool = False
) -> int:
    """Other data than the run's own, held in memory (an .npz, a copy of the run's arrays):
    the items the run trained or validated on, found by their digests, are left out of each
    split in `names`, and said. A split the user `asked` for by name keeps them (a note says
    how many). Returns how many were left out."""
    saved = read_record(run)
    if not saved or "items" not in saved or not splits.in_memory:
        return 0
    keeps = {n: _unused(part, saved) for n in names if (part := getattr(splits, n)) is not None}
    total = sum(len(k) for k in keeps.values())
    left = total - sum(sum(k) for k in keeps.values())
    if asked:
        if left:
            log.info(
                "note: evaluate: %d of the %d images of %s were used to train or validate this "
                "run; kept, as the split was asked for by name (without --split they are left "
                "out)",
                left,
                total,
                data,
            )
        return 0
    if left == total:
        raise UsageError(
            f"all {total} images of {data} were used to train or validate {run}; scoring them "
            "would not be a test: give held-out data"
        )
    for name, keep in keeps.items():
        index = torch.tensor(keep, dtype=torch.bool).nonzero().flatten()
        setattr(splits, name, getattr(splits, name).subset(index) if len(index) else None)
    if left:
        _note_left_out(left, total, f"images of {data}", f"{total - left} are scored")
    return left
