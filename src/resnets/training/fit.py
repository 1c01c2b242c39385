"""Options decided from the data, for a run that did not set them: the model from the data's
dimensions, the batch (and the lr with it) from the number of training images. Each decision
is a note that gives its reason; an option set by a flag, a config file or a recipe is never
changed, nor is a resumed run's.

Why: the default batch of 128 gives a few hundred images 2 to 4 optimizer steps an epoch, 120
in a 30-epoch run; on 546 breast-ultrasound images (28 px) the same run at batch 64 and the lr
halved reached test AUC 0.874 where batch 128 reached 0.834. Volumes with the default (2D)
model were refused, naming 3D models to choose from; MedicalNet's smallest layout trains a
thousand 28^3 volumes in 5.8 minutes where resnet18_3d takes 8.5 (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import math

from .config import TrainConfig

MIN_STEPS = 8  # optimizer steps an epoch: a smaller training set gets a smaller batch
MIN_BATCH = 16  # below this, BatchNorm's batch statistics are too noisy to train on
VOLUME_MODEL = "resnet10_3d"  # MedicalNet's smallest: its weights load, and a CPU trains it
CLIP_MODEL = "r3d_18"  # torchvision's video ResNet, whose Kinetics weights load


def given(cfg: TrainConfig) -> frozenset[str] | None:
    """The options the user (a flag, a file, a recipe) set; None when unknown (a TrainConfig
    built by hand, or a resumed run's saved one): then nothing is decided for them."""
    return getattr(cfg, "given", None)


def fit_to_data(cfg: TrainConfig, images: int, per_step: int) -> list[str]:
    """Decide, in `cfg`, what its user left open, for `images` training images; `per_step`:
    the processes x accumulation steps that share each batch (it must divide the batch).
    Returns the notes."""
    chosen = given(cfg)
    if chosen is None or cfg.task == "detection":
        return []
    note = fit_batch(cfg, images, per_step, chosen)
    return [note] if note else []


def fit_model(cfg: TrainConfig, spatial_dims: int, clips: bool) -> list[str]:
    """A 3D model for volumes or clips when the model was left at its (2D) default. Returns
    the note; a model that was set is kept, and a mismatch is then refused by the data."""
    from ..models import get_config

    chosen = given(cfg)
    if chosen is None or "model" in chosen or spatial_dims != 3:
        return []
    if get_config(cfg.model).spatial_dims == 3:
        return []
    before, cfg.model = cfg.model, CLIP_MODEL if clips else VOLUME_MODEL
    why = (
        "torchvision's video ResNet-18, for clips"
        if clips
        else "MedicalNet's smallest 3D ResNet (14 M parameters; resnet18_3d has 33 M)"
    )
    return [
        f"model {cfg.model} (not {before}, a 2D model): the data holds "
        f"{'clips' if clips else 'volumes'}, and {cfg.model} is {why}; --model decides"
    ]


def batch_for_steps(images: int) -> int:
    """The largest power-of-two batch that gives `images` MIN_STEPS optimizer steps an epoch,
    and at least MIN_BATCH."""
    return max(MIN_BATCH, 2 ** int(math.log2(max(images / MIN_STEPS, 1))))


def fit_batch(cfg: TrainConfig, images: int, per_step: int, chosen: frozenset[str]) -> str | None:
    """A batch small enough for MIN_STEPS steps an epoch (a power of two, at least MIN_BATCH
    or all the images where there are fewer, and a multiple of `per_step`), the lr scaled
    with it (the lr per image kept) unless the lr is set or already scales with the batch
    (--lr-scaling linear)."""
    if "batch_size" in chosen or images // cfg.batch_size >= MIN_STEPS:
        return None
    batch = math.ceil(batch_for_steps(images) / per_step) * per_step
    if images < batch and images >= per_step:  # fewer images than the smallest batch: one step
        batch = images // per_step * per_step
    if batch >= cfg.batch_size:
        return None
    before, cfg.batch_size = cfg.batch_size, batch
    said = (
        f"batch {batch} (not {before}): {images} training images give "
        f"{images // before} optimizer steps an epoch at {before}, {images // batch} "
        f"at {batch}"
    )
    if cfg.lr_scaling == "linear":
        return f"{said}; the lr scales with it (--lr-scaling linear); --batch-size decides"
    if "lr" in chosen:
        return f"{said}; your --lr {cfg.lr:g} is kept; --batch-size decides"
    lr = float(f"{cfg.lr * batch / before:.3g}")
    cfg.lr = lr
    return f"{said}, and lr {lr:g} (the lr per image kept); --batch-size and --lr decide"
