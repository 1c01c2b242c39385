"""`ImageClassifier`: the small object-style API over train / predict / save / load."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import UsageError
from .infer import PredictResult, predict
from .models import ResNet, create_model, load_model
from .models.weights import save_weights
from .training import train


class ImageClassifier:
    """A ResNet classifier you can train, save, load and ask for predictions.

    clf = ImageClassifier(variant="resnet20", num_classes=10, drop_rate=0.2)
    clf.train(data="digits", epochs=5)
    clf.predict(["seven.png"])

    The constructor's options are the model's, and `train` uses every one of them.
    """

    MODEL_OPTIONS = ("in_chans", "drop_rate", "drop_path_rate", "zero_init_residual", "pretrained")

    def __init__(self, variant: str = "resnet18", num_classes: int = 10, **model_options: Any):
        unknown = sorted(set(model_options) - set(self.MODEL_OPTIONS))
        if unknown:
            raise UsageError(
                f"ImageClassifier cannot train with {', '.join(unknown)}; it takes "
                f"{', '.join(self.MODEL_OPTIONS)} (other architectures: resnets.register)"
            )
        self.variant, self.num_classes = variant, num_classes
        self.options = dict(model_options)
        building = {k: v for k, v in model_options.items() if k != "pretrained"}
        self.model: ResNet = create_model(
            variant, num_classes=num_classes, pretrained=model_options.get("pretrained"), **building
        )
        self.weights: Path | None = None
        self.summary: dict[str, Any] | None = None

    def train(self, data: str = "digits", **options: Any) -> dict[str, Any]:
        """Run `resnets.train` with this classifier's model and options (those given here
        win) and keep the selected weights."""
        model_options = {"model": self.variant, "num_classes": self.num_classes, **self.options}
        self.summary = train(**{**model_options, "data": data, **options})
        self.weights = Path(self.summary["run"]) / "best.safetensors"
        self.model = load_model(self.weights)
        return self.summary

    def predict(self, images: Iterable[str | Path], topk: int = 5) -> PredictResult:
        if self.weights is None:
            raise RuntimeError("train() or load() the classifier before predict()")
        return predict(self.weights, images, topk=topk)

    def save(self, path: str | Path) -> Path:
        """Weights and their metadata as one .safetensors file."""
        return save_weights(self.model, path)

    @classmethod
    def load(cls, path: str | Path) -> ImageClassifier:
        model = load_model(path)
        clf = cls.__new__(cls)
        clf.variant, clf.model, clf.weights, clf.summary = model.name, model, Path(path), None
        return clf
