"""CSV tables of boxes (`csv:FILE`): one row per box, columns found by their usual names in
any order (the path and label names as data/csvlabels.py knows them for labels), a row with
empty box fields for an image with none; a table without a header is read as path, x1, y1,
x2, y2, label (keras-retinanet's)."""

from __future__ import annotations

import csv
from pathlib import Path

from ...data.csvlabels import LABEL_COLUMNS, PATH_COLUMNS
from ...errors import DataError, UsageError
from ..boxes import Found, Read

CSV_COLUMNS = {
    "path": (*PATH_COLUMNS, "image_id"),
    "x1": ("x1", "xmin", "x_min", "left", "x0"),
    "y1": ("y1", "ymin", "y_min", "top", "y0"),
    "x2": ("x2", "xmax", "x_max", "right"),
    "y2": ("y2", "ymax", "y_max", "bottom"),
    "label": (*LABEL_COLUMNS, "class_name", "name"),
}


def read_box_csv(file: Path, given: dict[str, str] | None = None) -> Read:
    """path, x1, y1, x2, y2, label rows (one per box; a row with empty box fields is an image
    with none), columns found by their usual names in any order, or named in `given`
    ({"path": --path-column, "label": --label-column}); a table without a header is read in
    that order (keras-retinanet's)."""
    try:  # utf-8-sig: a table saved by Excel starts with a byte-order mark
        with file.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(
            f"{file} is not a UTF-8 CSV text file ({type(e).__name__}); give --data csv: a "
            "table of path, x1, y1, x2, y2 and label columns"
        ) from None
    if not rows:
        raise DataError(f"{file} is empty")
    columns, body, note = csv_columns(rows, file, given or {})
    images: dict[Path, Found] = {}
    for n, row in body:
        value = {k: row[i].strip() if i < len(row) else "" for k, i in columns.items()}
        path = (file.parent / value["path"]).resolve()
        item = images.setdefault(path, Found(path, [], [], str(file)))
        coords = [value[k] for k in ("x1", "y1", "x2", "y2")]
        if not any(coords) and not value["label"]:
            continue
        try:
            item.boxes.append(tuple(float(c) for c in coords))
        except ValueError:
            raise DataError(f"{file}, row {n}: box coordinates {coords} are not numbers") from None
        item.labels.append(value["label"])
    notes = [note] if note else []
    return Read(list(images.values()), notes=notes)


def csv_columns(
    rows: list[tuple[int, list[str]]], file: Path, given: dict[str, str]
) -> tuple[dict[str, int], list[tuple[int, list[str]]], str | None]:
    """Where each field is: by the header's names, or in keras-retinanet's order when the
    first row is a box (numbers in its second to fifth fields)."""
    first = rows[0][1]
    header = [c.strip().lower() for c in first]
    numeric = len(first) >= 6 and all(_number(c) for c in first[1:5])
    if numeric and given:
        raise UsageError(f"{file} has no header, so it has no columns to name with --path-column")
    if numeric:
        order = dict(zip(("path", "x1", "y1", "x2", "y2", "label"), range(6), strict=True))
        return order, rows, f"{file.name} has no header: read as path, x1, y1, x2, y2, label"
    columns = {}
    for key, name in given.items():  # named by the user: exactly, as csv: labels are
        stripped = [c.strip() for c in first]
        if name not in stripped:
            raise DataError(f"{file} has no column {name!r} (columns: {', '.join(first)})")
        columns[key] = stripped.index(name)
    for key, names in CSV_COLUMNS.items():
        if key in columns:
            continue
        hit = next((header.index(n) for n in names if n in header), None)
        if hit is None:
            raise UsageError(
                f"{file} has no {key} column (looked for {', '.join(names[:5])}); its columns "
                f"are {', '.join(first)}"
            )
        columns[key] = hit
    return columns, rows[1:], None


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
