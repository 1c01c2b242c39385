"""Figures written as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from .files import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def training_curves(
    history: Sequence[dict[str, float]], path: Path, title: str = "", score: str = "acc1"
) -> Path:
    """Loss and the task's score (top-1 accuracy, or Dice) per epoch, train and validation."""
    label = {"acc1": "top-1 accuracy", "dice": "Dice", "auc": "macro ROC-AUC"}.get(score, score)
    unit = "" if score == "map" else " (%)"  # COCO mAP is a fraction, as COCO prints it
    label = "mAP@[.5:.95]" if score == "map" else label
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [row["epoch"] for row in history]
    for split, style in (("train", "-"), ("val", "--")):
        if any(f"{split}_loss" in row for row in history):
            ax_loss.plot(epochs, [r.get(f"{split}_loss") for r in history], style, label=split)
        scores = [r.get(f"{split}_{score}") for r in history]
        if any(v is not None for v in scores):  # multi-label AUC, detection mAP: validation only
            ax_acc.plot(epochs, [math.nan if v is None else v for v in scores], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel=f"{label}{unit}", title=label)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # without validation, a score has no line
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no validation split", ha="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def confusion_matrix(matrix, classes: Sequence[str], path: Path, title: str = "") -> Path:
    """Rows: true class, columns: predicted class, counts written in the cells when few."""
    import numpy as np

    plt = _pyplot()
    matrix = np.asarray(matrix)
    n = len(classes)
    size = min(max(4, n * 0.45), 16)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    if n <= 30:
        ax.set_xticks(range(n), classes, rotation=90)
        ax.set_yticks(range(n), classes)
        peak = max(float(matrix.max()), 1.0)
        for i in range(n):
            for j in range(n):
                v = int(matrix[i, j])
                if v:
                    color = "white" if v > peak / 2 else "black"
                    ax.text(j, i, v, ha="center", va="center", fontsize=7, color=color)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    return _save(fig, path)


def reliability_diagram(
    count: Sequence[float], accuracy: Sequence[float], path: Path, title: str = ""
) -> Path:
    """Top-1 accuracy per equal-width confidence bin against the diagonal of perfect
    calibration, each bar labelled with its number of images."""
    plt = _pyplot()
    bins = len(count)
    width = 1 / bins
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    left = [i * width for i in range(bins) if count[i]]
    height = [accuracy[i] for i in range(bins) if count[i]]
    ax.bar(left, height, width=width, align="edge", edgecolor="black", alpha=0.8, label="accuracy")
    for x, h, n in zip(left, height, [int(c) for c in count if c], strict=True):
        ax.text(x + width / 2, h + 0.01, n, ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set(xlim=(0, 1), ylim=(0, 1.1), xlabel="confidence (top-1 probability)")
    ax.set(ylabel="accuracy", title=title or f"reliability ({bins} bins, images per bar)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=2)  # clear of the bars
    return _save(fig, path)


def curves_by_model(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    ylabel: str,
    title: str,
    styles: dict[str, str] | None = None,
    log_y: bool = False,
    panels: dict[str, list[str]] | None = None,
    xlabel: str = "epoch",
) -> Path:
    """Several (x, y) curves, optionally grouped into side-by-side panels."""
    plt = _pyplot()
    panels = panels or {title: list(series)}
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (panel, names) in zip(axes[0], panels.items(), strict=True):
        for name in names:
            x, y = series[name]
            ax.plot(x, y, (styles or {}).get(name, "-"), label=name)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=panel)
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7 if len(names) > 6 else None)
    return _save(fig, path)
