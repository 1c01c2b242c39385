"""`WeightsMeta`: what travels with weights so they can be used without the run that made
them (the architecture, the task and its classes, how inputs were read and prepared), and its
JSON form in a safetensors file's metadata or a `.json` file beside other weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ..errors import WeightsError
from ..options import TASKS
from .config import ResNetConfig

FORMAT_VERSION = 1
LATER_FIELDS = {
    "inputs": "images",
    "input_depth": None,
    "intensity": None,
    "spacing": None,
    "volume_index": None,
    "detector": None,
}

INPUTS = ("images", "volumes", "clips")


@dataclass
class WeightsMeta:
    """What is needed to use weights: the architecture and how inputs were prepared."""

    model: str
    config: ResNetConfig
    classes: list[str] | None = None
    input_size: int | None = None
    resize_size: int | None = None  # shorter side before the center crop; None: resize only
    mean: list[float] | None = None
    std: list[float] | None = None
    task: str = "classification"  # one of TASKS: what the outputs mean
    # [mean, std] of a Normalize the Python training items had, taken back before training;
    # float tensors given to predict are read the same way (data/items.py)
    item_normalize: list[list[float]] | None = None
    # chosen on validation: multilabel, one per label; two classes, one on output 1
    thresholds: list[float] | None = None
    # 3D: "volumes" or "clips", their depth (slices or frames), and how a volume's values
    # became 0..255: "raw" (given so), "auto" (a DICOM series' CT window 40/400, else a
    # z-score per volume) or "window C,W" (data/volumes/folder.py)
    inputs: str = "images"
    input_depth: int | None = None
    intensity: str | None = None
    spacing: list[float] | None = None  # volumes: the --spacing (mm, depth-height-width)
    volume_index: int | None = None  # 4D files: which volume was read (--volume-index)
    # detection: the head, its anchors, the input size (longer side), the classes' ids in
    # COCO results and the score threshold (detection/models.py)
    detector: dict | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise WeightsError(f"unknown task {self.task!r} in weights metadata; known: {TASKS}")
        if self.inputs not in INPUTS:
            raise WeightsError(
                f"unknown inputs {self.inputs!r} in weights metadata; known: {INPUTS}"
            )

    def to_json(self) -> str:
        data = asdict(self) | {"config": self.config.to_dict(), "format_version": FORMAT_VERSION}
        for name, default in LATER_FIELDS.items():  # weights stay readable by older
            if data[name] == default:  # versions, which know none of these fields
                del data[name]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str, source: str = "weights") -> WeightsMeta:
        try:
            data = json.loads(text)
            version = data.pop("format_version", FORMAT_VERSION)
            if version > FORMAT_VERSION:
                raise WeightsError(
                    f"{source} was written by a newer resnets (format {version}, this one reads "
                    f"{FORMAT_VERSION}); upgrade resnets"
                )
            data["config"] = ResNetConfig.from_dict(data["config"])
            data.setdefault("task", data.pop("extra", {}).get("task", "classification"))
            return cls(**data)
        except (ValueError, KeyError, TypeError) as e:
            raise WeightsError(f"{source} has unreadable resnets metadata: {e}") from None
