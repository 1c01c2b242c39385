"""`convert`: state_dicts between torchvision's, timm's and our layout, checked by logits.

The output's suffix picks its format (.safetensors, or .pth/.pt/.bin for torch.save). The file is
written to a temporary folder beside the output, and checked there before it is moved into
place: the check builds the other library's model, loads the written weights into it, and
compares its logits with ours on the same inputs (max |difference|, relative to the largest
|logit|, and top-1 agreement), as `export` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import UsageError
from ..files import check_output, publish, staging
from ..models import ResNet, get_config
from ..models.keys import layout_of, to_timm_v2, to_torchvision
from ..models.weights import TORCHVISION_NAMES, load_state, read_weights, save_weights
from ..options import CONVERT_TARGETS as TARGETS
from .export import ExportError, logit_parity

TORCH_SUFFIXES = (".pth", ".pt", ".bin")  # torch.save; .safetensors is the other choice
TIMM_NAMES = {"preact_resnet50": "resnetv2_50", "preact_resnet101": "resnetv2_101"}


@dataclass
class ConvertReport:
    path: str
    layout: str
    checked_against: str
    max_abs_diff: float
    max_rel_diff: float  # max_abs_diff / max |reference logit|
    top1_agreement: float
    passed: bool

    def text(self) -> str:
        return (
            f"wrote {self.layout} weights to {self.path}\n"
            f"parity against {self.checked_against}: max |logit difference| "
            f"{self.max_abs_diff:.2e}, relative {self.max_rel_diff:.2e}, top-1 agreement "
            f"{self.top1_agreement:.1f} %: " + ("passed" if self.passed else "FAILED")
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
    overwrite: bool = False,
) -> ConvertReport:
    """Write `source`'s weights in the `to` layout, in the format the output's suffix names.

    `tolerance` bounds the max |logit difference| relative to the largest |logit|."""
    if to not in TARGETS:
        raise UsageError(f"--to must be one of {', '.join(TARGETS)}, got {to!r}")
    source, output = Path(source), Path(output)
    _check_output(source, output, overwrite)
    state, meta = read_weights(source)
    name = model or (meta.model if meta else None)
    if name is None:
        raise UsageError(f"say which architecture {source} holds: --model NAME")
    ours = _ours_from(state, meta, name, str(source))
    out_state = _in_layout(ours, to)
    with staging(output) as stage:
        staged = stage / output.name
        try:
            _save(ours, out_state, meta, to, staged)
        except OSError as e:
            raise ExportError(f"could not write {output}: {e.strerror or e}") from None
        written, _ = read_weights(staged)  # check what is on disk, not what is in memory
        report = _check(ours, state, written, meta, name, to, str(output), tolerance)
        if report.passed:
            publish(staged, output)
            return report
    raise ExportError(
        f"converted weights differ from {report.checked_against} (max |logit difference| "
        f"{report.max_abs_diff:.2e}, relative {report.max_rel_diff:.2e} > {tolerance:g}, top-1 "
        f"agreement {report.top1_agreement:.1f} %); {output} was not written"
    )


def _check_output(source: Path, output: Path, overwrite: bool) -> None:
    """Refuse, before anything is read or written, an output that cannot or should not be."""
    accepted = ", ".join((".safetensors", *TORCH_SUFFIXES))
    if output.suffix != ".safetensors" and output.suffix not in TORCH_SUFFIXES:
        raise UsageError(
            f"cannot tell the format of {output.name} from its suffix "
            f"{output.suffix or '(none)'}; use one of {accepted}"
        )
    if not output.parent.is_dir():
        raise UsageError(f"the folder {output.parent} does not exist; create it or write elsewhere")
    check_output(output, source, overwrite, "choose another output file")


def _save(ours: ResNet, state: dict, meta, to: str, path: Path) -> None:
    """safetensors for a .safetensors name (with our metadata in our layout), else torch.save."""
    if path.suffix != ".safetensors":
        torch.save(state, path)
    elif to == "resnets":
        save_weights(ours, path, meta)
    else:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path))


def _check(ours, state, written, meta, name: str, to: str, output: str, tolerance: float):
    """Compare the written weights, in the library's own model, with ours on random inputs."""
    if to == "resnets":
        mine = _ours_from(written, meta, name, output)
        library = _source_library(state)
        other = library_model(name, library, mine.config.num_classes, mine.config.in_chans)
        if other is not None:
            _load_into(other, _in_layout(mine, library), f"{library}'s {name}")
    else:
        mine, library = ours, to
        other = library_model(name, to, ours.config.num_classes, ours.config.in_chans)
        if other is not None:
            _load_into(other, written, f"{to}'s {name}")
    checked = library
    if other is None:  # the library lacks this model: check the round trip instead
        other, checked = _ours_from(written, meta, name, output), "resnets (round trip)"
    size = ours.config.input_size
    x = torch.randn(8, ours.config.in_chans, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = mine.eval()(x), other.eval()(x)
    diff, rel, agree = logit_parity(b, [a])
    return ConvertReport(
        path=output,
        layout=to,
        checked_against=checked,
        max_abs_diff=diff,
        max_rel_diff=rel,
        top1_agreement=agree,
        passed=rel <= tolerance and agree == 100,
    )


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ExportError(f"the converted weights do not fit {what}: {first}") from None


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
