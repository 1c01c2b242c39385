"""`export`: ONNX, TorchScript or safetensors, each checked against the original model.

Graph formats (ONNX, TorchScript) carry the BN-folded model; every format carries the
preprocessing (input size, resize, mean/std, class names) inside the file and in a JSON file
beside it. After writing, the export is loaded back and run (ONNX through ONNX Runtime) on real
images when there are some (the run's test split, or --images), and its logits are compared
with the original eager model's: a parity report is printed and saved, and an export off by
more than the tolerance is deleted and fails the command.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ResnetsError, UsageError
from ..io import atomic_path, atomic_write_json
from ..models import ResNet
from ..models.weights import WeightsMeta, load_model, save_weights
from .backends import OnnxRuntimePredictor, onnx_bytes
from .evaluate import resolve_source
from .optimize import fold_bn
from .predict import expand_images, prepare_images

FORMATS = ("onnx", "torchscript", "safetensors")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}


class ExportError(ResnetsError):
    """The exported model does not reproduce the original's outputs."""


@dataclass
class ParityReport:
    format: str
    path: str
    inputs: str  # what the check ran on
    images: int
    max_abs_diff: float
    top1_agreement: float  # percent
    tolerance: float
    passed: bool
    preprocessing: str  # the sidecar JSON

    def text(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"exported {self.format} to {self.path}\n"
            f"parity on {self.images} {self.inputs}: max |logit difference| "
            f"{self.max_abs_diff:.2e} (tolerance {self.tolerance:g}), top-1 agreement "
            f"{self.top1_agreement:.1f} %: {verdict}\npreprocessing: {self.preprocessing}"
        )


def preprocessing(meta: WeightsMeta) -> dict:
    return {
        "model": meta.model,
        "in_chans": meta.config.in_chans,
        "input_size": meta.input_size,
        "resize_size": meta.resize_size,
        "mean": meta.mean,
        "std": meta.std,
        "classes": meta.classes,
        "input": "float32 NCHW, RGB (or grey) scaled to [0, 1], then (x - mean) / std",
    }


def export(
    source: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    dynamic_batch: bool = False,
    images: list[str | Path] | None = None,
    tolerance: float = 1e-4,
) -> ParityReport:
    """Export weights (a run folder or a weights file) and check the export's outputs."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    weights, run = resolve_source(source)
    model = load_model(weights).eval()
    meta: WeightsMeta = model.weights_meta
    if meta.input_size is None:
        meta.input_size = 32 if model.config.stem == "cifar" else 224
    target = Path(out) if out else _default_path(weights, run, fmt)
    target.parent.mkdir(parents=True, exist_ok=True)
    x, inputs = _check_inputs(model, meta, run, images)
    pre = preprocessing(meta)
    _write(model, meta, fmt, target, x, dynamic_batch, pre)
    sidecar = target.with_name(target.name + ".json")
    atomic_write_json(sidecar, pre)
    exported = _load(fmt, target)
    with torch.no_grad():
        ref = model(x)
        outputs = [torch.cat([exported(x[i : i + 1]) for i in range(len(x))])]  # batch 1
        if dynamic_batch or fmt == "safetensors":
            outputs.append(exported(x))  # and the whole batch at once
    diff = max((o.float() - ref).abs().max().item() for o in outputs)
    agree = min(100.0 * (o.argmax(1) == ref.argmax(1)).float().mean().item() for o in outputs)
    report = ParityReport(
        format=fmt,
        path=str(target),
        inputs=inputs,
        images=len(x),
        max_abs_diff=diff,
        top1_agreement=agree,
        tolerance=tolerance,
        passed=diff <= tolerance and agree == 100.0,
        preprocessing=str(sidecar),
    )
    atomic_write_json(target.with_name(target.name + ".parity.json"), dataclasses.asdict(report))
    if not report.passed:
        target.unlink(missing_ok=True)
        raise ExportError(
            f"the {fmt} export differs from the model (max |logit difference| {diff:.2e} > "
            f"{tolerance:g}, top-1 agreement {agree:.1f} %); removed {target}"
        )
    return report


def _default_path(weights: Path, run: Path | None, fmt: str) -> Path:
    if run is not None:
        return run / "export" / f"model{SUFFIX[fmt]}"
    stem = weights.stem + ("-export" if fmt == "safetensors" else "")
    return weights.with_name(stem + SUFFIX[fmt])


def _check_inputs(
    model: ResNet, meta: WeightsMeta, run: Path | None, images: list | None
) -> tuple[torch.Tensor, str]:
    """Up to 16 real images (given files, else the run's test split), else random inputs."""
    if images:
        x, _, failed = prepare_images(expand_images(images)[:16], meta, model.config.in_chans)
        if x is None:
            raise UsageError(f"none of the --images could be read: {next(iter(failed.values()))}")
        return x, "given images"
    if run is not None:
        from .evaluate import run_split_loader

        loader = run_split_loader(run, meta, model.config.in_chans, "test", batch_size=16)
        x, _ = next(iter(loader))
        return x, f"test-split images of {run}"
    size = meta.input_size
    return torch.randn(8, model.config.in_chans, size, size), "random inputs (no images given)"


def _write(model, meta, fmt, target: Path, x, dynamic_batch: bool, pre: dict) -> None:
    if fmt == "safetensors":
        save_weights(model, target, meta)
        return
    folded = fold_bn(model)
    example = x[:1]
    with atomic_path(target) as tmp:
        if fmt == "onnx":
            import onnx

            proto = onnx.load_from_string(onnx_bytes(folded, example, dynamic_batch))
            entry = proto.metadata_props.add()
            entry.key, entry.value = "resnets", json.dumps(pre)
            tmp.write_bytes(proto.SerializeToString())
        else:
            with warnings.catch_warnings():  # torch 2.14 deprecates TorchScript (FutureWarning)
                warnings.simplefilter("ignore", FutureWarning)
                traced = torch.jit.trace(folded, example, check_trace=False)
                torch.jit.save(traced, str(tmp), _extra_files={"resnets.json": json.dumps(pre)})


def _load(fmt: str, target: Path):
    if fmt == "onnx":
        return OnnxRuntimePredictor(target.read_bytes())
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(target)).eval()
        return lambda x: module(x)
    reloaded = load_model(target).eval()
    return lambda x: reloaded(x)
