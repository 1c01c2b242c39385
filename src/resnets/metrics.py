"""Classification metrics accumulated on the device: no host sync until they are read."""

from __future__ import annotations

import math

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


# ---- multi-label: one yes/no decision per label --------------------------------------------


def roc_auc(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Area under the ROC curve of one label (the Mann-Whitney statistic, ties counted half);
    NaN when the targets hold only one class."""
    pos, n = int(targets.sum()), len(targets)
    if pos in (0, n):
        return math.nan
    order = scores.double().argsort()
    sorted_scores = scores.double()[order]
    ranks = torch.empty(n, dtype=torch.float64)
    ranks[order] = torch.arange(1, n + 1, dtype=torch.float64)
    _, inverse, counts = torch.unique_consecutive(
        sorted_scores, return_inverse=True, return_counts=True
    )
    ends = counts.cumsum(0).double()
    average = ends - (counts.double() - 1) / 2  # tied scores share their mean rank
    ranks[order] = average[inverse]
    rank_sum = ranks[targets.bool()].sum().item()
    return (rank_sum - pos * (pos + 1) / 2) / (pos * (n - pos))


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Area under the precision-recall curve as a step sum over the distinct thresholds,
    sum (R_k - R_k-1) P_k; NaN without positives."""
    pos = int(targets.sum())
    if pos == 0:
        return math.nan
    order = scores.double().argsort(descending=True)
    s, t = scores.double()[order], targets.double()[order]
    tp, seen = t.cumsum(0), torch.arange(1, len(t) + 1, dtype=torch.float64)
    last = torch.ones(len(s), dtype=torch.bool)  # the last position of each distinct score
    last[:-1] = s[1:] != s[:-1]
    precision, recall = (tp / seen)[last], (tp / pos)[last]
    steps = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((steps * precision).sum())


def f1_scores(probs: torch.Tensor, targets: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Per-label F1 of the decisions prob >= threshold."""
    pred = probs >= thresholds
    t = targets.bool()
    tp = (pred & t).sum(0).double()
    return 2 * tp / (pred.sum(0) + t.sum(0)).double().clamp_min(1)


def best_thresholds(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per label, the probability threshold with the highest F1 on these (validation)
    predictions, half-way between neighbouring scores; 0.5 for a label without positives."""
    out = torch.full((probs.shape[1],), 0.5)
    for j in range(probs.shape[1]):
        if targets[:, j].sum() == 0:
            continue
        s = probs[:, j].unique()  # sorted
        cuts = torch.cat([s[:1], (s[1:] + s[:-1]) / 2])  # each cut keeps s[k] and above
        f1 = f1_scores(probs[:, j : j + 1].expand(-1, len(cuts)), targets[:, j : j + 1], cuts)
        out[j] = cuts[int(f1.argmax())]
    return out


def label_metrics(
    probs: torch.Tensor, targets: torch.Tensor, thresholds: torch.Tensor | None = None
) -> dict[str, list[float]]:
    """Per-label ROC-AUC, average precision and F1 (at `thresholds`, else 0.5), in [0, 1]."""
    cut = thresholds if thresholds is not None else torch.full((probs.shape[1],), 0.5)
    return {
        "auc": [roc_auc(probs[:, j], targets[:, j]) for j in range(probs.shape[1])],
        "ap": [average_precision(probs[:, j], targets[:, j]) for j in range(probs.shape[1])],
        "f1": f1_scores(probs, targets, cut).tolist(),
    }


def macro(values: list[float]) -> float:
    """The mean over labels where the metric is defined (NaN if none)."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def gathered(outputs: list, targets: list) -> tuple[list, list]:
    """Every process's kept outputs and targets (lists of tensors), in rank order."""
    world: list = [None] * dist.get_world_size()
    dist.all_gather_object(world, (outputs, targets))
    return [o for outs, _ in world for o in outs], [t for _, ts in world for t in ts]


class MultiLabelMeter:
    """Loss and sample count as sums; with `keep`, every sigmoid output and target too (AUC
    and AP need them all), gathered from every process when read."""

    def __init__(self, device: torch.device, sums: torch.Tensor | None = None, keep=False):
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)
        if sums is not None:
            self.sums.copy_(sums[:2])
        self.keep, self.probs, self.targets = keep, [], []
        self.thresholds: torch.Tensor | None = None

    def update(self, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        n = logits.shape[0]
        self.sums += torch.stack([loss.detach().double() * n, self.sums.new_tensor(n)])
        if self.keep:
            self.probs.append(logits.detach().float().sigmoid().cpu())
            self.targets.append(target.detach().cpu())

    def reduce(self) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.sums)
            if self.keep:
                self.probs, self.targets = gathered(self.probs, self.targets)

    def outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat(self.probs), torch.cat(self.targets)

    def read(self) -> dict[str, float]:
        loss, n = self.sums.tolist()
        out = {"loss": loss / max(n, 1), "count": int(n)}
        if self.keep and self.probs:
            m = label_metrics(*self.outputs(), self.thresholds)
            for key, values in (("auc", m["auc"]), ("map", m["ap"]), ("f1", m["f1"])):
                if not math.isnan(macro(values)):  # undefined (no label has both classes): absent
                    out[key] = 100 * macro(values)
        return out


# ---- single-label: one class per image, from its softmax probabilities ----------------------


POSITIVE = 1  # two classes: output 1 is the positive class, its probability the score


def youden_threshold(positive: torch.Tensor, labels: torch.Tensor) -> float:
    """Two classes: the cut on the positive class's probability ("positive if p >= cut") with
    the largest Youden's J, sensitivity + specificity - 1 (the best balanced accuracy), on
    these (validation) outputs; half-way between neighbouring scores, so that the cut does not
    sit on one image; of equally good cuts, the one nearest 0.5. 0.5 when a class is missing."""
    pos, neg = labels == POSITIVE, labels != POSITIVE
    if not pos.any() or not neg.any():
        return 0.5
    s = positive.double().unique()  # sorted
    cuts = torch.cat([s[:1], (s[1:] + s[:-1]) / 2])  # each cut keeps s[k] and above
    said = positive.double()[:, None] >= cuts[None, :]
    sensitivity = (said & pos[:, None]).sum(0) / pos.sum()
    specificity = (~said & neg[:, None]).sum(0) / neg.sum()
    j = sensitivity + specificity - 1
    best = (j >= j.max() - 1e-12).nonzero().flatten()
    return float(cuts[best[(cuts[best] - 0.5).abs().argmin()]])


def shown_cut(cut: float) -> str:
    """A threshold as printed: three decimals, or as many digits as tell it from 0 or 1 (an
    undertrained model's cut can sit at 0.0001, which "0.000" would hide)."""
    if 0.001 <= cut <= 0.999:
        return f"{cut:.3f}"
    return f"{cut:.2e}" if cut < 0.001 else f"1 - {1 - cut:.2e}"


def binary_accuracy(
    positive: torch.Tensor, labels: torch.Tensor, threshold: float
) -> tuple[float, float]:
    """(accuracy, balanced accuracy) in [0, 1] of "positive if p >= threshold"; the balanced
    one is the mean recall over the classes present."""
    said = (positive >= threshold).long()
    right = said == labels
    recalls = [right[labels == c].double().mean() for c in (0, 1) if (labels == c).any()]
    return float(right.double().mean()), float(torch.stack(recalls).mean())


class BinaryMeter(Meter):
    """Two classes: the sums of `Meter`, and with `keep` the positive class's probability of
    every image, gathered from every process when read: ROC-AUC, and accuracy and balanced
    accuracy at 0.5 and at `thresholds[0]` when there is one (chosen on validation)."""

    def __init__(self, device: torch.device, sums: torch.Tensor | None = None, keep=False):
        super().__init__(device, sums)
        self.keep, self.scores, self.labels = keep, [], []
        self.thresholds: torch.Tensor | None = None

    def update(self, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        super().update(loss, logits, target)
        if self.keep and target.ndim == 1:
            self.scores.append(logits.detach().float().softmax(1)[:, POSITIVE].cpu())
            self.labels.append(target.detach().cpu())

    def reduce(self) -> None:
        super().reduce()
        if self.keep and dist.is_available() and dist.is_initialized():
            self.scores, self.labels = gathered(self.scores, self.labels)

    def outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat(self.scores), torch.cat(self.labels)

    def read(self) -> dict[str, float]:
        out = super().read()
        if not (self.keep and self.scores):
            return out
        scores, labels = self.outputs()
        auc = roc_auc(scores, labels == POSITIVE)
        if not math.isnan(auc):
            out["auc"] = 100 * auc
        out["balanced_acc"] = 100 * binary_accuracy(scores, labels, 0.5)[1]
        if self.thresholds is not None:
            cut = float(self.thresholds[0])
            acc, balanced = binary_accuracy(scores, labels, cut)
            out |= {"threshold": cut, "acc_cut": 100 * acc, "balanced_acc_cut": 100 * balanced}
        return out


def one_vs_rest_auc(probs: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Per class, the ROC-AUC of its probability for "this class or another"; NaN for a class
    absent from `labels` (scikit-learn refuses those) or the only one present."""
    return [roc_auc(probs[:, c], labels == c) for c in range(probs.shape[1])]


def calibration_bins(
    probs: torch.Tensor, labels: torch.Tensor, bins: int = 15
) -> dict[str, torch.Tensor]:
    """The top-1 probability in `bins` equal-width bins (lo, hi] of [0, 1]: per bin the sample
    count, the top-1 accuracy and the mean confidence (both 0 in an empty bin)."""
    conf, pred = probs.double().max(1)
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    index = torch.bucketize(conf, edges[1:-1])  # right-closed: conf == hi goes to (lo, hi]
    count = torch.bincount(index, minlength=bins).double()
    hits = torch.bincount(index, weights=(pred == labels).double(), minlength=bins)
    total = torch.bincount(index, weights=conf, minlength=bins)
    return {
        "count": count,
        "accuracy": hits / count.clamp_min(1),
        "confidence": total / count.clamp_min(1),
    }


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE of Guo et al. 2017, in [0, 1]: sum over the confidence bins of |B|/n |acc(B) -
    conf(B)|, the gap between how sure the model is of its top-1 class and how often it is
    right."""
    b = calibration_bins(probs, labels, bins)
    weight = b["count"] / b["count"].sum().clamp_min(1)
    return float((weight * (b["accuracy"] - b["confidence"]).abs()).sum())


def sensitivity_specificity(
    positive: torch.Tensor, labels: torch.Tensor, threshold: float
) -> tuple[float, float]:
    """Two classes: the recall of the positive class (label 1) and of the negative class
    (label 0) for the decisions "positive if its probability >= threshold"; NaN for a class
    the labels lack."""
    said = positive >= threshold
    pos, neg = labels == 1, labels == 0
    sensitivity = int((said & pos).sum()) / int(pos.sum()) if pos.any() else math.nan
    specificity = int((~said & neg).sum()) / int(neg.sum()) if neg.any() else math.nan
    return sensitivity, specificity
