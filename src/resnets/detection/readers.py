"""`read_boxes(spec)`: box files in the forms they ship (formats/: COCO JSON, Pascal VOC XML
folders, YOLO txt folders and CSV tables) or the bundled `shapes-boxes`, each read into
`Found` items and assembled into one BoxSet (boxes.py), so that all that follows is one path."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..options import split_spec
from .boxes import BoxSet, assemble
from .formats import READERS
from .formats.table import read_box_csv

BOX_FORMATS = ("coco", "voc", "yolo", "csv", "shapes-boxes")


def read_boxes(
    spec: str,
    strict: bool = False,
    synthetic_samples: int = 2048,
    columns: dict[str, str] | None = None,
) -> BoxSet:
    """The BoxSet of a --data spec for detection; shapes-boxes makes a quarter of
    --synthetic-samples images (at least 16), as shapes3d does. `columns`: a csv: table's
    path and label columns by name ({"path": ..., "label": ...}, from --path-column and
    --label-column)."""
    name, path = split_spec(spec)
    if columns and name != "csv":
        raise UsageError("--path-column and --label-column name the columns of a csv: table")
    if name == "shapes-boxes":
        from .shapes import shapes_boxes

        read = shapes_boxes(max(synthetic_samples // 4, 16))
    elif name not in BOX_FORMATS:
        raise UsageError(
            f"--task detection reads boxes: --data shapes-boxes | coco:FILE | voc:DIR | "
            f"yolo:DIR | csv:FILE, not {spec}"
        )
    elif path is None:
        raise UsageError(f"--data {name} needs a path: {name}:PATH")
    else:
        where = Path(path).expanduser()
        if not where.exists():
            raise UsageError(f"{where} does not exist")
        read = read_box_csv(where, columns) if name == "csv" else READERS[name](where)
    boxes = assemble(read.found, read.classes, read.ids, strict, read.notes)
    if read.splits:
        position = {im.path.resolve(): i for i, im in enumerate(boxes.images)}
        boxes.splits = {
            split: sorted(position[p.resolve()] for p in paths if p.resolve() in position)
            for split, paths in read.splits.items()
        }
    return boxes
