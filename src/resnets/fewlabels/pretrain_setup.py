"""A pretraining run set up, saved, restored and finished: the folder claimed as `train` claims
it, the images read by the same sources (their labels kept for the kNN monitor only), the
backbone and the method's heads built, and each decision a note in the run's summary."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..data import make_loaders
from ..data.build import eval_loader
from ..data.provenance import write_record
from ..errors import UsageError
from ..models import create_model
from ..models.meta import WeightsMeta
from ..models.weights import save_weights
from ..training.checkpoint import (
    BEST,
    load_checkpoint,
    progress_of,
    save_checkpoint,
    set_rng_state,
)
from ..training.config import TrainConfig, to_dict
from ..training.distributed import DistEnv
from ..training.environment import environment
from ..training.fit import fit_to_data, given
from ..training.optim import Schedule, build_optimizer
from ..training.resolve import peak_lr
from ..training.setup import claim_folder, read_data, seed_everything
from .methods import SPECS, Method
from .pretrain_run import PretrainRun
from .views import TwoViews

log = logging.getLogger("resnets")

SSL_LR = 0.06  # per 256 images, SGD (lightly's benchmarks)
QUEUE = 4096  # MoCo's keys for CIFAR-sized sets (MoCo v2: 65,536 on ImageNet)


def setup_pretraining(cfg: TrainConfig, env: DistEnv, device: torch.device) -> PretrainRun:
    """The run's folder claimed, then the run built in it; if building fails, the folder is
    left as it was."""
    seed_everything(cfg.seed + env.rank)
    folder = claim_folder(cfg, env)
    try:
        return build_run(cfg, env, device, folder)
    except BaseException:
        folder.abandon()
        raise


def build_run(cfg: TrainConfig, env: DistEnv, device: torch.device, folder) -> PretrainRun:
    splits = read_data(cfg, folder)
    check_pretraining(cfg, splits)
    notes = list(splits.notes)
    if "lr" not in (given(cfg) or {"lr"}):  # the lr of lightly's and solo-learn's CIFAR recipes
        cfg.lr = round(SSL_LR * cfg.batch_size / 256, 6)
        notes.append(f"lr {cfg.lr:g}: 0.06 x batch {cfg.batch_size} / 256 (--lr sets it)")
    notes += fit_to_data(cfg, len(splits.train), env.world_size)
    if cfg.amp == "auto":  # saved in config.yaml: a resume computes as the run began
        cfg.amp = "bf16" if device.type == "cuda" else "none"
        notes.append(f"--amp auto: {cfg.amp} for pretraining on {device.type}")
    seed_everything(cfg.seed)  # the same initial weights on every process
    backbone = create_model(cfg.model, num_classes=0, in_chans=splits.channels)
    method = Method(cfg.method, backbone, cfg.temperature, queue_size(cfg, splits, notes))
    method = method.to(device)
    trained: nn.Module = method
    if env.active:
        ids = [device.index] if device.type == "cuda" else None
        trained = nn.parallel.DistributedDataParallel(method, device_ids=ids)
    loaders, bank = pretrain_loaders(cfg, splits, env, device)
    steps_per_epoch = len(loaders.train)
    total = cfg.steps or cfg.epochs * steps_per_epoch
    run = PretrainRun(
        cfg=cfg,
        env=env,
        device=device,
        method=method,
        trained=trained,
        optimizer=build_optimizer(method, cfg, device, backbone),
        schedule=Schedule(cfg, steps_per_epoch, total),
        views=TwoViews(tuple(splits.mean), tuple(splits.std), splits.hflip),
        loaders=loaders,
        bank=bank,
        splits=splits,
        folder=folder,
        meta=backbone_meta(cfg, backbone, splits),
        total_steps=total,
    )
    for text in notes + describe(run):
        run.note(text)
    folder.prepare(6 * sum(p.numel() * p.element_size() for p in method.parameters()))
    if cfg.resume:
        restore(run)
    folder.write_manifest(
        {"model": cfg.model, "data": cfg.data, "method": cfg.method, "device": str(device)}
    )
    folder.write_config()
    if not cfg.resume and env.main:
        write_record(folder.path, splits)
    return run


def check_pretraining(cfg: TrainConfig, splits) -> None:
    """What pretraining cannot do yet, said before it starts."""
    if cfg.task != "classification":
        raise UsageError("resnets pretrain learns a classifier's backbone; drop --task")
    if cfg.accum_steps != 1:
        raise UsageError(
            "--accum-steps splits a batch, and with it the negatives and batch statistics the "
            "losses compare: pretrain with --batch-size the memory allows"
        )
    if splits.spatial_dims != 2:
        raise UsageError("resnets pretrain takes 2D images; 3D volumes are not supported yet")


def pretrain_loaders(cfg: TrainConfig, splits, env: DistEnv, device: torch.device):
    """The training batches as they are read, neither cropped nor flipped (the views make
    their own), with the validation and test loaders; and the training split in order, the
    kNN monitor's bank."""
    unaugmented = replace(splits, crop_padding=0, hflip=False)
    loaders = make_loaders(
        unaugmented,
        batch_size=cfg.batch_size,
        shard=env.shard(1),
        device=device,
        seed=cfg.seed,
        num_workers=cfg.num_workers,
    )
    batch = max(cfg.batch_size, 256)
    return loaders, eval_loader(splits, "train", batch, device, num_workers=cfg.num_workers)


def queue_size(cfg: TrainConfig, splits, notes: list[str]) -> int:
    """MoCo's queue: as asked, else 4096 keys, at most half the training images (a queue
    longer than the data holds every image's old keys as its own negatives)."""
    if cfg.method != "moco":
        return 0
    if cfg.queue_size is not None:
        return cfg.queue_size
    size = max(
        min(QUEUE, len(splits.train) // 2 // cfg.batch_size * cfg.batch_size), cfg.batch_size
    )
    notes.append(f"moco: a queue of {size} keys (--queue-size; at most half the training images)")
    return size


def describe(run: PretrainRun) -> list[str]:
    """The notes on what pretraining was set up to do: the method's heads, the views, the
    labels' one use."""
    cfg, views = run.cfg, run.views
    colour = run.splits.channels == 3
    jitter = "brightness, contrast and saturation" if colour else "brightness and contrast"
    grey = f", grey p {views.grey_p:g}" if colour else ""
    flips = "horizontal flips" if views.hflip else "no flips"
    lines = [
        f"pretraining: {cfg.method} on {cfg.model}'s {run.method.backbone.num_features} "
        f"features; {heads(run.method)}",
        f"views: random resized crops of {views.min_scale:.0%}..100 % of the image, {flips}, "
        f"{jitter} jitter ±{views.jitter:g} (p {views.jitter_p:g}){grey}",
        f"the labels are unused but by the kNN monitor (k {cfg.knn_k}); the last epoch's "
        f"weights are kept, never selected on labels; lr {peak_lr(cfg):g}",
    ]
    if run.env.active:
        lines.append(
            f"{run.env.world_size} processes: negatives and batch statistics gathered from all; "
            "BatchNorm per process"
        )
    return lines


def heads(method: Method) -> str:
    """The method's heads in a few words: projector widths, predictor, momentum encoder."""
    widths = [m.out_features for m in method.online.projector if isinstance(m, nn.Linear)]
    text = f"projector {method.backbone.num_features}-{'-'.join(map(str, widths))}"
    if method.predictor is not None:
        text += ", predictor"
    momentum = SPECS[method.name].momentum
    if momentum is not None:
        rising = "" if method.name == "moco" else " rising to 1"
        text += f", momentum encoder (decay {momentum:g}{rising})"
    if method.temperature:
        text += f"; temperature {method.temperature:g}"
    return text


def backbone_meta(cfg: TrainConfig, backbone, splits) -> WeightsMeta:
    """What best.safetensors carries: the backbone (no classifier: num_classes 0), the classes
    whose images it saw, and how inputs are prepared."""
    return WeightsMeta(
        model=cfg.model,
        config=backbone.config,
        classes=splits.classes,
        input_size=splits.input_size,
        resize_size=splits.resize_size,
        mean=splits.mean,
        std=splits.std,
        item_normalize=splits.item_normalize,
    )


def save(run: PretrainRun) -> None:
    """best.safetensors (the backbone now), then last.pt (the whole method and optimizer)."""
    if not run.env.main:
        return
    folder = run.folder.path
    save_weights(run.method.backbone, folder / BEST, run.meta)
    payload = {
        "model_name": run.cfg.model,
        "config": to_dict(run.cfg),
        "resnets_meta": run.meta.to_json(),
        "model": run.method.state_dict(),
        "optimizer": run.optimizer.state_dict(),
    }
    save_checkpoint(folder / "last.pt", payload, run.progress)
    run.folder.commit()


def restore(run: PretrainRun) -> None:
    data = load_checkpoint(run.folder.path / "last.pt", run.cfg.model)
    run.method.load_state_dict(data["model"])
    run.optimizer.load_state_dict(data["optimizer"])
    run.progress = progress_of(data)
    set_rng_state(data["rng"])
    run.note(f"resumed {run.folder.path} after epoch {run.progress.epoch}")


def finish(run: PretrainRun) -> dict[str, Any]:
    """The summary (summary.json and the log): the last epoch's kNN and spread."""
    p = run.progress
    last = p.history[-1] if p.history else {}
    summary = {
        "model": run.cfg.model,
        "data": run.cfg.data,
        "method": run.cfg.method,
        "epochs": p.epoch,
        "steps": p.step,
        "train_seconds": round(p.train_seconds, 1),
        "images_per_second": round(p.step * run.cfg.batch_size / max(p.train_seconds, 1e-9), 1),
        "val_knn": last.get("val_knn"),
        "spread": next((v for k, v in last.items() if k.endswith("_spread")), None),
        "run": str(run.folder.path),
        "weights": str(run.folder.path / BEST),
        "notes": run.notes,
        "environment": environment(),
    }
    run.folder.write_summary(summary)
    run.folder.close()
    if run.env.main:
        log.info("%s", summary_text(summary))
    return summary


def summary_text(s: dict[str, Any]) -> str:
    lines = [
        f"resnets pretrain: {s['method']} on {s['model']}, {s['data']}, {s['epochs']} epochs "
        f"({s['steps']} steps) in {s['train_seconds']:.1f} s, "
        f"{s['images_per_second']:,.0f} images/s",
    ]
    if s["val_knn"] is not None:
        lines.append(
            f"  validation kNN top-1  {s['val_knn']:6.2f} %  (k-NN on the training split's labels)"
        )
    lines.append(f"  embedding spread      {s['spread']:.3f}  (0..1; 0: collapsed)")
    lines.append(f"  backbone weights      {s['weights']}")
    lines += [f"  note: {n}" for n in s["notes"]]
    run = s["run"]
    lines += [
        "next:",
        f"  resnets train --pretrained {run} --data ...  (--freeze-backbone: a linear probe)",
        f"  resnets fewshot {run} --data ... --classes ...",
    ]
    return "\n".join(lines)
