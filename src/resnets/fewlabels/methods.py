"""The self-supervised methods: a backbone with the heads its paper adds (a projection MLP; a
prediction MLP for BYOL and SimSiam), a momentum encoder for BYOL and MoCo, MoCo's queue of
keys, and its loss (losses.py) on two views. `Method.forward(view1, view2)` is the step's
loss; `after_step` moves the momentum encoder and the queue. The whole method is what a
checkpoint saves (queue included); the backbone alone is what the run's weights file holds.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..models import ResNet
from . import losses


@dataclass(frozen=True)
class MethodSpec:
    """A method's defaults: its projector's output width ("hidden": as wide as its hidden
    layers) and depth, its temperature, whether it has a predictor, and its momentum
    encoder's base decay (None: none)."""

    out: int | str
    temperature: float | None = None
    predictor: bool = False
    momentum: float | None = None  # the momentum encoder's base decay
    layers: int = 2  # of the projector


SPECS = {
    "simclr": MethodSpec(128, temperature=0.5),
    "moco": MethodSpec(128, temperature=0.1, momentum=0.99),
    "byol": MethodSpec(256, predictor=True, momentum=0.99),
    "simsiam": MethodSpec("hidden", predictor=True, layers=3),
    "barlow": MethodSpec("hidden", layers=3),
    "vicreg": MethodSpec("hidden", layers=3),
}
BARLOW_OFF_DIAGONAL = 5e-3  # the paper's lambda (0.0051)


def hidden_width(features: int) -> int:
    """The heads' hidden width: 4 x the backbone's features, within 512..4096 (lightly's
    CIFAR heads are 512 to 4096 wide on ResNet-18's 512 features)."""
    return min(max(4 * features, 512), 4096)


def mlp(widths: list[int], last_bn: bool = False) -> nn.Sequential:
    """Linear layers with BatchNorm and ReLU between them (and BN after the last with
    `last_bn`, as SimSiam's and Barlow Twins' projectors have)."""
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(itertools.pairwise(widths)):
        last = k == len(widths) - 2
        layers.append(nn.Linear(a, b, bias=last and not last_bn))
        if not last:
            layers += [nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
        elif last_bn:
            layers.append(nn.BatchNorm1d(b, affine=False))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Backbone and projector: an image batch to its embeddings (and its pooled features)."""

    def __init__(self, backbone: ResNet, projector: nn.Module) -> None:
        super().__init__()
        self.backbone, self.projector = backbone, projector

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.features(x))


class Method(nn.Module):
    """One self-supervised method around `backbone`."""

    def __init__(
        self,
        name: str,
        backbone: ResNet,
        temperature: float | None = None,
        queue_size: int = 0,
        stop_gradient: bool = True,
    ) -> None:
        super().__init__()
        spec = SPECS[name]
        self.name, self.spec, self.stop_gradient = name, spec, stop_gradient
        self.temperature = temperature if temperature is not None else spec.temperature
        dims = backbone.num_features
        hidden = hidden_width(dims)
        out = hidden if spec.out == "hidden" else spec.out
        widths = [dims] + [hidden] * (spec.layers - 1) + [out]
        last_bn = name in ("simsiam", "barlow")
        self.online = Encoder(backbone, mlp(widths, last_bn))
        self.predictor = None
        if spec.predictor:  # SimSiam's is a bottleneck, a quarter as wide
            inner = hidden // 4 if name == "simsiam" else hidden
            self.predictor = mlp([out, inner, out])
        self.target = None
        if spec.momentum is not None:
            self.target = copy.deepcopy(self.online).requires_grad_(False)
        if name == "moco":
            queue = nn.functional.normalize(torch.randn(queue_size, out), dim=1)
            self.register_buffer("queue", queue)
            self.register_buffer("queue_at", torch.zeros((), dtype=torch.long))

    @property
    def backbone(self) -> ResNet:
        return self.online.backbone

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        z1, z2 = self.online(view1), self.online(view2)
        if self.name == "simclr":
            return losses.nt_xent(z1, z2, self.temperature)
        if self.name == "barlow":
            return losses.barlow_twins(z1, z2, BARLOW_OFF_DIAGONAL)
        if self.name == "vicreg":
            return losses.vicreg(z1, z2)
        if self.name == "simsiam":
            p1, p2 = self.predictor(z1), self.predictor(z2)
            t1, t2 = (z1.detach(), z2.detach()) if self.stop_gradient else (z1, z2)
            return (losses.negative_cosine(p1, t2) + losses.negative_cosine(p2, t1)) / 2
        with torch.no_grad():  # the momentum encoder's embeddings: targets, never trained
            k1, k2 = self.target(view1), self.target(view2)
        if self.name == "byol":
            p1, p2 = self.predictor(z1), self.predictor(z2)
            return (losses.byol(p1, k2) + losses.byol(p2, k1)) / 2
        self._keys = (k1, k2)  # MoCo: enqueued after the step
        return (
            losses.info_nce(z1, k2, self.queue, self.temperature)
            + losses.info_nce(z2, k1, self.queue, self.temperature)
        ) / 2

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        """After an optimizer step: the momentum encoder moves toward the online one (BYOL's
        decay rises from its base to 1 along a cosine over the run, `progress` in 0..1), and
        MoCo's queue takes the step's keys (every process's, oldest replaced first)."""
        if self.target is None:
            return
        base = self.spec.momentum
        decay = (
            base if self.name == "moco" else 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2
        )
        online = list(self.online.parameters()) + [
            b for b in self.online.buffers() if b.is_floating_point()
        ]
        target = list(self.target.parameters()) + [
            b for b in self.target.buffers() if b.is_floating_point()
        ]
        torch._foreach_lerp_(target, online, 1 - decay)
        if self.name == "moco":
            # every process's first views, then their second: the order one process has
            keys = torch.cat([losses.gather(k) for k in self._keys])
            keys = nn.functional.normalize(keys.float(), dim=1)
            size = len(self.queue)
            keys = keys[-size:]
            where = (self.queue_at + torch.arange(len(keys), device=keys.device)) % size
            self.queue[where] = keys
            self.queue_at.copy_((self.queue_at + len(keys)) % size)
            del self._keys

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The online embeddings (what the collapse check measures)."""
        return self.online(x)
