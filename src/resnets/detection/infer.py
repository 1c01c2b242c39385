"""A trained detector used: `evaluate` on a split or on other box files, and `predict` on
images (boxes in each image's own pixels, drawn as PNGs, and written as CSV, JSON and COCO
results JSON). `resnets evaluate` and `resnets predict` come here for detection weights."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..devices import resolve_device
from ..errors import UsageError
from ..files import atomic_write_json, atomic_write_text
from ..models.meta import WeightsMeta
from ..models.weights import read_meta, read_weights
from .boxes import BoxImage
from .dataset import BoxDataset, BoxSplits, collate, read_image, resize, scaled, split_boxes
from .metrics import BoxScores, score_boxes
from .models import build_detector
from .readers import read_boxes

log = logging.getLogger("resnets")


def is_detector(weights: str | Path) -> bool:
    """Whether `weights` (a run folder or weights file) hold a detector."""
    from ..infer.sources import resolve_source

    path, _ = resolve_source(weights)
    if path.suffix.lower() == ".onnx":
        return False
    meta = read_meta(path)  # the header alone: evaluate and predict ask this of every model
    return meta is not None and meta.task == "detection"


def load_detector(
    weights: str | Path, device: torch.device
) -> tuple[nn.Module, WeightsMeta, Path, Path | None]:
    """The detector in `weights` (a run folder or weights file), its metadata, the weights
    file and the run folder (None for a file outside a run)."""
    from ..infer.sources import resolve_source

    path, run = resolve_source(weights)
    state, meta = read_weights(path)
    if meta is None or meta.detector is None:
        raise UsageError(f"{path} holds no detector (its metadata names no detection head)")
    model = build_detector(meta.detector)
    model.load_state_dict(state)
    return model.to(device).eval(), meta, path, run


@torch.no_grad()
def detect(
    model: nn.Module, images: list[torch.Tensor], device: torch.device
) -> list[dict[str, torch.Tensor]]:
    model.eval()
    out = model([im.to(device) for im in images])
    return [{k: v.cpu() for k, v in o.items()} for o in out]


def evaluate_split(
    model: nn.Module,
    data: BoxDataset,
    device: torch.device,
    classes: list[str],
    confusion: bool = False,
    batch_size: int = 8,
) -> tuple[BoxScores, list[dict[str, torch.Tensor]]]:
    """The split's COCO scores, and the detections (labels: class index + 1)."""
    detections, targets = [], []
    for start in range(0, len(data), batch_size):
        images, truth = collate([data[i] for i in range(start, min(start + batch_size, len(data)))])
        detections += detect(model, images, device)
        targets += truth
    return score_boxes(detections, targets, classes, confusion), detections


def evaluate_detector(
    weights: str | Path,
    data: str | None = None,
    split: str | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 8,
) -> BoxScores:
    """COCO scores of a detector: on its run's test split by default, or on every image of
    other box files (`data`); writes eval-SPLIT.json, pr-SPLIT.png and confusion-SPLIT.png."""
    from ..infer.sources import report_folder
    from .report import write_scores

    dev = resolve_device(device)
    model, meta, path, run = load_detector(weights, dev)
    spec = meta.detector
    own = data is None
    if own:
        if run is None:
            raise UsageError("a weights file outside its run needs --data (the boxes to score)")
        split = split or "test"
        splits, indices, data = own_split(run, spec, split)
    else:
        boxes = read_boxes(data)
        splits = split_boxes(boxes, 0.0, 0.0, 0, spec["size"])  # the splits it ships, if any
        split = split or "all"
        indices = chosen(splits, split, data)
    check_classes(splits.boxes.classes, meta.classes or [], data)
    dataset = BoxDataset(splits, indices, False, False, 0.0, 0)
    for note in splits.boxes.notes:
        log.info("note: %s", note)
    scores, _ = evaluate_split(model, dataset, dev, meta.classes or [], True, batch_size)
    folder = report_folder(out, run, path, None if own else data)
    write_scores(scores, folder, split, meta.classes or [])
    scores.title = f"{split} split of {data} ({len(indices)} images); written to {folder}"
    return scores


def own_split(run: Path, spec: dict[str, Any], split: str) -> tuple[BoxSplits, list[int], str]:
    """The run's boxes, split as its training split them, the indices of `split`, and the
    run's --data."""
    from ..training.config import load_config_file

    cfg = load_config_file(run / "config.yaml")
    data = cfg.get("data")
    boxes = read_boxes(data, False, cfg.get("synthetic_samples", 2048))
    splits = split_boxes(
        boxes, cfg.get("val_split"), cfg.get("test_split", 0.2), cfg.get("seed", 0), spec["size"]
    )
    return splits, chosen(splits, split, data), data


def chosen(splits: BoxSplits, split: str, data: str) -> list[int]:
    """The images of `split`; "all": each image once, in a split or not."""
    every = list(range(len(splits.boxes.images)))
    indices = {"train": splits.train, "val": splits.val, "test": splits.test}.get(split, every)
    if not indices:
        raise UsageError(f"the {split} split of {data} holds no images")
    return indices


def check_classes(found: list[str], trained: list[str], data: str) -> None:
    if found != trained:
        raise UsageError(
            f"{data} has classes {', '.join(found)}; the detector was trained on "
            f"{', '.join(trained)}: score it on boxes of the same classes"
        )


@dataclass
class Detection:
    path: str
    boxes: list[list[float]]  # x1, y1, x2, y2 in the image's own pixels
    labels: list[str]
    scores: list[float]
    drawn: str | None = None


@dataclass
class DetectionResult:
    predictions: list[Detection]
    failed: dict[str, str] = field(default_factory=dict)  # file: why, as PredictResult's
    classes: list[str] = field(default_factory=list)

    def unwritten(self) -> int:
        return 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "predictions": [d.__dict__ for d in self.predictions],
            "failed": [{"path": p, "error": e} for p, e in self.failed.items()],
        }

    def table(self) -> str:
        lines = []
        for d in self.predictions:
            found = ", ".join(f"{lab} {s:.2f}" for lab, s in zip(d.labels, d.scores, strict=True))
            lines.append(f"{d.path}: {len(d.boxes)} box(es){': ' + found if found else ''}")
        lines += [f"{p}: unreadable ({e})" for p, e in self.failed.items()]
        return "\n".join(lines)

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["path", "x1", "y1", "x2", "y2", "label", "score"])
        for d in self.predictions:
            for box, label, score in zip(d.boxes, d.labels, d.scores, strict=True):
                writer.writerow([d.path, *(f"{v:.2f}" for v in box), label, f"{score:.4f}"])
        return buf.getvalue()

    def coco_results(self, ids: list[int]) -> list[dict[str, Any]]:
        """COCO's results format; image_id is the file's position in the list given."""
        out = []
        for i, d in enumerate(self.predictions):
            for box, label, score in zip(d.boxes, d.labels, d.scores, strict=True):
                x1, y1, x2, y2 = box
                cat = ids[self.classes.index(label)]
                out.append(
                    {
                        "image_id": i,
                        "file_name": d.path,
                        "category_id": cat,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": score,
                    }
                )
        return out


def image_paths(images: list[str | Path]) -> list[Path]:
    """Image files as given, folders expanded (as classification's predict does them)."""
    from ..infer.images import expand_images

    files = expand_images(images)
    held = [f for f in files if not isinstance(f, Path)]
    if held:
        raise UsageError(
            f"detection predicts on image files; a {type(held[0]).__name__} held in Python is "
            "not supported yet: save it first"
        )
    return files


def predict_boxes(
    weights: str | Path,
    images: list[str | Path],
    score_threshold: float = 0.25,
    draw_to: str | Path | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    device: str = "auto",
) -> DetectionResult:
    """Boxes, classes and scores for each image, at or above `score_threshold`; drawn PNGs
    (named as predict names masks: `mask_paths`), detections.csv and coco-results.json in
    `draw_to` (default RUN/predictions); an existing drawing is replaced only with
    `overwrite`, and that is checked before anything is written."""
    from ..infer.sources import mask_paths, output_folder
    from .report import PALETTE, draw_boxes

    dev = resolve_device(device)
    model, meta, _, _ = load_detector(weights, dev)
    spec, classes = meta.detector, meta.classes or []
    folder = Path(draw_to) if draw_to else output_folder(weights, "predictions")
    files = image_paths(images)
    drawn = mask_paths(files, folder)
    taken = [p for p in drawn.values() if p.exists()]
    if taken and not overwrite:
        raise UsageError(f"{taken[0]} exists; pass --overwrite or another --masks-out folder")
    result = DetectionResult([], classes=classes)
    for path in files:
        try:
            pixels, found = detect_file(model, path, spec, dev, score_threshold)
        except (OSError, ValueError) as e:
            result.failed[str(path)] = str(e).splitlines()[0]
            continue
        labels = found["labels"].tolist()
        names = [classes[c - 1] for c in labels]
        colours = [PALETTE[(c - 1) % len(PALETTE)] for c in labels]
        target = drawn[os.path.abspath(path)]
        target.parent.mkdir(parents=True, exist_ok=True)
        draw_boxes(pixels, found["boxes"], names, found["scores"], colours).save(target)
        boxes = [[round(float(v), 2) for v in b] for b in found["boxes"]]
        scores = [round(float(v), 4) for v in found["scores"]]
        result.predictions.append(Detection(str(path), boxes, names, scores, str(target)))
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "detections.csv", result.csv_text())
    atomic_write_json(folder / "coco-results.json", result.coco_results(spec["category_ids"]))
    if out is not None:
        as_json = str(out).endswith(".json")
        text = json.dumps(result.to_dict(), indent=2) if as_json else result.csv_text()
        atomic_write_text(Path(out), text)
    return result


@torch.no_grad()
def detect_file(
    model: nn.Module, path: Path, spec: dict[str, Any], device: torch.device, threshold: float
) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """An image file read upright as the detector was trained ([H, W, C] uint8), and its
    detections at or above `threshold`, boxes in the file's own pixels."""
    pixels, image, factor = read_file(path, spec)
    found = {k: v.cpu() for k, v in model([image.to(device)])[0].items()}
    keep = found["scores"] >= threshold
    return pixels, {
        "boxes": found["boxes"][keep] / factor,
        "labels": found["labels"][keep],
        "scores": found["scores"][keep],
    }


def read_file(path: Path, spec: dict[str, Any]) -> tuple[np.ndarray, torch.Tensor, float]:
    """An image file read upright ([H, W, C] uint8), the detector's input made of it (CHW in
    [0, 1], its longer side the input size), and the factor from the file's pixels to it."""
    item = BoxImage(path, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), (0, 0))
    pixels = read_image(item, spec["in_chans"] == 1)
    image, _ = resize(pixels, torch.zeros(0, 4), spec["size"])
    h, w = pixels.shape[:2]
    return pixels, image, scaled(w, h, spec["size"])[2]
