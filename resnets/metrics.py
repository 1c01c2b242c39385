"""Classification metrics accumulated on the device: no host sync until they are read."""

from __future__ import annotations

import torch
import torch.distributed as dist


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    """How many samples have their label among the top-k logits, for each k (a tensor)."""
    if target.ndim == 2:  # soft targets (MixUp/CutMix): the dominant class counts
        target = target.argmax(1)
    k_max = min(max(ks), logits.shape[1])
    top = logits.topk(k_max, dim=1).indices
    hit = top == target[:, None]
    return torch.stack([hit[:, : min(k, k_max)].any(1).sum() for k in ks])


class Meter:
    """Sums of loss, top-1 and top-5 hits and sample count, kept as one device tensor."""

    def __init__(self, device: torch.device, sums: torch.Tensor | None = None):
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)
        if sums is not None:
            self.sums.copy_(sums)

    def update(self, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        n = logits.shape[0]
        hits = topk_correct(logits.detach(), target, (1, 5))
        self.sums += torch.stack(
            [loss.detach().double() * n, hits[0], hits[1], self.sums.new_tensor(n)]
        )

    def reduce(self) -> None:
        """Sum over all processes (call on every rank)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.sums)

    def read(self) -> dict[str, float]:
        loss, top1, top5, n = self.sums.tolist()
        n = max(n, 1)
        return {"loss": loss / n, "acc1": 100 * top1 / n, "acc5": 100 * top5 / n, "count": int(n)}


class SegmentationMeter:
    """Per-class intersection, prediction and target pixel counts, plus loss and pixel hits.

    Dice and IoU are averaged over the foreground classes (1..K-1) present in the targets.
    """

    def __init__(self, device: torch.device, num_classes: int, sums: torch.Tensor | None = None):
        self.k = num_classes
        self.sums = torch.zeros(3 * num_classes + 3, dtype=torch.float64, device=device)
        if sums is not None:
            self.sums.copy_(sums)

    def update(self, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        pred = logits.detach().argmax(1)
        k = self.k
        counted = target >= 0  # pixels marked ignore (negative) count nowhere
        pred, target = pred[counted], target[counted]
        inter = torch.bincount(target[pred == target].flatten(), minlength=k)
        pred_n = torch.bincount(pred.flatten(), minlength=k)
        true_n = torch.bincount(target.flatten(), minlength=k)
        pixels = target.numel()
        extra = torch.stack([loss.detach().double() * pixels, inter.sum().double()])
        extra = torch.cat([extra, extra.new_tensor([pixels])])
        self.sums += torch.cat([inter.double(), pred_n.double(), true_n.double(), extra])

    def reduce(self) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.sums)

    def read(self) -> dict[str, float]:
        k = self.k
        inter, pred_n, true_n = self.sums[:k], self.sums[k : 2 * k], self.sums[2 * k : 3 * k]
        loss, hits, pixels = self.sums[3 * k :].tolist()
        present = true_n[1:] > 0
        dice = (2 * inter / (pred_n + true_n).clamp_min(1))[1:]
        iou = (inter / (pred_n + true_n - inter).clamp_min(1))[1:]

        def mean(v: torch.Tensor) -> float:
            return 100 * v[present].mean().item() if present.any() else 0.0

        n = max(pixels, 1)
        return {
            "loss": loss / n,
            "dice": mean(dice),
            "iou": mean(iou),
            "pixel_acc": 100 * hits / n,
            "count": int(pixels),
        }
