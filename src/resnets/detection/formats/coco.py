"""COCO JSON (`coco:FILE`): its categories' ids and names kept, crowd annotations left out,
its images found beside the file, in images/, or in ../val2017 for
annotations/instances_val2017.json."""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import DataError, UsageError
from ..boxes import Found, Read


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
