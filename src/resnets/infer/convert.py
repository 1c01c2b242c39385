"""`convert`: state_dicts between torchvision's, timm's and our layout, checked by logits.

The output's suffix picks its format (.safetensors, or .pth/.pt/.bin for torch.save). The file is
written to a temporary folder beside the output, and checked there before it is moved into
place: the check builds the other library's model, loads the written weights into it, and
compares its logits with ours on the same inputs (max |difference|, relative to the largest
|logit|, and top-1 agreement), as `export` does.

Weights in our layout carry the metadata `predict` needs (`carried_meta`): the source's own, or,
for a torchvision or timm state_dict with ImageNet-1k's 1000 outputs, ImageNet-1k's class names
and the preprocessing the library publishes for that model. A `.pth` gets it beside itself
(`meta_beside`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..deprecation import renamed
from ..errors import UsageError
from ..files import check_output, publish, staging
from ..models import ResNet, get_config
from ..models.keys import layout_of, to_timm_v2, to_torchvision
from ..models.meta import WeightsMeta
from ..models.weights import (
    TORCHVISION_NAMES,
    load_state,
    meta_beside,
    read_weights,
    save_weights,
)
from ..options import CONVERT_TARGETS as TARGETS
from .export import ExportError, logit_parity

TORCH_SUFFIXES = (".pth", ".pt", ".bin")  # torch.save; .safetensors is the other choice
TIMM_NAMES = {"preact_resnet50": "resnetv2_50", "preact_resnet101": "resnetv2_101"}
IMAGENET_CLASSES = 1000
_FC_KEYS = ("fc.weight", "head.fc.weight")  # the classifier in our or torchvision's, timm v2's


@dataclass
class ConvertReport:
    path: str
    layout: str
    checked_against: str
    max_abs_diff: float
    max_rel_diff: float  # max_abs_diff / max |reference logit|
    top1_agreement: float
    passed: bool
    metadata: str = ""  # where the classes and preprocessing came from (our layout only)

    def text(self) -> str:
        return (
            f"wrote {self.layout} weights to {self.path}\n"
            f"parity against {self.checked_against}: max |logit difference| "
            f"{self.max_abs_diff:.2e}, relative {self.max_rel_diff:.2e}, top-1 agreement "
            f"{self.top1_agreement:.1f} %: "
            + ("passed" if self.passed else "FAILED")
            + (f"\n{self.metadata}" if self.metadata else "")
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


def carried_meta(
    state: dict[str, torch.Tensor], meta: WeightsMeta | None, ours: ResNet, source: str
) -> tuple[WeightsMeta | None, str]:
    """The metadata converted weights carry, and a line saying where it came from.

    The source's own is kept. A torchvision or timm state_dict has none, but one with 1000
    outputs on RGB was trained on ImageNet-1k: it gets ImageNet-1k's class names (torchvision's
    order, which timm shares) and the preprocessing its library publishes for the model."""
    if meta is not None:
        return meta, f"classes and preprocessing: kept from {source}"
    cfg = ours.config
    if layout_of(state) == "resnets":
        return None, f"classes and preprocessing: none ({source} carries no resnets metadata)"
    headed = any(k in state for k in _FC_KEYS)
    if not headed or cfg.num_classes != IMAGENET_CLASSES or cfg.in_chans != 3:
        found = f"{cfg.num_classes} outputs on {cfg.in_chans} channels" if headed else "no fc"
        return None, (
            f"classes and preprocessing: none assumed ({found}, not ImageNet-1k's 1000 outputs "
            "on RGB); predict cannot use it"
        )
    found = _library_preprocessing(ours.name, _source_library(state))
    if found is None:
        return None, (
            f"classes and preprocessing: none (neither torchvision nor an installed timm "
            f"describes {ours.name})"
        )
    prep, recipe = found
    from torchvision.models import ResNet50_Weights

    classes = list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    return WeightsMeta(ours.name, cfg, classes=classes, **prep), (
        f"classes: ImageNet-1k ({IMAGENET_CLASSES} outputs, torchvision's order); preprocessing "
        f"of {recipe}: {prep['input_size']} px centre crop, shorter side resized to "
        f"{prep['resize_size']}, mean {prep['mean']}, std {prep['std']}"
    )


def _library_preprocessing(name: str, library: str) -> tuple[dict, str] | None:
    """({input_size, resize_size, mean, std}, the recipe they come from), or None.

    torchvision's and timm's plain ResNets share one key layout, so a file of a model both have
    is read as torchvision's: its IMAGENET1K_V1 recipe, the one every torchvision ResNet has.
    Other models take timm's pretrained_cfg for the name (its default tag)."""
    tv = TORCHVISION_NAMES.get(name)
    if library == "torchvision" and tv is not None:
        from torchvision.models import get_model_weights

        tf = get_model_weights(tv)["IMAGENET1K_V1"].transforms()
        prep = {"input_size": tf.crop_size[0], "resize_size": tf.resize_size[0]}
        recipe = f"torchvision's {tv} IMAGENET1K_V1"
        return prep | {"mean": list(tf.mean), "std": list(tf.std)}, recipe
    try:
        import timm
    except ImportError:
        return None
    timm_name = TIMM_NAMES.get(name, name)
    cfg = timm.models.get_pretrained_cfg(timm_name) if timm.is_model(timm_name) else None
    if cfg is None or cfg.num_classes != IMAGENET_CLASSES:
        return None
    size = cfg.input_size[-1]
    prep = {"input_size": size, "resize_size": math.floor(size / cfg.crop_pct)}  # as timm does
    recipe = f"timm's {timm_name}.{cfg.tag} (crop_pct {cfg.crop_pct})"
    return prep | {"mean": list(cfg.mean), "std": list(cfg.std)}, recipe


@renamed(source="weights")
def convert(
    weights: str | Path,
    output: str | Path,
    model: str | None = None,
    to: str = "resnets",
    tolerance: float = 1e-4,
    overwrite: bool = False,
) -> ConvertReport:
    """Write `weights` (a file in torchvision's, timm's or resnets' key layout) in the `to`
    layout, in the format the output's suffix names.

    `tolerance` bounds the max |logit difference| relative to the largest |logit|."""
    if to not in TARGETS:
        raise UsageError(f"--to must be one of {', '.join(TARGETS)}, got {to!r}")
    source, output = Path(weights), Path(output)
    _check_output(source, output, to, overwrite)
    state, meta = read_weights(source)
    name = model or (meta.model if meta else None)
    if name is None:
        raise UsageError(f"say which architecture {source} holds: --model NAME")
    ours = _ours_from(state, meta, name, str(source))
    note = ""
    if to == "resnets":
        meta, note = carried_meta(state, meta, ours, str(source))
    out_state = _in_layout(ours, to)
    with staging(output) as stage:
        staged = stage / output.name
        try:
            _save(ours, out_state, meta, to, staged)
        except OSError as e:
            raise ExportError(f"could not write {output}: {e.strerror or e}") from None
        written, _ = read_weights(staged)  # check what is on disk, not what is in memory
        report = _check(ours, state, written, meta, name, to, str(output), tolerance)
        report.metadata = note
        if report.passed:
            if meta_beside(staged).is_file():  # first: new weights never lack their metadata
                publish(meta_beside(staged), meta_beside(output))
            publish(staged, output)
            return report
    raise ExportError(
        f"converted weights differ from {report.checked_against} (max |logit difference| "
        f"{report.max_abs_diff:.2e}, relative {report.max_rel_diff:.2e} > {tolerance:g}, top-1 "
        f"agreement {report.top1_agreement:.1f} %); {output} was not written"
    )


def _check_output(source: Path, output: Path, to: str, overwrite: bool) -> None:
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
    if to == "resnets" and output.suffix in TORCH_SUFFIXES:  # with its metadata beside it
        check_output(meta_beside(output), source, overwrite, "choose another output file")


def _save(ours: ResNet, state: dict, meta, to: str, path: Path) -> None:
    """Our layout with its metadata (inside a .safetensors, beside a .pth); the libraries'
    layouts as plain safetensors or torch.save."""
    if to == "resnets" and path.suffix == ".safetensors":
        save_weights(ours, path, meta)
    elif path.suffix != ".safetensors":
        torch.save(state, path)  # under its own name, which torch.save records in the file
        if to == "resnets":
            meta_beside(path).write_text((meta or WeightsMeta(ours.name, ours.config)).to_json())
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
    shape = (8, ours.config.in_chans, *ours.config.input_extent())
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
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
    fc = next((state[k] for k in _FC_KEYS if k in state), None)
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
