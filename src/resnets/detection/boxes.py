"""Boxes as every reader ends them: a `BoxSet` of `BoxImage`s, each with its boxes as
x1, y1, x2, y2 in pixels of the upright image (after its EXIF orientation) and a class index
into the set's class names. `assemble` turns what a reader found (`Found`) into one, and
handles what real box files get wrong, each case counted in a note that names the files,
never silently; with strict, the first problem stops.

The user's classes keep their names and ids: the detector's background class is added by the
model (label index + 1) and taken off again in everything it reports.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, UsageError

OUTSIDE_SHARE = 0.5  # a file with more than this share of its boxes outside is refused
OUTSIDE_SLACK = 0.05  # a box may end this share of the image beyond its edge: clipped


@dataclass
class Found:
    """What a reader found for one image: its boxes as the file states them (x1, y1, x2, y2,
    pixels) and their class names, `source` the annotation file (for messages)."""

    image: Path
    boxes: list[tuple[float, float, float, float]]
    labels: list[str]
    source: str
    declared_size: tuple[int, int] | None = None  # (width, height) the file states
    pixels: np.ndarray | None = None  # an image made in memory (the bundled set)
    one_based: bool = False  # VOC: pixels count from 1 and x2, y2 are inclusive
    normalised: bool = False  # YOLO: centre x, centre y, width, height as shares of the image


@dataclass
class Read:
    """A reader's result: the items, the classes and ids the files declare (None: taken from
    the boxes), what it decided (notes), and the splits the files ship with (image paths)."""

    found: list[Found]
    classes: list[str] | None = None
    ids: list[int] | None = None
    notes: list[str] = field(default_factory=list)
    splits: dict[str, set[Path]] | None = None


@dataclass
class BoxImage:
    path: Path
    boxes: torch.Tensor  # [N, 4] float32, x1 y1 x2 y2 in pixels of the upright image
    labels: torch.Tensor  # [N] int64, indices into BoxSet.classes
    size: tuple[int, int]  # (width, height), upright
    pixels: np.ndarray | None = None  # [H, W, C] uint8 for images made in memory


@dataclass
class BoxSet:
    images: list[BoxImage]
    classes: list[str]
    category_ids: list[int]  # each class's id in COCO results (the user's own where given)
    grey: bool  # every image is single-channel
    notes: list[str] = field(default_factory=list)
    splits: dict[str, list[int]] | None = None  # the splits the data ships with

    @property
    def box_count(self) -> int:
        return sum(len(im.labels) for im in self.images)


def category_ids(classes: list[str], declared: list[int] | None = None) -> list[int]:
    """The ids results are written with: the file's own (COCO), class names that are
    numbers as those numbers, else 1..K as COCO numbers categories."""
    if declared is not None:
        return declared
    if all(c.lstrip("-").isdigit() for c in classes):
        return [int(c) for c in classes]
    return list(range(1, len(classes) + 1))


def class_order(labels: set[str]) -> list[str]:
    """Class names found in the boxes, sorted (numerically when all are numbers)."""
    if labels and all(c.lstrip("-").isdigit() for c in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def named(files: list[str], limit: int = 3) -> str:
    shown = ", ".join(Path(f).name for f in files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


class Problems:
    """Box problems by kind: the files they were found in and how many boxes."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.count: dict[str, int] = defaultdict(int)
        self.files: dict[str, list[str]] = defaultdict(list)

    def add(self, kind: str, source: str, n: int = 1) -> None:
        if self.strict:
            raise DataError(f"{source}: {MESSAGES[kind].format(n=n)} (--strict stops at the first)")
        self.count[kind] += n
        if source not in self.files[kind]:
            self.files[kind].append(source)

    def notes(self) -> list[str]:
        return [
            f"{MESSAGES[k].format(n=n)} (in {named(self.files[k])})" for k, n in self.count.items()
        ]


MESSAGES = {
    "unreadable": "skipped {n} image(s) that could not be opened, with their boxes",
    "not-finite": "dropped {n} box(es) with a coordinate that is not a number",
    "zero-area": "dropped {n} zero-area box(es) (x2 = x1 or y2 = y1)",
    "inverted": "dropped {n} inverted box(es) (x2 < x1 or y2 < y1)",
    "outside": "dropped {n} box(es) lying wholly outside their image",
    "clipped": "clipped {n} box(es) reaching past their image's edge to the image",
    "duplicate": "dropped {n} duplicate box(es) (same class, same coordinates)",
}


def image_size(path: Path) -> tuple[tuple[int, int], bool, int]:
    """(width, height) upright, whether EXIF turns it, and its channels; reads the header."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1)
        channels = 1 if im.mode in ("1", "L", "I", "I;16", "F", "LA") else 3
    turned = orientation in (5, 6, 7, 8)
    return ((h, w) if turned else (w, h)), orientation not in (1, None), channels


def assemble(
    found: list[Found],
    classes: list[str] | None = None,
    declared_ids: list[int] | None = None,
    strict: bool = False,
    notes: list[str] | None = None,
) -> BoxSet:
    """The BoxSet of what a reader found: sizes read, classes indexed, bad boxes handled."""
    if not found:
        raise UsageError("found no images with box annotations; check the --data path")
    names = classes if classes is not None else class_order({c for f in found for c in f.labels})
    if not names:
        raise UsageError("the annotations name no class: no image has a box")
    index = {c: i for i, c in enumerate(names)}
    problems, images = Problems(strict), []
    turned, channels = [], set()
    frames: dict[str, Frame] = {}
    for item in found:
        unknown = sorted(set(item.labels) - set(index))
        if unknown:
            raise UsageError(
                f"{item.source} has boxes of class {unknown[0]!r}, which is not among the "
                f"declared classes ({', '.join(names[:8])}); fix the class list or the file"
            )
        if item.pixels is not None:
            size, rotated = (item.pixels.shape[1], item.pixels.shape[0]), False
            channels.add(item.pixels.shape[2])
        else:
            try:
                size, rotated, chans = image_size(item.image)
            except (OSError, ValueError):
                problems.add("unreadable", str(item.image))
                continue
            channels.add(chans)
        if rotated:
            turned.append(str(item.image))
        boxes, labels, frame = clean_boxes(item, size, index, problems)
        frames.setdefault(item.source, Frame(item, size)).add(frame)
        images.append(BoxImage(item.image, boxes, labels, size, item.pixels))
    for frame in frames.values():
        frame.check()
    if not images:
        raise UsageError("none of the annotated images could be opened; check the image folder")
    out = BoxSet(images, list(names), category_ids(list(names), declared_ids), channels == {1})
    out.notes = list(notes or [])
    negatives = sum(1 for im in images if len(im.labels) == 0)
    out.notes.append(
        f"read {out.box_count:,} boxes of {len(names)} classes on {len(images):,} images"
        + (f"; {negatives} image(s) with no boxes kept as negatives" if negatives else "")
    )
    out.notes += problems.notes()
    if turned:
        out.notes.append(
            f"{len(turned)} image(s) carry an EXIF orientation: they are read upright and their "
            f"boxes taken as drawn on the upright image (in {named(turned)})"
        )
    return out


def clean_boxes(
    item: Found, size: tuple[int, int], index: dict[str, int], problems: Problems
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int, int, float]]:
    """One image's boxes, checked: what cannot be right dropped, what overlaps the edge
    clipped, duplicates removed. Also returns, for `Frame`, (boxes, outside, inverted, the
    largest coordinate in pixels)."""
    w, h = size
    kept: list[tuple[float, float, float, float]] = []
    labels: list[int] = []
    seen: set[tuple] = set()
    outside = inverted = 0
    largest = 0.0
    for box, label in zip(item.boxes, item.labels, strict=True):
        x1, y1, x2, y2 = (float(v) for v in box)
        if item.normalised:
            cx, cy, bw, bh = x1, y1, x2, y2
            x1, y1, x2, y2 = (
                (cx - bw / 2) * w,
                (cy - bh / 2) * h,
                (cx + bw / 2) * w,
                (cy + bh / 2) * h,
            )
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            problems.add("not-finite", item.source)
            continue
        largest = max(largest, abs(x1), abs(y1), abs(x2), abs(y2))
        if x2 < x1 or y2 < y1:
            inverted += 1
            problems.add("inverted", item.source)
            continue
        if x2 == x1 or y2 == y1:  # in the file's own frame: a VOC point is no box either
            problems.add("zero-area", item.source)
            continue
        if item.one_based:
            x1, y1 = x1 - 1, y1 - 1
        slack_x, slack_y = OUTSIDE_SLACK * w, OUTSIDE_SLACK * h
        if x1 >= w or y1 >= h or x2 <= 0 or y2 <= 0:
            outside += 1
            problems.add("outside", item.source)
            continue
        if x1 < -slack_x or y1 < -slack_y or x2 > w + slack_x or y2 > h + slack_y:
            outside += 1
        if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
            x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
            problems.add("clipped", item.source)
        key = (label, x1, y1, x2, y2)
        if key in seen:
            problems.add("duplicate", item.source)
            continue
        seen.add(key)
        kept.append((x1, y1, x2, y2))
        labels.append(index[label])
    boxes = torch.tensor(kept, dtype=torch.float32).reshape(-1, 4)
    counts = (len(item.boxes), outside, inverted, largest)
    return boxes, torch.tensor(labels, dtype=torch.int64), counts


class Frame:
    """One annotation file's boxes, counted over its images: when most lie outside their
    images (or are inverted), the file is in another coordinate frame and is refused, with the
    likeliest frame named."""

    def __init__(self, item: Found, size: tuple[int, int]):
        self.item, self.size = item, size  # the file's first image, for the message
        self.boxes = self.outside = self.inverted = 0
        self.largest = 0.0  # the largest coordinate: at most 1 means normalised boxes

    def add(self, counts: tuple[int, int, int, float]) -> None:
        self.largest = max(self.largest, counts[3])
        self.boxes += counts[0]
        self.outside += counts[1]
        self.inverted += counts[2]

    def check(self) -> None:
        n, item = self.boxes, self.item
        outside, inverted = self.outside, self.inverted
        if n and self.largest <= 1.0 and min(self.size) > 8:
            raise DataError(f"{item.source}: every box coordinate is within 0..1; {self.guess()}")
        if n == 0 or max(outside, inverted) <= OUTSIDE_SHARE * n:
            return
        raise DataError(
            f"{item.source}: {max(outside, inverted)} of its {n} boxes lie outside their "
            f"images or are inverted; {self.guess()}"
        )

    def guess(self) -> str:
        item, (w, h) = self.item, self.size
        if self.inverted > OUTSIDE_SHARE * self.boxes:
            return "they look like x, y, width, height rather than x1, y1, x2, y2"
        if self.largest <= 1.0:
            return "they look normalised to 0..1 (YOLO style): use yolo:DIR or pixel coordinates"
        if item.declared_size and tuple(item.declared_size) != (w, h):
            dw, dh = item.declared_size
            return f"they were drawn on a {dw}x{dh} image, and {item.image.name} is {w}x{h}"
        return "they are most likely in another coordinate frame (another image size?)"
