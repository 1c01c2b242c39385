"""`TrainConfig`: every training option, its type, default and help, in one dataclass. The CLI
flags, the YAML/TOML config file and the Python API all set these fields; the resolved config
is saved in the run folder. Precedence: defaults < recipe < file < flags."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from ..errors import ConfigError, UsageError, unknown_name
from ..options import (
    DETECTION_HEADS,
    PRETRAIN_METHODS,
    TASKS,
    DataOptions,
    absolute_data,
    option,
)


@dataclass
class TrainConfig(DataOptions):
    """One training run, fully described."""

    task: Literal[TASKS] = option(
        "classification",
        "segmentation: --data shapes or segfolder:PATH, a U-Net decoder; multilabel: several "
        "labels per image (inferred from a CSV's 'a|b' labels or 0/1 columns); detection: "
        "boxes (--data shapes-boxes | coco:FILE | voc:DIR | yolo:DIR | csv:FILE)",
    )
    head: Literal[DETECTION_HEADS] = option(
        "fasterrcnn",
        "detection: fasterrcnn | retinanet | fcos (torchvision's, on a resnets FPN) | "
        "fasterrcnn-c5 (the seed's design: RPN and RoI pooling on the last stage alone)",
    )
    trainable_stages: int | None = option(
        None,
        "detection: how many of the backbone's last stages train (default: 3 with "
        "--pretrained, as torchvision; all without)",
        "[0, inf)",
    )
    frozen_bn: bool | None = option(
        None,
        "detection: BatchNorm statistics fixed (default: on with --pretrained, as torchvision)",
    )
    rois_per_image: int = option(
        128,
        "detection, Faster R-CNN: RoIs sampled per image for the box head (torchvision: 512; "
        "128 is detectron2's advice for small sets, and 4x faster on a CPU)",
        "[1, inf)",
    )
    score_threshold: float = option(
        0.05, "detection: boxes below this score are dropped before NMS and scoring", "[0, 1)"
    )
    method: Literal[PRETRAIN_METHODS] | None = option(
        None,
        "pretrain: the self-supervised method, labels unused (resnets pretrain; default there: "
        "simclr): " + " | ".join(PRETRAIN_METHODS),
    )
    temperature: float | None = option(
        None, "pretrain, simclr and moco: the softmax temperature (default: 0.5, 0.1)", "(0, inf)"
    )
    queue_size: int | None = option(
        None,
        "pretrain, moco: earlier keys kept as negatives (default: 4096, at most half the "
        "training images)",
        "[1, inf)",
    )
    knn_k: int = option(
        200, "pretrain: neighbours of the kNN monitor (temperature 0.1)", "[1, inf)"
    )
    model: str = option("resnet20", "registered model name (resnets list)")
    pretrained: str | None = option(None, "initial weights: a .pth/.safetensors file")
    in_chans: int | None = option(None, "model input channels (default: the data's)", "[1, inf)")
    num_classes: int | None = option(
        None, "classifier outputs; checked against the data's classes", "[2, inf)"
    )
    drop_path_rate: float = option(0.0, "stochastic depth rate at the last block", "[0, 1)")
    drop_rate: float = option(0.0, "dropout before the classifier", "[0, 1)")
    zero_init_residual: bool = option(False, "start each residual branch at zero")
    freeze_stages: int = option(
        0, "freeze the stem and the first K stages (fine-tuning)", "[0, inf)"
    )
    freeze_backbone: bool = option(False, "train only the classifier (BN statistics frozen)")
    lr_backbone: float | None = option(
        None, "learning rate of the backbone (default: --lr)", "[0, inf)"
    )

    recipe: str = option("default", "default | paper-cifar | paper-imagenet | modern")
    epochs: int = option(30, "training epochs", "[1, inf)")
    steps: int | None = option(
        None, "training steps (optimizer updates), instead of --epochs", "[1, inf)"
    )
    time: str | None = option(
        None,
        "a time budget for the training loop (90s, 5m, 1.5h): the epochs that fit, measured "
        "on the first steps, with the lr schedule laid out over them; --epochs is then the most",
    )
    batch_size: int = option(128, "global batch size, over all processes", "[1, inf)")
    accum_steps: int = option(1, "micro-batches accumulated per optimizer step", "[1, inf)")
    optimizer: Literal["sgd", "adamw"] = option("sgd", "sgd | adamw")
    lr: float = option(
        0.1, "peak learning rate (per --lr-base-batch with --lr-scaling linear)", "(0, inf)"
    )
    lr_scaling: Literal["none", "linear"] = option("none", "scale lr by batch / lr_base_batch")
    lr_base_batch: int = option(
        256, "batch size that --lr refers to under linear scaling", "[1, inf)"
    )
    momentum: float = option(0.9, "SGD momentum (AdamW beta1)", "[0, 1)")
    nesterov: bool = option(True, "Nesterov momentum")
    weight_decay: float = option(5e-4, "L2 weight decay", "[0, inf)")
    decay_norm_bias: bool = option(
        True, "weight decay on BN weights and biases too (the modern recipe turns it off)"
    )
    schedule: Literal["cosine", "multistep", "constant"] = option("cosine", "lr schedule")
    milestones: tuple[int, ...] = option(
        (), "multistep: where lr is multiplied by lr_gamma", "[1, inf)"
    )
    milestone_unit: Literal["epoch", "step"] = option("epoch", "unit of --milestones")
    lr_gamma: float = option(0.1, "multistep factor", "(0, 1]")
    min_lr: float = option(0.0, "cosine: final learning rate (below the peak)", "[0, inf)")
    warmup_epochs: float = option(
        5.0, "warm-up length in epochs (at most half the run)", "[0, inf)"
    )
    warmup_steps: int | None = option(
        None, "warm-up length in steps, instead of epochs", "[0, inf)"
    )
    warmup_style: Literal["linear", "constant"] = option("linear", "ramp up, or hold low")
    warmup_factor: float = option(
        0.1, "lr factor at the start of warm-up (or held level)", "(0, 1]"
    )
    label_smoothing: float = option(0.0, "label smoothing", "[0, 1)")
    mixup_alpha: float = option(0.0, "MixUp Beta(alpha, alpha); 0 = off", "[0, inf)")
    cutmix_alpha: float = option(0.0, "CutMix Beta(alpha, alpha); 0 = off", "[0, inf)")
    ema_decay: float = option(0.0, "EMA of weights, per step; 0 = off (e.g. 0.9998)", "[0, 1)")
    clip_grad: float | None = option(None, "clip the gradient norm to this value", "(0, inf)")
    class_weights: Literal["none", "balanced"] = option("none", "weight the loss per class")
    loss: Literal["cross-entropy", "focal"] = option("cross-entropy", "focal: Lin et al. 2017")
    focal_gamma: float = option(2.0, "focal: -(1-p)^gamma log p; 0 = cross-entropy", "[0, inf)")
    sampler: Literal["uniform", "balanced"] = option(
        "uniform", "balanced: draw with replacement, every class equally likely"
    )
    early_stop: int | None = option(
        None, "stop after this many epochs without improvement", "[1, inf)"
    )

    amp: Literal["none", "bf16", "fp16", "auto"] = option(
        "auto", "autocast precision; auto: bf16 where native and measured faster, else fp32"
    )
    channels_last: bool = option(
        True, "NHWC memory format (measured faster on CPU; the usual GPU fast path)"
    )
    compile: bool = option(False, "torch.compile the model")
    grad_checkpointing: bool = option(False, "recompute activations in backward")
    sync_bn: bool = option(False, "synchronize BN statistics across processes (GPU)")

    device: str = option("auto", "auto | cpu | cuda | cuda:N | mps")
    threads: int | None = option(
        None,
        "CPU threads (default: OMP_NUM_THREADS, else one per core that no other process "
        "keeps busy, measured at the start)",
        "[1, inf)",
    )
    seed: int = option(0, "random seed", "[0, inf)")
    deterministic: bool = option(False, "deterministic algorithms (bit-identical reruns)")
    out: str | None = option(None, "run folder (default runs/MODEL-DATA-TIME)")
    resume: str | None = option(None, "continue the run in this folder")
    overwrite: bool = option(False, "replace an existing run folder")
    save_every_steps: int | None = option(None, "also checkpoint every N steps", "[1, inf)")
    keep_last: int = option(1, "step checkpoints to keep", "[1, inf)")
    max_bad_batches: int = option(0, "skip up to N batches with a non-finite loss", "[0, inf)")
    log_every: int = option(50, "steps between progress updates", "[1, inf)")
    progress: bool = option(True, "progress bar")
    tensorboard: bool = option(True, "write TensorBoard event files")


FIELDS = {f.name: f for f in fields(TrainConfig)}
HINTS = typing.get_type_hints(TrainConfig)
# Options renamed since runs were first saved: old name -> (new name, value mapping). A saved
# config.yaml or a user's file with the old name still reads as it meant.
RENAMED = {"no_decay_norm_bias": ("decay_norm_bias", lambda v: not v)}


def renamed(options: dict[str, Any], source: str = "") -> dict[str, Any]:
    """`options` with old option names under their new names (and values mapped)."""
    out = {}
    for name, value in options.items():
        if name in RENAMED:
            name, meaning = RENAMED[name]
            value = meaning(coerce(name, value, source))
        out[name] = value
    return out


def coerce(name: str, value: Any, source: str = "") -> Any:
    """Check (and where lossless, convert) `value` to field `name`'s type."""
    where = f" in {source}" if source else ""
    if name not in FIELDS:
        raise unknown_name(f"option{where}", name, FIELDS)
    hint = HINTS[name]
    args = typing.get_args(hint)
    optional = type(None) in args and (typing.get_origin(hint) in (typing.Union, types.UnionType))
    base = next(a for a in args if a is not type(None)) if optional else hint
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"{name}{where} cannot be empty")
    try:
        value = _convert(base, value)
    except (TypeError, ValueError):
        expected = _describe(base)
        raise ConfigError(f"{name}{where} must be {expected}, got {value!r}") from None
    return absolute_data(value) if name == "data" else value


def _convert(base: Any, value: Any) -> Any:
    origin = typing.get_origin(base)
    if origin is Literal:
        if value not in typing.get_args(base):
            raise ValueError
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, list | tuple):
            raise TypeError
        return tuple(_convert(int, v) for v in value)
    if base is bool:
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise TypeError
        return value
    if base is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise TypeError
        return int(value)
    if base is float:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
        return number
    if not isinstance(value, str):
        raise TypeError
    return value


def _describe(base: Any) -> str:
    if typing.get_origin(base) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(base))
    if typing.get_origin(base) is tuple:
        return "a list of integers"
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    return names[base]


DURATION_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600}


def parse_duration(text: str) -> float:
    """Seconds of '90s', '5m', '1.5h' (a unit is needed: '5' could be seconds or minutes)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(sec|s|min|m|hr|h)\s*", str(text).lower())
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"--time must be a duration such as 90s, 5m or 1.5h, got {text!r}")
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a .yaml/.yml, .toml or .json file (keys may use - or _)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot parse {path}: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of option: value")
    named = renamed({str(k).replace("-", "_"): _yaml_number(v) for k, v in data.items()}, str(path))
    return {name: coerce(name, value, str(path)) for name, value in named.items()}


def _yaml_number(value: Any) -> Any:
    """PyYAML reads '1e-4' as a string (YAML 1.1); read it as the number users meant."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            return value
    return value


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
