"""Training recipes: named sets of option values (data, not code). Any value is also a flag.

default         SGD + Nesterov, cosine after a 5-epoch linear warm-up, 30 epochs: small data,
                quickly. The warm-up matters there: with a 1-epoch (10-step) warm-up on the
                digits, ResNet-56 started at loss 4 and stalled at 52 % training error.
paper-cifar     He et al. 2015, section 4.2: batch 128, lr 0.1 divided by 10 at 32k and 48k
                iterations, stop at 64k; wd 1e-4, momentum 0.9; 4-pixel pad, random 32 crop,
                flip; 45k/5k train/val. ResNet-110 and deeper warm up at 0.01 for 400 steps.
paper-imagenet  He et al. 2015, section 3.4, as in torchvision's reference: batch 256, lr 0.1
                divided by 10 every 30 epochs, 90 epochs, wd 1e-4, momentum 0.9;
                random-resized crop 224 + flip; resize 256 / centre crop 224 to evaluate.
modern          torchvision's 2021 recipe ("How to train state-of-the-art models"): lr 0.5
                per 1024 images, linearly scaled; cosine, 5 linear warm-up epochs from 0.01;
                600 epochs; label smoothing 0.1, MixUp 0.2, CutMix 1.0, wd 2e-5 and none on
                BN and biases, EMA of weights.
"""

from __future__ import annotations

from typing import Any

# He et al. 2015 train both CIFAR and ImageNet models with this SGD: lr 0.1 divided by 10 at
# milestones, momentum 0.9 (no Nesterov), weight decay 1e-4, no warm-up.
_PAPER_SGD: dict[str, Any] = {
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 1e-4,
    "schedule": "multistep",
    "lr_gamma": 0.1,
    "warmup_epochs": 0.0,
}

RECIPES: dict[str, dict[str, Any]] = {
    "default": {},
    "paper-cifar": {
        **_PAPER_SGD,
        "steps": 64_000,
        "batch_size": 128,
        "milestones": (32_000, 48_000),
        "milestone_unit": "step",
        "crop_padding": 4,
        "hflip": True,
        "val_split": 0.1,
    },
    "paper-imagenet": {
        **_PAPER_SGD,
        "epochs": 90,
        "batch_size": 256,
        "milestones": (30, 60),
        "milestone_unit": "epoch",
        "image_size": 224,
        "train_crop": "random-resized",
        "eval_resize": 256,
        "hflip": True,
    },
    "modern": {
        "epochs": 600,
        "batch_size": 1024,
        "optimizer": "sgd",
        "lr": 0.5,
        "lr_scaling": "linear",
        "lr_base_batch": 1024,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 2e-5,
        "decay_norm_bias": False,
        "schedule": "cosine",
        "warmup_epochs": 5.0,
        "warmup_style": "linear",
        "warmup_factor": 0.01,
        "label_smoothing": 0.1,
        "mixup_alpha": 0.2,
        "cutmix_alpha": 1.0,
        "ema_decay": 0.9998,
        "train_crop": "random-resized",
        "hflip": True,
    },
}


DETECTION_EPOCHS = 12  # the "1x" schedule of detectron2 and mmdetection


def detection_rules(values: dict[str, Any]) -> dict[str, Any]:
    """torchvision's detection reference (references/detection: SGD lr 0.02 for 16 images,
    momentum 0.9, wd 1e-4, a linear warm-up from 0.001, lr / 10 at epochs 16 and 22 of 26),
    scaled to the batch and to --epochs (12 by default, the 1x schedule); a ResNet-18 at 8
    images a batch, which a CPU can train, where classification's defaults (resnet20's CIFAR
    stem, 128 a batch, 30 epochs) do not fit."""
    epochs = int(values.get("epochs", DETECTION_EPOCHS))
    milestones = tuple(sorted({max(1, round(epochs * 16 / 26)), max(1, round(epochs * 22 / 26))}))
    return {
        "epochs": epochs,
        "model": "resnet18",
        "batch_size": 8,
        "lr": 0.02,
        "lr_scaling": "linear",
        "lr_base_batch": 16,
        "nesterov": False,
        "weight_decay": 1e-4,
        "schedule": "multistep",
        "milestones": milestones,
        "milestone_unit": "epoch",
        "warmup_epochs": 1.0,
        "warmup_factor": 0.001,
    }


def recipe_rules(recipe: str, values: dict[str, Any]) -> dict[str, Any]:
    """Values a recipe derives from the task and the model; each applies only if the user did
    not set it."""
    from ..models import MODELS

    if values.get("task") == "detection" and recipe == "default":
        return detection_rules(values)

    model = MODELS.get(values.get("model", "resnet20"))
    if model is None:
        return {}  # an unknown name fails later, with suggestions
    if recipe == "paper-cifar" and model.depth >= 110:
        # "we use 0.01 to warm up the training until the training error is below 80%
        # (about 400 iterations), and then go back to 0.1" (section 4.2)
        return {"warmup_steps": 400, "warmup_style": "constant", "warmup_factor": 0.1}
    return {}
