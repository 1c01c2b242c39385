"""The self-supervised objectives, as functions of two views' embeddings (row i of each is
the same image). Each is written as its paper writes it; `gather` gives the batch across
torchrun processes where a loss compares an image with the others (negatives, or batch
statistics), so that W processes compute what one process does with the same global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather(z: torch.Tensor) -> torch.Tensor:
    """The rows of every process, this process's own first-to-last in rank order, with the
    gradient flowing back to each process's own rows; `z` itself in one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z))


def local_rows(n: int) -> slice:
    """Where this process's `n` rows lie in a gathered batch."""
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    return slice(rank * n, (rank + 1) * n)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen et al. 2020): each of the 2N views against the other 2N - 1 by
    cosine similarity / temperature; the other view of its image is the one to find. With
    several processes, the local views are the anchors and every process's are candidates."""
    n = len(z1)
    local = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    everyone = F.normalize(torch.cat([gather(z1), gather(z2)]).float(), dim=1)
    total = len(everyone) // 2
    rows = local_rows(n)
    own = torch.arange(rows.start, rows.stop, device=z1.device)
    index = torch.cat([own, own + total])  # the anchors' places among the candidates
    logits = local @ everyone.T / temperature
    logits[torch.arange(2 * n), index] = float("-inf")  # a view is not its own candidate
    target = torch.cat([own + total, own])
    return F.cross_entropy(logits, target)


def info_nce(
    query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float
) -> torch.Tensor:
    """MoCo's InfoNCE (He et al. 2020): each query's positive is its own key (the momentum
    encoder's embedding of the other view); the negatives are the queue of earlier keys."""
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.float(), dim=1)
    positive = (q * k).sum(1, keepdim=True)
    negative = q @ F.normalize(queue.float(), dim=1).T
    logits = torch.cat([positive, negative], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def byol(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL's loss (Grill et al. 2020): 2 - 2 cos(online prediction, target projection), the
    target's gradient stopped by the caller."""
    cos = F.cosine_similarity(prediction.float(), target.float(), dim=1)
    return (2 - 2 * cos).mean()


def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SimSiam's D (Chen & He 2021): -cos(p, z), z's gradient stopped by the caller."""
    return -F.cosine_similarity(prediction.float(), target.float(), dim=1).mean()


def barlow_twins(z1: torch.Tensor, z2: torch.Tensor, off_diagonal: float) -> torch.Tensor:
    """Barlow Twins (Zbontar et al. 2021): the cross-correlation of the two views' embeddings,
    each standardized over the (global) batch, pulled to the identity: sum (1 - C_ii)^2 +
    off_diagonal x sum_{i != j} C_ij^2."""
    a, b = gather(z1).float(), gather(z2).float()
    a = (a - a.mean(0)) / a.std(0, unbiased=False).clamp_min(1e-6)
    b = (b - b.mean(0)) / b.std(0, unbiased=False).clamp_min(1e-6)
    c = a.T @ b / len(a)
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on + off_diagonal * off


def vicreg(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance: float = 25.0,
    variance: float = 25.0,
    covariance: float = 1.0,
) -> torch.Tensor:
    """VICReg (Bardes et al. 2022): the views' mean squared distance, a hinge keeping each
    dimension's standard deviation over the batch at 1 or more, and the squared off-diagonal
    covariances / dimensions, weighted 25, 25 and 1 as the paper's."""
    same = F.mse_loss(z1.float(), z2.float())
    a, b = gather(z1).float(), gather(z2).float()
    spread = sum(F.relu(1 - torch.sqrt(z.var(0) + 1e-4)).mean() for z in (a, b)) / 2
    return invariance * same + variance * spread + covariance * (_covariance(a) + _covariance(b))


def _covariance(z: torch.Tensor) -> torch.Tensor:
    z = z - z.mean(0)
    cov = z.T @ z / (len(z) - 1)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / z.shape[1]
