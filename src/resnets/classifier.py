"""`ImageClassifier`: the object-style API over train / evaluate / predict / save / load, as
ResNet tutorials write it:

    clf = ImageClassifier("resnet18", num_classes=10)
    clf.train(train_loader, val_loader, epochs=90)   # or a spec: clf.train("digits")
    label = clf.predict(image)                       # one image -> int; a batch -> list
    clf.save("clf.pth"); clf.load("clf.pth")
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.python import PYTHON, is_spec
from .devices import resolve_device
from .errors import DataError, UsageError, unknown_name
from .infer import evaluate
from .infer.images import expand_images, prepare_images
from .models import create_model, load_model
from .models.weights import save_weights
from .training import TrainConfig, train

# names other libraries use for resnets' options
ALIASES = {
    "learning_rate": "lr",
    "num_epochs": "epochs",
    "max_epochs": "epochs",
    "batch": "batch_size",
    "arch": "variant",
    "model": "variant",
    "in_channels": "in_chans",
}


class _ClassOrInstance:
    """A method that binds to the instance when there is one, else to the class, so that
    both `ImageClassifier.load(path)` and `clf.load(path)` work."""

    def __init__(self, method):
        self.method = method

    def __get__(self, obj, cls):
        bound = obj if obj is not None else cls
        return lambda *args, **kwargs: self.method(bound, *args, **kwargs)


class ImageClassifier:
    """A ResNet classifier you can train, evaluate, save, load and ask for predictions.

    Every option given to the constructor is used: the model's (`in_chans`, `drop_rate`,
    `pretrained`, ...) build it, the others (`lr`, `batch_size`, `device`, any `resnets
    train` option) are `train`'s defaults. Predictions run on `device` (CUDA when present).
    """

    MODEL_OPTIONS = ("in_chans", "drop_rate", "drop_path_rate", "zero_init_residual", "pretrained")

    def __init__(
        self,
        model: str | None = None,
        num_classes: int = 10,
        *,
        variant: str | None = None,
        **options: Any,
    ):
        """`model`: a registered model's name (default resnet18); `variant=` is the same
        argument under the name tutorials use."""
        if model is not None and variant is not None and model != variant:
            raise UsageError(f"model={model!r} and variant={variant!r} name two models; give one")
        variant = model or variant or "resnet18"
        known = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "data"}
        unknown = sorted(set(options) - known)
        if unknown and unknown[0] in ALIASES:
            name = unknown[0]
            raise UsageError(
                f"unknown ImageClassifier option {name!r}; did you mean {ALIASES[name]}?"
            )
        if unknown:
            raise unknown_name("ImageClassifier option", unknown[0], known)
        self.variant, self.num_classes = variant, num_classes
        self.options = dict(options)
        building = {k: v for k, v in options.items() if k in self.MODEL_OPTIONS[:-1]}
        self.model: torch.nn.Module = create_model(
            variant, num_classes=num_classes, pretrained=options.get("pretrained"), **building
        )
        self.weights: Path | None = None
        self.summary: dict[str, Any] | None = None
        self._device = resolve_device(options.get("device", "auto"))

    def train(self, data: Any = "digits", val: Any = None, test: Any = None, **options: Any):
        """Train on `data` (a spec, or Python objects: a Dataset, DataLoader, arrays (x, y),
        a list of (path, label), a DataFrame), selecting on `val` (carved from `data` when
        not given) and scoring once on `test` (likewise). Options given here win over the
        constructor's. Returns the run summary; the selected weights become this model."""
        if is_spec(data) and (val is not None or test is not None):
            raise UsageError("val and test go with Python data; a spec carves its own splits")
        for name, part in (("val", val), ("test", test)):
            if part is not None and is_spec(part):
                raise UsageError(f"{name}= takes Python data like train's, not the spec {part!r}")
        given = {"model": self.variant, "num_classes": self.num_classes, **self.options}
        given |= options | {"data": data}
        if not is_spec(data):
            given |= {"val_data": val, "test_data": test}
        self.summary = train(**given)
        self.weights = Path(self.summary["run"]) / "best.safetensors"
        self.model = load_model(self.weights)
        return self.summary

    def predict_proba(self, images: Any) -> np.ndarray:
        """Class probabilities: [C] for one image (a path, PIL image, CHW tensor or HWC
        array), [N, C] for several (a list, a folder, an N-image tensor or array)."""
        x = self._inputs(images)
        model = self.model.eval().to(self._device)
        with torch.inference_mode():
            logits = model(x.to(self._device)).float()
        probs = (logits.sigmoid() if self._multilabel else logits.softmax(1)).cpu().numpy()
        return probs[0] if _single(images) else probs

    def predict(self, images: Any) -> int | list[int] | list[list[int]]:
        """The most likely class index: an int for one image, a list for several. Multi-label:
        the indices of the labels above their thresholds (a list per image)."""
        probs = self.predict_proba(images)
        if self._multilabel:
            cut = np.asarray(self.model.weights_meta.thresholds or [0.5] * probs.shape[-1])
            above = [np.flatnonzero(p >= cut).tolist() for p in np.atleast_2d(probs)]
            return above[0] if probs.ndim == 1 else above
        return int(probs.argmax()) if probs.ndim == 1 else probs.argmax(1).tolist()

    @property
    def _multilabel(self) -> bool:
        meta = getattr(self.model, "weights_meta", None)
        return meta is not None and meta.task == "multilabel"

    @property
    def classes(self) -> list[str]:
        meta = getattr(self.model, "weights_meta", None)
        return (meta and meta.classes) or [str(i) for i in range(self.num_classes)]

    def evaluate(self, data: Any = None, **options: Any):
        """Score the trained weights: on `data` (a spec's held-out split or Python objects,
        all of them), or on the run's own test split."""
        if self.weights is None:
            raise RuntimeError("train() or load() the classifier before evaluate()")
        if data is None and self.summary and self.summary["data"] == PYTHON:
            score = self.summary.get("test_acc1")
            raise UsageError(
                f"the test split carved from the Python data was scored once (summary "
                f"test_acc1: {score}); give data to score: clf.evaluate(test_loader)"
            )
        source = self.weights.parent if data is None else self.weights
        return evaluate(source, data=data, **options)

    def save(self, path: str | Path) -> Path:
        """`.safetensors`: weights and metadata in one file; any other name (`.pt`, `.pth`):
        a plain state_dict (`torch.load(path, weights_only=True)` reads it) with the metadata
        beside it in `PATH.json`."""
        return save_weights(self.model, path)

    @_ClassOrInstance
    def load(target, path: str | Path) -> ImageClassifier:
        """Weights written by `save` (or a run's best.safetensors). On the class it returns a
        new classifier; on an instance it replaces that one's model and returns it."""
        model = load_model(path)
        clf = target.__new__(target) if isinstance(target, type) else target
        if isinstance(target, type):
            clf.options, clf.summary, clf._device = {}, None, resolve_device("auto")
        clf.variant, clf.model, clf.weights = model.name, model, Path(path)
        clf.num_classes = model.config.num_classes
        return clf

    def _inputs(self, images: Any) -> torch.Tensor:
        meta = getattr(self.model, "weights_meta", None)
        if meta is None or meta.mean is None:
            raise RuntimeError("train() or load() the classifier before predict()")
        x, _, failed = prepare_images(expand_images(images), meta, self.model.config.in_chans)
        if failed:
            name, why = next(iter(failed.items()))
            raise DataError(why if why.startswith(name) else f"{name}: {why}")
        return x


def _single(images: Any) -> bool:
    from .data.items import is_image

    if is_image(images):
        return True
    return isinstance(images, str | Path) and not Path(images).is_dir()
