"""Pascal VOC XML folders (`voc:DIR`) in the layouts they ship: Annotations/ + JPEGImages/
(also one folder down, as VOCdevkit/VOC2007 or BCCD/), annotations/ + images/, or each XML
beside its image; ImageSets/Main/{train,val,test}.txt as the splits. VOC pixels count from 1
(boxes.py moves them)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ...data.decode import IMAGE_EXTENSIONS
from ...errors import DataError, UsageError
from ..boxes import Found, Read

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
