"""Colour tables for RGB masks: which colour is which class, from a JSON or CSV file or a dict.

IGNORE_INDEX (-100, F.cross_entropy's default ignore_index) marks pixels that no loss or metric
counts: VOC's void border, or a class named 'ignore' or 'void' in a table.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import DataError

IGNORE_INDEX = -100
_IGNORE_NAMES = {"ignore", "void"}


def load_colours(path: Path) -> dict[str, str | int]:
    """Read a colour table: JSON {"r,g,b": class, ...}, or CSV rows `r,g,b,class` or
    `class,r,g,b` (a first row without numbers is a header); integer classes are indices."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"colour table {path} does not exist; write a JSON or CSV file")
    try:
        table = json.loads(path.read_text()) if path.suffix.lower() == ".json" else _csv(path)
        if not isinstance(table, dict):
            raise DataError('it must map colours to classes, like {"0,0,0": "background"}')
        parse_table(table)
    except (DataError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"colour table {path}: {e}") from None
    return table


def _csv(path: Path) -> dict[str, str | int]:
    """CSV rows -> {"r,g,b": class}."""
    rows = [[c.strip() for c in r] for r in csv.reader(path.read_text().splitlines()) if any(r)]
    if rows and not any(_is_int(c) for c in rows[0]):
        rows.pop(0)
    table: dict[str, str | int] = {}
    for row in rows:
        if len(row) != 4:
            raise DataError(f"row {','.join(row)} needs r, g, b and a class")
        colour, name = (row[:3], row[3]) if _is_int(row[0]) else (row[1:], row[0])
        table[",".join(colour)] = int(name) if _is_int(name) else name
    return table


def parse_table(colours: dict) -> tuple[tuple[str, ...], dict[int, int]]:
    """Class names and colour code -> class; int classes are indices, names keep table order;
    a class named 'ignore'/'void' (or a negative index) maps to IGNORE_INDEX."""
    if not colours:
        raise DataError("the colour table is empty; map colours 'r,g,b' to classes")
    pairs = [(_parse_colour(k), v) for k, v in colours.items()]
    if all(isinstance(v, int) and not isinstance(v, bool) for _, v in pairs):
        classes = tuple(str(i) for i in range(max(0, *(v + 1 for _, v in pairs))))
        return classes, {c: (v if v >= 0 else IGNORE_INDEX) for c, v in pairs}
    names = [str(v) for _, v in pairs]
    classes = tuple(dict.fromkeys(n for n in names if n.lower() not in _IGNORE_NAMES))
    ignored = {n for n in names if n.lower() in _IGNORE_NAMES}
    index = {n: (IGNORE_INDEX if n in ignored else classes.index(n)) for n in names}
    return classes, {c: index[n] for (c, _), n in zip(pairs, names, strict=True)}


def _parse_colour(key: object) -> int:
    """'r,g,b' or (r, g, b) -> r<<16|g<<8|b."""
    parts = list(key) if isinstance(key, (tuple, list)) else str(key).strip("()[] ").split(",")
    if len(parts) != 3 or not all(_is_int(str(p).strip()) and 0 <= int(p) <= 255 for p in parts):
        raise DataError(f"{key!r} is not a colour; write 'r,g,b' with values 0..255")
    r, g, b = (int(p) for p in parts)
    return r << 16 | g << 8 | b


def _is_int(text: object) -> bool:
    return isinstance(text, int) or str(text).lstrip("-").isdigit()
