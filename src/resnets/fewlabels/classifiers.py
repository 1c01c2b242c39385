"""Few-shot classifiers on features, for a batch of E episodes at once: each is fitted on an
episode's support set alone and predicts every query by itself (inductive), so a query's
answer never depends on the other queries. Each takes (support [E, S, D], support labels
[E, S] in 0..way-1, queries [E, Q, D]) and returns the queries' predicted labels [E, Q]."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Classifier = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def prototypes(support: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each class's mean support feature [E, way, D]."""
    way = int(labels.max()) + 1
    onehot = F.one_hot(labels, way).to(support.dtype)  # [E, S, way]
    return onehot.transpose(1, 2) @ support / onehot.sum(1)[..., None]


def nearest_prototype(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor):
    """ProtoNet's rule (Snell et al. 2017): the class whose prototype is nearest in squared
    Euclidean distance."""
    return torch.cdist(query, prototypes(support, labels)).argmin(-1)


def simpleshot(centre: torch.Tensor | None) -> Classifier:
    """SimpleShot's CL2N (Wang et al. 2019): features centred on `centre` (the mean feature
    of the base classes' training images; None: each episode's support mean) and
    L2-normalized, then the nearest prototype."""

    def classify(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor):
        mean = support.mean(1, keepdim=True) if centre is None else centre
        s = F.normalize(support - mean, dim=-1)
        q = F.normalize(query - mean, dim=-1)
        return nearest_prototype(s, labels, q)

    return classify


def logistic(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, c: float = 1.0):
    """Multinomial logistic regression on L2-normalized features, scikit-learn's objective
    (0.5 |W|^2 + C x the summed cross-entropy, bias not penalized, C = 1): the linear probe
    of an episode. Every episode's problem is fitted at once by one L-BFGS in float64 (their
    sum separates, so its minimum is each one's)."""
    s = F.normalize(support.double(), dim=-1)
    q = F.normalize(query.double(), dim=-1)
    episodes, _, dims = s.shape
    way = int(labels.max()) + 1
    weight = torch.zeros(episodes, dims, way, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(episodes, 1, way, dtype=torch.float64, requires_grad=True)
    solver = torch.optim.LBFGS(
        [weight, bias],
        lr=1,
        max_iter=500,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        solver.zero_grad()
        logits = s @ weight + bias
        ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum")
        loss = 0.5 * weight.pow(2).sum() + c * ce
        loss.backward()
        return loss

    solver.step(objective)
    with torch.no_grad():
        return (q @ weight + bias).argmax(-1)
