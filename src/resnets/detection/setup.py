"""A detection run set up: its folder claimed, the boxes read and split, the detector's spec
decided from the options and the training images (input size, channels, mean and std, the
smallest anchor, trainable stages), the detector and optimizer built, and a checkpoint
restored for --resume. Each decision is a note in the run's summary."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.build import IMAGENET_MEAN, IMAGENET_STD
from ..errors import UsageError
from ..models.meta import WeightsMeta
from ..models.registry import get_config
from ..training.config import TrainConfig
from ..training.distributed import DistEnv
from ..training.optim import Schedule, build_optimizer
from ..training.run_folder import RunFolder
from ..training.setup import claim_folder
from .boxes import BoxSet
from .checkpoints import restore
from .dataset import BoxDataset, BoxSplits, scaled, split_boxes
from .models import anchor_base, backbone_of, build_detector, default_trainable_stages
from .readers import read_boxes
from .run import DetectionRun


def setup_detection(cfg: TrainConfig, env: DistEnv, device: torch.device) -> DetectionRun:
    """The run's folder claimed (by process 0 under torchrun), then the run built in it; if
    building fails, the folder is left as it was."""
    folder = claim_folder(cfg, env)
    try:
        return build_run(cfg, env, device, folder)
    except BaseException:
        folder.abandon()
        raise


def build_run(
    cfg: TrainConfig, env: DistEnv, device: torch.device, folder: RunFolder
) -> DetectionRun:
    named = {"path": cfg.path_column, "label": cfg.label_column}
    columns = {k: v for k, v in named.items() if v is not None}
    boxes = read_boxes(cfg.data, cfg.strict, cfg.synthetic_samples, columns)
    splits = split_boxes(boxes, cfg.val_split, cfg.test_split, cfg.seed, cfg.image_size)
    if cfg.num_classes is not None and cfg.num_classes != len(boxes.classes):
        raise UsageError(
            f"--num-classes {cfg.num_classes}, but the boxes have {len(boxes.classes)} classes"
        )
    hflip = True if cfg.hflip is None else cfg.hflip
    train_set = BoxDataset(splits, splits.train, True, hflip, cfg.scale, cfg.seed)
    spec = detector_spec(cfg, boxes, splits, train_set)
    model = build_detector(spec, cfg.pretrained).to(device)
    per_step = cfg.batch_size
    steps_per_epoch = max(1, -(-len(train_set) // per_step))
    total = cfg.steps or cfg.epochs * steps_per_epoch
    optimizer = build_optimizer(model, cfg, device, backbone_of(model))
    meta = weights_meta(cfg, spec, boxes.classes)
    val_set = BoxDataset(splits, splits.val, False, False, 0.0, cfg.seed)
    schedule = Schedule(cfg, steps_per_epoch, total)
    run = DetectionRun(
        cfg,
        env,
        device,
        splits,
        spec,
        model,
        optimizer,
        schedule,
        folder,
        meta,
        train_set,
        val_set,
        steps_per_epoch,
    )
    for text in boxes.notes + splits.notes + describe(spec, cfg, hflip):
        run.note(text)
    if env.active:
        run.note(
            f"{env.world_size} processes: each takes its share of every {cfg.batch_size}-image "
            "batch; their gradients are summed before each step (BatchNorm: per process)"
        )
    folder.prepare(checkpoint_bytes(model))
    if cfg.resume:
        restore(run)
    folder.write_config()
    sizes = {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)}
    info = {"model": cfg.model, "data": cfg.data, "task": "detection", "device": str(device)}
    folder.write_manifest(info | {"splits": sizes})
    return run


def weights_meta(cfg: TrainConfig, spec: dict[str, Any], classes: list[str]) -> WeightsMeta:
    """What travels with the weights: the backbone's config, the classes, and the detector's
    spec, from which detection/infer.py builds it again."""
    config = get_config(cfg.model).replace(in_chans=spec["in_chans"], num_classes=0)
    return WeightsMeta(
        cfg.model,
        config,
        classes=classes,
        input_size=spec["size"],
        mean=spec["mean"],
        std=spec["std"],
        task="detection",
        detector=spec,
    )


def detector_spec(
    cfg: TrainConfig, boxes: BoxSet, splits: BoxSplits, train_set: BoxDataset
) -> dict[str, Any]:
    """What the detector is built from, kept in the weights' metadata."""
    in_chans = cfg.in_chans or (1 if boxes.grey else 3)
    if cfg.normalize == "imagenet" and in_chans == 3:
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    else:
        mean, std = image_statistics(train_set, in_chans)
    sides = []
    for i in range(len(train_set)):  # the boxes at the input size, from the sizes alone
        item = train_set.item(i)
        b = item.boxes * scaled(*item.size, splits.size)[2]
        sides.append(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).clamp_min(0).sqrt())
    frozen = bool(cfg.pretrained) if cfg.frozen_bn is None else cfg.frozen_bn
    trainable = cfg.trainable_stages
    if trainable is None:
        trainable = default_trainable_stages(cfg.model, bool(cfg.pretrained))
    return {
        "model": cfg.model,
        "head": cfg.head,
        "num_classes": len(boxes.classes),
        "in_chans": in_chans,
        "mean": mean,
        "std": std,
        "anchor": anchor_base(torch.cat(sides)),
        "size": splits.size,
        "trainable_stages": trainable,
        "frozen_bn": frozen,
        "score_threshold": cfg.score_threshold,
        "rois_per_image": cfg.rois_per_image,
        "fpn_channels": fpn_channels(cfg.model),
        "category_ids": boxes.category_ids,
    }


def fpn_channels(model: str) -> int:
    """The pyramid's width: torchvision's 256, or twice the backbone's widest stage where that
    is narrower (CIFAR ResNets end at 64 channels: a 128-wide pyramid trains 1.9x faster on a
    CPU and reaches the same mAP50 on the bundled boxes, benchmarks/RESULTS.md)."""
    config = get_config(model)
    return min(256, 2 * config.out_width(len(config.layers) - 1))


def image_statistics(data: BoxDataset, channels: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of up to 256 training images at the input size."""
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    count = 0
    for i in range(min(len(data), 256)):
        image, _ = data.resized(i)
        if image.shape[0] != channels:
            image = image.mean(0, keepdim=True).expand(channels, -1, -1)
        x = image.reshape(channels, -1).double()
        total += x.sum(1)
        squares += (x * x).sum(1)
        count += x.shape[1]
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(1e-6).sqrt()
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]


def describe(spec: dict[str, Any], cfg: TrainConfig, hflip: bool) -> list[str]:
    base = spec["anchor"]
    head = {
        "fasterrcnn": "Faster R-CNN on an FPN",
        "retinanet": "RetinaNet on an FPN",
        "fcos": "FCOS on an FPN",
        "fasterrcnn-c5": "the seed's single-map Faster R-CNN (last stage only)",
    }[spec["head"]]
    stats = "ImageNet's" if spec["mean"] == list(IMAGENET_MEAN) else "the training images'"
    parts = len(get_config(cfg.model).layers) + 1
    k = spec["trainable_stages"]
    training = "the stem and every stage train" if k == parts else f"the last {k} stage(s) train"
    return [
        f"{head} on {cfg.model} ({spec['in_chans']} channel(s), {stats} mean and std); smallest "
        f"anchor {base} px, from the training boxes' sizes",
        f"augmentation: {'horizontal flips' if hflip else 'no flips'}"
        + (f", zoom ±{cfg.scale:g}" if cfg.scale else ""),
        f"BatchNorm {'frozen' if spec['frozen_bn'] else 'trained'}; {training}",
    ]


def checkpoint_bytes(model: nn.Module) -> int:
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return 4 * params  # the weights, SGD's momentum, and best.safetensors beside them
