"""`explain`: class activation maps, i.e. where in each image the model found its class.

Images are prepared exactly as `predict` prepares them (the weights' channels, resize, crop
and normalization); each map is computed on the model input (see `saliency.py`) and then
carried back through the same geometry onto the image as it was given: with a resize of the
shorter side and a centre crop, the map covers the cropped region and is 0 outside it (the
model never saw those pixels); with a plain resize, it covers the whole image.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.augment import match_channels
from ..data.decode import decode
from ..data.items import Undo, to_image
from ..devices import resolve_device
from ..errors import DataError, UsageError
from ..models import load_model
from ..models.meta import WeightsMeta
from ..options import EXPLAIN_METHODS
from .cases import check_inputs, expand_cases, prepare_cases
from .images import Input, expand_images, prepare_sized
from .montage import input_pixels, write_montage, write_png
from .saliency import (
    Method,
    gradcam,
    gradcam_plus_plus,
    integrated_gradients,
    resize_maps,
    scorecam,
)
from .sources import mask_paths, require_classifier, resolve_source

BATCH_SIZE = 16


@dataclass
class Explanation:
    path: str  # the file, or "image N" for an image given as a Python object
    map: np.ndarray  # float32 [H, W] in [0, 1] at the image's own size; 1: the most salient
    target: str  # the class explained
    top: list[tuple[str, float]]  # (class, probability), most likely first
    png: str | None = None  # the image, the map over it and the top classes


@dataclass
class ExplainResult:
    method: str
    explanations: list[Explanation]
    failed: dict[str, str] = field(default_factory=dict)  # path -> why it could not be read

    def to_dict(self) -> dict:
        """Everything but the maps themselves (they are in the PNG files and `.map`)."""
        rows = [
            {
                "path": e.path,
                "target": e.target,
                "top": [{"class": c, "prob": p} for c, p in e.top],
                "png": e.png,
            }
            for e in self.explanations
        ]
        return {"method": self.method, "explanations": rows, "failed": self.failed}

    def table(self) -> str:
        lines = []
        for e in self.explanations:
            best = ", ".join(f"{name} {prob:.1%}" for name, prob in e.top)
            where = f" -> {e.png}" if e.png else ""
            flat = (
                "; the map is flat (too small an input for the last stage)"
                if (float(e.map.max() - e.map.min()) < 1e-6)
                else ""
            )
            lines.append(f"{e.path}: {self.method} of {e.target} (top: {best}{flat}){where}")
        lines += [f"{path}: unreadable ({why})" for path, why in self.failed.items()]
        return "\n".join(lines)


def explain(
    weights: str | Path,
    images: Input | Iterable[Input],
    method: str = "gradcam",
    target: int | str | None = None,
    out: str | Path | None = None,
    topk: int = 3,
    device: str = "auto",
) -> ExplainResult:
    """A saliency map per image, for `target` (a class name or index; default each image's
    top-1 class), at the image's own size; unreadable files are reported, not fatal.

    `method`: gradcam, gradcam++, scorecam (one forward pass per channel of the last stage:
    slow for wide nets) or integrated-gradients (from a black image). `out`: a folder that
    receives one PNG per image (the image, the map over it, the top-k classes), named like
    `predict`'s masks: the input's path under the inputs' common folder, plus ".png"."""
    if method not in EXPLAIN_METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of {', '.join(EXPLAIN_METHODS)}")
    if topk < 1:
        raise UsageError(f"topk must be at least 1, got {topk}")
    path, _ = resolve_source(weights)
    dev = resolve_device(device)
    model = require_classifier(load_model(path), path).eval().to(dev).requires_grad_(False)
    meta: WeightsMeta = model.weights_meta
    check_inputs(meta, "explain")
    if meta.task == "segmentation":
        raise UsageError(f"{path} is a segmentation model; explain is for classifiers")
    if meta.input_size is None or meta.mean is None:
        raise DataError(f"{path} lacks preprocessing metadata (input size, mean, std)")
    classes = meta.classes or [str(i) for i in range(model.config.num_classes)]
    wanted = None if target is None else class_index(target, classes)
    three_d = meta.inputs != "images"  # volumes or clips: maps as montages of slices
    files = expand_cases(images, meta.inputs) if three_d else expand_images(images)
    pngs = _png_paths(files, Path(out)) if out is not None else {}
    explainer = _method(method, meta)
    channels = model.config.in_chans
    by_name = {_name(f, i): f for i, f in enumerate(files)}
    result = ExplainResult(method, [])
    for start in range(0, len(files), BATCH_SIZE):
        batch = files[start : start + BATCH_SIZE]
        if three_d:
            x, names, failed, _ = prepare_cases(batch, meta, channels)
            sizes = [None] * len(names)
        else:
            x, names, sizes, failed = prepare_sized(batch, meta, channels, meta.resize_size, start)
        result.failed |= failed
        if x is None:
            continue
        found = _explain_batch(model, x.to(dev), names, sizes, explainer, wanted, topk, classes)
        shown = input_pixels(x, meta.mean, meta.std) if out is not None and three_d else x
        for e, xi in zip(found, shown, strict=True):
            if out is not None:
                f = by_name[e.path]
                pixels = xi if three_d else _pixels(f, e.path, channels, meta)
                label = Path(e.path).name if isinstance(f, Path) else e.path
                e.png = _draw(e, pixels, pngs[e.path], method, meta, label)
            result.explanations.append(e)
    return result


def _draw(
    e: Explanation, pixels: torch.Tensor, path: Path, method: str, meta: WeightsMeta, label: str
) -> str:
    """One explanation's PNG: a 2D map beside its image (`pixels` uint8 [C, H, W]), or a
    volume's or clip's map as slices (`pixels` [C, D, H, W], as prepared; see montage.py)."""
    heading = "top: " + ", ".join(f"{name} {prob:.1%}" for name, prob in e.top)
    title = f"{method}: {e.target}"
    if pixels.ndim == 3:
        return str(write_png(pixels, e.map, path, label=label, title=title, heading=heading))
    volume = pixels if pixels.shape[0] in (1, 3) else pixels[:1]
    unit = "frame" if meta.inputs == "clips" else "slice"
    drawn = write_montage(volume, e.map, path, label=label, title=title, heading=heading, unit=unit)
    return str(drawn)


def _explain_batch(
    model: torch.nn.Module,
    x: torch.Tensor,
    names: list[str],
    sizes: list[tuple[int, int]],
    explainer: Method,
    wanted: int | None,
    topk: int,
    classes: list[str],
    meta: WeightsMeta | None = None,
) -> list[Explanation]:
    """Explanations of a prepared batch; `sizes`: the images' own (height, width); `meta`:
    the geometry that made the inputs (default: the weights')."""
    meta = meta or model.weights_meta
    probs = _probabilities(model, x, model.weights_meta.task)
    chosen = probs.argmax(1) if wanted is None else torch.full_like(probs[:, 0], wanted).long()
    maps = explainer(model, x, chosen).float().cpu()
    top = probs.topk(min(topk, len(classes)), dim=1)
    out = []
    for j, (name, size) in enumerate(zip(names, sizes, strict=True)):
        ranked = zip(top.indices[j].tolist(), top.values[j].tolist(), strict=True)
        cam = to_original(maps[j], size, meta)
        out.append(
            Explanation(name, cam, classes[int(chosen[j])], [(classes[i], p) for i, p in ranked])
        )
    return out


def class_index(target: int | str, classes: list[str]) -> int:
    """A class given by name or by index (a string is read as a name first)."""
    if isinstance(target, str) and target in classes:
        return classes.index(target)
    number = isinstance(target, int | np.integer) or (isinstance(target, str) and target.isdigit())
    if number and 0 <= int(target) < len(classes):
        return int(target)
    shown = ", ".join(classes[:10]) + (
        f", ... ({len(classes)} classes)" if len(classes) > 10 else ""
    )
    raise UsageError(
        f"target {target!r} is not a class of these weights; choose one of {shown}, "
        f"or an index 0-{len(classes) - 1}"
    )


def _method(name: str, meta: WeightsMeta) -> Method:
    if name == "integrated-gradients":
        return partial(integrated_gradients, mean=meta.mean, std=meta.std)
    if name == "scorecam":
        return partial(scorecam, multilabel=meta.task == "multilabel")
    return {"gradcam": gradcam, "gradcam++": gradcam_plus_plus}[name]


@torch.no_grad()
def _probabilities(model: torch.nn.Module, x: torch.Tensor, task: str) -> torch.Tensor:
    logits = model(x).float()
    return logits.sigmoid() if task == "multilabel" else logits.softmax(1)


def resized_size(height: int, width: int, shorter: int) -> tuple[int, int]:
    """The size torchvision's `Resize(shorter)` gives an image (the longer side truncated)."""
    if width <= height:
        return int(shorter * height / width), shorter
    return shorter, int(shorter * width / height)


def _crop_start(length: int, crop: int) -> int:
    """Where torchvision's `CenterCrop` starts along one side (negative: it pads)."""
    return round((length - crop) / 2.0) if length >= crop else -((crop - length) // 2)


def to_original(cam: torch.Tensor, size: tuple[int, int] | None, meta: WeightsMeta) -> np.ndarray:
    """A map [S, S] of the model input, carried back onto the image (size: its height and
    width) through the resize and centre crop that made the input, then scaled to [0, 1].
    A volume's or clip's map (size None) stays at the input's shape, only scaled."""
    if size is None:
        full = cam
    elif meta.resize_size is None:  # straight to S x S: the map stretches back over it all
        full = resize_maps(cam[None, None], size)[0, 0]
    else:
        h, w = size
        rh, rw = resized_size(h, w, meta.resize_size)
        s = cam.shape[-1]
        top, left = _crop_start(rh, s), _crop_start(rw, s)
        y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + s, rh), min(left + s, rw)
        canvas = cam.new_zeros(rh, rw)
        canvas[y0:y1, x0:x1] = cam[y0 - top : y1 - top, x0 - left : x1 - left]
        full = resize_maps(canvas[None, None], size)[0, 0]
    full = torch.nan_to_num(full, nan=0.0).clamp(min=0)
    peak = float(full.max())
    return (full / peak if peak > 0 else full).numpy().astype(np.float32)


def _name(f: Path | Any, i: int) -> str:
    """The name `prepare_sized` gives the i-th input."""
    return str(f) if isinstance(f, Path) else f"image {i}"


def _png_paths(files: list[Path | Any], folder: Path) -> dict[str, Path]:
    """Each input's PNG: as `mask_paths` names masks; images given as objects: image_N.png."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot use {folder} as the folder for the PNG files ({e})") from None
    paths = [f for f in files if isinstance(f, Path)]
    mirrored = mask_paths(paths, folder) if paths else {}
    out = {}
    for i, f in enumerate(files):
        name = _name(f, i)
        out[name] = (
            mirrored[os.path.abspath(f)] if isinstance(f, Path) else folder / f"image_{i}.png"
        )
    return out


def _pixels(f: Path | Any, name: str, channels: int, meta: WeightsMeta) -> torch.Tensor:
    """The image as given, uint8 [C, H, W], decoded as `prepare_sized` decodes it."""
    if isinstance(f, Path):
        return decode(f, channels)
    undo = Undo(*map(tuple, meta.item_normalize)) if meta.item_normalize else None
    return match_channels(to_image(f, name, undo)[None], channels)[0]


def explain_mistakes(
    model: torch.nn.Module,
    loader: Iterable,
    probs: torch.Tensor,
    labels: torch.Tensor,
    classes: list[str],
    k: int,
    folder: Path,
) -> list[dict[str, Any]]:
    """Grad-CAM maps of the K images of `loader` that the model got wrong most confidently
    (`probs`, `labels`: its predictions, in the loader's order), as PNGs in `folder`: where
    users look first. The maps are of the model input, as evaluation prepared it."""
    conf, pred = probs.max(1)
    wrong = (pred != labels).nonzero().flatten()
    chosen = wrong[conf[wrong].argsort(descending=True)][:k].tolist()
    if not chosen:
        return []
    wanted, picked, seen = set(chosen), {}, 0
    for x, _ in loader:  # the loader again, in the same order: only the chosen inputs kept
        picked |= {seen + j: x[j] for j in range(len(x)) if seen + j in wanted}
        seen += len(x)
    x = torch.stack([picked[i] for i in chosen]).contiguous()
    meta: WeightsMeta = model.weights_meta
    shown = input_pixels(x, meta.mean, meta.std)
    names = [f"#{i}: true {classes[int(labels[i])]}" for i in chosen]
    size = [tuple(x.shape[-2:]) if x.ndim == 4 else None] * len(chosen)
    as_input = dataclasses.replace(meta, resize_size=None)  # maps stay at the input's size
    found = _explain_batch(model, x, names, size, gradcam, None, 3, classes, as_input)
    rows = []
    for i, e, image in zip(chosen, found, shown, strict=True):
        path = folder / f"{len(rows) + 1:03d}-image{i}.png"
        if x.ndim == 4:
            image = match_channels(image[None], model.config.in_chans)[0]
        e.png = _draw(e, image, path, "gradcam", meta, e.path)
        rows.append(
            {
                "index": i,
                "true": classes[int(labels[i])],
                "predicted": e.target,
                "confidence": float(conf[i]),
                "png": e.png,
            }
        )
    return rows
