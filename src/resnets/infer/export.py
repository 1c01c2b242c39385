"""`export`: ONNX, TorchScript or safetensors, each checked against the original model.

Graph formats (ONNX, TorchScript) carry the BN-folded model; every format carries the
preprocessing (input size, resize, mean/std, class names) inside the file and in a JSON file
beside it. After writing, the export is loaded back and run (ONNX through ONNX Runtime) on real
images when there are some (the run's test split, or --images), and its logits are compared
with the original eager model's (max |difference|, also relative to the largest |logit|): a
parity report is printed and saved. The export and its sidecars are written and checked in a
temporary folder beside the target and only moved into place when the check passes, so a
failed export leaves an earlier one untouched; an existing target needs `overwrite=True`.
An INT8 ONNX export (`int8=True`, quantize.py) is made from the checked float32 one and judged
by its test-split top-1 instead, since INT8 logits cannot meet a float32 tolerance.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..deprecation import renamed
from ..detection.infer import is_detector
from ..errors import ResnetsError, UsageError
from ..files import atomic_write_json, check_output, publish_with_sidecars, staging
from ..models import ResNet, load_model
from ..models.meta import WeightsMeta
from ..models.weights import save_weights
from ..options import EXPORT_FORMATS as FORMATS
from .backends import OnnxRuntimePredictor, onnx_bytes, with_metadata
from .cases import check_inputs, expand_cases, prepare_cases
from .images import expand_images, prepare_images
from .optimize import fold_bn
from .sources import resolve_source

if TYPE_CHECKING:
    from .quantize import Int8Report

SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}


class ExportError(ResnetsError):
    """The exported model does not reproduce the original's outputs (INT8: its top-1)."""


@dataclass
class ParityReport:
    format: str
    path: str
    inputs: str  # what the check ran on
    images: int
    max_abs_diff: float
    max_rel_diff: float  # max_abs_diff / max |reference logit|
    top1_agreement: float  # percent
    tolerance: float  # on max_rel_diff
    passed: bool
    preprocessing: str  # the sidecar JSON

    def text(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"exported {self.format} to {self.path}\n"
            f"parity on {self.images} {self.inputs}: max |logit difference| "
            f"{self.max_abs_diff:.2e}, relative {self.max_rel_diff:.2e} (tolerance "
            f"{self.tolerance:g}), top-1 agreement {self.top1_agreement:.1f} %: {verdict}\n"
            f"preprocessing: {self.preprocessing}"
        )

    def problem(self) -> str:
        return (
            f"the {self.format} export differs from the model (max |logit difference| "
            f"{self.max_abs_diff:.2e}, relative {self.max_rel_diff:.2e} > {self.tolerance:g}, "
            f"top-1 agreement {self.top1_agreement:.1f} %)"
        )


def logit_parity(ref: torch.Tensor, outputs: Sequence[torch.Tensor]) -> tuple[float, float, float]:
    """(max |difference|, that relative to max |ref|, top-1 agreement in %), worst output.

    The tolerance applies to the relative difference: float32 rounding grows with the logits'
    scale, so an absolute bound fails correct exports of models with large logits."""
    ref = ref.float()
    scale = max(ref.abs().max().item(), torch.finfo(torch.float32).tiny)
    diff = max((o.float() - ref).abs().max().item() for o in outputs)
    agree = min(100.0 * (o.argmax(1) == ref.argmax(1)).float().mean().item() for o in outputs)
    return diff, diff / scale, agree


def preprocessing(meta: WeightsMeta) -> dict:
    return {
        "model": meta.model,
        "in_chans": meta.config.in_chans,
        "input_size": meta.input_size,
        "resize_size": meta.resize_size,
        "mean": meta.mean,
        "std": meta.std,
        "classes": meta.classes,
        "task": meta.task,
        "thresholds": meta.thresholds,
        "item_normalize": meta.item_normalize,
        "config": meta.config.to_dict(),
        "input": "float32 NCHW, RGB (or grey) scaled to [0, 1], then (x - mean) / std",
    } | _reading(meta)


def _reading(meta: WeightsMeta) -> dict:
    """3D weights: what their inputs are and how they were read (see WeightsMeta)."""
    if meta.inputs == "images":
        return {}
    layout = "volumes NCDHW, D slices" if meta.inputs == "volumes" else "clips NCTHW, T frames"
    return {
        "inputs": meta.inputs,
        "input_depth": meta.input_depth,
        "intensity": meta.intensity,
        "spacing": meta.spacing,
        "input": f"float32 {layout}, 8-bit values scaled to [0, 1], then (x - mean) / std",
    }


@renamed(source="weights")
def export(
    weights: str | Path,
    fmt: str = "onnx",
    out: str | Path | None = None,
    dynamic_batch: bool = False,
    images: list[str | Path] | None = None,
    tolerance: float = 1e-4,
    overwrite: bool = False,
    int8: bool = False,
    calibration: int = 300,
    max_drop: float = 1.0,
) -> ParityReport | Int8Report:
    """Export `weights` (a run folder or a weights file) and check the export's outputs.

    `tolerance` bounds the max |logit difference| relative to the largest |logit|. `int8`:
    the ONNX export quantized to INT8 (see quantize.py; default RUN/export/model.int8.onnx),
    calibrated on `calibration` images of the run's training split (or on `images`), and
    refused if its test-split top-1 is more than `max_drop` points below the model's."""
    _check_options(fmt, tolerance)
    if int8:
        _quantize_module().check_int8_options(fmt, calibration, max_drop)
    weights, run = resolve_source(weights)
    if int8 and run is None:
        raise UsageError(f"--int8 checks top-1 on a run's test split; give the run, not {weights}")
    target = Path(out) if out else _default_path(weights, run, fmt, int8)
    _check_target(target, weights, fmt, overwrite)
    if is_detector(weights):
        return _export_detector(weights, fmt, target, images, tolerance, int8)
    model, meta = _model(weights, int8)
    x, inputs = _sample_inputs(model, meta, run, images)
    pre = preprocessing(meta)
    sidecar = target.with_name(target.name + ".json")
    failed = target.with_name(target.name + ".parity-failed.json")
    with staging(target) as stage:
        staged = stage / (f".fp32.{target.name}" if int8 else target.name)
        sample = (x, inputs)
        report = _write_and_check(model, meta, fmt, staged, sample, dynamic_batch, pre, tolerance)
        report.path, report.preprocessing = str(target), str(sidecar)
        if report.passed and int8:
            report = _quantize_module().quantize_export(
                model,
                run,
                staged,
                stage / target.name,
                images,
                calibration,
                max_drop,
                pre,
                fp32_max_rel_diff=report.max_rel_diff,
            )
            report.path, report.preprocessing = str(target), str(sidecar)
            pre = pre | {"quantization": report.quantization}
        if report.passed:
            publish_with_sidecars(stage, target, dataclasses.asdict(report), pre)
            failed.unlink(missing_ok=True)  # a stale report from an earlier failed attempt
            return report
    atomic_write_json(failed, dataclasses.asdict(report))
    kept = f"; the earlier {target.name} is untouched" if target.exists() else ""
    raise ExportError(f"{report.problem()}; not written{kept}; report in {failed}")


def _export_detector(weights: Path, fmt: str, target: Path, images, tolerance: float, int8: bool):
    """A detector's export (detection/export.py): ONNX, float32, with its own parity check."""
    if int8:
        raise UsageError("--int8 quantizes classifiers and segmenters; export a detector in fp32")
    from ..detection.export import export_detector

    return export_detector(weights, fmt, target, images, tolerance)


def _model(weights: Path, int8: bool) -> tuple[nn.Module, WeightsMeta]:
    """The model in eval mode and its metadata, refused where it cannot be exported."""
    model = load_model(weights).eval()
    meta: WeightsMeta = model.weights_meta
    check_inputs(meta, "export")
    if meta.input_size is None:
        meta.input_size = model.config.input_size
    if int8:
        _quantize_module().check_task(meta.task)
    return model, meta


def _write_and_check(
    model, meta, fmt: str, staged: Path, sample, dynamic_batch: bool, pre: dict, tolerance: float
) -> ParityReport:
    """The export written to `staged`, then its outputs on the `sample` (inputs, what they
    are) compared with the model's."""
    x, inputs = sample
    try:
        _write(model, meta, fmt, staged, x, dynamic_batch, pre)
    except OSError as e:
        raise ExportError(f"could not write the {fmt} export: {e.strerror or e}") from None
    return _parity(model, fmt, staged, x, dynamic_batch, inputs, tolerance)


def _parity(model, fmt: str, staged: Path, x, dynamic_batch: bool, inputs: str, tolerance: float):
    """The staged export's logits against the model's, as a ParityReport (path filled later)."""
    batched = dynamic_batch or fmt == "safetensors"
    diff, rel, agree = logit_parity(*_outputs(model, _load(fmt, staged), x, batched))
    return ParityReport(
        format=fmt,
        path="",
        inputs=inputs,
        images=len(x),
        max_abs_diff=diff,
        max_rel_diff=rel,
        top1_agreement=agree,
        tolerance=tolerance,
        passed=rel <= tolerance and agree == 100.0,
        preprocessing="",
    )


def _quantize_module():
    """quantize.py, which needs ONNX Runtime (an optional dependency)."""
    try:
        from . import quantize
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("onnx"):
            raise
        raise UsageError("--int8 needs ONNX Runtime: pip install 'resnets[onnx]'") from None
    return quantize


def _check_options(fmt: str, tolerance: float) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not 0 < tolerance < 1:  # also refuses NaN
        raise UsageError(f"--tolerance is relative and must be in (0, 1), got {tolerance}")


def _check_target(target: Path, weights: Path, fmt: str, overwrite: bool) -> None:
    """The export's path, checked (suffix, not the source, --overwrite) and its folder made."""
    allowed = (".onnx",) if fmt == "onnx" else (".pt", ".pth", ".ts", ".torchscript")
    allowed = (".safetensors",) if fmt == "safetensors" else allowed
    if target.suffix.lower() not in allowed:
        raise UsageError(
            f"a {fmt} export needs a name ending in {' or '.join(allowed)}, got {target.name}"
        )
    check_output(target, weights, overwrite, "pass another --out")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the folder {target.parent}: {e.strerror or e}") from None


def _outputs(
    model: torch.nn.Module, exported, x: torch.Tensor, batched: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The eager model's logits on `x`, and the export's one image at a time (and batched)."""
    with torch.no_grad():
        ref = model(x)
        outputs = [torch.cat([exported(x[i : i + 1]) for i in range(len(x))])]
        if batched:
            outputs.append(exported(x))
    return ref, outputs


def _default_path(weights: Path, run: Path | None, fmt: str, int8: bool = False) -> Path:
    suffix = ".int8.onnx" if int8 else SUFFIX[fmt]
    if run is not None:
        return run / "export" / f"model{suffix}"
    stem = weights.stem + ("-export" if fmt == "safetensors" else "")
    return weights.with_name(stem + suffix)


def _sample_inputs(
    model: ResNet, meta: WeightsMeta, run: Path | None, images: list | None
) -> tuple[torch.Tensor, str]:
    """Up to 16 real images (given files, else the run's test split), else random inputs."""
    if images and meta.inputs != "images":
        files = expand_cases(images, meta.inputs)[:16]
        x, _, failed, _ = prepare_cases(files, meta, model.config.in_chans)
    elif images:
        x, _, failed = prepare_images(expand_images(images)[:16], meta, model.config.in_chans)
        if x is None:
            raise UsageError(f"none of the --images could be read: {next(iter(failed.values()))}")
        return x, "given images"
    if run is not None:
        from .evaluate import run_split_loader

        loader = run_split_loader(run, meta, model.config.in_chans, "test", batch_size=16)
        x, _ = next(iter(loader))
        return x, f"test-split images of {run}"
    extent = model.config.input_extent(meta.input_size, meta.input_depth)
    return torch.randn(8, model.config.in_chans, *extent), "random inputs (no images given)"


def _write(model, meta, fmt, target: Path, x, dynamic_batch: bool, pre: dict) -> None:
    """The export in `fmt`, its preprocessing inside the file (ONNX metadata, TorchScript's
    extra files; safetensors: the weights' own metadata)."""
    if fmt == "safetensors":
        save_weights(model, target, meta)
        return
    folded = fold_bn(model)
    example = x[:1]
    if fmt == "onnx":
        target.write_bytes(with_metadata(onnx_bytes(folded, example, dynamic_batch), pre))
    else:
        with warnings.catch_warnings():  # torch 2.14 deprecates TorchScript (FutureWarning)
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(folded, example, check_trace=False)
            torch.jit.save(traced, str(target), _extra_files={"resnets.json": json.dumps(pre)})


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
