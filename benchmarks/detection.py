"""Our Faster R-CNN (resnets FPN) beside torchvision's fasterrcnn_resnet50_fpn built the usual
way: training and inference images/s at the same input size, in one process, interleaved, as
ratios (ours / torchvision's; above 1 is faster). Both sample torchvision's 512 RoIs per image
in training and read 300 proposals per image at test time, so the heads do the same work.

    python benchmarks/detection.py [--size 256] [--batch 2] [--reps 3]
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision

from resnets.detection.models import TEST_PROPOSALS, build_detector
from resnets.precision import cpu_description


def ours(model: str, size: int) -> torch.nn.Module:
    spec = {
        "model": model,
        "head": "fasterrcnn",
        "num_classes": 90,
        "in_chans": 3,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "anchor": 32,
        "size": size,
        "trainable_stages": 3,
        "frozen_bn": True,
        "score_threshold": 0.05,
        "rois_per_image": 512,
    }
    return build_detector(spec)


def theirs(size: int) -> torch.nn.Module:
    return torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=91,
        min_size=size,
        max_size=size,
        rpn_post_nms_top_n_test=TEST_PROPOSALS,  # ours: the paper's 300 at test time
    )


def batch(n: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, size, size, generator=g) for _ in range(n)]
    targets = []
    for _ in range(n):
        xy = torch.rand(6, 2, generator=g) * size * 0.6
        wh = torch.rand(6, 2, generator=g) * size * 0.3 + 16
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(1, 90, (6,))})
    return images, targets


def train_seconds(model, images, targets) -> float:
    model.train()
    start = time.perf_counter()
    loss = sum(model(images, targets).values())
    loss.backward()
    return time.perf_counter() - start


@torch.no_grad()
def infer_seconds(model, images) -> float:
    model.eval()
    start = time.perf_counter()
    model(images)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    models = {"torchvision r50": theirs(args.size)}
    models |= {
        "resnets r50": ours("resnet50", args.size),
        "resnets r18": ours("resnet18", args.size),
    }
    images, targets = batch(args.batch, args.size)
    for m in models.values():  # warm-up
        train_seconds(m, images, targets)
        infer_seconds(m, images)
    best = {name: [float("inf"), float("inf")] for name in models}
    for _ in range(args.reps):  # interleaved, the minimum of each
        for name, m in models.items():
            best[name][0] = min(best[name][0], train_seconds(m, images, targets))
            best[name][1] = min(best[name][1], infer_seconds(m, images))
    print(f"cpu: {cpu_description()}; {torch.get_num_threads()} threads; torch {torch.__version__}")
    print(f"input {args.size} px, batch {args.batch}, best of {args.reps}")
    ref = best["torchvision r50"]
    for name, (t, i) in best.items():
        print(
            f"{name:<16} train {args.batch / t:6.2f} img/s ({ref[0] / t:.2f}x)  "
            f"infer {args.batch / i:6.2f} img/s ({ref[1] / i:.2f}x)"
        )


if __name__ == "__main__":
    main()
