"""Labels in a table: `--data csv:labels.csv`, one row per image (chest X-ray, dermatology and
pathology sets ship this way). The path and label columns are found by their usual names;
paths are relative to the CSV's folder; an optional split column assigns train/val/test.
Rows whose file is missing are skipped and counted (`--strict`: refused, naming the row).
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from ..errors import DataError

PATH_COLUMNS = ("path", "file", "filename", "file_name", "image", "image_path", "img", "filepath")
LABEL_COLUMNS = ("label", "labels", "class", "target", "category", "diagnosis")
SPLIT_COLUMNS = ("split", "set", "subset")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _column(header: list[str], names: tuple[str, ...], what: str, path: Path) -> str | None:
    by_lower = {h.strip().lower(): h for h in header}
    found = next((by_lower[n] for n in names if n in by_lower), None)
    if found is None and what != "split":
        raise DataError(
            f"{path} has no {what} column (columns: {', '.join(header)}); name one "
            f"{' or '.join(repr(n) for n in names[:3])}"
        )
    return found


def read_table(path: Path, strict: bool) -> tuple[dict[str, list], list[str], list[str]]:
    """({split: [(file, label name), ...]}, class names, notes); rows without a split column
    all go to "train"."""
    if not path.is_file():
        raise DataError(f"label table {path} does not exist or is not a file; --data csv:FILE.csv")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        file_col = _column(header, PATH_COLUMNS, "path", path)
        label_col = _column(header, LABEL_COLUMNS, "label", path)
        split_col = _column(header, SPLIT_COLUMNS, "split", path)
        rows, skipped = {}, []
        for line, row in enumerate(reader, start=2):
            rel, label = (row.get(file_col) or "").strip(), (row.get(label_col) or "").strip()
            problem = _problem(path, rel, label)
            if problem:
                if strict:
                    raise DataError(f"{path} row {line}: {problem}")
                skipped.append(f"row {line}: {problem}")
                continue
            split = SPLIT_NAMES.get((row.get(split_col) or "train").strip().lower())
            if split is None:
                raise DataError(
                    f"{path} row {line}: split {row[split_col]!r} is not train, val or test"
                )
            rows.setdefault(split, []).append((path.parent / rel, label))
    if "train" not in rows:
        raise DataError(f"{path} has no training rows (a split column with 'train' values)")
    names = {label for items in rows.values() for _, label in items}
    classes = sorted(names, key=lambda n: (0, int(n), "") if n.isdigit() else (1, 0, n))
    notes = [f"{path.name}: paths from column {file_col!r}, labels from {label_col!r}"]
    if skipped:
        notes.append(f"{len(skipped)} rows skipped, e.g. {skipped[0]}")
    return rows, classes, notes


def _problem(path: Path, rel: str, label: str) -> str | None:
    if not rel:
        return "the path is empty"
    if not label:
        return f"{rel} has no label"
    if "|" in label or ";" in label:
        return f"{rel} has several labels ({label}); multi-label tables are not supported yet"
    if not (path.parent / rel).is_file():
        return f"file {rel} does not exist (paths are relative to {path.parent})"
    return None


def as_labels(items: list, classes: list[str]) -> tuple[list[Path], torch.Tensor]:
    index = {c: i for i, c in enumerate(classes)}
    return [f for f, _ in items], torch.tensor([index[n] for _, n in items], dtype=torch.long)
