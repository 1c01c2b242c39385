"""Box files in the forms they ship, each read into `Found` items (boxes.py), so that all
that follows is one path: COCO JSON (`coco:FILE`), Pascal VOC XML folders (`voc:DIR`), YOLO
txt folders (`yolo:DIR`) and CSV tables (`csv:FILE`), plus the bundled `shapes-boxes`.
`read_boxes(spec)` is the entry point."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from ..data.decode import IMAGE_EXTENSIONS
from ..errors import DataError, UsageError
from ..options import split_spec
from .boxes import BoxSet, Found, Read, assemble

BOX_FORMATS = ("coco", "voc", "yolo", "csv", "shapes-boxes")


def read_boxes(spec: str, strict: bool = False, synthetic_samples: int = 2048) -> BoxSet:
    """The BoxSet of a --data spec for detection; shapes-boxes makes a quarter of
    --synthetic-samples images (at least 16), as shapes3d does."""
    name, path = split_spec(spec)
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
        read = READERS[name](where)
    boxes = assemble(read.found, read.classes, read.ids, strict, read.notes)
    if read.splits:
        position = {im.path.resolve(): i for i, im in enumerate(boxes.images)}
        boxes.splits = {
            split: sorted(position[p.resolve()] for p in paths if p.resolve() in position)
            for split, paths in read.splits.items()
        }
    return boxes


def find_image(folder: Path, name: str | None, stem: str) -> Path | None:
    """The image `name` in `folder`, or the one with `stem` and any image extension."""
    if name:
        path = folder / name
        if path.is_file():
            return path
    for ext in sorted(IMAGE_EXTENSIONS):
        for candidate in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


# --- Pascal VOC ------------------------------------------------------------------------------

VOC_LAYOUTS = (("Annotations", "JPEGImages"), ("annotations", "images"))


def voc_folders(root: Path) -> tuple[Path, Path, Path]:
    """(annotations, images, the layout's root) of a VOC folder as it ships: Annotations/ and
    JPEGImages/ (also one folder down, as VOCdevkit/VOC2007 or BCCD/), annotations/ and
    images/, or each XML beside its image."""
    for base in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        for notes, images in VOC_LAYOUTS:
            if (base / notes).is_dir() and (base / images).is_dir():
                return base / notes, base / images, base
    if any(root.glob("*.xml")):
        return root, root, root
    raise UsageError(
        f"{root} holds no VOC annotations: expected Annotations/ + JPEGImages/, annotations/ + "
        "images/, or .xml files beside their images"
    )


def read_voc(root: Path) -> Read:
    notes_dir, images_dir, base = voc_folders(root)
    found, missing, difficult = [], [], 0
    for xml in sorted(notes_dir.glob("*.xml")):
        try:
            tree = ET.parse(xml).getroot()
        except ET.ParseError as e:
            raise DataError(f"{xml} is not valid XML ({e})") from None
        image = find_image(images_dir, tree.findtext("filename"), xml.stem)
        if image is None:
            missing.append(xml.name)
            continue
        boxes, labels = [], []
        for obj in tree.iter("object"):
            box = obj.find("bndbox")
            if box is None:
                continue
            try:
                x1, y1, x2, y2 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (TypeError, ValueError):
                raise DataError(f"{xml}: a box without numeric xmin, ymin, xmax, ymax") from None
            boxes.append((x1, y1, x2, y2))
            labels.append((obj.findtext("name") or "").strip())
            difficult += obj.findtext("difficult", "0").strip() == "1"
        size = tree.find("size")
        declared = None
        if size is not None and (size.findtext("width") or "").strip().isdigit():
            declared = (int(size.findtext("width")), int(size.findtext("height")))
        found.append(Found(image, boxes, labels, str(xml), declared, one_based=True))
    notes = [f"VOC coordinates count from 1: x1 and y1 moved by -1 ({notes_dir})"]
    if difficult:
        notes.append(f"{difficult} box(es) marked difficult are trained and scored as any other")
    if missing:
        notes.append(f"{len(missing)} XML file(s) without their image were skipped ({missing[0]})")
    return Read(found, notes=notes, splits=voc_splits(base, images_dir, found))


def voc_splits(base: Path, images: Path, found: list[Found]) -> dict[str, set[Path]] | None:
    """ImageSets/Main/{train,val,test}.txt: the splits a VOC set ships with."""
    folder = base / "ImageSets" / "Main"
    by_stem = {f.image.stem: f.image for f in found}
    splits = {}
    for split in ("train", "val", "test"):
        listed = folder / f"{split}.txt"
        if listed.is_file():
            stems = [line.split()[0] for line in listed.read_text().splitlines() if line.strip()]
            splits[split] = {by_stem[s] for s in stems if s in by_stem}
    return splits if "train" in splits else None


# --- COCO ------------------------------------------------------------------------------------


def read_coco(file: Path) -> Read:
    if file.is_dir():
        raise UsageError(f"coco: takes the annotation JSON file, not the folder {file}")
    try:
        data = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{file} is not a COCO JSON file ({e})") from None
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= set(data):
        raise DataError(f"{file} is not a COCO file: it needs images, annotations and categories")
    cats = sorted(data["categories"], key=lambda c: c["id"])
    name_of = {c["id"]: str(c["name"]) for c in cats}
    folder = coco_images(file, data["images"])
    per_image: dict[int, list[dict]] = {im["id"]: [] for im in data["images"]}
    crowd = 0
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0):
            crowd += 1
            continue
        if ann["image_id"] not in per_image:
            raise DataError(f"{file}: annotation {ann.get('id')} names no image in the file")
        per_image[ann["image_id"]].append(ann)
    found = []
    for im in data["images"]:
        anns = per_image[im["id"]]
        boxes = [
            (a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3])
            for a in anns
        ]
        labels = [name_of[a["category_id"]] for a in anns]
        declared = (im["width"], im["height"]) if "width" in im else None
        found.append(Found(folder / im["file_name"], boxes, labels, str(file), declared))
    notes = [f"COCO images read from {folder}"]
    if crowd:
        notes.append(f"{crowd} crowd annotation(s) left out, as torchvision's reference does")
    return Read(found, [name_of[c["id"]] for c in cats], [c["id"] for c in cats], notes)


def coco_images(file: Path, images: list[dict]) -> Path:
    """The folder the file's image names are relative to: beside it, images/ beside it, or
    (annotations/instances_val2017.json) ../val2017 and ../images."""
    if not images:
        raise DataError(f"{file} lists no images")
    first = images[0]["file_name"]
    stem = file.stem.split("_")[-1]  # instances_val2017 -> val2017
    tried = [file.parent, file.parent / "images", file.parent.parent / stem]
    tried += [file.parent.parent / "images", file.parent.parent / "images" / stem]
    for folder in tried:
        if (folder / first).is_file():
            return folder
    raise UsageError(
        f"cannot find {first}, the first image of {file}; looked in "
        + ", ".join(str(t) for t in tried)
    )


# --- YOLO ------------------------------------------------------------------------------------


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


# --- CSV -------------------------------------------------------------------------------------

CSV_COLUMNS = {
    "path": ("path", "image", "file", "filename", "file_name", "image_path", "img", "image_id"),
    "x1": ("x1", "xmin", "x_min", "left", "x0"),
    "y1": ("y1", "ymin", "y_min", "top", "y0"),
    "x2": ("x2", "xmax", "x_max", "right"),
    "y2": ("y2", "ymax", "y_max", "bottom"),
    "label": ("label", "class", "class_name", "category", "name", "labels"),
}


def read_box_csv(file: Path) -> Read:
    """path, x1, y1, x2, y2, label rows (one per box; a row with empty box fields is an image
    with none), columns found by their usual names in any order; a table without a header is
    read in that order (keras-retinanet's)."""
    with file.open(newline="") as f:
        rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{file} is empty")
    columns, body, note = csv_columns(rows, file)
    images: dict[Path, Found] = {}
    for n, row in enumerate(body, 2 if note is None else 1):
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
    rows: list[list[str]], file: Path
) -> tuple[dict[str, int], list[list[str]], str | None]:
    header = [c.strip().lower() for c in rows[0]]
    numeric = len(rows[0]) >= 6 and all(_number(c) for c in rows[0][1:5])
    if numeric:
        order = dict(zip(("path", "x1", "y1", "x2", "y2", "label"), range(6), strict=True))
        return order, rows, f"{file.name} has no header: read as path, x1, y1, x2, y2, label"
    columns = {}
    for key, names in CSV_COLUMNS.items():
        hit = next((header.index(n) for n in names if n in header), None)
        if hit is None:
            raise UsageError(
                f"{file} has no {key} column (looked for {', '.join(names[:5])}); its columns "
                f"are {', '.join(rows[0])}"
            )
        columns[key] = hit
    return columns, rows[1:], None


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


READERS = {"voc": read_voc, "coco": read_coco, "yolo": read_yolo, "csv": read_box_csv}
