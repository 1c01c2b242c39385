"""INT8 post-training quantization for CPU inference, by ONNX Runtime's own tooling.

A BN-folded float32 ONNX export is pre-processed (`quant_pre_process`: shape inference and
graph optimization), then quantized statically (`quantize_static`): QDQ format, int8 weights
per output channel, uint8 activations whose ranges come from calibration images (MinMax).
The classifier's logits stay float32: quantized to uint8 they would take 256 values at most,
and tie top-1 classes.
On an x86-64 CPU without VNNI, ONNX Runtime multiplies uint8 by int8 with an instruction
(VPMADDUBSW) that can saturate, so weights then use 7 bits (`reduce_range`); the choice is made
for the CPU the export runs on. The check is the test split's top-1, INT8 against the model:
INT8 logits differ from float32 ones by design, so no logit tolerance applies to them.
"""

from __future__ import annotations

import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from ..errors import UsageError
from ..models import ResNet
from ..models.meta import WeightsMeta
from ..precision import cpu_features
from ..tasks import get_task
from .backends import OnnxRuntimePredictor, with_metadata
from .evaluate import run_split_loader
from .images import expand_images, prepare_images

X86 = {"x86_64", "amd64", "i386", "i686"}
CALIBRATION_BATCH = 32  # images per calibration run where the graph takes any batch size
LOADER_BATCH = 256


@dataclass
class Int8Report:
    format: str
    path: str
    calibrated_on: str  # what the activation ranges were measured on
    calibration_images: int
    quantization: dict  # the settings, as stored in the file (reduce_range, and why)
    test_images: int
    fp32_top1: float  # percent, the eager float32 model
    int8_top1: float  # percent, the INT8 ONNX in ONNX Runtime
    drop: float  # points: fp32_top1 - int8_top1
    top1_agreement: float  # percent of test images where INT8 and fp32 agree
    max_drop: float
    fp32_max_rel_diff: float  # the float32 ONNX it was made from, against the model
    passed: bool
    preprocessing: str  # the sidecar JSON

    def text(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        q = self.quantization
        weights = "7-bit (reduce_range)" if q["reduce_range"] else "8-bit"
        return (
            f"exported onnx INT8 (QDQ: int8 weights per channel, uint8 activations) to "
            f"{self.path}\n"
            f"calibrated on {self.calibration_images} {self.calibrated_on}; {weights} weights "
            f"({q['cpu']})\n"
            f"test split, {self.test_images} images: top-1 fp32 {self.fp32_top1:.2f} %, INT8 "
            f"{self.int8_top1:.2f} % (drop {self.drop:.2f} points, max {self.max_drop:g}), "
            f"agreement {self.top1_agreement:.1f} %: {verdict}\n"
            f"the logit tolerance does not apply to INT8 (its logits differ by design); the "
            f"float32 graph it came from matched the model (relative {self.fp32_max_rel_diff:.2e})"
            f"\npreprocessing: {self.preprocessing}"
        )

    def problem(self) -> str:
        return (
            f"the INT8 export loses {self.drop:.2f} points of test top-1 (fp32 "
            f"{self.fp32_top1:.2f} %, INT8 {self.int8_top1:.2f} %) > --max-drop {self.max_drop:g}"
        )


def check_int8_options(fmt: str, calibration: int, max_drop: float) -> None:
    if fmt != "onnx":
        raise UsageError(f"--int8 quantizes an ONNX export; use --format onnx, not {fmt}")
    if not isinstance(calibration, int) or calibration < 1:
        raise UsageError(f"--calibration is a number of images, at least 1, got {calibration!r}")
    if max_drop != max_drop:  # NaN
        raise UsageError("--max-drop is a number of top-1 points, e.g. 1.0; got nan")


def check_task(task: str) -> None:
    found = get_task(task)
    if found.masks or found.multilabel:
        raise UsageError(f"--int8 checks top-1 accuracy, so it takes classifiers, not {task}")


def needs_reduce_range() -> tuple[bool, str]:
    """(7-bit weights needed, how that was decided): x86-64 CPUs without VNNI need them."""
    machine = platform.machine().lower()
    if machine not in X86:
        return False, f"{machine} CPU: no VPMADDUBSW saturation"
    if cpu_features()["vnni"]:
        return False, "the CPU has VNNI (avx512_vnni or avx_vnni)"
    return True, "the CPU has no VNNI (avx512_vnni or avx_vnni)"


class _Images(CalibrationDataReader):
    """Calibration images for `quantize_static`, in batches the graph accepts."""

    def __init__(self, x: torch.Tensor, name: str, batch: int) -> None:
        self.batches = iter([{name: c.contiguous().numpy()} for c in x.split(batch)])

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def quantize_export(
    model: ResNet,
    run: Path,
    fp32: Path,
    int8: Path,
    images: list | None,
    calibration: int,
    max_drop: float,
    metadata: dict,
    fp32_max_rel_diff: float,
) -> Int8Report:
    """The float32 export `fp32` of `model` quantized into `int8` (metadata stored in it),
    calibrated on `calibration` images and checked on the run's test split."""
    meta, channels = model.weights_meta, model.config.in_chans
    x, where = calibration_images(run, meta, channels, calibration, images)
    settings = quantize_onnx(fp32, int8, x, metadata)
    fp32_top1, int8_top1, agreement, count = top1_check(model, int8, run, meta, channels)
    drop = fp32_top1 - int8_top1
    return Int8Report(
        format="onnx-int8",
        path=str(int8),
        calibrated_on=where,
        calibration_images=settings["calibration_images"],
        quantization=settings,
        test_images=count,
        fp32_top1=fp32_top1,
        int8_top1=int8_top1,
        drop=drop,
        top1_agreement=agreement,
        max_drop=max_drop,
        fp32_max_rel_diff=fp32_max_rel_diff,
        passed=drop <= max_drop,
        preprocessing="",
    )


def quantize_onnx(
    fp32: str | Path,
    int8: str | Path,
    calibration: torch.Tensor,
    metadata: dict | None = None,
    reduce_range: bool | None = None,
) -> dict:
    """Quantize the float32 ONNX `fp32` into `int8`, its activation ranges measured on the
    prepared images `calibration` (N, C, H, W); `reduce_range` None: decided for this CPU.
    `metadata` is stored in the file (key "resnets") with the settings, which are returned."""
    fp32, int8 = Path(fp32), Path(int8)
    cpu = "reduce_range set by the caller"
    if reduce_range is None:
        reduce_range, cpu = needs_reduce_range()
    name, batch, fixed = _graph_input(fp32)
    count = len(calibration) - len(calibration) % batch if fixed else len(calibration)
    if count == 0:
        raise UsageError(
            f"{fp32} takes batches of {batch}: give at least {batch} calibration images"
        )
    with tempfile.TemporaryDirectory(prefix=".quantize.", dir=int8.parent) as tmp:
        prepared = Path(tmp) / fp32.name
        quant_pre_process(str(fp32), str(prepared))
        quantize_static(
            str(prepared),
            str(int8),
            _Images(calibration[:count], name, batch),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"OpTypesToExcludeOutputQuantization": ["Gemm"]},
        )
    settings = {
        "format": "QDQ",
        "weights": "int8, per output channel" + (", 7-bit range" if reduce_range else ""),
        "activations": "uint8",
        "calibration_images": count,
        "calibrate_method": "MinMax",
        "logits": "float32 (the classifier's output is not quantized)",
        "reduce_range": reduce_range,
        "cpu": cpu,
    }
    if metadata is not None:
        _store_metadata(int8, metadata | {"quantization": settings})
    return settings


def _graph_input(path: Path) -> tuple[str, int, bool]:
    """(input name, batch size to calibrate with, whether the graph fixes that batch size)."""
    shape = OnnxRuntimePredictor(path.read_bytes(), threads=1).session.get_inputs()[0]
    fixed = isinstance(shape.shape[0], int)
    return shape.name, shape.shape[0] if fixed else CALIBRATION_BATCH, fixed


def _store_metadata(path: Path, metadata: dict) -> None:
    path.write_bytes(with_metadata(path.read_bytes(), metadata))


def calibration_images(
    run: Path, meta: WeightsMeta, channels: int, count: int, images: list | None
) -> tuple[torch.Tensor, str]:
    """Up to `count` prepared images: the given ones, else an even sample of the run's
    training split (which is stored in class order, so its first images are one class)."""
    if images:
        x, _, failed = prepare_images(expand_images(images)[:count], meta, channels)
        if x is None:
            raise UsageError(f"none of the --images could be read: {next(iter(failed.values()))}")
        return x, "given images"
    loader = run_split_loader(run, meta, channels, "train", batch_size=LOADER_BATCH)
    least = (len(loader) - 1) * LOADER_BATCH + 1  # images in the split, at least
    stride, seen, kept = max(least // count, 1), 0, []
    for x, _ in loader:
        kept.append(x[(-seen) % stride :: stride])
        seen += len(x)
        if sum(len(k) for k in kept) >= count:
            break
    return torch.cat(kept)[:count], f"training images of {run} (an even sample)"


def top1_check(
    model: ResNet, int8: Path, run: Path, meta: WeightsMeta, channels: int
) -> tuple[float, float, float, int]:
    """(fp32 top-1, INT8 top-1, their agreement, images), in percent, on the run's test split:
    the eager model against the INT8 file in ONNX Runtime (one image at a time if its graph
    takes a fixed batch)."""
    runner = OnnxRuntimePredictor(int8.read_bytes())
    fixed = isinstance(runner.session.get_inputs()[0].shape[0], int)
    loader = run_split_loader(run, meta, channels, "test", batch_size=LOADER_BATCH)
    ref, out, labels = [], [], []
    with torch.no_grad():
        for x, y in loader:
            ref.append(model(x).argmax(1))
            q = torch.cat([runner(i[None]) for i in x]) if fixed else runner(x)
            out.append(q.argmax(1))
            labels.append(y)
    ref, out, labels = torch.cat(ref), torch.cat(out), torch.cat(labels)
    return _percent(ref == labels), _percent(out == labels), _percent(out == ref), len(labels)


def _percent(hits: torch.Tensor) -> float:
    return 100.0 * hits.sum().item() / len(hits)
