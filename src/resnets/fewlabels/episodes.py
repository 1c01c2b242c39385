"""N-way K-shot episodes: `way` classes drawn from those at hand, `shot` support and `queries`
query images drawn from each, without replacement; the draws come from the seed and the shot
alone, so a rerun draws the same episodes and every method is scored on the same ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UsageError


@dataclass(frozen=True)
class Episode:
    """Indices into the features, and labels 0..way-1 in the order `classes` were drawn."""

    classes: tuple[int, ...]
    support: torch.Tensor
    support_labels: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor


def check_episodes(labels: torch.Tensor, classes: list[str], way: int, need: int) -> None:
    """Enough classes for `way`, and `need` (shots + queries) images in each class."""
    if way < 2:
        raise UsageError(f"--way must be at least 2, got {way}")
    if way > len(classes):
        raise UsageError(f"--way {way}, but the data has {len(classes)} classes; lower --way")
    counts = torch.bincount(labels, minlength=len(classes))
    short = [(classes[c], int(n)) for c, n in enumerate(counts.tolist()) if n < need]
    if short:
        name, n = short[0]
        raise UsageError(
            f"class {name} has {n} images, fewer than the {need} an episode takes from each "
            "(shots + queries); lower --queries or --shot"
        )


def draw_episodes(
    labels: torch.Tensor, way: int, shot: int, queries: int, count: int, seed: int
) -> list[Episode]:
    """`count` episodes of the classes in `labels`; the same for the same (seed, shot)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, shot]))
    members = [np.flatnonzero(labels.numpy() == c) for c in range(int(labels.max()) + 1)]
    present = [c for c, m in enumerate(members) if len(m)]
    episodes = []
    for _ in range(count):
        chosen = rng.choice(present, size=way, replace=False)
        picks = [rng.choice(members[c], size=shot + queries, replace=False) for c in chosen]
        support = np.concatenate([p[:shot] for p in picks])
        query = np.concatenate([p[shot:] for p in picks])
        episodes.append(
            Episode(
                tuple(int(c) for c in chosen),
                torch.from_numpy(support),
                torch.arange(way).repeat_interleave(shot),
                torch.from_numpy(query),
                torch.arange(way).repeat_interleave(queries),
            )
        )
    return episodes
