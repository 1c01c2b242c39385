"""A BoxSet as the detector sees it: its splits, the input size chosen from its images,
each image read upright, resized so its longer side is that size (boxes with it), and in
training flipped and zoomed with its boxes. Every random choice is drawn from the seed, the
epoch and the image, so a resumed run sees what an uninterrupted one saw."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UsageError
from .boxes import BoxImage, BoxSet

MAX_AUTO_SIZE = 640  # the input size chosen from the images is at most this (CPU friendly)
MIN_KEPT_AREA = 0.25  # a box cropped by a zoom keeps at least this share of its area


@dataclass
class BoxSplits:
    boxes: BoxSet
    train: list[int]
    val: list[int]
    test: list[int]
    size: int  # the longer side every image is resized to
    notes: list[str]


def split_boxes(
    boxes: BoxSet, val_split: float | None, test_split: float, seed: int, image_size: int | None
) -> BoxSplits:
    """The splits the data ships with (VOC ImageSets, YOLO train/val), else a seeded random
    split; the input size from --image-size or the images."""
    notes: list[str] = []
    n = len(boxes.images)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    shipped = boxes.splits or {}
    val_share = 0.1 if val_split is None else val_split
    if "train" in shipped:
        train, val, test = shipped["train"], shipped.get("val", []), shipped.get("test", [])
        listed = set(train)
        carve = [i for i in order if i in listed]
        if not val and val_share > 0:
            k = max(1, round(val_share * len(carve)))
            val, train = carve[:k], carve[k:]
        if not test and test_split > 0:
            k = max(1, round(test_split * len(train)))
            test, train = train[:k], train[k:]
        notes.append(
            f"splits as the data ships them: train {len(train)}, val {len(val)}, test {len(test)}"
        )
    else:
        n_test = round(test_split * n)
        n_val = round(val_share * (n - n_test))
        test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
        notes.append(
            f"split at random (seed {seed}): train {len(train)}, val {len(val)}, test {len(test)}"
        )
    if not train:
        raise UsageError("no training images are left after the validation and test splits")
    size = image_size or auto_size([boxes.images[i] for i in train], notes)
    return BoxSplits(boxes, sorted(train), sorted(val), sorted(test), size, notes)


def auto_size(images: list[BoxImage], notes: list[str]) -> int:
    """The median longer side of the training images, a multiple of 32, at most 640."""
    median = statistics.median(max(im.size) for im in images)
    size = max(32, min(MAX_AUTO_SIZE, round(median / 32) * 32))
    capped = " (capped: pass --image-size for more)" if median > MAX_AUTO_SIZE else ""
    notes.append(
        f"input size {size} px on the longer side, from the images' median {median:g}{capped}"
    )
    return size


def read_image(item: BoxImage, grey: bool) -> np.ndarray:
    """[H, W, C] uint8, upright, 1 channel if the whole set is grey, else 3."""
    if item.pixels is not None:
        return item.pixels
    from PIL import Image, ImageOps

    with Image.open(item.path) as im:
        im = ImageOps.exif_transpose(im)
        im = im.convert("L" if grey else "RGB")
        array = np.asarray(im)
    return array[:, :, None] if array.ndim == 2 else array


def scaled(w: int, h: int, size: int) -> tuple[int, int, torch.Tensor]:
    """The size (width, height) an image of w x h is resized to, its longer side `size`, and
    the factor its boxes are multiplied by."""
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    return nw, nh, torch.tensor([nw / w, nh / h, nw / w, nh / h])


def resize(image: np.ndarray, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float [C, H, W] in 0..1 with its longer side `size`, and the boxes scaled with it."""
    import torch.nn.functional as F

    h, w = image.shape[:2]
    nw, nh, factor = scaled(w, h, size)
    x = torch.from_numpy(np.array(image))  # a copy: decoded arrays may be read-only
    x = x.permute(2, 0, 1).float().div_(255)
    if (nh, nw) != (h, w):
        x = x[None]
        x = F.interpolate(x, (nh, nw), mode="bilinear", antialias=True, align_corners=False)[0]
    return x.clamp_(0, 1), boxes * factor


class BoxDataset(torch.utils.data.Dataset):
    """(image [C, H, W] in 0..1, target {"boxes", "labels" (class index + 1)}) pairs."""

    def __init__(
        self,
        splits: BoxSplits,
        indices: list[int],
        train: bool,
        hflip: bool,
        zoom: float,
        seed: int,
    ):
        self.boxes, self.indices, self.size = splits.boxes, indices, splits.size
        self.train, self.hflip, self.zoom, self.seed = train, hflip, zoom, seed
        self.epoch = 0
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.indices)

    def item(self, i: int) -> BoxImage:
        return self.boxes.images[self.indices[i]]

    def resized(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Image i at the input size and its boxes, decoded once (uint8 in memory)."""
        if i not in self._cache:
            item = self.item(i)
            image, boxes = resize(read_image(item, self.boxes.grey), item.boxes, self.size)
            self._cache[i] = ((image * 255).round().to(torch.uint8), boxes)
        image, boxes = self._cache[i]
        return image.float().div_(255), boxes.clone()

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image, boxes = self.resized(i)
        labels = self.item(i).labels + 1  # 0 is the detector's background
        if self.train:
            draw = (self.seed * 1_000_003 + self.epoch) * 10_000_019 + self.indices[i]
            g = torch.Generator().manual_seed(draw)
            image, boxes, labels = augment(image, boxes, labels, self.hflip, self.zoom, g)
        return image, {"boxes": boxes, "labels": labels}


def augment(
    image: torch.Tensor,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    hflip: bool,
    zoom: float,
    g: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A horizontal flip (p = 0.5) and a zoom by 1 ± `zoom`: zoomed in, the image is cropped
    back to its size at a random place, boxes clipped, and a box keeping less than a quarter of
    its area dropped."""
    import torch.nn.functional as F

    _, h, w = image.shape
    if hflip and torch.rand((), generator=g) < 0.5:
        image = image.flip(-1)
        boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
    if zoom > 0:
        f = float(1 - zoom + 2 * zoom * torch.rand((), generator=g))
        nh, nw = max(8, round(h * f)), max(8, round(w * f))
        image = F.interpolate(image[None], (nh, nw), mode="bilinear", align_corners=False)[0]
        boxes = boxes * torch.tensor([nw / w, nh / h, nw / w, nh / h])
        if nh > h or nw > w:
            top = int(torch.randint(0, nh - h + 1, (), generator=g))
            left = int(torch.randint(0, nw - w + 1, (), generator=g))
            image = image[:, top : top + h, left : left + w]
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            boxes = boxes - torch.tensor([left, top, left, top])
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            kept_w, kept_h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
            keep = (kept_w >= 2) & (kept_h >= 2) & (kept_w * kept_h >= MIN_KEPT_AREA * area)
            boxes, labels = boxes[keep], labels[keep]
    return image.contiguous(), boxes, labels


def collate(batch):
    return [b[0] for b in batch], [b[1] for b in batch]
