"""The run's `TrainConfig` from its layers (defaults < recipe < config file < flags), checked as
a whole, and a resumed run's config: the one it saved, with the few options a resume may change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError, UsageError, unknown_name
from .config import FIELDS, TrainConfig, coerce, load_config_file, parse_duration, renamed
from .recipes import RECIPES, recipe_rules

RESUME_OVERRIDES = {  # what may change on --resume: hardware fitting and run length, not the math
    "device",
    "threads",
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
    "allow_changed_data",
}

# Options that say the same thing two ways: the one set at the highest level wins (the
# recipe < the config file < flags); setting both at one level is an error.
ALTERNATIVES = (("epochs", "steps"), ("warmup_epochs", "warmup_steps"))


def resolve(flags: dict[str, Any], config_file: str | Path | None = None) -> TrainConfig:
    """The run's config: defaults, then the recipe, then the file, then flags."""
    flags = {k: coerce(k, v, "arguments") for k, v in renamed(flags, "arguments").items()}
    from_file = load_config_file(config_file) if config_file else {}
    chosen = {**from_file, **flags}
    recipe = chosen.get("recipe", "default")
    if recipe not in RECIPES:
        raise unknown_name("recipe", recipe, RECIPES)
    from_recipe = RECIPES[recipe]
    rules = recipe_rules(recipe, {**from_recipe, **chosen})
    rules = {k: v for k, v in rules.items() if k not in chosen}
    layers = [("the recipe", from_recipe), ("the recipe's rules", rules)]
    layers += [(str(config_file), from_file), ("arguments", flags)]
    values = {**from_recipe, **rules, **chosen}
    for pair in ALTERNATIVES:
        values.update(_settle(pair, layers))
    if values.get("normalize") is None:  # pretrained weights expect the statistics they had
        values["normalize"] = default_normalize(values.get("pretrained"))
    cfg = TrainConfig(**values)
    validate(cfg)
    # what the layers set: options left open are decided from the data (fit.py)
    cfg.given = frozenset(k for _, layer in layers for k in layer)
    return cfg


def _settle(pair: tuple[str, str], layers: list[tuple[str, dict]]) -> dict[str, Any]:
    """The highest layer that sets either option of `pair` decides; the other is cleared."""
    for where, layer in reversed(layers):
        given = [name for name in pair if layer.get(name) is not None]
        if len(given) == 2:
            raise ConfigError(f"{pair[0]} and {pair[1]} are both set in {where}; set only one")
        if given:
            other = pair[1] if given[0] == pair[0] else pair[0]
            return {other: None} if FIELDS[other].default is None else {}
    return {}


def validate(cfg: TrainConfig) -> None:
    """The options consistent with each other (each number was checked against its declared
    interval when the config was made)."""
    if cfg.min_lr >= peak_lr(cfg):
        raise ConfigError(f"min_lr ({cfg.min_lr:g}) must be below the peak lr ({peak_lr(cfg):g})")
    if cfg.early_stop and cfg.val_split == 0:
        raise ConfigError("early_stop needs a validation set; drop --val-split 0")
    if cfg.time is not None:
        parse_duration(cfg.time)
        if cfg.steps is not None:
            raise ConfigError("--time and --steps both set the run's length; choose one")
        if cfg.task == "detection":
            raise ConfigError("--time does not fit detection runs yet; set --epochs instead")
    if cfg.classes is not None and cfg.task == "detection":
        raise ConfigError("--classes picks classes of classification data, not of boxes")
    if cfg.resume and cfg.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if list(cfg.milestones) != sorted(cfg.milestones):
        raise ConfigError(f"milestones must increase, got {list(cfg.milestones)}")
    if cfg.sampler == "balanced" and cfg.class_weights == "balanced":
        raise ConfigError(
            "--sampler balanced and --class-weights balanced each undo the class "
            "imbalance; together they over-correct: choose one"
        )


def peak_lr(cfg: TrainConfig) -> float:
    """--lr, scaled by batch / lr_base_batch under --lr-scaling linear."""
    if cfg.lr_scaling == "linear":
        return cfg.lr * cfg.batch_size / cfg.lr_base_batch
    return cfg.lr


def resume_config(cfg: TrainConfig, flags: dict[str, Any]) -> TrainConfig:
    """The saved config of the run in `cfg.resume`, with the few options a resume may change."""
    run = Path(cfg.resume)
    saved_file = run / "config.yaml"
    if not saved_file.is_file():
        raise UsageError(f"{run} holds no run to resume (no config.yaml)")
    saved = load_config_file(saved_file)
    given = {k: coerce(k, v) for k, v in renamed(flags).items() if k not in ("config", "recipe")}
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


def pretrained_file(given: str | None) -> str | None:
    """--pretrained: a weights file, or a run folder's best.safetensors (a pretraining run's
    backbone, a finished training run's weights)."""
    if given is None or not Path(given).is_dir():
        return given
    weights = Path(given) / "best.safetensors"
    if not weights.is_file():
        raise UsageError(f"--pretrained {given} is a folder without best.safetensors: not a run")
    return str(weights)


def default_normalize(pretrained: str | None) -> str:
    """Inputs as the initial weights saw them: a resnets weights file's own mean and std,
    ImageNet's for other weights (torchvision's, timm's), the data's own without weights."""
    if pretrained is None:
        return "dataset"
    from ..models.weights import read_meta

    path = Path(pretrained_file(pretrained))
    meta = read_meta(path) if path.is_file() else None
    return "weights" if meta is not None and meta.mean and meta.std else "imagenet"


def weights_normalization(cfg: TrainConfig) -> tuple[list[float], list[float]] | None:
    """The --pretrained weights' (mean, std) under --normalize weights; None otherwise."""
    if cfg.normalize != "weights":
        return None
    from ..models.weights import read_meta

    meta = read_meta(pretrained_file(cfg.pretrained)) if cfg.pretrained else None
    if meta is None or not (meta.mean and meta.std):
        raise UsageError(
            "--normalize weights takes the mean and std of --pretrained resnets weights; "
            f"{cfg.pretrained or 'no --pretrained'} carries none: use --normalize imagenet or "
            "dataset"
        )
    return list(meta.mean), list(meta.std)
