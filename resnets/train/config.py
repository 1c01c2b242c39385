"""`TrainConfig`: every training option, its type, default and help, in one dataclass.

The CLI flags, the YAML/TOML config file and the Python API all set these fields; the
resolved config is saved in the run folder. Precedence: defaults < recipe < file < flags.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from ..data.build import DataOptions, option
from ..errors import ConfigError, UsageError, unknown_name
from .recipes import RECIPES, recipe_rules


@dataclass
class TrainConfig(DataOptions):
    """One training run, fully described."""

    task: Literal["classification", "segmentation"] = option(
        "classification", "segmentation: --data shapes or segfolder:PATH, a U-Net decoder"
    )
    model: str = option("resnet20", "registered model name (resnets list)")
    pretrained: str | None = option(None, "initial weights: a .pth/.safetensors file")
    in_chans: int | None = option(None, "model input channels (default: the data's)")
    drop_path_rate: float = option(0.0, "stochastic depth rate at the last block")
    drop_rate: float = option(0.0, "dropout before the classifier")
    zero_init_residual: bool = option(False, "start each residual branch at zero")
    freeze_stages: int = option(0, "freeze the stem and the first K stages (fine-tuning)")
    freeze_backbone: bool = option(False, "train only the classifier (BN statistics frozen)")
    lr_backbone: float | None = option(None, "learning rate of the backbone (default: --lr)")

    recipe: str = option("default", "default | paper-cifar | paper-imagenet | modern")
    epochs: int = option(30, "training epochs")
    steps: int | None = option(None, "training steps (optimizer updates); overrides --epochs")
    batch_size: int = option(128, "global batch size, over all processes")
    accum_steps: int = option(1, "micro-batches accumulated per optimizer step")
    optimizer: Literal["sgd", "adamw"] = option("sgd", "sgd | adamw")
    lr: float = option(0.1, "peak learning rate (per --lr-base-batch with --lr-scaling linear)")
    lr_scaling: Literal["none", "linear"] = option("none", "scale lr by batch / lr_base_batch")
    lr_base_batch: int = option(256, "batch size that --lr refers to under linear scaling")
    momentum: float = option(0.9, "SGD momentum (AdamW beta1)")
    nesterov: bool = option(True, "Nesterov momentum")
    weight_decay: float = option(5e-4, "L2 weight decay")
    no_decay_norm_bias: bool = option(False, "no weight decay on BN weights and biases")
    schedule: Literal["cosine", "multistep", "constant"] = option("cosine", "lr schedule")
    milestones: tuple[int, ...] = option((), "multistep: where lr is multiplied by lr_gamma")
    milestone_unit: Literal["epoch", "step"] = option("epoch", "unit of --milestones")
    lr_gamma: float = option(0.1, "multistep factor")
    min_lr: float = option(0.0, "cosine: final learning rate")
    warmup_epochs: float = option(5.0, "warm-up length in epochs (at most half the run)")
    warmup_steps: int | None = option(None, "warm-up length in steps (overrides epochs)")
    warmup_style: Literal["linear", "constant"] = option("linear", "ramp up, or hold low")
    warmup_factor: float = option(0.1, "lr factor at the start of warm-up (or held level)")
    label_smoothing: float = option(0.0, "label smoothing")
    mixup_alpha: float = option(0.0, "MixUp Beta(alpha, alpha); 0 = off")
    cutmix_alpha: float = option(0.0, "CutMix Beta(alpha, alpha); 0 = off")
    ema_decay: float = option(0.0, "EMA of weights, per step; 0 = off (e.g. 0.9998)")
    clip_grad: float | None = option(None, "clip the gradient norm to this value")
    class_weights: Literal["none", "balanced"] = option("none", "weight the loss per class")
    early_stop: int | None = option(None, "stop after this many epochs without improvement")

    amp: Literal["none", "bf16", "fp16"] = option("none", "autocast precision")
    channels_last: bool = option(
        True, "NHWC memory format (measured faster on CPU; the usual GPU fast path)"
    )
    compile: bool = option(False, "torch.compile the model")
    grad_checkpointing: bool = option(False, "recompute activations in backward")
    sync_bn: bool = option(False, "synchronize BN statistics across processes (GPU)")

    device: str = option("auto", "auto | cpu | cuda | cuda:N | mps")
    seed: int = option(0, "random seed")
    deterministic: bool = option(False, "deterministic algorithms (bit-identical reruns)")
    out: str | None = option(None, "run folder (default runs/MODEL-DATA-TIME)")
    resume: str | None = option(None, "continue the run in this folder")
    overwrite: bool = option(False, "replace an existing run folder")
    save_every_steps: int | None = option(None, "also checkpoint every N steps")
    keep_last: int = option(1, "step checkpoints to keep")
    max_bad_batches: int = option(0, "skip up to N batches with a non-finite loss")
    log_every: int = option(50, "steps between progress updates")
    progress: bool = option(True, "progress bar")
    tensorboard: bool = option(True, "write TensorBoard event files")


FIELDS = {f.name: f for f in fields(TrainConfig)}
HINTS = typing.get_type_hints(TrainConfig)
RESUME_OVERRIDES = {  # what may change on --resume: hardware fitting and run length, not the math
    "device",
    "accum_steps",
    "progress",
    "log_every",
    "num_workers",
    "epochs",
    "steps",
    "save_every_steps",
    "keep_last",
    "early_stop",
    "tensorboard",
    "max_bad_batches",
    "resume",
}

_POSITIVE = ("epochs", "steps", "batch_size", "accum_steps", "lr_base_batch", "log_every")
_POSITIVE += ("image_size", "synthetic_samples", "synthetic_classes", "save_every_steps")
_POSITIVE += ("keep_last", "early_stop", "in_chans", "eval_resize")
_NON_NEGATIVE = ("weight_decay", "momentum", "min_lr", "warmup_epochs", "warmup_steps")
_NON_NEGATIVE += ("label_smoothing", "mixup_alpha", "cutmix_alpha", "crop_padding")
_NON_NEGATIVE += ("drop_path_rate", "drop_rate", "max_bad_batches", "num_workers", "freeze_stages")


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
        return _convert(base, value)
    except (TypeError, ValueError):
        expected = _describe(base)
        raise ConfigError(f"{name}{where} must be {expected}, got {value!r}") from None


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
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        out[name] = coerce(name, _yaml_number(value), str(path))
    return out


def _yaml_number(value: Any) -> Any:
    """PyYAML reads '1e-4' as a string (YAML 1.1); read it as the number users meant."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            return value
    return value


def resolve(flags: dict[str, Any], config_file: str | Path | None = None) -> TrainConfig:
    """The run's config: defaults, then the recipe, then the file, then flags."""
    flags = {k: coerce(k, v, "arguments") for k, v in flags.items()}
    from_file = load_config_file(config_file) if config_file else {}
    chosen = {**from_file, **flags}
    recipe = chosen.get("recipe", "default")
    if recipe not in RECIPES:
        raise unknown_name("recipe", recipe, RECIPES)
    values = {**RECIPES[recipe], **chosen}
    values.update({k: v for k, v in recipe_rules(recipe, values).items() if k not in chosen})
    cfg = TrainConfig(**values)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    for name in _POSITIVE:
        value = getattr(cfg, name)
        if value is not None and value <= 0:
            raise ConfigError(f"{name} must be positive, got {value}")
    for name in _NON_NEGATIVE:
        value = getattr(cfg, name)
        if value is not None and value < 0:
            raise ConfigError(f"{name} must not be negative, got {value}")
    if cfg.lr <= 0:
        raise ConfigError(f"lr must be positive, got {cfg.lr}")
    for name in ("val_split", "test_split"):
        value = getattr(cfg, name)
        if value is not None and not 0 <= value < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {value}")
    if not 0 <= cfg.ema_decay < 1:
        raise ConfigError(f"ema_decay must be in [0, 1), got {cfg.ema_decay}")
    if cfg.early_stop and cfg.val_split == 0:
        raise ConfigError("early_stop needs a validation set; drop --val-split 0")
    if cfg.resume and cfg.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if list(cfg.milestones) != sorted(cfg.milestones):
        raise ConfigError(f"milestones must increase, got {list(cfg.milestones)}")


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def resume_config(cfg: TrainConfig, flags: dict[str, Any]) -> TrainConfig:
    """The saved config of the run in `cfg.resume`, with the few options a resume may change."""
    run = Path(cfg.resume)
    saved_file = run / "config.yaml"
    if not saved_file.is_file():
        raise UsageError(f"{run} holds no run to resume (no config.yaml)")
    saved = load_config_file(saved_file)
    given = {k: coerce(k, v) for k, v in flags.items() if k not in ("config", "recipe")}
    changed = sorted(
        k for k, v in given.items() if k not in RESUME_OVERRIDES and saved.get(k, v) != v
    )
    if changed:
        raise UsageError(
            f"--resume continues {run} as it was configured; cannot change {', '.join(changed)} "
            "(start a new run with --out instead)"
        )
    values = saved | {k: v for k, v in given.items() if k in RESUME_OVERRIDES}
    values |= {"resume": str(run), "out": str(run), "overwrite": False}
    resumed = TrainConfig(**values)
    validate(resumed)
    return resumed
