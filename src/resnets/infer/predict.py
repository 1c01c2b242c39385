"""`predict`: top-k classes for image files, prepared exactly as the weights were trained.

Any size, greyscale or RGB: images are decoded to the model's channel count, resized as the
weights' metadata says (shorter side + centre crop, or straight to the input size), and
normalized with the training mean and std.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import DataError, UsageError
from ..files import atomic_write_text
from ..metrics import POSITIVE, shown_cut
from ..models.meta import WeightsMeta
from ..tasks import get_task, write_mask
from .cases import (
    check_inputs,
    expand_cases,
    mask_volume_name,
    prepare_cases,
    write_mask_volume,
)
from .images import Input, expand_images, prepare_sized
from .sources import Loaded, mask_paths, open_source, output_folder

NOT_WRITTEN = "mask not written: "


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (class, probability), most likely first
    mask: str | None = None  # segmentation: the predicted mask's PNG
    # two classes: the decision's threshold on the positive class (the weights'), which
    # orders `top` in place of the larger probability
    threshold: float | None = None


@dataclass
class PredictResult:
    predictions: list[Prediction]
    # path -> why it has no result: it could not be read, or (NOT_WRITTEN ...) its mask was
    # not written
    failed: dict[str, str] = field(default_factory=dict)

    def unwritten(self) -> int:
        """Inputs that were read but whose mask was not written."""
        return sum(why.startswith(NOT_WRITTEN) for why in self.failed.values())

    def to_dict(self) -> dict:
        """What `predict --json` prints: each image's top classes (or mask), and failures."""
        rows = [
            {"path": p.path, "top": [{"class": c, "prob": v} for c, v in p.top], "mask": p.mask}
            | ({"threshold": p.threshold} if p.threshold is not None else {})
            for p in self.predictions
        ]
        return {"predictions": rows, "failed": self.failed}

    def save(self, path: str | Path) -> Path:
        """One row per image in a .csv (path, class_1, prob_1, ..., mask, error) or the
        --json document in a .json file, written atomically."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
            return path
        k = max((len(p.top) for p in self.predictions), default=0)
        buffer = io.StringIO()
        rows = csv.writer(buffer, lineterminator="\n")
        ranked = [f"{what}_{i}" for i in range(1, k + 1) for what in ("class", "prob")]
        rows.writerow(["path", *ranked, "mask", "error"])
        for p in self.predictions:
            cells = [v for name, prob in p.top for v in (name, f"{prob:.6f}")]
            rows.writerow([p.path, *cells, *[""] * (2 * k - len(cells)), p.mask or "", ""])
        for name, why in self.failed.items():
            rows.writerow([name, *[""] * (2 * k), "", why])
        atomic_write_text(path, buffer.getvalue())
        return path

    def table(self) -> str:
        lines = []
        for p in self.predictions:
            best = ", ".join(f"{name} {prob:.1%}" for name, prob in p.top)
            shown = best or (f"mask {p.mask}" if p.mask else "no label above its threshold")
            if p.threshold is not None:
                shown += f"  (threshold {shown_cut(p.threshold)})"
            lines.append(f"{p.path}: {shown}")
        lines += [
            f"{path}: {why}" if why.startswith(NOT_WRITTEN) else f"{path}: unreadable ({why})"
            for path, why in self.failed.items()
        ]
        return "\n".join(lines)


def _save_masks(
    logits: torch.Tensor,
    names: list[str],
    sizes: list,
    paths: dict[str, Path],
    owners: dict[str, str],
    write: Callable[[torch.Tensor, Any, Path, Path], None],
) -> tuple[list[Prediction], dict[str, str]]:
    """Each input's predicted mask, written by `write(mask, its size, input, path)`: a PNG
    back at the image's own size (`_write_png_mask`), or a volume's on its own voxels
    (`cases.write_mask_volume`).

    `owners` maps each file written in this call (and each input) to its input: a mask is never
    written over another input's mask, nor over an input. Returns (predictions, {file: why})."""
    out, failed = [], {}
    for name, size, mask in zip(names, sizes, logits.argmax(1).cpu(), strict=True):
        source = os.path.abspath(name)
        path = paths[source]
        owner = owners.setdefault(os.path.abspath(path), source)
        if owner != source:
            failed[name] = (
                f"{NOT_WRITTEN}{path} would overwrite {owner}; choose another masks folder"
            )
            continue
        try:
            write(mask, size, Path(name), path)
        except OSError as e:
            failed[name] = f"{NOT_WRITTEN}cannot write {path} ({e})"
            continue
        out.append(Prediction(name, [], str(path)))
    return out, failed


def _write_png_mask(mask: torch.Tensor, size, source: Path, path: Path, classes: int) -> None:
    """An image's mask resized (nearest) back to the image's own (height, width), as PNG."""
    mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest-exact")[0, 0]
    write_mask(mask, path, classes)


def predict(
    weights: str | Path,
    images: Input | Iterable[Input],
    topk: int = 5,
    device: str = "auto",
    batch_size: int = 64,
    backend: str = "eager",
    masks_out: str | Path | None = None,
    overwrite: bool = False,
    out: str | Path | None = None,
    score_threshold: float = 0.25,
) -> PredictResult:
    """Top-k predictions for each image; unreadable files are reported, not fatal.

    Segmentation weights write one mask per image under `masks_out` (default: RUN/predictions,
    or WEIGHTS-predictions beside a weights file; see `mask_paths`), at the image's own size
    (a volume's: on its own voxels), never over an input nor, without `overwrite`, an
    existing file.
    Their inputs are resized straight to the input size, as in training, so that the mask
    covers the whole image.
    `weights`: a run folder, a weights file or an .onnx export (run by ONNX Runtime, CPU).
    `backend`: see `resnets.infer.backends` (eager, fast, compile, onnxruntime, auto).
    `out`: also write the predictions to this .csv or .json file (see `PredictResult.save`).
    Detection weights: boxes at or above `score_threshold`, drawn into `masks_out` (see
    detection/infer.py)."""
    check_results_file(out, overwrite)
    from ..detection.infer import is_detector, predict_boxes

    if is_detector(weights):
        files = [images] if isinstance(images, str | Path) else list(images)
        return predict_boxes(weights, files, score_threshold, masks_out, out, overwrite, device)
    loaded, files = _open(weights, images, device, backend, batch_size)
    meta = loaded.meta
    three_d = meta.inputs != "images"
    if meta.input_size is None or meta.mean is None:
        raise DataError(f"{loaded.path} lacks preprocessing metadata (input size, mean, std)")
    segmentation = get_task(meta.task).masks
    result = PredictResult([])
    if segmentation and not all(isinstance(f, Path) for f in files):
        raise UsageError("segmentation predicts masks for image files; give paths")
    masks, owners = {}, {}
    if segmentation:
        folder = Path(masks_out) if masks_out else output_folder(loaded.path, "predictions")
        masks, owners = _mask_targets(files, folder, overwrite, three_d)
    resize = None if segmentation else meta.resize_size
    for start in range(0, len(files), batch_size):
        batch = files[start : start + batch_size]
        preds, failed = _predict_batch(loaded, batch, start, resize, topk, masks, owners)
        result.predictions += preds
        result.failed |= failed
    if out is not None:
        result.save(out)
    return result


def _predict_batch(
    loaded: Loaded,
    batch: list,
    start: int,
    resize: int | None,
    topk: int,
    masks: dict[str, Path],
    owners: dict[str, str],
) -> tuple[list[Prediction], dict[str, str]]:
    """One batch of inputs prepared as the weights were trained and read out: its
    predictions, and the inputs that could not be read or written, with why."""
    meta, classes = loaded.meta, loaded.classes
    if meta.inputs != "images":
        x, names, failed, sizes = prepare_cases(batch, meta, loaded.channels)
    else:
        x, names, sizes, failed = prepare_sized(batch, meta, loaded.channels, resize, start)
    if x is None:
        return [], failed
    k = min(topk, len(classes))
    logits = loaded.infer(x.to(loaded.device))
    preds, unwritten = _read_out(logits, names, sizes, meta, classes, k, masks, owners)
    return preds, failed | unwritten


def _read_out(
    logits: torch.Tensor,
    names: list[str],
    sizes: list,
    meta: WeightsMeta,
    classes: list[str],
    k: int,
    masks: dict[str, Path],
    owners: dict[str, str],
) -> tuple[list[Prediction], dict[str, str]]:
    """One batch's predictions: masks written (PNG; volumes: see `save_mask_volumes`), the
    labels above their thresholds (multi-label), or the top `k` classes."""
    if get_task(meta.task).masks:
        if meta.inputs == "images":
            write = partial(_write_png_mask, classes=len(classes))
        else:
            write = partial(write_mask_volume, spacing=meta.spacing)
        return _save_masks(logits, names, sizes, masks, owners, write)
    if meta.task == "multilabel":
        return labels_above(logits, names, classes, meta.thresholds), {}
    if len(classes) == 2 and meta.thresholds:
        return decided_at(logits, names, classes, meta.thresholds[-1], k), {}
    top = logits.softmax(1).topk(k, dim=1)
    ranked = zip(names, top.values.tolist(), top.indices.tolist(), strict=True)
    return [
        Prediction(name, [(classes[i], v) for i, v in zip(index, values, strict=True)])
        for name, values, index in ranked
    ], {}


def _open(weights, images, device: str, backend: str, batch_size: int) -> tuple[Loaded, list]:
    """The weights, ready to run, and the inputs found in `images`: image files and objects,
    or for 3D weights volumes or clips (which only the weights can tell)."""
    try:
        files, error = expand_images(images), None
    except UsageError as e:
        files, error = [], e
    batch = max(1, min(len(files) or 16, batch_size, 16))  # what --backend auto probes at
    loaded = open_source(weights, device, backend, batch=batch)
    check_inputs(loaded.meta, "predict")
    if loaded.meta.inputs != "images":
        return loaded, expand_cases(images, loaded.meta.inputs)
    if error is not None:
        raise error
    return loaded, files


def check_results_file(out: str | Path | None, overwrite: bool) -> None:
    """Refuse, before any work, a results file that cannot be written or would replace one."""
    if out is None:
        return
    out = Path(out)
    if out.suffix.lower() not in (".csv", ".json"):
        raise UsageError(f"--out {out}: name a .csv or .json file")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it, or choose another name")
    if not out.parent.is_dir():
        raise UsageError(f"the folder {out.parent} does not exist; create it or write elsewhere")


def _mask_targets(
    files: list[Path], folder: Path, overwrite: bool, three_d: bool = False
) -> tuple[dict[str, Path], dict[str, str]]:
    """(each input's mask path, the owner of each path that may not be written over): the
    inputs themselves and, without `overwrite`, files that were there before this call."""
    masks = mask_paths(files, folder, mask_volume_name) if three_d else mask_paths(files, folder)
    owners = {os.path.abspath(f): os.path.abspath(f) for f in masks}  # written files' inputs
    if not overwrite:
        existing = "an existing file (pass --overwrite to replace it)"
        owners |= {os.path.abspath(p): existing for p in masks.values() if p.exists()}
    return masks, owners


def decided_at(
    logits: torch.Tensor, names: list[str], classes: list[str], threshold: float, k: int
) -> list[Prediction]:
    """Two classes with the weights' threshold: the positive class (output 1) first when its
    probability reaches the threshold, else the other; `k` of the two, with their
    probabilities."""
    probs = logits.float().softmax(1).cpu()
    out = []
    for name, p in zip(names, probs, strict=True):
        order = [POSITIVE, 1 - POSITIVE] if p[POSITIVE] >= threshold else [1 - POSITIVE, POSITIVE]
        top = [(classes[i], float(p[i])) for i in order[:k]]
        out.append(Prediction(name, top, threshold=threshold))
    return out


def labels_above(
    logits: torch.Tensor, names: list[str], classes: list[str], thresholds: list[float] | None
) -> list[Prediction]:
    """Multi-label: each image's labels whose probability reaches their threshold, most
    likely first."""
    probs = logits.float().sigmoid().cpu()
    cut = torch.tensor(thresholds) if thresholds else torch.full((len(classes),), 0.5)
    out = []
    for name, p in zip(names, probs, strict=True):
        index = (p >= cut).nonzero().flatten().tolist()
        index.sort(key=lambda i: -float(p[i]))
        out.append(Prediction(name, [(classes[i], float(p[i])) for i in index]))
    return out
