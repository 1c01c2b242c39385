"""Reading, adapting and writing weights, with the metadata that travels with them.

Weights are written as safetensors with a `WeightsMeta` (model name, config, classes, input
size, normalization) in the file's metadata. Reading accepts safetensors and PyTorch files in
any supported key layout; pickles are read with `weights_only=True`, so a file that carries
code is refused rather than run.
"""

from __future__ import annotations

import logging
import math
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import WeightsError
from ..files import atomic_path
from .inflate import inflate, needs_inflation
from .keys import StateDict, to_resnets
from .meta import WeightsMeta
from .resnet import ResNet

log = logging.getLogger("resnets")

# torchvision's builder for each name that has a counterpart there (same weights, same outputs).
TORCHVISION_NAMES: dict[str, str] = {
    name: name
    for name in (
        "resnet18 resnet34 resnet50 resnet101 resnet152 resnext50_32x4d resnext101_32x8d "
        "resnext101_64x4d wide_resnet50_2 wide_resnet101_2"
    ).split()
} | {"resnet50b": "resnet50"}
_WRAPPERS = ("state_dict", "model", "model_state", "module")
_PREFIXES = ("module.", "_orig_mod.")


def read_weights(path: str | Path) -> tuple[StateDict, WeightsMeta | None]:
    """Tensors and (if present) resnets metadata from a .safetensors or PyTorch file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if path.suffix.lower() == ".safetensors" or _is_safetensors(path):
        return _read_safetensors(path)
    if path.suffix.lower() == ".onnx":
        raise WeightsError(
            f"{path} is an ONNX export, which ONNX Runtime runs; resnets reads weights: give the "
            "run folder or its best.safetensors"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pickle-protocol chatter
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise WeightsError(
            f"refused to load {path}: it is not a plain tensor file ({_unpickler_reason(e)}), "
            "and code in a pickle is never run; load only files you trust, prefer .safetensors"
        ) from None
    except Exception as e:  # a file that is not a pickle fails deep inside the unpickler
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(
            f"cannot read {path} as PyTorch weights (truncated or not a checkpoint: {first}); "
            "give a .safetensors, .pt or .pth file"
        ) from None
    meta = None
    if isinstance(obj, dict) and "resnets_meta" in obj:
        meta = WeightsMeta.from_json(obj["resnets_meta"], str(path))
    elif meta_beside(path).is_file():
        meta = WeightsMeta.from_json(meta_beside(path).read_text(), str(meta_beside(path)))
    return _unwrap(obj, path), meta


def read_meta(path: str | Path) -> WeightsMeta | None:
    """The resnets metadata of a weights file, without its tensors where the format allows
    (a safetensors header, or the .json beside a PyTorch file)."""
    path = Path(path)
    if path.is_file() and (path.suffix.lower() == ".safetensors" or _is_safetensors(path)):
        return _read_safetensors(path, tensors=False)[1]
    if meta_beside(path).is_file():
        return WeightsMeta.from_json(meta_beside(path).read_text(), str(meta_beside(path)))
    return read_weights(path)[1]


def meta_beside(path: Path) -> Path:
    """Where the metadata of a plain PyTorch state_dict file lives: `clf.pth.json`."""
    return path.with_name(path.name + ".json")


def _is_safetensors(path: Path) -> bool:
    """Sniffed from the bytes (an 8-byte header length, then a JSON header), whatever the
    file's name says."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 30


def _unpickler_reason(error: Exception) -> str:
    """The one informative line of torch's long weights_only refusal."""
    text = str(error)
    detail = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
    return detail[0].strip() if detail and detail[0].strip() else type(error).__name__


def _read_safetensors(path: Path, tensors: bool = True) -> tuple[StateDict, WeightsMeta | None]:
    """The tensors (none unless `tensors`) and the resnets metadata of a safetensors file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = f.keys() if tensors else []
            state = {k: f.get_tensor(k) for k in keys}
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(
            f"cannot read {path} as safetensors (truncated or corrupt: {e})"
        ) from None
    meta = WeightsMeta.from_json(header["resnets"], str(path)) if "resnets" in header else None
    return state, meta


def _unwrap(obj: Any, path: Path) -> StateDict:
    while isinstance(obj, dict) and not _is_tensor_dict(obj):
        inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            raise WeightsError(f"{path} holds no state_dict (top-level keys: {list(obj)[:6]})")
        obj = inner
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(f"{path} holds no state_dict")
    out = {}
    for key, value in obj.items():
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _is_tensor_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Fit a first-conv weight to another input channel count, as timm does.

    One channel: sum over the input channels. More: repeat them and rescale so the
    activation's expected magnitude is unchanged.
    """
    src = weight.shape[1]
    if src == in_chans:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeat = math.ceil(in_chans / src)
    return weight.repeat(1, repeat, *[1] * (weight.ndim - 2))[:, :in_chans] * (src / in_chans)


def load_pretrained(model: ResNet, source: str | Path, strict: bool = True) -> WeightsMeta | None:
    """Load weights into `model` from a file, or from torchvision's hub with "torchvision"."""
    if str(source) == "torchvision":
        state, meta = _download_torchvision(model)
        return load_state(model, state, meta, f"torchvision's {model.name} weights", strict)
    state, meta = read_weights(source)
    return load_state(model, state, meta, str(source), strict)


def load_state(
    model: ResNet, state: StateDict, meta: WeightsMeta | None, name: str, strict: bool = True
) -> WeightsMeta | None:
    """Load a state_dict in any supported layout, adapting in_chans and the classifier."""
    state = to_resnets(state, model.config)
    notes: list[tuple[int, str]] = []  # (level, message), said once the weights fit
    conv_key = "stem.conv1.weight" if model.config.stem == "deep" else "stem.conv.weight"
    if conv_key in state and state[conv_key].shape[1] != model.config.in_chans:
        src = state[conv_key].shape[1]
        notes.append(
            (
                logging.INFO,
                f"adapted {name}'s first conv from {src} to {model.config.in_chans} channels",
            )
        )
        state[conv_key] = adapt_input_conv(state[conv_key], model.config.in_chans)
    own = model.state_dict()
    if needs_inflation(state, own):
        state, count = inflate(state, own, name)
        notes.append(
            (
                logging.INFO,
                f"inflated {count} 2D convs of {name} into 3D (I3D: each "
                "kernel repeated along depth and divided by it)",
            )
        )
    fc = model.fc
    fits = isinstance(fc, nn.Linear) and fc.weight.shape == state.get("fc.weight", fc.weight).shape
    if "fc.weight" in state and not fits:
        notes.append(
            (
                logging.WARNING,
                f"classifier re-initialized: {name} has {state['fc.weight'].shape[0]} classes, "
                f"the model has {model.config.num_classes}",
            )
        )
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        if meta is not None:
            meta.classes = None
    _check_fit(model, state, name, strict)
    for level, message in notes:
        log.log(level, message)
    model.load_state_dict(state, strict=False)
    if meta is not None:
        model.weights_meta = meta
    return meta


def _check_fit(model: nn.Module, state: StateDict, name: str, strict: bool) -> None:
    own = model.state_dict()
    missing = [
        k
        for k in own
        if k not in state and not k.endswith("num_batches_tracked") and not k.startswith("fc.")
    ]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    problems = []
    found = (("missing", missing), ("unexpected", unexpected), ("shape mismatches", shapes))
    for label, items in found:
        if items:
            shown = ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")
            problems.append(f"{len(items)} {label} ({shown})")
    if unexpected and all(k.endswith("shortcut.conv.bias") for k in unexpected):
        problems.append(
            "its projection shortcuts have biases (MONAI's default "
            "bias_downsample=True): build the model with shortcut_bias=True"
        )
    if shapes or (strict and problems):
        raise WeightsError(f"{name} does not fit {model.name}: " + "; ".join(problems))


def _download_torchvision(model: ResNet) -> tuple[StateDict, WeightsMeta]:
    tv_name = TORCHVISION_NAMES.get(model.name)
    if tv_name is None:
        raise WeightsError(f"torchvision has no weights for {model.name}; pass a weights file")
    from torchvision.models import get_model_weights

    weights = get_model_weights(tv_name).DEFAULT
    try:
        state = weights.get_state_dict(progress=True)
    except OSError as e:
        raise WeightsError(f"could not download {weights} ({e}); pass a local .pth file") from None
    tf = weights.transforms()
    meta = WeightsMeta(
        model=model.name,
        config=model.config,
        classes=list(weights.meta["categories"]),
        input_size=tf.crop_size[0],
        resize_size=tf.resize_size[0],
        mean=list(tf.mean),
        std=list(tf.std),
    )
    return state, meta


def save_weights(
    model: ResNet,
    path: str | Path,
    meta: WeightsMeta | None = None,
    state: StateDict | None = None,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write the model's weights (or `state`, weights for it), atomically, with the metadata
    needed to use them: as safetensors (metadata inside) for a `.safetensors` name, else as a
    plain PyTorch state_dict that `torch.load(weights_only=True)` reads, with the metadata
    beside it (`meta_beside`). `extra`: more safetensors metadata (a run's stamp)."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = meta or model.weights_meta or WeightsMeta(model.name, model.config)
    state = state if state is not None else _plain_state_dict(model)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if path.suffix.lower() != ".safetensors":
        with atomic_path(meta_beside(path)) as tmp:
            tmp.write_text(meta.to_json())
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return path
    with atomic_path(path) as tmp:
        metadata = {"format": "resnets", "resnets": meta.to_json(), **(extra or {})}
        save_file(state, str(tmp), metadata=metadata)
    return path


def _plain_state_dict(model: nn.Module) -> StateDict:
    """state_dict without DDP's `module.` or torch.compile's `_orig_mod.` wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model.state_dict()
