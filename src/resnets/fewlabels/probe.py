"""`resnets probe`: what a backbone is worth when only N images per class are labelled. For
each budget, `draws` sets of N labelled training images per class are drawn (seeded); on each
the backbone's frozen features get a linear probe (logistic regression), and optionally the
backbone is fine-tuned and the same model is trained from scratch, on those labels alone; the
raw pixels get the same logistic regression, as the baseline. All are scored on the test
split, and reported as the mean ± 95 % CI over the draws."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data import load_splits
from ..data.build import eval_loader
from ..devices import resolve_device
from ..errors import UsageError
from ..logs import default_logging
from ..models import load_model
from .classifiers import logistic
from .features import embed, run_options
from .scores import cell, mean_ci

log = logging.getLogger("resnets")

NAMES = {
    "linear": "linear probe (frozen backbone)",
    "finetune": "fine-tuned backbone",
    "scratch": "same model from scratch",
    "pixels": "raw-pixel logistic regression",
}


@dataclass
class ProbeReport:
    data: str
    per_class: tuple[int, ...]
    draws: int
    test_images: int
    results: dict[str, dict[int, dict]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "data": self.data,
            "labels_per_class": list(self.per_class),
            "draws": self.draws,
            "test_images": self.test_images,
            "ci": "95 % over the draws of labelled images: 1.96 x std / sqrt(draws)",
            "accuracy": {
                m: {
                    str(n): {k: r[k] for k in ("mean", "ci95", "accuracies")} for n, r in by.items()
                }
                for m, by in self.results.items()
            },
            "notes": self.notes,
        }

    def table(self) -> str:
        head = f"{'test top-1, labels per class':<34}" + "".join(f"{n:>16}" for n in self.per_class)
        lines = [
            f"few labels on {self.data}: {self.draws} draws of labelled training images per "
            f"budget, scored on {self.test_images} test images",
            head,
        ]
        for method, by in self.results.items():
            cells = "".join(f"{cell(by.get(n)):>16}" for n in self.per_class)
            lines.append(f"{NAMES[method]:<34}{cells}")
        lines.append(f"± is a 95 % confidence interval over the {self.draws} draws")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "probe.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def probe(
    weights: str | Path,
    data: str | None = None,
    per_class: tuple[int, ...] = (1, 5, 14),
    draws: int = 5,
    seed: int = 0,
    train_models: bool = True,
    epochs: int | None = None,
    device: str = "auto",
    out: str | Path | None = None,
) -> ProbeReport:
    """Score `weights` (a run folder or weights file, a pretrained backbone or a classifier)
    with N labels per class, for each N of `per_class`: a linear probe of its features, and
    with `train_models` a fine-tune of it and the same model from scratch (resnets train on
    the N x classes images, `epochs` as train decides them by default), beside raw-pixel
    logistic regression. Writes probe.json to `out` (default: RUN/probe)."""
    default_logging()
    from ..infer.sources import output_folder, resolve_source

    if draws < 1 or not per_class or min(per_class) < 1:
        raise UsageError("--draws and every --labels budget must be at least 1")
    path, run = resolve_source(weights)
    backbone = load_model(path)
    meta = backbone.weights_meta
    dev = resolve_device(device)
    backbone.to(dev)
    opts = run_options(run, data, meta)
    opts.image_size = opts.image_size or meta.input_size
    splits = load_splits(
        opts, seed=0, channels=meta.config.in_chans, normalization=(meta.mean, meta.std)
    )
    train, test = splits.tensors("train"), splits.tensors("test")
    if train is None or test is None or train.labels.ndim != 1:
        raise UsageError(f"{opts.data}: probe needs images with one label each, held in memory")
    features = {}
    for name in ("train", "test"):
        vectors, labels, pixels = embed(backbone, eval_loader(splits, name, 256, dev))
        features[name] = (vectors, labels, pixels)
    report = ProbeReport(opts.data, tuple(per_class), draws, len(test))
    for n in per_class:
        chosen = _draw(train.labels, n, draws, seed, splits.classes)
        _linear(report, n, chosen, features)
        if train_models:
            _trained(report, n, chosen, train, test, meta.model, path, epochs, seed, device)
    report.notes.append(
        "linear probe and pixels: logistic regression (C = 1) on L2-normalized vectors; "
        "the backbone in eval mode"
    )
    report.save(Path(out) if out else output_folder(path, "probe"))
    return report


def _draw(labels: torch.Tensor, n: int, draws: int, seed: int, classes: list[str]):
    """`draws` index sets of `n` training images per class (seeded by seed, n and the draw)."""
    counts = torch.bincount(labels, minlength=len(classes))
    if int(counts.min()) < n:
        c = int(counts.argmin())
        raise UsageError(
            f"class {classes[c]} has {int(counts[c])} training images, fewer than {n} labels"
        )
    out = []
    for d in range(draws):
        rng = np.random.default_rng(np.random.SeedSequence([seed, n, d]))
        picks = [
            rng.choice(np.flatnonzero(labels.numpy() == c), n, replace=False)
            for c in range(len(classes))
        ]
        out.append(torch.from_numpy(np.concatenate(picks)))
    return out


def _linear(report: ProbeReport, n: int, chosen, features) -> None:
    """The linear probe on the features, and on the pixels where they were kept, every draw
    fitted at once."""
    (vectors, labels, pixels), (t_vectors, t_labels, t_pixels) = features["train"], features["test"]
    index = torch.stack(chosen)
    for name, train_v, test_v in (("linear", vectors, t_vectors), ("pixels", pixels, t_pixels)):
        if train_v is None or test_v is None:
            continue
        queries = test_v.expand(len(chosen), -1, -1)
        predicted = logistic(train_v[index], labels[index], queries)
        accs = (predicted == t_labels).double().mean(1).tolist()
        report.results.setdefault(name, {})[n] = mean_ci(accs)


def _trained(report, n, chosen, train, test, model, weights, epochs, seed, device) -> None:
    """resnets train on each draw's labelled images: from the backbone, and from scratch."""
    from ..training import train as train_run

    for name, pretrained in (("finetune", str(weights)), ("scratch", None)):
        accs = []
        for d, index in enumerate(chosen):
            with tempfile.TemporaryDirectory() as folder:
                options = {"epochs": epochs} if epochs else {}
                summary = train_run(
                    data=(train.images[index], train.labels[index]),
                    test_data=(test.images, test.labels),
                    model=model,
                    pretrained=pretrained,
                    val_split=0,
                    seed=seed + d,
                    out=str(Path(folder) / "run"),
                    device=device,
                    progress=False,
                    tensorboard=False,
                    **options,
                )
            accs.append(summary["test_acc1"] / 100)
        report.results.setdefault(name, {})[n] = mean_ci(accs)
