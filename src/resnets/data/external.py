"""Files that other packages decode (DICOM through pydicom, NIfTI through nibabel, video
through PyAV): each package imported when such a file is met, with the install line named
when it is missing; a broken file's error turned into one line that names the file; class
folders of such files read one by one, a broken file left out and said (unless strict)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import DataError

EXTRAS = {"pydicom": "dicom", "nibabel": "volumes", "av": "video"}
T = TypeVar("T")


def need(module: str, reading: str):
    """`module`, imported; or one line saying how to install it for `reading`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(
            f"reading {reading} needs {module}: pip install 'resnets[{EXTRAS[module]}]' "
            f"(or pip install {module})"
        ) from None


def guarded(read: Callable[[Path], T], path: Path, what: str) -> T:
    """`read(path)`, any failure of a broken file turned into one line naming it as not a
    readable `what`."""
    try:
        return read(path)
    except DataError:
        raise
    except Exception as e:  # the decoding packages raise many kinds on a broken file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path} is not a readable {what} ({first})") from None


def class_cases(
    root: Path, find: Callable[[Path], list[Path]], what: str, hint: str
) -> tuple[list[str], list[tuple[Path, int]]]:
    """The class folders under `root` (in name order) and every (file, class index) that
    `find` lists in them; an empty class folder is refused, as image folders refuse one."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class folders: put {what} ({hint}) in one folder per class")
    cases = []
    for k, name in enumerate(classes):
        found = find(root / name)
        if not found:
            raise DataError(
                f"class folder {root / name} has no {what} ({hint}); add some or remove the folder"
            )
        cases += [(p, k) for p in found]
    return classes, cases


def read_each(
    cases: list[tuple[Path, int]],
    read: Callable[[Path], T],
    strict: bool,
    what: str,
    classes: list[str] | None = None,
) -> tuple[list[T], list[tuple[Path, int]], list[str]]:
    """(`read(file)` of each case, the cases read, why each left-out file failed): a file
    that cannot be read is left out and said, or with `strict` stops everything. With
    `classes`, a class left with nothing readable is refused."""
    out, kept, skipped = [], [], []
    for path, label in cases:
        try:
            out.append(read(path))
        except DataError as e:
            if strict:
                raise
            skipped.append(str(e))
            continue
        kept.append((path, label))
    if not out:
        raise DataError(f"none of the {len(cases)} {what} could be read, e.g. {skipped[0]}")
    labels = {label for _, label in kept}
    empty = [c for k, c in enumerate(classes or []) if k not in labels]
    if empty:
        raise DataError(f"class {empty[0]} has no readable {what} (e.g. {skipped[0]})")
    return out, kept, skipped


def skipped_notes(skipped: list[str], what: str) -> list[str]:
    if not skipped:
        return []
    return [
        f"{len(skipped)} unreadable {what} left out (--strict stops instead): {skipped[0]}"
        + (f"; and {len(skipped) - 1} more" if len(skipped) > 1 else "")
    ]
