"""Each self-supervised loss against values worked out by hand on small fixed tensors, and
against a plain loop over the paper's formula on random ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from resnets.fewlabels import losses


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_nt_xent_by_hand():
    # two images, their views identical and orthogonal to the other image's: each anchor
    # finds its twin at similarity 1 among {twin 1, the other image's views 0 and 0}
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(losses.nt_xent(z, z, 1.0)) == pytest.approx(math.log(1 + 2 / math.e), abs=1e-6)
    # at temperature 0.5 the similarities double
    assert float(losses.nt_xent(z, z, 0.5)) == pytest.approx(math.log(1 + 2 / math.e**2), abs=1e-6)


def test_nt_xent_against_the_formula():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    z = _unit(np.concatenate([z1.numpy(), z2.numpy()]).astype(np.float64))
    n, t, total = 5, 0.3, 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if j != i]
        total += -z[i] @ z[pos] / t + np.log(sum(np.exp(z[i] @ z[j] / t) for j in others))
    assert float(losses.nt_xent(z1, z2, t)) == pytest.approx(total / (2 * n), rel=1e-5)


def test_info_nce_by_hand_and_against_the_formula():
    q = torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0], [0.0, -1.0]])  # both orthogonal to the query
    assert float(losses.info_nce(q, q, queue, 1.0)) == pytest.approx(math.log(1 + 2 / math.e))
    g = torch.Generator().manual_seed(1)
    q, k, queue = (torch.randn(*s, generator=g) for s in ((4, 3), (4, 3), (6, 3)))
    qn, kn, un = (_unit(x.numpy().astype(np.float64)) for x in (q, k, queue))
    t, total = 0.2, 0.0
    for i in range(4):
        logits = np.concatenate([[qn[i] @ kn[i]], un @ qn[i]]) / t
        total += -logits[0] + np.log(np.exp(logits).sum())
    assert float(losses.info_nce(q, k, queue, t)) == pytest.approx(total / 4, rel=1e-5)


def test_byol_and_simsiam_by_hand():
    p = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    z = torch.tensor([[0.0, 2.0], [6.0, 8.0]])  # orthogonal (cos 0), then parallel (cos 1)
    assert float(losses.byol(p, z)) == pytest.approx(((2 - 0) + (2 - 2)) / 2)
    assert float(losses.negative_cosine(p, z)) == pytest.approx(-(0 + 1) / 2)


def test_barlow_twins_by_hand_and_against_the_formula():
    a = torch.tensor([[1.0, 2.0], [-1.0, 2.0], [1.0, -2.0], [-1.0, -2.0]])  # uncorrelated dims
    assert float(losses.barlow_twins(a, a, 0.5)) == pytest.approx(0.0, abs=1e-6)  # C = I
    assert float(losses.barlow_twins(a, -a, 0.5)) == pytest.approx(2 * (-1 - 1) ** 2)  # C = -I
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    x, y = z1.numpy().astype(np.float64), z2.numpy().astype(np.float64)
    x, y = (x - x.mean(0)) / x.std(0), (y - y.mean(0)) / y.std(0)
    c = x.T @ y / 8
    expected = sum((1 - c[i, i]) ** 2 for i in range(3))
    expected += 0.005 * sum(c[i, j] ** 2 for i in range(3) for j in range(3) if i != j)
    assert float(losses.barlow_twins(z1, z2, 0.005)) == pytest.approx(expected, rel=1e-5)


def test_vicreg_by_hand_and_against_the_formula():
    a = torch.tensor([[2.0, 0.0], [-2.0, 0.0]])  # dim 0: std 2.83 > 1; dim 1: std 0
    hinge = (0 + (1 - math.sqrt(1e-4))) / 2  # mean over dims of relu(1 - std)
    # views equal: no invariance term; the covariance of the two dims is 0
    assert float(losses.vicreg(a, a)) == pytest.approx(25 * hinge, rel=1e-6)
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    x, y = z1.numpy().astype(np.float64), z2.numpy().astype(np.float64)
    invariance = ((x - y) ** 2).mean()
    variance = sum(np.maximum(0, 1 - np.sqrt(v.var(0, ddof=1) + 1e-4)).mean() for v in (x, y)) / 2
    covariance = 0.0
    for v in (x, y):
        cov = np.cov(v, rowvar=False)
        covariance += (cov**2).sum() - (np.diag(cov) ** 2).sum()
    expected = 25 * invariance + 25 * variance + covariance / 4
    assert float(losses.vicreg(z1, z2)) == pytest.approx(expected, rel=1e-5)
