"""`resnets pretrain`: a backbone learnt from images alone (the labels, where the data has some,
only score the kNN monitor), through the same run folder as `train` (config.yaml,
manifest.json, metrics.csv, last.pt, summary.json) and ending in best.safetensors, an
ordinary resnets weights file of the backbone: `train --pretrained RUN` fine-tunes it and
`fewshot RUN` scores it. Pretraining keeps the last epoch's weights; it never selects on the
labels. A checkpoint is written after each epoch (the method whole: heads, momentum encoder
and queue), and a resumed run continues at the next epoch as if it had not stopped."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch
from tqdm import tqdm

from ..errors import TrainingError
from ..logs import interactive
from ..training.config import TrainConfig
from ..training.distributed import DistEnv, any_rank, broadcast_object
from ..training.optim import set_lr
from ..training.saving import Interrupted
from ..training.signals import StopRequest
from .monitor import COLLAPSED, NARROW, knn_top1, spread
from .pretrain_run import PretrainRun
from .pretrain_setup import finish, save, setup_pretraining

log = logging.getLogger("resnets")


def pretrain(method: str = "simclr", **options: Any) -> dict[str, Any]:
    """Pretrain a backbone with the self-supervised `method` (simclr, moco, byol, simsiam,
    barlow, vicreg) and return the run's summary; `options` are train's (data=, model=,
    epochs=, ...). The run folder's best.safetensors is the backbone."""
    from ..training import train

    if options.get("resume"):
        return train(**options)
    return train(method=method, **options)


def pretrain_model(cfg: TrainConfig, env: DistEnv, device: torch.device) -> dict[str, Any]:
    """Pretrain as `cfg` says and return the run's summary."""
    run = setup_pretraining(cfg, env, device)
    try:
        with StopRequest() as stop:
            fit(run, stop)
    except BaseException as e:
        run.folder.abandon()
        if isinstance(e, Exception) and not isinstance(e, Interrupted):
            run.folder.mark_failed(e)
        raise
    return finish(run)


def fit(run: PretrainRun, stop: StopRequest) -> None:
    """Epochs of two-view steps; after each, the kNN monitor and the collapse check, then a
    checkpoint. A Ctrl-C or SIGTERM ends the epoch under way, saves and stops."""
    p = run.progress
    while p.epoch < run.epochs and p.step < run.total_steps:
        start = time.perf_counter()
        row = {"epoch": p.epoch + 1, "train_loss": train_epoch(run, p.epoch)}
        p.train_seconds += time.perf_counter() - start
        row |= {"step": p.step, "lr": run.optimizer.param_groups[0]["lr"]}
        row |= broadcast_object(monitor(run) if run.env.main else None)
        p.history.append(row)
        p.epoch, p.epoch_step = p.epoch + 1, 0
        if run.env.main:
            log.info(epoch_line(row, run.epochs))
        save(run)
        run.folder.log_epoch(p.history)
        check_collapse(run, row)
        if any_rank(stop.requested, run.device) and p.epoch < run.epochs:
            raise Interrupted(
                f"stopped after epoch {p.epoch}; saved {run.folder.path / 'last.pt'}. Resume "
                f"with: resnets pretrain --resume {run.folder.path}"
            )


def train_epoch(run: PretrainRun, epoch: int) -> float:
    """One epoch of optimizer steps; the mean loss over them (summed over processes)."""
    cfg, p = run.cfg, run.progress
    run.method.train()
    run.method.backbone.fc.eval()
    steps = min(len(run.loaders.train), run.total_steps - p.step)
    bar = tqdm(
        total=steps,
        desc=f"epoch {epoch + 1}/{run.epochs}",
        leave=False,
        disable=not (cfg.progress and run.env.main and interactive()),
        dynamic_ncols=True,
    )
    rows = run.loaders.train.batches.micro_slices()[0]
    total = torch.zeros((), device=run.device)
    done = 0
    for micro in run.loaders.train.epoch(epoch, 0):
        if done >= steps:
            break
        ((x, _),) = micro
        loss = train_step(run, x, epoch, rows)
        total += loss.detach()
        done, p.step, p.epoch_step = done + 1, p.step + 1, p.epoch_step + 1
        bar.update(1)
        if p.step % cfg.log_every == 0 or done == steps:
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    bar.close()
    if run.env.active:
        import torch.distributed as dist

        dist.all_reduce(total)
        total /= run.env.world_size
    mean = float(total) / max(done, 1)
    if not math.isfinite(mean):
        raise TrainingError(f"the pretraining loss became {mean} in epoch {epoch + 1}; lower --lr")
    return mean


def train_step(run: PretrainRun, x: torch.Tensor, epoch: int, rows: slice) -> torch.Tensor:
    """One optimizer step: two views of the batch, the method's loss on them, the step, then
    the momentum encoder and queue. The views' randomness comes from (seed, epoch, step)."""
    cfg, p = run.cfg, run.progress
    set_lr(run.optimizer, run.schedule(p.step))
    view1, view2 = run.views(x, cfg.seed, epoch, p.epoch_step, cfg.batch_size, rows)
    dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
    with torch.autocast(run.device.type, dtype=dtype, enabled=cfg.amp != "none"):
        loss = run.trained(view1, view2)
    loss.backward()
    if cfg.clip_grad:
        torch.nn.utils.clip_grad_norm_(run.method.parameters(), cfg.clip_grad)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.method.after_step(p.step / max(run.total_steps - 1, 1))
    return loss


@torch.no_grad()
def features(run: PretrainRun, loader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(backbone features, embeddings, labels) of a loader's images in order, the model in
    eval mode."""
    method = run.method
    method.eval()
    feats, embeds, labels = [], [], []
    for x, y in loader:
        f = method.online.features(x)
        feats.append(f.float().cpu())
        embeds.append(method.online.projector(f).float().cpu())
        labels.append(y.cpu())
    return torch.cat(feats), torch.cat(embeds), torch.cat(labels)


def monitor(run: PretrainRun) -> dict[str, float]:
    """The epoch's kNN top-1 on the validation split (its bank the training split, labels
    where the data has them) and the spread of the validation embeddings (of the training
    split's without validation)."""
    if run.loaders.val is None:
        _, embeds, _ = features(run, run.bank)
        return {"train_spread": spread(embeds)}
    queries, embeds, labels = features(run, run.loaders.val)
    out = {"val_spread": spread(embeds)}
    if labels.ndim == 1:
        bank, _, bank_labels = features(run, run.bank)
        out["val_knn"] = knn_top1(bank, bank_labels, queries, labels, run.cfg.knn_k)
    return out


def check_collapse(run: PretrainRun, row: dict[str, float]) -> None:
    """Warn in the notes when the embeddings narrow; stop the run when they have collapsed."""
    value = next((v for k, v in row.items() if k.endswith("_spread")), None)
    if value is None:
        return
    if value < COLLAPSED:
        raise TrainingError(
            f"the embeddings collapsed in epoch {row['epoch']} (spread {value:.4f} < "
            f"{COLLAPSED}: every image maps to nearly the same point); the run stops, its last "
            "checkpoint kept. Try a lower --lr, a longer warm-up (--warmup-epochs), or "
            "another --method"
        )
    if value < NARROW and not any("narrowing" in n for n in run.notes):
        run.note(
            f"warning: the embeddings are narrowing (spread {value:.3f} in epoch "
            f"{row['epoch']}: 1 is well spread, below {COLLAPSED} stops the run)"
        )


def epoch_line(row: dict[str, float], epochs: int) -> str:
    parts = [f"epoch {row['epoch']:>3}/{epochs}", f"loss {row['train_loss']:.4f}"]
    if "val_knn" in row:
        parts.append(f"val kNN top-1 {row['val_knn']:6.2f} %")
    spread_key = next(k for k in row if k.endswith("_spread"))
    parts.append(f"spread {row[spread_key]:.3f}")
    return "  ".join(parts) + f"  lr {row['lr']:.4g}"
