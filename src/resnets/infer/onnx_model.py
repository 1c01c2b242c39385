"""An exported .onnx file as predict and evaluate use a model: ONNX Runtime (CPU) runs it, and
the preprocessing `resnets export` stored in it (input size, resize, mean/std, classes, task)
becomes its `WeightsMeta`. Any .onnx with that metadata works (float or INT8); one without it
is refused, since its inputs could not be prepared as in training.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from ..errors import ResnetsError, UsageError, WeightsError
from ..models import MODELS
from ..models.meta import WeightsMeta
from ..models.weights import meta_beside
from .backends import META_KEY, OnnxRuntimePredictor, Predictor

ONNX_BACKENDS = ("eager", "auto", "onnxruntime")  # the ones that mean "run it as it is"


class OnnxModel:
    """An .onnx export with resnets metadata: `meta`, `channels`, `num_classes`, `predictor`."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        try:
            self._run = OnnxRuntimePredictor(self.path.read_bytes(), threads)
        except ResnetsError:
            raise
        except Exception as e:  # not ONNX, truncated, or an operator ONNX Runtime lacks
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise WeightsError(f"ONNX Runtime cannot load {self.path}: {first}") from None
        session = self._run.session
        shape, out = session.get_inputs()[0].shape, session.get_outputs()[0].shape
        stored = _stored_preprocessing(self.path, session.get_modelmeta().custom_metadata_map)
        if stored.get("task") == "detection":
            raise UsageError(
                f"{self.path} is a detector's ONNX export (one image in; boxes, labels and "
                f"scores out, as {self.path.name}.json says), for ONNX Runtime in your own "
                "code; resnets predict and evaluate take the run folder or its best.safetensors"
            )
        self.channels = shape[1] if isinstance(shape[1], int) else int(stored["in_chans"])
        known = out[1] if len(out) > 1 and isinstance(out[1], int) else None
        self.num_classes = known or len(stored.get("classes") or [])
        if not self.num_classes:
            raise WeightsError(
                f"{self.path} says neither in its graph nor its metadata how "
                "many classes it has; export it again with resnets"
            )
        self.meta = _weights_meta(stored, self.channels, self.num_classes, str(self.path))
        if len(out) != (4 if self.meta.task == "segmentation" else 2):  # a task not stored
            raise WeightsError(
                f"{self.path} gives {len(out)}-D outputs, which a {self.meta.task} model does "
                "not; its metadata lacks the task: export it again with this resnets"
            )
        self.batch = shape[0] if isinstance(shape[0], int) else None  # None: any batch size

    def predictor(self) -> Predictor:
        """float32 NCHW -> float32 logits, for any batch size (a graph exported for a fixed
        batch is run that many images at a time, the last group padded)."""
        if self.batch is None:
            return self._run
        run, n = self._run, self.batch

        def call(x: torch.Tensor) -> torch.Tensor:
            outs = []
            for chunk in x.split(n):
                pad = chunk.new_zeros(n - len(chunk), *chunk.shape[1:])
                outs.append(run(torch.cat([chunk, pad]))[: len(chunk)])
            return torch.cat(outs)

        return call


def check_onnx_options(device: str, backend: str) -> torch.device:
    """The device an .onnx runs on (the CPU); other devices and PyTorch backends refused."""
    if backend not in ONNX_BACKENDS:
        raise UsageError(
            f"--backend {backend} optimizes PyTorch weights; an .onnx export runs on ONNX "
            "Runtime: leave --backend out, or give the run folder to use it"
        )
    if device != "auto" and device.split(":")[0] != "cpu":
        raise UsageError(
            f"--device {device}: an .onnx export runs on the CPU (ONNX Runtime); use --device "
            "cpu, or give the run folder to use the GPU"
        )
    return torch.device("cpu")


def _stored_preprocessing(path: Path, props: dict[str, str]) -> dict:
    """The preprocessing in the file's metadata, else in the JSON file export wrote beside it."""
    text = props.get(META_KEY)
    if text is None and meta_beside(path).is_file():
        text = meta_beside(path).read_text()
    if text is None:
        raise UsageError(
            f"{path} has no resnets metadata (input size, mean/std, classes), so its inputs "
            "cannot be prepared; export one with: resnets export RUN --format onnx"
        )
    try:
        stored = json.loads(text)
    except ValueError as e:
        raise WeightsError(f"{path} has unreadable resnets metadata: {e}") from None
    if not isinstance(stored, dict):
        raise WeightsError(f"{path} has unreadable resnets metadata: not a JSON object")
    return stored


def _weights_meta(stored: dict, channels: int, num_classes: int, source: str) -> WeightsMeta:
    """A WeightsMeta from the stored preprocessing: its config is the stored one, else the
    registered model's with the graph's channels and outputs (all inference needs of it)."""
    config = stored.get("config")
    if config is None:
        if stored.get("model") not in MODELS:
            raise WeightsError(
                f"{source} names model {stored.get('model')!r}, which this resnets does not "
                "know, and stores no config; export it again with this resnets"
            )
        base = MODELS[stored["model"]]
        config = base.replace(in_chans=channels, num_classes=num_classes).to_dict()
    names = {f.name for f in dataclasses.fields(WeightsMeta)} - {"config"} | {"format_version"}
    data = {k: v for k, v in stored.items() if k in names} | {"config": config}
    return WeightsMeta.from_json(json.dumps(data), source)
