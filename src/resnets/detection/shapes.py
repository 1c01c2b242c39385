"""The bundled box set, `--data shapes-boxes`: circles, squares and triangles of random sizes,
colours and positions on noisy 128-pixel RGB images, none to four per image (about one image
in eight has none), made in memory from a seed, so detection trains and is tested with no
download."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .boxes import Found, Read

SIZE = 128
CLASSES = ["circle", "square", "triangle"]


def shapes_boxes(n: int, seed: int = 0) -> Read:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    found = []
    for i in range(n):
        image = rng.normal(60, 20, (SIZE, SIZE, 3))
        boxes, labels = [], []
        for _ in range(rng.choice(5, p=[0.12, 0.3, 0.26, 0.2, 0.12])):
            kind = int(rng.integers(3))
            side = int(rng.integers(14, 44))
            x1, y1 = (int(v) for v in rng.integers(0, SIZE - side, 2))
            if any(overlap((x1, y1, x1 + side, y1 + side), b) > 0.3 for b in boxes):
                continue
            inside = shape_mask(kind, x1, y1, side, xx, yy)
            image[inside] = rng.uniform(140, 255, 3)
            boxes.append((x1, y1, x1 + side, y1 + side))
            labels.append(CLASSES[kind])
        pixels = np.clip(image, 0, 255).astype(np.uint8)
        found.append(
            Found(Path(f"shapes-boxes/{i:05d}.png"), boxes, labels, "shapes-boxes", None, pixels)
        )
    note = f"shapes-boxes: {n} synthetic {SIZE}x{SIZE} images of circles, squares and triangles"
    return Read(found, list(CLASSES), None, [note])


def shape_mask(
    kind: int, x1: int, y1: int, side: int, xx: np.ndarray, yy: np.ndarray
) -> np.ndarray:
    """The pixels of a shape filling the box (x1, y1, side): its box is the shape's tight box."""
    u, v = (xx - x1) / side, (yy - y1) / side
    square = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
    if kind == 0:
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    if kind == 1:
        return square
    return square & (np.abs(u - 0.5) <= v / 2)  # apex at the top, base at the bottom


def overlap(a: tuple, b: tuple) -> float:
    """Intersection over the smaller box."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
