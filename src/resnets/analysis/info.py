"""Model statistics: parameters, multiply-accumulates, stage shapes and activation memory.

Everything runs on the meta device (shapes only, no arithmetic), so even resnet1202 or
wide_resnet101_2 at 224 px is inspected in about a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import UsageError
from ..models import ResNet, create_model


@dataclass(frozen=True)
class LayerStats:
    """One row of the table: the stem, a stage or the head."""

    name: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ModelInfo:
    name: str
    input_size: int
    batch_size: int
    params: int
    trainable_params: int
    macs: int  # per image, convolutions and the classifier (as torchvision and fvcore count)
    activation_bytes: int  # saved for the backward pass in training mode, whole batch, fp32
    rows: list[LayerStats] = field(default_factory=list)
    input_depth: int | None = None  # 3D: depth (slices, frames)

    def table(self) -> str:
        side = f"{self.input_size}x{self.input_size}"
        lines = [
            f"{self.name}: {self.params:,} parameters ({self.trainable_params:,} trainable)",
            f"input: batch {self.batch_size} at "
            + (f"{self.input_depth}x{side} (depth x height x width)" if self.input_depth else side),
            f"multiply-accumulates: {_si(self.macs)} per image ({_si(2 * self.macs)}FLOPs)",
            f"activation memory (training, fp32): {self.activation_bytes / 2**20:,.1f} MiB "
            f"for the batch",
            "",
            f"{'layer':<10} {'output shape':>18} {'params':>14} {'MACs':>10}",
        ]
        for row in self.rows:
            shape = " x ".join(str(s) for s in row.output_shape)
            lines.append(f"{row.name:<10} {shape:>18} {row.params:>14,} {_si(row.macs):>10}")
        return "\n".join(lines)


def model_info(
    model: str | ResNet,
    input_size: int | None = None,
    batch_size: int = 1,
    input_depth: int | None = None,
    **overrides,
) -> ModelInfo:
    """Statistics of a registered model name (with config overrides) or a built model, at
    `input_size` (height and width) and, for a 3D model, `input_depth` (slices or frames)."""
    if isinstance(model, str):
        with torch.device("meta"):
            model = create_model(model, **overrides)
    elif not next(model.parameters()).is_meta:
        model = _to_meta(model)
    if input_depth and model.config.spatial_dims == 2:
        raise UsageError(f"--input-depth is for 3D models; {model.name} is 2D")
    extent = model.config.input_extent(input_size, input_depth)
    size, depth = extent[-1], (extent[0] if len(extent) == 3 else None)
    x = torch.empty(batch_size, model.config.in_chans, *extent, device="meta")

    model.eval()
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        counted = count_macs(model, x, shapes)
    except RuntimeError as e:  # a feature map shrank below one pixel
        raise UsageError(
            f"input size {size} is too small for {model.name} "
            f"({str(e).splitlines()[0]}); try --input-size {model.config.input_size}"
        ) from None

    def macs(prefix: str) -> int:
        inside = (n for n in counted if n == prefix or n.startswith(prefix + "."))
        return sum(counted[n] for n in inside) // batch_size

    def params(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    rows = [LayerStats("stem", shapes["stem"], params(model.stem), macs("stem"))]
    for i, stage in enumerate(model.stages):
        name = f"stages.{i}"
        rows.append(LayerStats(f"stage{i + 1}", shapes[name], params(stage), macs(name)))
    head_params = params(model.norm) + params(model.fc)
    rows.append(LayerStats("head", (model.config.num_classes,), head_params, macs("fc")))

    return ModelInfo(
        name=model.name,
        input_size=size,
        input_depth=depth,
        batch_size=batch_size,
        params=params(model),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        macs=sum(counted.values()) // batch_size,
        activation_bytes=_activation_bytes(model, x),
        rows=rows,
    )


def count_macs(
    model: ResNet, x: torch.Tensor, shapes: dict[str, tuple[int, ...]] | None = None
) -> dict[str, int]:
    """Multiply-accumulates of each convolution and linear layer for input `x`, by module
    name, from shapes alone: what torch's FlopCounterMode counts, halved (tested equal), in
    the same pass that fills `shapes` with the stem's and each stage's output shape (one
    image). Each pass on the meta device costs `resnets info` time: it makes one."""
    counted: dict[str, int] = {}
    shapes = {} if shapes is None else shapes

    def hook(name: str):
        def record(m: nn.Module, inputs, out: torch.Tensor) -> None:
            if isinstance(m, nn.Linear):
                per_output = m.in_features
            elif isinstance(m, nn.Conv2d | nn.Conv3d):
                per_output = m.in_channels // m.groups * math.prod(m.kernel_size)
            else:
                shapes[name] = tuple(out.shape[1:])
                return
            counted[name] = counted.get(name, 0) + out.numel() * per_output

        return record

    kinds = nn.Conv2d | nn.Conv3d | nn.Linear
    watched = [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]
    watched += [("stem", model.stem)] + [(f"stages.{i}", s) for i, s in enumerate(model.stages)]
    handles = [m.register_forward_hook(hook(n)) for n, m in watched]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return counted


def _activation_bytes(model: ResNet, x: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd saves for backward, excluding parameters."""
    own = {p.untyped_storage()._cdata for p in model.parameters()}
    own |= {b.untyped_storage()._cdata for b in model.buffers()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in own:
            saved[storage._cdata] = storage.nbytes()
        return t

    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x.requires_grad_(False))
    except ValueError:
        if len(x) != 1:
            raise
        # Training-mode BN needs two values per channel, which a 1x1 feature map at batch 1
        # lacks: what is saved grows linearly with the batch, so extrapolate from 2 and 4.
        two, four = (_activation_bytes(model, x.expand(n, *x.shape[1:])) for n in (2, 4))
        return two - (four - two) // 2
    finally:
        model.eval()
    return sum(saved.values())


def _to_meta(model: ResNet) -> ResNet:
    """A shape-only twin of `model` (same config and frozen parameters), leaving it untouched."""
    with torch.device("meta"):
        clone = ResNet(model.config, name=model.name)
    for p_clone, p in zip(clone.parameters(), model.parameters(), strict=True):
        p_clone.requires_grad_(p.requires_grad)
    return clone


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3f} {unit}"
    return f"{n:.0f} "
