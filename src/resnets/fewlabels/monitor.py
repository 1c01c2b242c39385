"""What a pretraining run is watched by, as its users ask: a kNN classifier on the backbone's
features (Wu et al. 2018, as lightly and solo-learn report it: k = 200 neighbours among the
training images by cosine similarity, each voting exp(similarity / 0.1) for its label,
scored on the validation images), and the spread of the embeddings, which falls to 0 when
every image is mapped to the same point (a collapse)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

KNN_TEMPERATURE = 0.1
COLLAPSED = 0.01  # spread below this: the embeddings have collapsed and the run stops
NARROW = 0.05  # below this: a warning in the notes


def knn_top1(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    labels: torch.Tensor,
    k: int = 200,
    temperature: float = KNN_TEMPERATURE,
) -> float:
    """Top-1 accuracy (%) of the weighted kNN vote of each query among the bank."""
    bank, queries = F.normalize(bank.float(), dim=1), F.normalize(queries.float(), dim=1)
    classes = int(max(bank_labels.max(), labels.max())) + 1
    k = min(k, len(bank))
    correct = 0
    for start in range(0, len(queries), 1024):
        sims, index = (queries[start : start + 1024] @ bank.T).topk(k, dim=1)
        votes = torch.zeros(len(sims), classes, dtype=sims.dtype)
        votes.scatter_add_(1, bank_labels[index], (sims / temperature).exp())
        correct += int((votes.argmax(1) == labels[start : start + 1024]).sum())
    return 100.0 * correct / len(queries)


def spread(embeddings: torch.Tensor) -> float:
    """The share of the embeddings' energy that varies from image to image,
    E|z - mean z|^2 / E|z|^2, in 0..1: 0 when every image maps to the same point, whatever
    that point is. (The standard deviation of L2-normalized embeddings, lightly's measure,
    also falls for a healthy Barlow Twins run whose eval-mode embeddings share a large
    offset in its first epochs: measured 0.014 against 0.12 here, where a collapsed SimSiam
    gives 0.000 on both.)"""
    z = embeddings.double()
    energy = z.pow(2).sum(1).mean()
    return float((z - z.mean(0)).pow(2).sum(1).mean() / energy) if energy > 0 else 0.0
