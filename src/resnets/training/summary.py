"""The end of a run: the selected weights, evaluated once on the test split; the summary,
curves, best.safetensors and (segmentation) the test split's predicted masks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Loaders
from ..data.build import eval_loader
from ..data.python import PYTHON
from ..metrics import POSITIVE, best_thresholds, shown_cut, youden_threshold
from ..tasks import get_task, write_mask
from .run import Run
from .saving import save_best_weights

log = logging.getLogger("resnets")


def finish(run: Run, measure: Callable[..., Any]) -> dict[str, Any]:
    """Evaluate the selected weights once on the test set, in full precision (as `evaluate`
    and `predict` will compute them, whatever --amp trained in); write summary and plots.
    Multi-label: per-label thresholds are chosen on validation first, also in full precision."""
    p, task = run.progress, run.task
    target = run.model.selected
    if run.best_state is not None:
        target.load_state_dict(run.best_state)
    if task.multilabel:
        choose_thresholds(run, measure)
    elif two_classes(run):
        choose_cut(run, measure)
    test = measure(run, run.loaders.test, True).read() if run.loaders.test is not None else {}
    if run.cfg.amp != "none":
        run.note(
            f"validation ran under {run.cfg.amp} autocast during training; the test score is "
            "the selected weights in fp32, as evaluate and predict compute them"
        )
    seen = p.step * run.cfg.batch_size
    images = len(run.splits.test or []) if task.masks else test.get("count")
    summary = {
        "model": run.cfg.model,
        "data": run.cfg.data,
        "task": task.name,
        "run": str(run.folder.path),
        f"best_val_{task.score}": p.best_score if p.best_score >= 0 else None,
        "best_epoch": p.best_epoch,
        **{f"test_{k}": test.get(k) for k in task.test_keys},
        **({f"test_{k}": test.get(k) for k in BINARY_KEYS} if two_classes(run) else {}),
        "test_images": images if run.splits.test is not None else None,
        "epochs": p.epoch,
        "steps": p.step,
        "train_seconds": round(p.train_seconds, 2),
        "images_per_second": round(seen / p.train_seconds, 1) if p.train_seconds else None,
        "device": str(run.device),
        "world_size": run.env.world_size,
        "input_size": run.splits.input_size,
        "input_shape": list(run.splits.extent),  # spatial: (H, W) or a volume's (D, H, W)
        "inputs": run.splits.reading.get("inputs", "images"),
        "classes": len(run.splits.classes),
        **unreadable_images(run.loaders, run.splits.unreadable),
        "notes": run.notes,
    }
    if run.env.main:
        save_best_weights(run)  # the file always matches the weights the summary reports
        if task.masks and run.splits.test is not None:
            summary["predictions"] = str(save_test_masks(run, target))
    run.folder.write_summary(summary)
    run.folder.plot(p.history, task.score)
    run.folder.close()
    return summary


@torch.no_grad()
def save_test_masks(run: Run, model: nn.Module) -> Path:
    """The test split's predicted masks in RUN/test-masks (apart from RUN/predictions, where
    `predict` writes new images' masks). Read from files, each is named after
    its image and lies on the image's own pixels (a volume's voxels), as `predict` writes
    them; generated data has no files, so its masks are numbered in the split's order, at the
    training size (PNG; volumes: .npy)."""
    folder = run.folder.path / "test-masks"
    files = getattr(run.splits.test, "files", None)
    if files:
        from ..infer.predict import predict  # the same reading and writing as for new images

        result = predict(
            run.folder.path, files, masks_out=folder, device=str(run.device), overwrite=True
        )
        for name, why in result.failed.items():
            log.warning("no test mask for %s: %s", name, why)
        return folder
    model.eval()
    n = 0
    for x, _ in eval_loader(run.splits, "test", 64, run.device):
        for mask in model(x).argmax(1):
            write_mask(mask, folder / f"{n:05d}.png", len(run.splits.classes))
            n += 1
    return folder


def choose_thresholds(run: Run, measure: Callable[..., Any]) -> None:
    """Each label's decision threshold: the one with the best F1 on validation (0.5 with no
    validation split); stored with the weights, which predict uses."""
    labels = len(run.splits.classes)
    if run.loaders.val is None:
        run.meta.thresholds = [0.5] * labels
        run.note("multi-label thresholds: 0.5 for every label (no validation split to choose on)")
        return
    chosen = best_thresholds(*measure(run, run.loaders.val, True).outputs())
    run.meta.thresholds = [round(float(t), 6) for t in chosen]
    shown = ", ".join(f"{c} {t:.2f}" for c, t in zip(run.splits.classes, chosen, strict=True))
    run.note(f"multi-label thresholds (best F1 on validation): {shown}")


BINARY_KEYS = ("auc", "balanced_acc", "threshold", "acc_cut", "balanced_acc_cut")


def two_classes(run: Run) -> bool:
    """Single-label classification into two classes: scored with a threshold too."""
    return run.task.name == "classification" and len(run.splits.classes) == 2


def choose_cut(run: Run, measure: Callable[..., Any]) -> None:
    """Two classes: the threshold on the positive class's probability with the best balanced
    accuracy on validation (Youden's J), stored with the weights, which evaluate and predict
    use; the test split is scored at it and at 0.5. None without a validation split."""
    positive = run.splits.classes[POSITIVE]
    if run.loaders.val is None:
        run.note(f"threshold: 0.5 on {positive!r} (no validation split to choose one on)")
        return
    cut = youden_threshold(*measure(run, run.loaders.val, True).outputs())
    run.meta.thresholds = [round(cut, 6)]
    run.note(
        f"threshold: {positive!r} when its probability is >= {shown_cut(cut)}, the best balanced "
        "accuracy on validation (Youden's J); stored with the weights, which predict and "
        "evaluate use; the test split is scored at it and at 0.5"
    )


def unreadable_images(loaders: Loaders, decoded: list[str]) -> dict[str, Any]:
    """Unreadable files met in any split, each counted once (folders only); `decoded`: those
    the decoding before training left out."""
    files = list(decoded)
    for loader in (loaders.train, loaders.val, loaders.test):
        files += loader.unreadable.files() if hasattr(loader, "unreadable") else []
    return {"skipped_images": len(files), "unreadable": files[:20]}


def binary_lines(s: dict[str, Any]) -> list[str]:
    """Two classes: the test AUC, and accuracy and balanced accuracy at the validation's
    threshold beside those at 0.5."""
    if s.get("test_auc") is None and s.get("test_balanced_acc") is None:
        return []
    auc = "n/a" if s.get("test_auc") is None else f"{s['test_auc'] / 100:.4f}"
    lines = [f"  test AUC               {auc}"]
    if s.get("test_threshold") is not None:
        lines.append(
            f"  test ACC / balanced    {s['test_acc_cut']:.2f} % / "
            f"{s['test_balanced_acc_cut']:.2f} %  at threshold {shown_cut(s['test_threshold'])} "
            "(chosen on validation)"
        )
    lines.append(
        f"  test ACC / balanced    {s['test_acc1']:.2f} % / {s['test_balanced_acc']:.2f} %  at 0.5"
    )
    return lines


def summary_text(s: dict[str, Any]) -> str:
    """The summary as the CLI prints it: what was trained, the honest numbers, what next."""

    def pct(v):
        return "n/a" if v is None else f"{v:.2f} %"

    unit = s.get("inputs", "images")  # images, or a 3D run's volumes or clips
    speed = f", {s['images_per_second']:,.0f} {unit}/s" if s.get("images_per_second") else ""
    procs = f" x {s['world_size']}" if s["world_size"] > 1 else ""
    lines = [
        f"resnets train: {s['model']} on {s['data']}, {s['epochs']} epoch{'s' * (s['epochs'] != 1)}"
        f" ({s['steps']} step{'s' * (s['steps'] != 1)})"
        f" in {s['train_seconds']:.1f} s on {s['device']}{procs}{speed}",
    ]
    if get_task(s["task"]).masks:
        lines += [
            f"  best validation Dice   {pct(s['best_val_dice'])}  (epoch {s['best_epoch']})",
            f"  test Dice / IoU        {pct(s['test_dice'])} / {pct(s['test_iou'])}"
            f"  ({s['test_images']} {unit}, evaluated once)",
            f"  predicted masks        {s.get('predictions')}",
        ]
    elif s["task"] == "multilabel":
        lines += [
            f"  best validation AUC    {pct(s['best_val_auc'])}  (epoch {s['best_epoch']})",
            f"  test AUC / mAP / F1    {pct(s['test_auc'])} / {pct(s['test_map'])} / "
            f"{pct(s['test_f1'])}  ({s['test_images']} {unit}, evaluated once)",
        ]
    else:
        top5 = s.get("classes", 6) > 5  # with 5 classes or fewer, top-5 is always 100 %
        tops = (
            f"test top-1 / top-5     {pct(s['test_acc1'])} / {pct(s['test_acc5'])}"
            if top5
            else f"test top-1             {pct(s['test_acc1'])}"
        )
        lines += [
            f"  best validation top-1  {pct(s['best_val_acc1'])}  (epoch {s['best_epoch']})",
            f"  {tops}  ({s['test_images']} {unit}, evaluated once)",
        ]
        lines += binary_lines(s)
    lines.append(f"  run folder             {s['run']}")
    if s.get("skipped_images"):
        lines.append(f"  skipped                {s['skipped_images']} unreadable images")
    lines += [f"  note: {n}" for n in s.get("notes", [])]
    if s["data"] == PYTHON:  # the command cannot be given Python objects: the call can
        lines += [
            "next:",
            f'  resnets.evaluate("{s["run"]}", data=...)  # the same objects: '
            "only the items held out for testing are scored",
        ]
    else:
        lines += ["next:", f"  resnets evaluate {s['run']}"]
    shown = {"volumes": "VOLUME...", "clips": "CLIP..."}.get(s.get("inputs", ""), "IMAGE...")
    lines.append(f"  resnets predict {s['run']} {shown}")
    return "\n".join(lines)
