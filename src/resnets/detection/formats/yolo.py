"""YOLO txt folders (`yolo:DIR`): normalised `class cx cy w h` lines (a segment's line read as
its box), images/ beside labels/ or a .txt beside each image, class names from data.yaml (a
list or {id: name}, its train/val/test folders as splits) or classes.txt / obj.names."""

from __future__ import annotations

from pathlib import Path

import yaml

from ...data.decode import IMAGE_EXTENSIONS
from ...errors import DataError, UsageError
from ..boxes import Found, Read


def read_yolo(root: Path) -> Read:
    names, splits_at = yolo_names(root)
    pairs = yolo_pairs(root, splits_at)
    found, polygons = [], 0
    for image, label_file, _ in pairs:
        boxes, labels = [], []
        if label_file is not None and label_file.is_file():
            for n, line in enumerate(label_file.read_text().splitlines(), 1):
                parts = line.split()
                if not parts:
                    continue
                try:
                    cls, values = int(parts[0]), [float(v) for v in parts[1:]]
                except ValueError:
                    raise DataError(f"{label_file}:{n}: expected 'class cx cy w h'") from None
                if len(values) < 4 or (len(values) > 4 and len(values) % 2):
                    raise DataError(f"{label_file}:{n}: expected 'class cx cy w h'")
                if len(values) > 4:  # a segment: its bounding box
                    polygons += 1
                    xs, ys = values[0::2], values[1::2]
                    values = [(min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2]
                    values += [max(xs) - min(xs), max(ys) - min(ys)]
                boxes.append(tuple(values))
                labels.append(names[cls] if names and 0 <= cls < len(names) else str(cls))
        source = str(label_file or image)
        found.append(Found(image, boxes, labels, source, None, normalised=True))
    if not any(label is not None and label.is_file() for _, label, _ in pairs):
        example = pairs[0][1]
        raise UsageError(
            f"{root} holds {len(pairs)} images but no YOLO label files (looked for {example}); "
            "is it another format (voc:DIR, coco:FILE, csv:FILE)?"
        )
    notes = [f"YOLO classes: {', '.join(names)}" if names else "YOLO classes named by their ids"]
    if polygons:
        notes.append(f"{polygons} segment line(s) read as their bounding boxes")
    splits = {}
    for image, _, split in pairs:
        if split:
            splits.setdefault(split, set()).add(image)
    return Read(found, names, list(range(len(names))) if names else None, notes, splits or None)


def yolo_names(root: Path) -> tuple[list[str] | None, dict[str, Path]]:
    """The class names (data.yaml's names as a list or {id: name}, or classes.txt /
    obj.names) and the split folders data.yaml names."""
    yamls = sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml"))
    for file in yamls:
        data = yaml.safe_load(file.read_text()) or {}
        if not isinstance(data, dict) or "names" not in data:
            continue
        names = data["names"]
        if isinstance(names, dict):
            names = [str(names[k]) for k in sorted(names, key=int)]
        base = root / str(data.get("path") or ".")  # an absolute path replaces root
        splits = {
            s: base / data[s] for s in ("train", "val", "test") if isinstance(data.get(s), str)
        }
        return [str(n) for n in names], splits
    for listed in ("classes.txt", "obj.names", "classes.names"):
        if (root / listed).is_file():
            return [n.strip() for n in (root / listed).read_text().splitlines() if n.strip()], {}
    return None, {}


def yolo_pairs(
    root: Path, splits_at: dict[str, Path]
) -> list[tuple[Path, Path | None, str | None]]:
    """(image, its label file, its split) for each image: images/... beside labels/... (the
    label path is the image path with images -> labels and .txt), or .txt beside each image."""
    folders = dict(splits_at)
    if not folders and (root / "images").is_dir():
        subs = [
            p
            for p in (root / "images").iterdir()
            if p.is_dir() and p.name in ("train", "val", "test")
        ]
        folders = {p.name: p for p in subs} or {None: root / "images"}
    if not folders:
        folders = {None: root}
    pairs = []
    for split, folder in folders.items():
        if not folder.is_dir():
            raise UsageError(f"{folder} (the {split} images named in data.yaml) does not exist")
        for image in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
            parts = list(image.parts)
            label = image.with_suffix(".txt")
            if "images" in parts:
                i = len(parts) - 1 - parts[::-1].index("images")
                label = Path(*parts[:i], "labels", *parts[i + 1 :]).with_suffix(".txt")
            pairs.append((image, label, split))
    if not pairs:
        raise UsageError(
            f"{root} holds no images (YOLO: images/ beside labels/, or .txt beside each)"
        )
    return pairs
