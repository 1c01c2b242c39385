"""Inference backends: the trained model as is, or a faster equivalent of it.

    eager        the model as trained (reference numerics)
    fast         BN folded, channels_last; bf16 on a GPU
    compile      fast, then torch.compile
    onnxruntime  the folded model exported to ONNX and run by ONNX Runtime (CPU)
    auto         fast on a GPU; onnxruntime on a CPU where it is installed (the fastest there
                 at batch 1, see benchmarks/RESULTS.md), else fast

Each backend is a callable from a float32 NCHW batch to float32 logits.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable

import torch

from ..errors import UsageError
from ..models import ResNet
from ..options import BACKENDS
from .optimize import fold_bn, optimize_for_inference

Predictor = Callable[[torch.Tensor], torch.Tensor]


def onnx_bytes(model: torch.nn.Module, example: torch.Tensor, dynamic_batch: bool = True) -> bytes:
    """The model as an ONNX file's bytes (torch.export based exporter, opset 18)."""
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=65536)}} if dynamic_batch else None
    program = torch.onnx.export(
        model.eval(), (example,), dynamo=True, dynamic_shapes=shapes, verbose=False
    )
    buf = io.BytesIO()
    buf.write(program.model_proto.SerializeToString())
    return buf.getvalue()


class OnnxRuntimePredictor:
    """An ONNX Runtime session behind a tensor-in, tensor-out call."""

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


def predictor(model: ResNet, device: torch.device, backend: str = "eager") -> Predictor:
    """A callable running `model` (in eval mode) on `device` with the chosen backend."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        has_ort = importlib.util.find_spec("onnxruntime") is not None
        backend = "onnxruntime" if device.type == "cpu" and has_ort else "fast"
    model = model.eval()
    if backend == "eager":
        model = model.to(device)
        return _no_grad(model, channels_last=False, dtype=torch.float32)
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise UsageError("the onnxruntime backend runs on the CPU; use --device cpu")
        meta = model.weights_meta
        size = (meta and meta.input_size) or model.config.input_size
        example = torch.randn(1, model.config.in_chans, size, size)
        return OnnxRuntimePredictor(onnx_bytes(fold_bn(model), example))
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    fast = optimize_for_inference(model, device, dtype=dtype, compile=backend == "compile")
    return _no_grad(fast, channels_last=True, dtype=getattr(torch, dtype))


def _no_grad(module: torch.nn.Module, channels_last: bool, dtype: torch.dtype) -> Predictor:
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    @torch.inference_mode()
    def run(x: torch.Tensor) -> torch.Tensor:
        return module(x.to(dtype).contiguous(memory_format=fmt)).float()

    return run
