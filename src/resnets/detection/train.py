"""`--task detection`: the boxes read and split, a detector built on the chosen ResNet, trained
with torchvision's detection recipe scaled to the batch, selected on validation mAP, and
scored once on the test split; through the same run folder as classification (config.yaml,
manifest.json, metrics.csv, curves.png, last.pt, best.safetensors, summary.json).

A checkpoint is written after each epoch; a resumed run continues at the next epoch with the
RNG, optimizer and sampling order restored, so it ends where an uninterrupted run ends."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..errors import TrainingError, UsageError
from ..logs import interactive
from ..models.meta import WeightsMeta
from ..models.registry import get_config
from ..models.weights import save_weights
from ..training.checkpoint import (
    BEST,
    PREVIOUS_BEST,
    STAMP,
    Progress,
    best_stamp,
    load_best,
    load_checkpoint,
    progress_of,
    save_checkpoint,
    set_rng_state,
)
from ..training.config import TrainConfig, to_dict
from ..training.distributed import DistEnv
from ..training.optim import Schedule, build_optimizer, set_lr
from ..training.run_folder import RunFolder, check_folder, default_folder
from ..training.saving import Interrupted, set_aside_best
from ..training.signals import StopRequest
from .boxes import BoxSet
from .dataset import BoxDataset, BoxSplits, collate, scaled, split_boxes
from .metrics import BoxScores, score_boxes, table
from .models import anchor_base, backbone_of, build_detector, default_trainable_stages
from .readers import read_boxes

log = logging.getLogger("resnets")
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@dataclass
class DetectionRun:
    cfg: TrainConfig
    device: torch.device
    splits: BoxSplits
    spec: dict[str, Any]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    folder: RunFolder
    meta: WeightsMeta
    train_set: BoxDataset
    val_set: BoxDataset
    steps_per_epoch: int
    progress: Progress = field(default_factory=Progress)
    best_state: dict[str, torch.Tensor] | None = None
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        log.info("note: %s", text)
        self.notes.append(text)


def train_detector(cfg: TrainConfig, env: DistEnv, device: torch.device) -> dict[str, Any]:
    """Train a detector as `cfg` says and return the run's summary."""
    if env.world_size > 1:
        raise UsageError("--task detection trains in one process for now; run it without torchrun")
    torch.manual_seed(cfg.seed)
    run = setup_detection(cfg, device)
    try:
        with StopRequest() as stop:
            summary = fit(run, stop)
    except BaseException as e:
        run.folder.abandon()
        if isinstance(e, Exception) and not isinstance(e, Interrupted):
            run.folder.mark_failed(e)
        raise
    log.info("%s", summary_text(summary))
    return summary


def setup_detection(cfg: TrainConfig, device: torch.device) -> DetectionRun:
    given, claimed = cfg.resume or cfg.out, []
    if not given:
        path, claimed = default_folder(cfg)
        given = str(path)
    folder = RunFolder(Path(given), cfg, True, claimed)
    try:
        folder.recover()
        check_folder(folder.path, cfg)
        return build_run(cfg, device, folder)
    except BaseException:
        folder.abandon()
        raise


def build_run(cfg: TrainConfig, device: torch.device, folder: RunFolder) -> DetectionRun:
    boxes = read_boxes(cfg.data, cfg.strict, cfg.synthetic_samples)
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
    meta = WeightsMeta(
        cfg.model,
        get_config(cfg.model).replace(in_chans=spec["in_chans"], num_classes=0),
        classes=boxes.classes,
        input_size=splits.size,
        mean=spec["mean"],
        std=spec["std"],
        task="detection",
        detector=spec,
    )
    val_set = BoxDataset(splits, splits.val, False, False, 0.0, cfg.seed)
    schedule = Schedule(cfg, steps_per_epoch, total)
    run = DetectionRun(
        cfg,
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
    folder.prepare(checkpoint_bytes(model))
    if cfg.resume:
        restore(run)
    folder.write_config()
    folder.write_manifest(
        {
            "model": cfg.model,
            "data": cfg.data,
            "task": "detection",
            "device": str(device),
            "splits": {
                "train": len(splits.train),
                "val": len(splits.val),
                "test": len(splits.test),
            },
        }
    )
    return run


def detector_spec(
    cfg: TrainConfig, boxes: BoxSet, splits: BoxSplits, train_set: BoxDataset
) -> dict[str, Any]:
    """What the detector is built from, kept in the weights' metadata."""
    in_chans = cfg.in_chans or (1 if boxes.grey else 3)
    if cfg.normalize == "imagenet" and in_chans == 3:
        mean, std = IMAGENET
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
        "category_ids": boxes.category_ids,
    }


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
    stats = "ImageNet's" if spec["mean"] == IMAGENET[0] else "the training images'"
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


# --- the loop --------------------------------------------------------------------------------


def fit(run: DetectionRun, stop: StopRequest) -> dict[str, Any]:
    """Epochs until --epochs (or --steps, or an early stop); a Ctrl-C or SIGTERM ends the epoch
    under way, saves, and stops (a detector is checkpointed at epoch ends only)."""
    cfg, p = run.cfg, run.progress
    epochs = cfg.epochs if cfg.steps is None else -(-cfg.steps // run.steps_per_epoch)
    while p.epoch < epochs:
        start = time.perf_counter()
        row = {"epoch": p.epoch + 1, **train_epoch(run, p.epoch, epochs)}
        p.train_seconds += time.perf_counter() - start
        row["lr"] = run.optimizer.param_groups[0]["lr"]
        if run.splits.val:
            scores, _ = evaluate_split(run.model, run.val_set, run.device, run.splits.boxes.classes)
            row |= {"val_map": scores.summary["map"], "val_map50": scores.summary["map50"]}
            improved = scores.summary["map"] > p.best_score
        else:
            improved = True
        p.history.append(row)
        log.info(epoch_line(row, epochs))
        if improved:
            p.best_score = row.get("val_map", 0.0)
            p.best_epoch, p.bad_epochs = p.epoch, 0
            run.best_state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
        else:
            p.bad_epochs += 1
        p.epoch, p.epoch_step = p.epoch + 1, 0
        save(run, improved)
        run.folder.log_epoch(p.history)
        if cfg.early_stop and p.bad_epochs >= cfg.early_stop:
            log.info("early stop: no improvement in %d epochs", cfg.early_stop)
            break
        if stop.requested and p.epoch < epochs:
            raise Interrupted(
                f"stopped after epoch {p.epoch}; saved {run.folder.path / 'last.pt'}. Resume "
                f"with: resnets train --resume {run.folder.path}"
            )
    return finish(run)


def autocast(cfg: TrainConfig, device: torch.device):
    """bf16 or fp16 autocast when asked (auto: bf16 on CUDA); fp32 on a CPU by default."""
    amp = cfg.amp
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" else "none"
    if amp == "none":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def train_epoch(run: DetectionRun, epoch: int, epochs: int) -> dict[str, float]:
    """One epoch: the training images in an order drawn from the seed and the epoch, in
    batches of --batch-size (in --accum-steps micro-batches), one optimizer step each."""
    cfg, p, data = run.cfg, run.progress, run.train_set
    data.epoch = epoch
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed + epoch))
    batches = order.split(cfg.batch_size)
    run.model.train()
    sums: dict[str, float] = {}
    bar = tqdm(
        total=len(batches),
        desc=f"epoch {epoch + 1}/{epochs}",
        leave=False,
        disable=not (cfg.progress and interactive()),
        dynamic_ncols=True,
    )
    steps = 0
    for batch in batches:
        if p.step >= run.schedule.total:
            break
        set_lr(run.optimizer, run.schedule(p.step))
        losses = train_step(run, batch.tolist())
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
        p.step, p.epoch_step, steps = p.step + 1, p.epoch_step + 1, steps + 1
        bar.update()
        bar.set_postfix(loss=f"{losses['loss']:.3f}")
    bar.close()
    return {f"train_{k}": v / max(steps, 1) for k, v in sums.items()}


def train_step(run: DetectionRun, batch: list[int]) -> dict[str, float]:
    cfg = run.cfg
    micro = [batch[i :: cfg.accum_steps] for i in range(cfg.accum_steps)]
    micro = [m for m in micro if m]
    totals: dict[str, float] = {}
    for part in micro:
        images, targets = collate([run.train_set[i] for i in part])
        images = [im.to(run.device) for im in images]
        targets = [{k: v.to(run.device) for k, v in t.items()} for t in targets]
        with autocast(cfg, run.device):
            losses = run.model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the detection loss became {float(loss)} at step {run.progress.step}; lower --lr"
            )
        (loss * len(part) / len(batch)).backward()
        share = len(part) / len(batch)
        for k, v in [*losses.items(), ("loss", loss)]:
            name = k.removeprefix("loss_")
            totals[name] = totals.get(name, 0.0) + float(v.detach()) * share
    if cfg.clip_grad:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip_grad)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return totals


@torch.no_grad()
def detect(
    model: nn.Module, images: list[torch.Tensor], device: torch.device
) -> list[dict[str, torch.Tensor]]:
    model.eval()
    out = model([im.to(device) for im in images])
    return [{k: v.cpu() for k, v in o.items()} for o in out]


def evaluate_split(
    model: nn.Module,
    data: BoxDataset,
    device: torch.device,
    classes: list[str],
    confusion: bool = False,
    batch_size: int = 8,
) -> tuple[BoxScores, list[dict[str, torch.Tensor]]]:
    """The split's COCO scores, and the detections (labels: class index + 1)."""
    detections, targets = [], []
    for start in range(0, len(data), batch_size):
        images, truth = collate([data[i] for i in range(start, min(start + batch_size, len(data)))])
        detections += detect(model, images, device)
        targets += truth
    return score_boxes(detections, targets, classes, confusion), detections


# --- checkpoints -----------------------------------------------------------------------------


def save(run: DetectionRun, improved: bool) -> None:
    """best.safetensors when validation improved (the previous one kept aside until last.pt
    records the new selection), then last.pt."""
    folder = run.folder.path
    if improved:
        set_aside_best(folder)
        stamp = {STAMP: best_stamp(run.progress)}
        save_weights(run.model, folder / BEST, run.meta, state=run.best_state, extra=stamp)
    payload = {
        "model_name": run.cfg.model,
        "config": to_dict(run.cfg),
        "resnets_meta": run.meta.to_json(),
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
    }
    save_checkpoint(folder / "last.pt", payload, run.progress)
    (folder / PREVIOUS_BEST).unlink(missing_ok=True)
    run.folder.commit()


def restore(run: DetectionRun) -> None:
    data = load_checkpoint(run.folder.path / "last.pt", run.cfg.model)
    run.model.load_state_dict(data["model"])
    run.optimizer.load_state_dict(data["optimizer"])
    run.progress = progress_of(data)
    run.best_state = load_best(run.folder.path, data, True)
    set_rng_state(data["rng"])
    run.note(f"resumed {run.folder.path} after epoch {run.progress.epoch}")


# --- the end ---------------------------------------------------------------------------------


def finish(run: DetectionRun) -> dict[str, Any]:
    """The selected weights scored once on the test split; the summary, curves and plots."""
    from .report import write_scores

    p, cfg = run.progress, run.cfg
    if run.best_state is not None:
        run.model.load_state_dict(run.best_state)
    test: BoxScores | None = None
    classes = run.splits.boxes.classes
    if run.splits.test:
        test_set = BoxDataset(run.splits, run.splits.test, False, False, 0.0, cfg.seed)
        test, detections = evaluate_split(run.model, test_set, run.device, classes, True)
        write_scores(test, run.folder.path / "eval", "test", classes)
        log.info(
            "%s",
            table(test, f"test split ({len(test_set)} images), epoch {p.best_epoch + 1} weights"),
        )
    if run.splits.val:
        from .report import draw_examples

        examples = [run.val_set[i] for i in range(min(8, len(run.val_set)))]  # those drawn
        detections = detect(run.model, [image for image, _ in examples], run.device)
        draw_examples(examples, detections, classes, run.folder.path / "val-predictions.png")
    seen = p.step * cfg.batch_size
    summary = {
        "model": cfg.model,
        "data": cfg.data,
        "task": "detection",
        "head": cfg.head,
        "run": str(run.folder.path),
        "best_val_map": p.best_score if p.best_score >= 0 else None,
        "best_epoch": p.best_epoch,
        **{
            f"test_{k}": (test.summary[k] if test else None)
            for k in ("map", "map50", "map75", "ar100")
        },
        "test_images": len(run.splits.test),
        "test_per_class": test.per_class if test else None,
        "epochs": p.epoch,
        "steps": p.step,
        "train_seconds": round(p.train_seconds, 2),
        "images_per_second": round(seen / p.train_seconds, 1) if p.train_seconds else None,
        "device": str(run.device),
        "input_size": run.splits.size,
        "classes": classes,
        "notes": run.notes,
    }
    run.folder.write_summary(summary)
    run.folder.plot(p.history, score="map")
    run.folder.close()
    return summary


def epoch_line(row: dict[str, float], epochs: int) -> str:
    text = f"epoch {row['epoch']}/{epochs}  loss {row.get('train_loss', float('nan')):.4f}"
    if "val_map" in row:
        text += f"  val mAP {row['val_map']:.3f}  mAP50 {row['val_map50']:.3f}"
    return text + f"  lr {row['lr']:.2e}"


def summary_text(summary: dict[str, Any]) -> str:
    test = summary["test_map"]
    scored = (
        f"test mAP {test:.3f}, mAP50 {summary['test_map50']:.3f} on {summary['test_images']} images"
        if test is not None
        else "no test split"
    )
    return (
        f"done: {summary['epochs']} epochs in {summary['train_seconds']:.1f} s; {scored}; "
        f"weights in {summary['run']}/best.safetensors"
    )
