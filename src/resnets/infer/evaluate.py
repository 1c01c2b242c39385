"""`evaluate`: accuracy, per-class precision/recall/F1/ROC-AUC, calibration and a confusion
matrix for weights (the report itself: report.py).

The weights are a run folder (its best weights and its data options, so the split is the one
the run held out) or a weights file or .onnx export with resnets metadata: one of the run's
(best.safetensors, export/*.onnx) needs no `data` spec, any other does. Inputs are prepared
exactly as in training: the weights' input size and normalization.
"""

from __future__ import annotations

import dataclasses
import logging
import unicodedata
from pathlib import Path
from typing import Any

import torch
import yaml

from ..data import DataOptions, load_splits
from ..data.build import eval_loader
from ..data.items import Undo, class_indices
from ..data.loaders import InMemoryEvalLoader
from ..data.python import PYTHON, is_spec, read_items, to_tensors
from ..deprecation import renamed
from ..errors import UsageError
from ..logs import default_logging
from ..metrics import SegmentationMeter
from ..models.meta import WeightsMeta
from ..options import EVAL_SPLITS, SPLITS, absolute_data
from ..tasks import get_task
from .backends import Predictor
from .explain import explain_mistakes
from .multilabel import MultiLabelReport, evaluate_labels
from .report import EvalReport, SegmentationReport, classification_report, write_report
from .sources import Loaded, open_source, report_folder, resolve_source
from .unseen import held_out, leave_out_trained

log = logging.getLogger("resnets")


def _evaluate_masks(
    infer: Predictor, loader, split: str, classes: int, remap: torch.Tensor
) -> SegmentationReport:
    meter = SegmentationMeter(torch.device("cpu"), classes)
    count, unit = 0, "images"
    for x, y in loader:
        logits = infer(x).cpu()
        meter.update(torch.zeros(()), logits, remap[y.cpu()])
        count, unit = count + len(y), "images" if x.ndim == 4 else "volumes"
    r = meter.read()
    return SegmentationReport(split, count, r["dice"], r["iou"], r["pixel_acc"], unit)


@renamed(source="weights")
def evaluate(
    weights: str | Path,
    data: str | Any = None,
    split: str | None = None,
    tta_flip: bool = False,
    batch_size: int = 256,
    device: str = "auto",
    out: str | Path | None = None,
    backend: str = "eager",
    allow_changed_data: bool = False,
    explain: int = 0,
) -> EvalReport | MultiLabelReport | SegmentationReport:
    """Evaluate weights on a split; writes eval-SPLIT.json, the confusion matrix and the
    reliability diagram (PNGs) to `out`.

    `weights`: a run folder, a weights file or an .onnx export (as for predict and export).

    `data`: a spec (its held-out `split`; "all": every image of train, val and test), or
    Python objects (see data/python.py; the items the run trained or selected on are left out,
    and said so), whose report goes to `out` or the run's eval/python/. A report on other data
    than the run's own goes to a subfolder of the run's eval/ named after the data, never over
    the run's own report. `explain`: maps of
    the K images the model got wrong most confidently (single-label classification), in
    mistakes-SPLIT/ beside the report."""
    default_logging()  # from Python too, the notes (items left out) are printed
    from ..detection.infer import evaluate_detector, is_detector

    if isinstance(data, str | type(None)) and is_detector(weights):
        return evaluate_detector(weights, data, split, out, device, min(batch_size, 16))
    asked, split = split is not None, split or default_split(weights, data)
    if split not in EVAL_SPLITS:
        raise UsageError(f"split must be one of {', '.join(EVAL_SPLITS)}, got {split!r}")
    loaded = open_source(weights, device, backend, batch=min(batch_size, 16))
    if explain and loaded.model is None:
        raise UsageError("--explain needs gradients, which an .onnx lacks: give the run folder")
    loader, split, data = _loader(loaded, data, split, batch_size, allow_changed_data, asked)
    meta, task, classes = loaded.meta, get_task(loaded.meta.task), loaded.classes
    remap = class_map(loader.classes, classes, meta.classes is not None)
    folder = report_folder(out, loaded.run, loaded.path, data)
    if task.masks:
        found = _evaluate_masks(loaded.infer, loader, split, len(classes), remap)
    elif task.multilabel:
        found = evaluate_labels(loaded.infer, loader, split, remap, meta.thresholds, tta_flip)
    else:
        return _evaluate_classes(loaded, loader, split, remap, tta_flip, explain, folder)
    found.save(folder)
    return found


def _loader(
    loaded: Loaded, data: Any, split: str, batch_size: int, allow_changed_data: bool, asked: bool
):
    """(loader, split, data) for a spec's split or for Python objects, checked against the
    weights' task."""
    meta, channels, run, dev = loaded.meta, loaded.channels, loaded.run, loaded.device
    if is_spec(data):
        loader = run_split_loader(
            run, meta, channels, split, batch_size, data, dev, allow_changed_data, asked
        )
    else:
        loader, split, data = objects_loader(data, meta, channels, batch_size, dev, run)
    task = get_task(meta.task)
    if task.masks != loader.masks:
        need = "segmentation data (shapes or segfolder:PATH)" if task.masks else "class labels"
        raise UsageError(f"{meta.task} weights need {need}; {loader.data} does not fit")
    return loader, split, data


def _evaluate_classes(
    loaded: Loaded, loader, split: str, remap, tta_flip: bool, explain: int, folder: Path
) -> EvalReport:
    """Single-label classification: the report, with the most confident mistakes' maps."""
    logits, labels = _predict_all(loaded.infer, loader, tta_flip)
    if labels.ndim != 1:
        raise UsageError("the data has several labels per image; these weights give one class")
    labels = remap[labels]
    classes = loaded.classes
    report = classification_report(logits, labels, classes, split, tta_flip, loaded.meta.thresholds)
    report.skipped = getattr(loader, "skipped", 0)
    report.left_out = getattr(loader, "left_out", 0)
    if explain:
        where = folder / f"mistakes-{split}"
        report.mistakes = explain_mistakes(
            loaded.model, loader, logits, labels, classes, explain, where
        )
    return write_report(report, folder)


def default_split(source: str | Path, data: Any) -> str:
    """The run's own data: its held-out test split. Other data (`--data OTHER`): every image
    of it ("all"), as a user scoring an outside test set expects."""
    if not is_spec(data) or data is None:
        return "test"
    run = resolve_source(source)[1]
    saved = yaml.safe_load((run / "config.yaml").read_text()) if run is not None else {}
    own = isinstance(saved, dict) and saved.get("data") == absolute_data(data)
    return "test" if own else "all"


def class_map(data: list[str], weights: list[str], named: bool) -> torch.Tensor:
    """Data label -> weights' output index, matched by class name; unknown names refused."""
    if not named:  # weights without class names: positions are all there is
        if len(data) > len(weights):
            raise UsageError(
                f"the data has {len(data)} classes but the weights only {len(weights)} outputs"
            )
        return torch.arange(len(data))
    data, weights = [_nfc(c) for c in data], [_nfc(c) for c in weights]
    unknown = [c for c in data if c not in weights]
    if unknown:
        shown = ", ".join(weights[:20]) + (", ..." if len(weights) > 20 else "")
        raise UsageError(
            f"the data has classes the weights do not know: {', '.join(unknown[:5])}"
            f"{', ...' if len(unknown) > 5 else ''}; the weights know: {shown}"
        )
    return torch.tensor([weights.index(c) for c in data], dtype=torch.long)


def _nfc(name: str) -> str:
    """macOS writes folder names decomposed (NFD): 'twó' must equal 'twó'."""
    return unicodedata.normalize("NFC", name)


def run_split_loader(
    run: Path | None,
    meta: WeightsMeta,
    channels: int,
    split: str,
    batch_size: int,
    data: str | None = None,
    device: torch.device | None = None,
    allow_changed_data: bool = False,
    asked: bool = False,
):
    """Batches of a split prepared as in training: the run's own held-out split by default
    (refused if the run's data changed, unless `allow_changed_data`), normalized with the
    weights' mean and std; "all": the splits one after another. The loader's `classes` names
    the labels."""
    opts = _data_options(meta, run, data)
    # the size the weights were trained at, and their own mean and std (ImageNet's if none)
    opts.image_size = opts.image_size or meta.input_size
    opts.normalize, opts.allow_changed_data = "imagenet", allow_changed_data
    own_split = run if run is not None and data is None else None
    names = SPLITS if split == "all" else (split,)
    own = (meta.mean, meta.std) if meta.mean and meta.std else None
    splits = load_splits(
        opts, seed=0, channels=channels, run=own_split, decode=names, normalization=own
    )
    left_out = 0
    if data is not None and run is not None:
        left_out = leave_out_trained(splits, names, run, opts.data, asked)
    parts = [eval_loader(splits, s, batch_size, device or torch.device("cpu")) for s in names]
    if not any(parts):
        raise UsageError(f"{opts.data} has no {split} split here (validation disabled?)")
    loader = parts[0] if split != "all" else Chain([p for p in parts if p is not None])
    loader.classes, loader.data, loader.left_out = splits.classes, opts.data, left_out
    tensors = next((splits.tensors(s) for s in names if splits.tensors(s) is not None), None)
    loader.masks = bool(tensors is not None and tensors.labels.ndim >= 3)
    return loader


class Chain:
    """Loaders read one after another, as one (evaluate --split all)."""

    def __init__(self, loaders: list) -> None:
        self.loaders = loaders

    def __iter__(self):
        for loader in self.loaders:
            yield from loader

    def __len__(self) -> int:
        return sum(len(loader) for loader in self.loaders)

    @property
    def skipped(self) -> int:
        return sum(getattr(loader, "skipped", 0) for loader in self.loaders)


def objects_loader(
    data: Any, meta: WeightsMeta, channels: int, batch_size: int, device, run: Path | None
):
    """Every item of Python objects, prepared as the weights were trained, less the items
    `run` trained or validated on (see `held_out`): (loader, the report's split name, the name
    of its folder)."""
    undo = Undo(*map(tuple, meta.item_normalize)) if meta.item_normalize else None
    images, raw, items = read_items(data, "evaluation data", channels, undo)
    known = meta.classes or [str(i) for i in range(meta.config.num_classes)]
    if items.classes is None and all(isinstance(v, int) for v in raw):
        items.classes = known  # numbered labels are the weights' outputs
    labels, classes, _ = class_indices(raw, items.classes, None, "evaluation data")
    tensors = to_tensors(images, labels, classes, meta.input_size, channels, meta.resize_size)
    tensors, split, left_out = held_out(tensors, run)
    mean, std = torch.tensor(meta.mean), torch.tensor(meta.std)
    loader = InMemoryEvalLoader(tensors, batch_size, device, mean, std)
    loader.classes, loader.data, loader.masks = classes, PYTHON, False
    loader.left_out = left_out
    return loader, split, PYTHON


def _data_options(meta: WeightsMeta, run: Path | None, data: str | None) -> DataOptions:
    """The run's own data options (same held-out split), else `data` at the weights' size."""
    names = {f.name for f in dataclasses.fields(DataOptions)}
    if run is not None and (run / "config.yaml").is_file():
        saved = yaml.safe_load((run / "config.yaml").read_text()) or {}
        opts = DataOptions(**{k: v for k, v in saved.items() if k in names})
        if data is not None:
            opts.data = data
        return opts
    if data is None:
        raise UsageError("weights without a run folder need --data (e.g. --data cifar10:PATH)")
    return DataOptions(data=data, image_size=meta.input_size, eval_resize=meta.resize_size)


def _predict_all(infer: Predictor, loader, tta_flip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    outs, labels = [], []
    for x, y in loader:
        probs = infer(x).softmax(1)
        if tta_flip:
            probs = (probs + infer(x.flip(3)).softmax(1)) / 2
        outs.append(probs.cpu())
        labels.append(y.cpu())
    return torch.cat(outs), torch.cat(labels)
