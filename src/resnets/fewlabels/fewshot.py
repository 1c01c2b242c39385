"""`resnets fewshot`: how well a backbone's features separate classes it never saw, from one
or a few labelled images each. Episodes of N-way K-shot with Q queries per class are drawn
from the novel classes; each classifier (classifiers.py) is fitted on an episode's support
images alone and scored on its queries; the score is the mean accuracy over the episodes
with a 95 % confidence interval over the episodes (1.96 x their standard deviation / sqrt of
their number), as easyfsl and LibFewShot report it. The backbone stays in eval mode."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..devices import resolve_device
from ..errors import UsageError, unknown_name
from ..logs import default_logging
from ..models import ResNet, load_model
from ..models.meta import WeightsMeta
from ..options import EVAL_SPLITS, FEWSHOT_METHODS, SPLITS, split_spec
from .classifiers import Classifier, logistic, nearest_prototype, simpleshot
from .episodes import check_episodes, draw_episodes
from .features import Features, run_options, source_features
from .scores import cell, mean_ci

log = logging.getLogger("resnets")

METHODS = FEWSHOT_METHODS
METHOD_NAMES = {
    "protonet": "nearest prototype (ProtoNet)",
    "simpleshot": "SimpleShot (centred, L2-normalized)",
    "logistic": "logistic regression",
    "pixels": "raw-pixel prototypes (no backbone)",
}


@dataclass
class FewShotReport:
    """Mean accuracy and 95 % CI over the episodes per method and shot; the per-episode
    accuracies go to episodes.csv."""

    data: str
    classes: list[str]  # the novel classes the episodes were drawn from
    base: list[str]  # the classes the backbone was trained on
    way: int
    queries: int
    episodes: int
    seed: int
    results: dict[str, dict[int, dict]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        plain = {
            m: {str(k): {"mean": r["mean"], "ci95": r["ci95"]} for k, r in by.items()}
            for m, by in self.results.items()
        }
        return {
            "data": self.data,
            "classes": self.classes,
            "base_classes": self.base,
            "way": self.way,
            "queries": self.queries,
            "episodes": self.episodes,
            "seed": self.seed,
            "ci": "95 % over episodes: 1.96 x std / sqrt(episodes)",
            "accuracy": plain,
            "notes": self.notes,
        }

    def table(self) -> str:
        shots = sorted({k for by in self.results.values() for k in by})
        head = f"{'method':<38}" + "".join(f"{f'{k}-shot':>16}" for k in shots)
        lines = [
            f"few-shot on {self.data}: {self.way}-way, {self.queries} queries per class, "
            f"{self.episodes} episodes per shot, from {len(self.classes)} classes "
            f"({', '.join(self.classes[:10])}{', ...' if len(self.classes) > 10 else ''})",
            head,
        ]
        for method, by in self.results.items():
            cells = "".join(f"{cell(by.get(k)):>16}" for k in shots)
            lines.append(f"{METHOD_NAMES[method]:<38}{cells}")
        lines.append(f"± is a 95 % confidence interval over the {self.episodes} episodes")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "fewshot.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        with open(folder / "episodes.csv", "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["method", "shot", "episode", "accuracy", "classes"])
            for method, by in self.results.items():
                for shot, r in by.items():
                    for i, (acc, chosen) in enumerate(
                        zip(r["accuracies"], r["drawn"], strict=True)
                    ):
                        names = "|".join(self.classes[c] for c in chosen)
                        out.writerow([method, shot, i, f"{acc:.6f}", names])


def fewshot(
    weights: str | Path,
    data: str | None = None,
    classes: str | list | None = None,
    way: int = 5,
    shot: tuple[int, ...] | int = (1, 5),
    queries: int = 15,
    episodes: int = 1000,
    methods: tuple[str, ...] = METHODS,
    seed: int = 0,
    batch_size: int = 256,
    device: str = "auto",
    out: str | Path | None = None,
    split: str = "all",
) -> FewShotReport:
    """Score `weights` (a run folder or a weights file) on few-shot episodes of novel
    classes: `classes` of `data` (default: the run's own data, less the classes the backbone
    was trained on). `split`: where the episodes' images come from ("all": every split;
    "test": images that a backbone pretrained on the training split never saw). Writes
    fewshot.json and episodes.csv to `out` (default: RUN/fewshot)."""
    default_logging()
    from ..infer.sources import output_folder, resolve_source

    shots = (shot,) if isinstance(shot, int) else tuple(shot)
    _check_numbers(way, shots, queries, episodes, methods)
    path, run = resolve_source(weights)
    backbone = _backbone(path)
    meta = backbone.weights_meta
    dev = resolve_device(device)
    backbone.to(dev)
    if split not in EVAL_SPLITS:
        raise UsageError(f"--split must be one of {', '.join(EVAL_SPLITS)}, got {split!r}")
    chosen_splits = SPLITS if split == "all" else (split,)
    feats, notes = _novel_features(
        backbone, meta, run, data, classes, dev, batch_size, chosen_splits
    )
    check_episodes(feats.labels, feats.classes, way, max(shots) + queries)
    report = FewShotReport(
        data or (run_options(run, None, meta).data),
        feats.classes,
        list(meta.classes or []),
        way,
        queries,
        episodes,
        seed,
        notes=notes,
    )
    chosen = _classifiers(methods, backbone, meta, run, feats, dev, batch_size, report.notes)
    for k in shots:
        drawn = draw_episodes(feats.labels, way, k, queries, episodes, seed)
        for method, (classify, vectors) in chosen.items():
            accs = _accuracies(classify, vectors, drawn)
            report.results.setdefault(method, {})[k] = _summary(accs, drawn)
    report.save(Path(out) if out else output_folder(path, "fewshot") / _data_folder(data))
    return report


def _check_numbers(way: int, shots: tuple[int, ...], queries: int, episodes: int, methods):
    for name, value in (
        ("queries", queries),
        ("episodes", episodes),
        *(("shot", k) for k in shots),
    ):
        if value < 1:
            raise UsageError(f"--{name} must be at least 1, got {value}")
    for m in methods:
        if m not in METHODS:
            raise unknown_name("method", m, METHODS)
    if not methods:
        raise UsageError(f"name at least one method: {', '.join(METHODS)}")


def _backbone(path: Path) -> ResNet:
    model = load_model(path)
    meta: WeightsMeta = model.weights_meta
    if not isinstance(model, ResNet) or meta.task not in ("classification", "multilabel"):
        raise UsageError(
            f"{path} holds {meta.task} weights; few-shot needs a classifier's backbone"
        )
    return model


def _novel_features(backbone, meta, run, data, classes, device, batch_size, splits):
    """The features of the episodes' classes and the notes on how they were chosen: `classes`
    as asked, else every class of the data the weights were not trained on."""
    opts = run_options(run, data, meta)
    notes = []
    base = list(meta.classes or [])
    opts.classes = classes
    feats = source_features(backbone, meta, opts, device, batch_size, splits)
    if splits != SPLITS:
        notes.append(f"episodes from the {splits[0]} split only ({len(feats.labels)} images)")
    if classes is None:
        novel = [i for i, c in enumerate(feats.classes) if c not in base]
        if len(novel) < 2:
            raise UsageError(
                f"{opts.data} has {len(novel)} class(es) that {meta.model} was not trained on; "
                "name the episodes' classes with --classes (or other data with --data)"
            )
        feats = _only(feats, novel)
        notes.append(
            f"classes: the {len(novel)} of {opts.data} the backbone was not trained on "
            f"({', '.join(feats.classes[:10])})"
        )
    seen = [c for c in feats.classes if c in base]
    if seen and meta.config.num_classes == 0:  # resnets pretrain: images seen, labels never
        notes.append(
            f"the backbone was pretrained on unlabelled images of {', '.join(seen[:5])} "
            "(resnets pretrain reads no labels): their labels are novel to it"
            + (
                "; the episodes' images are ones it never saw"
                if splits == ("test",)
                else ", and --split test keeps the episodes to images it never saw"
            )
        )
    elif seen:
        notes.append(
            f"warning: the backbone was trained on {', '.join(seen[:5])}: those classes are "
            "not novel, and the scores overstate few-shot accuracy on unseen classes"
        )
    return feats, notes


def _only(feats: Features, keep: list[int]) -> Features:
    """The features of the classes `keep`, relabelled 0..len(keep)-1."""
    remap = torch.full((len(feats.classes),), -1, dtype=torch.long)
    remap[keep] = torch.arange(len(keep))
    index = (remap[feats.labels] >= 0).nonzero().flatten()
    pixels = None if feats.pixels is None else feats.pixels[index]
    names = [feats.classes[i] for i in keep]
    return Features(feats.vectors[index], remap[feats.labels[index]], names, pixels, feats.notes)


def _classifiers(methods, backbone, meta, run, feats, device, batch_size, notes):
    """Each method's classifier and the vectors it reads."""
    chosen: dict[str, tuple[Classifier, torch.Tensor]] = {}
    for m in methods:
        if m == "protonet":
            chosen[m] = (nearest_prototype, feats.vectors)
        elif m == "logistic":
            chosen[m] = (logistic, feats.vectors)
        elif m == "simpleshot":
            centre = _base_centre(backbone, meta, run, device, batch_size, notes)
            chosen[m] = (simpleshot(centre), feats.vectors)
        elif feats.pixels is None:
            notes.append("raw-pixel prototypes left out: the inputs are too large to keep")
        else:
            chosen[m] = (nearest_prototype, feats.pixels)
    return chosen


def _base_centre(backbone, meta, run, device, batch_size, notes) -> torch.Tensor | None:
    """SimpleShot's centre: the mean feature of the run's own training images (its base
    classes); without the run's data, None (each episode's support mean)."""
    if run is None:
        notes.append("SimpleShot centres on each episode's support mean (no run folder)")
        return None
    opts = run_options(run, None, meta)
    base = source_features(backbone, meta, opts, device, batch_size, splits=("train",))
    notes.append(
        f"SimpleShot centres on the mean feature of the run's {len(base.labels)} training images"
    )
    return base.vectors.mean(0)


def _accuracies(classify: Classifier, vectors: torch.Tensor, drawn, chunk: int = 100):
    """Each episode's query accuracy, the episodes classified `chunk` at a time."""
    accs: list[float] = []
    for start in range(0, len(drawn), chunk):
        part = drawn[start : start + chunk]
        support = torch.stack([e.support for e in part])
        query = torch.stack([e.query for e in part])
        labels = torch.stack([e.support_labels for e in part])
        truth = torch.stack([e.query_labels for e in part])
        predicted = classify(vectors[support], labels, vectors[query])
        accs += (predicted == truth).double().mean(1).tolist()
    return accs


def _summary(accs: list[float], drawn) -> dict:
    """Mean and 95 % CI over the episodes, and the classes each episode drew."""
    return mean_ci(accs) | {"drawn": [e.classes for e in drawn]}


def _data_folder(data: str | None) -> str:
    """The report's subfolder: none for the run's own data, else one named after the data."""
    if data is None:
        return ""
    import re

    name, path = split_spec(data)
    return re.sub(r"[^\w.-]+", "_", f"{name}_{path}" if path else name).strip("_")
