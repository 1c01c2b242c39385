"""Explanations drawn: a 2D map beside its image (`write_png`), and a 3D map drawn flat
(`write_montage`): evenly spaced slices of a volume (or frames of a clip), each shown plain
above and under its map below, so a reader sees where along the depth the model looked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.volumes.video import picks
from ..plots import _pyplot, _save

SLICES = 8
COLORMAP = "inferno"  # perceptually uniform, and readable in greyscale print


def slice_indices(depth: int, count: int = SLICES) -> list[int]:
    """`count` slices spread over `depth` (the middle of each of `count` equal parts, as clips'
    frames are picked), each once."""
    return picks(depth, min(count, depth))


def write_montage(
    volume: torch.Tensor,
    cam: np.ndarray,
    path: Path,
    *,
    label: str,
    title: str,
    heading: str,
    colormap: str = COLORMAP,
    unit: str = "slice",
) -> Path:
    """`volume` uint8 [C, D, H, W] (1 or 3 channels) and its map [D, H, W] in [0, 1], as a
    2 x 8 grid: the slices (or frames: `unit`) over the same slices under the map; `label`
    (the input) and `heading` (the top classes) above, `title` (method and class) beside the
    map row. The slice where the map peaks is marked; a flat map is said to be flat."""
    picked = slice_indices(volume.shape[1])
    per_slice = cam.reshape(cam.shape[0], -1).max(1)
    flat = float(cam.max() - cam.min()) < 1e-6
    peak = int(np.argmax(per_slice))
    if flat:
        where = "the map is flat (the last stage is one voxel at this input size)"
    elif float(per_slice.max() - per_slice.min()) < 1e-6:
        where = f"the map peaks as high in every {unit}"
    else:
        where = f"the map peaks at {unit} {peak} of {volume.shape[1]}"
    if "peaks at" in where and peak not in picked:  # shown in place of its nearest
        picked[min(range(len(picked)), key=lambda i: abs(picked[i] - peak))] = peak
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(picked), figsize=(1.9 * len(picked), 4.6), squeeze=False)
    grey = volume.shape[0] == 1
    for column, z in enumerate(picked):
        image = volume[:, z].permute(1, 2, 0).numpy()
        shown = image[..., 0] if grey else image
        for row in (0, 1):
            ax = axes[row, column]
            ax.imshow(shown, cmap="gray" if grey else None, vmin=0, vmax=255)
            ax.set_axis_off()
        heat = axes[1, column].imshow(cam[z], cmap=colormap, alpha=0.5, vmin=0, vmax=1)
        marked = " (peak)" if z == peak and "peaks at" in where else ""
        axes[0, column].set_title(f"{unit} {z}{marked}", fontsize=8)
    axes[1, 0].set_title(title, fontsize=8, loc="left")
    fig.colorbar(heat, ax=axes[1, :].tolist(), fraction=0.02, pad=0.01)
    fig.suptitle(f"{label}: {heading}; {where}", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, path)


def write_png(
    image: torch.Tensor, cam: np.ndarray, path: Path, *, label: str, title: str, heading: str
) -> Path:
    """`image` uint8 [C, H, W] beside the same image under its map [H, W] in [0, 1]; `label`
    (the input) and `title` (method and class) above each, `heading` (the top classes) over
    both."""
    shown = image.permute(1, 2, 0).numpy()
    grey = shown.shape[-1] == 1
    shown = shown[..., 0] if grey else shown
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.6))
    for ax in (left, right):
        ax.imshow(shown, cmap="gray" if grey else None, vmin=0, vmax=255)
        ax.set_axis_off()
    heat = right.imshow(cam, cmap=COLORMAP, alpha=0.5, vmin=0, vmax=1)
    fig.colorbar(heat, ax=right, fraction=0.046, pad=0.04)
    left.set_title(label)
    right.set_title(title)
    fig.suptitle(heading)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, path)


def input_pixels(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """Normalized model inputs [N, C, ...] back to the uint8 pixels they were made from."""
    shape = (-1,) + (1,) * (x.ndim - 2)
    mean_t, std_t = (torch.tensor(v, device=x.device).view(shape) for v in (mean, std))
    return ((x * std_t + mean_t) * 255).round().clamp(0, 255).to(torch.uint8).cpu()
