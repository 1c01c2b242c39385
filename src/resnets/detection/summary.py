"""The end of a detection run: the selected weights scored once on the test split (the
per-class table, eval/ files), validation images drawn with their boxes, the summary and the
curves; and the lines printed per epoch and at the end."""

from __future__ import annotations

import logging
from typing import Any

from .dataset import BoxDataset
from .infer import detect, evaluate_split
from .metrics import BoxScores, table
from .run import DetectionRun

log = logging.getLogger("resnets")


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
