"""`predict`: top-k classes for image files, prepared exactly as the weights were trained.

Any size, greyscale or RGB: images are decoded to the model's channel count, resized as the
weights' metadata says (shorter side + centre crop, or straight to the input size), and
normalized with the training mean and std.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.augment import normalize
from ..data.imagefolder import IMAGE_EXTENSIONS, decode, eval_transform
from ..devices import resolve_device
from ..errors import DataError, UsageError
from ..models.weights import WeightsMeta, load_model
from .backends import predictor
from .evaluate import resolve_source


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (class, probability), most likely first
    mask: str | None = None  # segmentation: the predicted mask's PNG


@dataclass
class PredictResult:
    predictions: list[Prediction]
    failed: dict[str, str] = field(default_factory=dict)  # path -> why it could not be read

    def table(self) -> str:
        lines = []
        for p in self.predictions:
            best = ", ".join(f"{name} {prob:.1%}" for name, prob in p.top)
            lines.append(f"{p.path}: {best or 'mask ' + str(p.mask)}")
        lines += [f"{path}: unreadable ({why})" for path, why in self.failed.items()]
        return "\n".join(lines)


def expand_images(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders become their image files (recursively, sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.exists():
            files.append(p)
        else:
            raise UsageError(f"{p} does not exist")
    if not files:
        raise UsageError(
            "no images given (folders are searched for " + ", ".join(sorted(IMAGE_EXTENSIONS)) + ")"
        )
    return files


def prepare_images(
    files: list[Path], meta: WeightsMeta, channels: int
) -> tuple[torch.Tensor | None, list[str], dict[str, str]]:
    """Decode, resize and normalize files as the weights were trained.

    Returns (batch or None, the names in the batch, {unreadable file: why})."""
    transform = eval_transform(meta.input_size, meta.resize_size)
    images, names, failed = [], [], {}
    for f in files:
        try:
            images.append(transform(decode(f, channels)))
            names.append(str(f))
        except Exception as e:
            failed[str(f)] = str(e).splitlines()[0] if str(e) else type(e).__name__
    if not images:
        return None, names, failed
    mean, std = torch.tensor(meta.mean), torch.tensor(meta.std)
    return normalize(torch.stack(images), mean, std), names, failed


def _save_masks(
    logits: torch.Tensor, names: list[str], folder: Path, classes: list[str]
) -> list[Prediction]:
    """Each image's predicted mask (at the model's input size) as PNG in `folder`."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    scale = 255 // max(len(classes) - 1, 1)
    out = []
    for name, mask in zip(names, logits.argmax(1).to(torch.uint8).cpu(), strict=True):
        path = folder / (Path(name).stem + ".png")
        Image.fromarray((mask * scale).numpy()).save(path)
        out.append(Prediction(name, [], str(path)))
    return out


def predict(
    weights: str | Path,
    images: Iterable[str | Path],
    topk: int = 5,
    device: str = "auto",
    batch_size: int = 64,
    backend: str = "eager",
    masks_out: str | Path = "masks",
) -> PredictResult:
    """Top-k predictions for each image; unreadable files are reported, not fatal.

    `backend`: see `resnets.infer.backends` (eager, fast, compile, onnxruntime, auto)."""
    path, _ = resolve_source(weights)
    dev = resolve_device(device)
    model = load_model(path).eval()
    meta = model.weights_meta
    if meta.input_size is None or meta.mean is None:
        raise DataError(f"{path} lacks preprocessing metadata (input size, mean, std)")
    classes = meta.classes or [str(i) for i in range(model.config.num_classes)]
    run = predictor(model, dev, backend)
    result = PredictResult([])
    files = expand_images(images)
    k = min(topk, len(classes))
    for start in range(0, len(files), batch_size):
        x, names, failed = prepare_images(
            files[start : start + batch_size], meta, model.config.in_chans
        )
        result.failed |= failed
        if x is None:
            continue
        if meta.extra.get("task") == "segmentation":
            result.predictions += _save_masks(run(x.to(dev)), names, Path(masks_out), classes)
            continue
        probs = run(x.to(dev)).softmax(1)
        top = probs.topk(k, dim=1)
        for name, values, index in zip(
            names, top.values.tolist(), top.indices.tolist(), strict=True
        ):
            result.predictions.append(
                Prediction(name, [(classes[i], v) for i, v in zip(index, values, strict=True)])
            )
    return result
