"""`convert`: state_dicts between torchvision's, timm's and our layout, checked by logits.

The check builds the other library's model, loads the weights into it, and compares its logits
with ours on the same inputs (max |difference| and top-1 agreement), as `export` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import UsageError
from ..io import atomic_path
from ..models import ResNet, get_config
from ..models.convert import layout_of, to_timm_v2, to_torchvision
from ..models.registry import TORCHVISION_NAMES
from ..models.resnet import default_input_size
from ..models.weights import load_state, read_weights, save_weights
from .export import ExportError

TARGETS = ("resnets", "torchvision", "timm")
TIMM_NAMES = {"preact_resnet50": "resnetv2_50", "preact_resnet101": "resnetv2_101"}


@dataclass
class ConvertReport:
    path: str
    layout: str
    checked_against: str
    max_abs_diff: float
    top1_agreement: float
    passed: bool

    def text(self) -> str:
        return (
            f"wrote {self.layout} weights to {self.path}\n"
            f"parity against {self.checked_against}: max |logit difference| "
            f"{self.max_abs_diff:.2e}, top-1 agreement {self.top1_agreement:.1f} %: "
            + ("passed" if self.passed else "FAILED")
        )


def library_model(name: str, library: str, num_classes: int, in_chans: int) -> nn.Module | None:
    """torchvision's or timm's model of this architecture, or None if it has none."""
    if library == "torchvision":
        tv = TORCHVISION_NAMES.get(name)
        if tv is None or in_chans != 3:
            return None
        from torchvision.models import get_model

        return get_model(tv, num_classes=num_classes)
    try:
        import timm
    except ImportError:
        return None
    timm_name = TIMM_NAMES.get(name, name)
    if not timm.is_model(timm_name):
        return None
    return timm.create_model(timm_name, num_classes=num_classes, in_chans=in_chans)


def convert(
    source: str | Path,
    output: str | Path,
    model: str | None = None,
    to: str = "resnets",
    tolerance: float = 1e-4,
) -> ConvertReport:
    if to not in TARGETS:
        raise UsageError(f"--to must be one of {', '.join(TARGETS)}, got {to!r}")
    state, meta = read_weights(source)
    name = model or (meta.model if meta else None)
    if name is None:
        raise UsageError(f"say which architecture {source} holds: --model NAME")
    ours = _ours_from(state, meta, name, str(source))
    out_state = _in_layout(ours, to)
    output = Path(output)
    if to == "resnets" and output.suffix == ".safetensors":
        save_weights(ours, output, meta)
    else:
        with atomic_path(output) as tmp:
            torch.save(out_state, tmp)
    written, _ = read_weights(output)  # check what is on disk, not what is in memory
    if to == "resnets":
        mine = _ours_from(written, meta, name, str(output))
        library = _source_library(state)
        other = library_model(name, library, mine.config.num_classes, mine.config.in_chans)
        if other is not None:
            other.load_state_dict(_in_layout(mine, library))
    else:
        mine, library = ours, to
        other = library_model(name, to, ours.config.num_classes, ours.config.in_chans)
        if other is not None:
            other.load_state_dict(written)
    checked = library
    if other is None:  # the library lacks this model: check the round trip instead
        other, checked = _ours_from(written, meta, name, str(output)), "resnets (round trip)"
    size = default_input_size(ours.config)
    x = torch.randn(8, ours.config.in_chans, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = mine.eval()(x), other.eval()(x)
    diff = (a - b).abs().max().item()
    agree = 100.0 * (a.argmax(1) == b.argmax(1)).float().mean().item()
    report = ConvertReport(
        str(output), to, checked, diff, agree, diff <= tolerance and agree == 100
    )
    if not report.passed:
        output.unlink(missing_ok=True)
        raise ExportError(
            f"converted weights differ from {checked} (max {diff:.2e}); removed {output}"
        )
    return report


def _ours_from(state, meta, name: str, source: str) -> ResNet:
    """Our model shaped by the file: its classes and input channels."""
    fc = next((state[k] for k in ("fc.weight", "head.fc.weight") if k in state), None)
    conv = next(
        (
            state[k]
            for k in ("conv1.weight", "conv1.0.weight", "stem.conv.weight", "stem.conv1.weight")
            if k in state
        ),
        None,
    )
    overrides = {}
    if fc is not None:
        overrides["num_classes"] = fc.shape[0]
    if conv is not None:
        overrides["in_chans"] = conv.shape[1]
    model = ResNet(get_config(name).replace(**overrides), name=name)
    load_state(model, state, meta, source)
    return model.eval()


def _in_layout(model: ResNet, to: str) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    if to == "resnets":
        return state
    if model.config.preact:
        if to == "torchvision":
            raise UsageError("torchvision has no pre-activation ResNet; use --to timm")
        return to_timm_v2(state, model.config)
    return to_torchvision(state, model.config)


def _source_library(state: dict[str, torch.Tensor]) -> str:
    """The library a state_dict came from (ours count as torchvision's, whose keys they map to)."""
    layout = layout_of(state)
    if layout == "timm-v2" or any(k.startswith("conv1.0.") for k in state):
        return "timm"
    if layout == "resnets" and any(".norm." in k or k.startswith("norm.") for k in state):
        return "timm"  # pre-activation: only timm has it
    return "torchvision"
