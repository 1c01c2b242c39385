"""Inference backends: the trained model as is, or a faster equivalent of it.

    eager        the model as trained (reference numerics)
    fast         BN folded, channels_last; bf16 on a GPU
    compile      fast, then torch.compile
    onnxruntime  the folded model exported to ONNX and run by ONNX Runtime (CPU)
    auto         fast on a GPU; on a CPU, onnxruntime where it is installed (fp32's fastest
                 there, see benchmarks/RESULTS.md), else fast; where the CPU computes bf16
                 natively (precision.native_bf16), fast in bf16 when a probe at the batch
                 size at hand measures it faster (its logits then differ from fp32's)

Each backend is a callable from a float32 NCHW batch to float32 logits.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
from collections.abc import Callable

import torch

from ..errors import UsageError
from ..models import ResNet
from ..options import BACKENDS
from ..precision import PROBE_GAIN, min_seconds, native_bf16
from .optimize import fold_bn, optimize_for_inference

Predictor = Callable[[torch.Tensor], torch.Tensor]
log = logging.getLogger("resnets")
PROBE_CALLS = 3  # timed calls per candidate, after one warm-up


def onnx_bytes(model: torch.nn.Module, example: torch.Tensor, dynamic_batch: bool = True) -> bytes:
    """The model as an ONNX file's bytes (torch.export based exporter, opset 18)."""
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=65536)}} if dynamic_batch else None
    program = torch.onnx.export(
        model.eval(), (example,), dynamo=True, dynamic_shapes=shapes, verbose=False
    )
    buf = io.BytesIO()
    buf.write(program.model_proto.SerializeToString())
    return buf.getvalue()


META_KEY = "resnets"  # the ONNX metadata_props entry that holds an export's preprocessing


def with_metadata(model_bytes: bytes, metadata: dict) -> bytes:
    """An ONNX file's bytes with `metadata` (JSON) as its resnets entry, replacing any earlier
    one (an INT8 file made from an fp32 export carries that export's)."""
    import onnx

    proto = onnx.load_from_string(model_bytes)
    kept = [p for p in proto.metadata_props if p.key != META_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(metadata)
    return proto.SerializeToString()


class OnnxRuntimePredictor:
    """An ONNX Runtime session behind a tensor-in, tensor-out call."""

    dtype = torch.float32  # what the graph's input takes (INT8 graphs quantize inside)

    def __init__(self, model_bytes: bytes, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UsageError("the onnxruntime backend needs: pip install 'resnets[onnx]'") from None
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        # Idle threads would otherwise spin, taking the cores from whatever runs next.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input: x.detach().float().cpu().contiguous().numpy()})
        return torch.from_numpy(out[0])


def predictor(
    model: ResNet,
    device: torch.device,
    backend: str = "eager",
    batch: int = 1,
    dtype: str | None = None,
) -> Predictor:
    """A callable running `model` (in eval mode) on `device` with the chosen backend.
    `batch`: the batch size `auto` measures at; `dtype`: the fast backends' (default bf16 on
    a GPU, float32 elsewhere)."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    model = model.eval()
    if backend == "auto":
        return _auto(model, device, batch)
    if backend == "eager":
        model = model.to(device)
        return _no_grad(model, channels_last=False, dtype=torch.float32)
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise UsageError("the onnxruntime backend runs on the CPU; use --device cpu")
        return OnnxRuntimePredictor(onnx_bytes(fold_bn(model), _example(model, 1)))
    dtype = dtype or ("bfloat16" if device.type == "cuda" else "float32")
    fast = optimize_for_inference(model, device, dtype=dtype, compile=backend == "compile")
    return _no_grad(fast, channels_last=True, dtype=getattr(torch, dtype))


def choose_backend(model: ResNet, device: torch.device, batch: int = 1) -> tuple[str, str]:
    """(what `auto` runs `model` with, why), for batches of `batch` images."""
    picked, why, _ = _choose(model.eval(), device, batch)
    return picked, why


def _auto(model: ResNet, device: torch.device, batch: int) -> Predictor:
    picked, why, run = _choose(model, device, batch)
    log.info("backend auto: %s (%s)", picked, why)
    return run


def _choose(model: ResNet, device: torch.device, batch: int) -> tuple[str, str, Predictor]:
    if device.type != "cpu":
        return (
            "fast",
            f"{device.type}: BN folded, channels_last, bf16 on a GPU",
            predictor(model, device, "fast"),
        )
    has_ort = importlib.util.find_spec("onnxruntime") is not None
    fp32 = "onnxruntime" if has_ort else "fast"
    native, found = native_bf16(device)
    if not native:
        why = "fastest fp32 on a CPU" if has_ort else "onnxruntime is not installed"
        return fp32, f"{why}; no bf16, as {found}", predictor(model, device, fp32)
    runs = {
        fp32: predictor(model, device, fp32),
        "fast bf16": predictor(model, device, "fast", dtype="bfloat16"),
    }
    x = _example(model, batch)
    seconds = {name: _seconds(run, x) for name, run in runs.items()}
    gain = seconds[fp32] / seconds["fast bf16"]
    picked = "fast bf16" if gain >= PROBE_GAIN else fp32
    why = f"bf16 ran at {gain:.2f}x {fp32} fp32 in a probe at batch {batch} ({found})"
    return picked, why, runs[picked]


def _example(model: ResNet, batch: int) -> torch.Tensor:
    meta, cfg = model.weights_meta, model.config
    return torch.randn(batch, cfg.in_chans, *cfg.input_extent(meta and meta.input_size))


def _seconds(run: Predictor, x: torch.Tensor) -> float:
    return min_seconds(lambda: run(x), PROBE_CALLS)


def _no_grad(module: torch.nn.Module, channels_last: bool, dtype: torch.dtype) -> Predictor:
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    @torch.inference_mode()
    def run(x: torch.Tensor) -> torch.Tensor:
        x = x.to(dtype)
        return module(x.contiguous(memory_format=fmt) if x.ndim == 4 else x.contiguous()).float()

    run.dtype = dtype  # what it computes in
    return run
