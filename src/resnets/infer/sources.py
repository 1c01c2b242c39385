"""Where a model comes from: a run folder, a weights file or an .onnx export (either may belong
to a run), and the one way predict and evaluate open it, ready to run."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data.decode import IMAGE_EXTENSIONS
from ..devices import resolve_device
from ..errors import UsageError
from ..models import ResNet, load_model
from ..models.meta import WeightsMeta
from .backends import Predictor, predictor
from .onnx_model import OnnxModel, check_onnx_options


def resolve_source(source: str | Path) -> tuple[Path, Path | None]:
    """(weights or .onnx file, run folder or None) for a run folder or a file."""
    path = Path(source)
    if path.is_dir():
        weights = path / "best.safetensors"
        if not weights.is_file():
            raise UsageError(f"{path} is not a finished run: it has no best.safetensors")
        return weights, path
    if not path.is_file():
        raise UsageError(f"{path} is neither a run folder nor a weights file")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise UsageError(
            f"{path} is an image, not weights: give the run folder or weights file first, then "
            "the images"
        )
    run = path.parent
    if path.name == "best.safetensors" and (run / "config.yaml").is_file():
        return path, run  # a run's own weights: its data and eval folder go with them
    run = run.parent
    if is_onnx(path) and path.parent.name == "export" and (run / "config.yaml").is_file():
        return path, run  # RUN/export/*.onnx: an export of the run's weights
    return path, None


def output_folder(source: str | Path, name: str) -> Path:
    """Where a command's files go by default: RUN/NAME for a run (or a file of one), else
    WEIGHTS-NAME beside the weights file; never the current folder."""
    weights, run = resolve_source(source)
    return run / name if run is not None else weights.with_name(f"{weights.stem}-{name}")


def report_folder(out, run: Path | None, weights: Path, data: str | None) -> Path:
    """`out`, else the run's eval/ (an export's report in eval/EXPORT-NAME/, and a subfolder
    named after other data: never over the run's own report), else WEIGHTS-NAME-eval/ beside
    the weights file: never the current folder."""
    folder = Path(out) if out else output_folder(weights, "eval")
    if run is not None and not out and is_onnx(weights):
        folder = folder / weights.name
    if data is not None and run is not None and not out:
        folder = folder / re.sub(r"[^\w.-]+", "_", data).strip("_")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def mask_paths(
    files: list[Path], folder: Path, rename: Callable[[str], str] = lambda rel: rel + ".png"
) -> dict[str, Path]:
    """Where each input's mask goes: its path relative to the inputs' common folder, mirrored
    under `folder`, with ".png" added to the whole name (`a/x.png`, `b/x.jpg` ->
    `folder/a/x.png.png`, `folder/b/x.jpg.png`), so that two inputs never share a mask
    (`rename`: another rule for the relative path)."""
    absolute = [os.path.abspath(f) for f in files]
    root = os.path.commonpath([os.path.dirname(a) for a in absolute])
    return {a: folder / rename(os.path.relpath(a, root)) for a in absolute}


def is_onnx(path: Path) -> bool:
    return path.suffix.lower() == ".onnx"


@dataclass
class Loaded:
    """A source opened for inference: what it is, what it takes and gives, how to run it."""

    path: Path  # the weights or .onnx file
    run: Path | None  # the run folder it belongs to
    meta: WeightsMeta
    channels: int  # input channels
    classes: list[str]  # the outputs' names (numbers where the metadata has none)
    infer: Predictor  # float32 NCHW on `device` -> float32 logits
    device: torch.device
    model: nn.Module | None  # the PyTorch model; None for an .onnx (no gradients: no explain)


def require_classifier(model: nn.Module, path: Path) -> nn.Module:
    """`model`, unless it has no outputs to score: a pretrained backbone (resnets pretrain)
    gives features, not classes."""
    if isinstance(model, ResNet) and model.config.num_classes == 0:
        raise UsageError(
            f"{path} is a backbone without a classifier (resnets pretrain): fine-tune it, "
            f"resnets train --pretrained {path} --data ..., or score its features, resnets "
            f"fewshot {path} --data ..."
        )
    return model


def open_source(
    source: str | Path, device: str = "auto", backend: str = "eager", batch: int = 1
) -> Loaded:
    """A run folder, weights file or .onnx export, ready to run on `device` with `backend`
    (see `resnets.infer.backends`; an .onnx runs on ONNX Runtime on the CPU) on batches of
    about `batch` images."""
    path, run = resolve_source(source)
    if is_onnx(path):
        dev = check_onnx_options(device, backend)
        onnx = OnnxModel(path)
        meta, channels, outputs = onnx.meta, onnx.channels, onnx.num_classes
        infer, model = onnx.predictor(), None
    else:
        dev = resolve_device(device)
        model = require_classifier(load_model(path).eval(), path)
        meta, channels, outputs = (
            model.weights_meta,
            model.config.in_chans,
            model.config.num_classes,
        )
        infer = predictor(model, dev, backend, batch)
    classes = meta.classes or [str(i) for i in range(outputs)]
    return Loaded(path, run, meta, channels, classes, infer, dev, model)
