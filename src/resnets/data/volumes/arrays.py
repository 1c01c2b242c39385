"""Volumes (N, C, D, H, W uint8) held in memory: the bundled synthetic shapes and
MedMNIST-style `.npz` arrays (2D images or 3D volumes).

`shapes3d` is the project's own 3D job: a sphere, a cube or a torus per noisy volume, at a
random position, size and orientation, so that a 3D ResNet trains on a CPU in minutes and the
tests need no download. An `.npz` holds `train_images`, `train_labels` and, optionally,
`val_…` and `test_…` (MedMNIST v2's layout): images as (N, H, W), (N, H, W, 3) or
(N, D, H, W) uint8 (floats in [0, 1] are scaled by 255), labels as (N,) or (N, 1) class
indices, or (N, K) 0/1 rows for multi-label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from ...options import SPLITS
from ..datasets import ImageTensors

SHAPES3D = ["sphere", "cube", "torus"]


def _rotation(g: torch.Generator) -> torch.Tensor:
    """A uniformly random 3D rotation, from a random unit quaternion."""
    w, x, y, z = (q := torch.randn(4, generator=g)).div(q.norm()).tolist()
    return torch.tensor(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def make_shapes3d(n: int, size: int, seed: int = 0) -> ImageTensors:
    """`n` noisy grey volumes of side `size`, each holding one sphere, cube or torus."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.arange(size, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1)
    images = torch.empty(n, 1, size, size, size, dtype=torch.uint8)
    labels = torch.randperm(n, generator=g) % len(SHAPES3D)  # balanced classes
    for i, label in enumerate(labels.tolist()):
        r = size * (0.25 + 0.06 * torch.rand((), generator=g).item())
        centre = size / 2 + (torch.rand(3, generator=g) - 0.5) * (size - 2 * r - 2)
        p = (grid - centre) @ _rotation(g)  # voxel positions in the shape's own frame
        if label == 0:
            inside = p.norm(dim=-1) <= r
        elif label == 1:
            inside = (p.abs() <= r).all(-1)  # its corners reach 1.7 r
        else:
            inside = (p[..., :2].norm(dim=-1) - 0.7 * r) ** 2 + p[..., 2] ** 2 <= (0.35 * r) ** 2
        noise = torch.randn(size, size, size, generator=g) * 15 + 70
        images[i, 0] = (noise + inside * 110).clamp(0, 255).to(torch.uint8)
    return ImageTensors(images, labels, list(SHAPES3D))


def load_npz(path: Path) -> tuple[dict[str, ImageTensors], list[str]]:
    """The splits an .npz holds ("train", and "val"/"test" where present), and a note on what
    was read into them (the file names no classes, and may hold float pixels)."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; --data npz:FILE takes a .npz of arrays")
    try:
        arrays = np.load(path, allow_pickle=False)
        names = set(arrays.files)
    except (OSError, ValueError) as e:
        why = "not a NumPy .npz archive" if "pickle" in str(e) else str(e)
        raise DataError(f"{path} is not a readable .npz file ({why})") from None
    if not {"train_images", "train_labels"} <= names:
        raise DataError(
            f"{path} needs arrays train_images and train_labels (MedMNIST's layout); "
            f"it has {', '.join(sorted(names)) or 'none'}"
        )
    labels = {
        s: _labels(arrays[f"{s}_labels"], f"{path}:{s}_labels")
        for s in SPLITS
        if f"{s}_labels" in names
    }
    width = max(int(y.max()) + 1 if y.ndim == 1 else y.shape[1] for y in labels.values())
    classes = [str(c) for c in range(width)]
    out = {}
    for split, y in labels.items():
        x = _images(arrays[f"{split}_images"], f"{path}:{split}_images")
        if len(x) != len(y):
            raise DataError(f"{path}: {len(x)} {split} images but {len(y)} {split} labels")
        out[split] = ImageTensors(x, y, classes)
    dims = {v.images.ndim for v in out.values()}
    if len(dims) > 1:
        raise DataError(f"{path}: the splits mix 2D images and 3D volumes")
    floats = any(arrays[f"{split}_images"].dtype.kind == "f" for split in out)
    kind = "0/1 label columns (multi-label)" if labels["train"].ndim == 2 else "classes"
    note = (
        f"{path.name}: {width} {kind} named 0..{width - 1} (the file names none); its "
        f"splits: {', '.join(out)}" + ("; float pixels in [0, 1] scaled by 255" if floats else "")
    )
    return out, [note]


def _images(a: np.ndarray, where: str) -> torch.Tensor:
    """(N, C, H, W) or (N, C, D, H, W) uint8 from MedMNIST's (N, H, W[, 3]) / (N, D, H, W)."""
    if a.dtype.kind == "f":
        if a.size and (np.isnan(a).any() or a.min() < 0 or a.max() > 1):
            raise DataError(f"{where}: float images must lie in [0, 1]; give uint8 otherwise")
        a = np.rint(a * 255)
    elif a.dtype.kind in "iub" and a.size and (a.min() < 0 or a.max() > 255):
        raise DataError(f"{where}: integer images must lie in 0..255, got {a.min()}..{a.max()}")
    elif a.dtype.kind not in "iub":
        raise DataError(f"{where}: images must be numbers, got dtype {a.dtype}")
    x = torch.from_numpy(a.astype(np.uint8))
    if x.ndim == 4 and x.shape[-1] == 3:  # (N, H, W, 3) RGB
        return x.permute(0, 3, 1, 2).contiguous()
    if x.ndim in (3, 4):  # (N, H, W) grey or (N, D, H, W) volumes
        return x.unsqueeze(1)
    raise DataError(
        f"{where} has shape {tuple(a.shape)}; expected (N, H, W), (N, H, W, 3) or (N, D, H, W)"
    )


def _labels(a: np.ndarray, where: str) -> torch.Tensor:
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.dtype.kind not in "iub" or a.ndim not in (1, 2) or (a.size and a.min() < 0):
        raise DataError(
            f"{where}: labels must be class indices (N,) or (N, 1), or 0/1 rows "
            f"(N, K); got {a.dtype} {tuple(a.shape)}"
        )
    return torch.from_numpy(a.astype(np.int64))


def reading_3d(
    name: str,
    images: torch.Tensor,
    window: str | None,
    spacing: tuple | None,
    notes: list[str],
    index: int | None = None,
) -> dict:
    """For 3D data (N, C, D, H, W): what WeightsMeta must carry to read new files as these
    were (inputs, input_depth, intensity, spacing, volume_index), with a note on the shape;
    {} for 2D."""
    if images.ndim != 5:
        return {}
    shape = " x ".join(map(str, images.shape[2:]))
    if name == "video":
        notes.append(f"clips of {shape} (frames x height x width)")
        return {"inputs": "clips", "input_depth": images.shape[2], "intensity": None}
    notes.append(f"volumes of {shape} voxels (depth x height x width)")
    # a folder's files were windowed or z-scored; arrays (npz, generated) came as 0..255
    files = name in ("volumes", "segfolder")
    intensity = (f"window {window}" if window else "auto") if files else "raw"
    spaced = list(spacing) if spacing and files else None
    if index is not None and files:
        notes.append(f"4D files: volume {index} of each (--volume-index)")
    return {
        "inputs": "volumes",
        "input_depth": images.shape[2],
        "intensity": intensity,
        "spacing": spaced,
        "volume_index": index if files else None,
    }
