"""What detection writes for people to look at: a split's scores as JSON, its precision-recall
curves and confusion matrix as PNGs, and images drawn with their boxes (true boxes in green
outlines, detections in their class colour with class and score)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write_json
from .metrics import BoxScores

PALETTE = [(230, 25, 75), (0, 130, 200), (255, 165, 0), (145, 30, 180), (70, 240, 240)]
PALETTE += [(240, 50, 230), (210, 245, 60), (128, 128, 0), (0, 0, 128), (170, 110, 40)]
TRUE = (60, 220, 60)


def write_scores(scores: BoxScores, folder: Path, split: str, classes: list[str]) -> list[Path]:
    """eval-SPLIT.json, pr-SPLIT.png (precision-recall at IoU 0.5 per class) and
    confusion-SPLIT.png (IoU 0.5, with a background row and column)."""
    from ..plots import _pyplot, _save, confusion_matrix

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / f"eval-{split}.json"]
    atomic_write_json(
        written[0], {"split": split, **scores.to_dict(), "pr_curves": scores.pr_curves}
    )
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, (recall, precision) in scores.pr_curves.items():
        ap = next(r["ap50"] for r in scores.per_class if r["class"] == name)
        ax.plot(recall, precision, label=f"{name} {ap:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title(f"precision-recall at IoU 0.5 ({split}): mAP50 {scores.summary['map50']:.3f}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    written.append(_save(fig, folder / f"pr-{split}.png"))
    if scores.confusion is not None:
        title = f"{split}: IoU 0.5, score >= {scores.confusion_threshold:.2f}"
        path = folder / f"confusion-{split}.png"
        written.append(confusion_matrix(scores.confusion, [*classes, "background"], path, title))
    return written


def draw_boxes(
    image: np.ndarray,
    boxes: torch.Tensor,
    names: list[str],
    scores: torch.Tensor | None = None,
    colours: list[tuple[int, int, int]] | None = None,
    truth: torch.Tensor | None = None,
):
    """A PIL image of `image` ([H, W, C] uint8) with true boxes (green) and the given ones."""
    from PIL import Image, ImageDraw

    pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).convert("RGB")
    draw = ImageDraw.Draw(pil)
    for box in truth if truth is not None else []:
        draw.rectangle([float(v) for v in box], outline=TRUE, width=1)
    for k, box in enumerate(boxes):
        colour = (colours or PALETTE)[k % len(colours or PALETTE)]
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
        text = names[k] + (f" {float(scores[k]):.2f}" if scores is not None else "")
        draw.text((x1 + 2, max(y1 - 11, 0)), text, fill=colour)
    return pil


def draw_examples(
    examples: list[tuple[torch.Tensor, dict]],
    detections: list[dict],
    classes: list[str],
    path: Path,
) -> Path | None:
    """(image, target) pairs side by side with their true and predicted boxes."""
    if not examples:
        return None
    from PIL import Image

    tiles = []
    for (image, target), det in zip(examples, detections, strict=True):
        pixels = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        labels = det["labels"].tolist()
        colours = [PALETTE[(c - 1) % len(PALETTE)] for c in labels]
        names = [classes[c - 1] for c in labels]
        tiles.append(
            draw_boxes(pixels, det["boxes"], names, det["scores"], colours, target["boxes"])
        )
    w = max(t.width for t in tiles)
    h = max(t.height for t in tiles)
    columns = min(4, len(tiles))
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * w, rows * h), (255, 255, 255))
    for k, tile in enumerate(tiles):
        sheet.paste(tile, ((k % columns) * w, (k // columns) * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
