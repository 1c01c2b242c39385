"""Labels in a table: `--data csv:labels.csv`, one row per image (chest X-ray, dermatology and
pathology sets ship this way). The path and label columns are found by their usual names or
named by `--path-column` / `--label-column`; paths are relative to the CSV's folder; an
optional split column assigns train/val/test. Rows whose file is missing are skipped and
counted (`--strict`: refused, naming the row).

Several labels per image make a multi-label table: one label column holding names separated
by `|` or `;` ("effusion|nodule", empty for none), or several 0/1 columns, one per label
(found when no label column is named, or given as `--label-column a,b,c`).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import torch

from ..errors import DataError

PATH_COLUMNS = ("path", "file", "filename", "file_name", "image", "image_path", "img", "filepath")
LABEL_COLUMNS = ("label", "labels", "class", "target", "category", "diagnosis")
SPLIT_COLUMNS = ("split", "set", "subset")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
SEPARATORS = re.compile(r"\s*[|;]\s*")
BINARY = {"0", "1", "0.0", "1.0", ""}


def _column(header: list[str], names: tuple[str, ...], what: str, path: Path) -> str | None:
    by_lower = {h.strip().lower(): h for h in header}
    found = next((by_lower[n] for n in names if n in by_lower), None)
    if found is None and what == "path":
        raise DataError(
            f"{path} has no {what} column (columns: {', '.join(header)}); name one "
            f"{' or '.join(repr(n) for n in names[:3])} or pass --path-column"
        )
    return found


def _named(header: list[str], given: str, path: Path) -> str:
    if given not in header:
        raise DataError(f"{path} has no column {given!r} (columns: {', '.join(header)})")
    return given


def read_table(
    path: Path, strict: bool, path_column: str | None = None, label_column: str | None = None
) -> tuple[dict[str, list], list[str], list[str]]:
    """({split: [(file, label names), ...]}, class names, notes). A row's labels are a tuple
    of names for a multi-label table, else one name; rows without a split column all go to
    "train"."""
    if not path.is_file():
        raise DataError(f"label table {path} does not exist or is not a file; --data csv:FILE.csv")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            table = list(enumerate(reader, start=2))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(
            f"label table {path} is not a UTF-8 CSV text file ({type(e).__name__}); give "
            "--data csv: a table of path and label columns (an image folder: imagefolder:DIR)"
        ) from None
    file_col = _named(header, path_column, path) if path_column else None
    file_col = file_col or _column(header, PATH_COLUMNS, "path", path)
    split_col = _column(header, SPLIT_COLUMNS, "split", path)
    label_cols = _label_columns(header, table, label_column, {file_col, split_col}, path)
    several = len(label_cols) > 1 or any(
        SEPARATORS.search(row.get(label_cols[0]) or "") for _, row in table
    )
    rows, skipped = {}, []
    for line, row in table:
        rel = (row.get(file_col) or "").strip()
        labels = _labels(row, label_cols, several)
        problem = _problem(path, rel, labels, several)
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
        rows.setdefault(split, []).append((path.parent / rel, labels))
    if "train" not in rows:
        raise DataError(f"{path} has no training rows (a split column with 'train' values)")
    classes = _classes(rows, label_cols if len(label_cols) > 1 else None, several)
    where = f"{len(label_cols)} 0/1 columns" if len(label_cols) > 1 else repr(label_cols[0])
    notes = [f"{path.name}: paths from column {file_col!r}, labels from {where}"]
    if several:
        notes.append(f"{path.name}: several labels per image ({len(classes)} labels): multi-label")
    if skipped:
        rows_left = f"{len(skipped)} rows" if len(skipped) > 1 else "1 row"
        notes.append(f"{rows_left} skipped, e.g. {skipped[0]}")
    return rows, classes, notes


def _label_columns(header, table, given: str | None, taken: set, path: Path) -> list[str]:
    """The label column, or the 0/1 columns of a multi-label table."""
    if given:
        return [_named(header, name.strip(), path) for name in given.split(",")]
    found = _column(header, LABEL_COLUMNS, "label", path)
    if found:
        return [found]
    binary = [
        h
        for h in header
        if h not in taken and all((row.get(h) or "").strip() in BINARY for _, row in table)
    ]
    if len(binary) < 2:
        raise DataError(
            f"{path} has no label column (columns: {', '.join(header)}); name one 'label' or "
            "'class', pass --label-column, or give one 0/1 column per label"
        )
    return binary


def _labels(row: dict, columns: list[str], several: bool) -> str | tuple[str, ...]:
    if len(columns) > 1:
        return tuple(c for c in columns if (row.get(c) or "").strip() in ("1", "1.0"))
    text = (row.get(columns[0]) or "").strip()
    if not several:
        return text
    return tuple(sorted({name for name in SEPARATORS.split(text) if name}))


def _problem(path: Path, rel: str, labels, several: bool) -> str | None:
    if not rel:
        return "the path is empty"
    if not several and not labels:
        return f"{rel} has no label"
    if not (path.parent / rel).is_file():
        return f"file {rel} does not exist (paths are relative to {path.parent})"
    return None


def _classes(rows: dict[str, list], columns: list[str] | None, several: bool) -> list[str]:
    if columns:
        return columns  # 0/1 columns keep the table's order
    names = {n for items in rows.values() for _, labels in items for n in _as_tuple(labels)}
    return sorted(names, key=lambda n: (0, int(n), "") if n.isdigit() else (1, 0, n))


def _as_tuple(labels) -> tuple[str, ...]:
    return labels if isinstance(labels, tuple) else (labels,)


def as_labels(items: list, classes: list[str]) -> tuple[list[Path], torch.Tensor]:
    """Files and their labels: class indices, or multi-hot float rows for a multi-label table."""
    index = {c: i for i, c in enumerate(classes)}
    files = [f for f, _ in items]
    if items and isinstance(items[0][1], tuple):
        hot = torch.zeros(len(items), len(classes))
        for row, (_, names) in enumerate(items):
            hot[row, [index[n] for n in names]] = 1
        return files, hot
    return files, torch.tensor([index[n] for _, n in items], dtype=torch.long)
