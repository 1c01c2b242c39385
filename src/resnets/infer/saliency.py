"""Saliency maps for a batch of model inputs: which pixels a classifier's score rests on.

Each method takes normalized inputs [N, C, S, S] and one target class per input, and returns
non-negative maps [N, S, S] at the input's resolution (not yet scaled to [0, 1]).

Grad-CAM is Captum's `LayerGradCam`; Grad-CAM++ and Score-CAM are written out here on
Captum's layer hooks. pytorch-grad-cam has both, but it brings opencv and ttach along for
two formulas of a dozen lines each, and resizes with opencv where the rest of resnets
resizes with torch: writing them keeps one resize path and no new dependencies. Captum is
imported inside the functions (about 0.5 s on top of torch).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Method = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]

SCORECAM_CHUNK = 32  # masked copies of one image per forward pass


def cam_layer(model: nn.Module) -> nn.Module:
    """The layer whose output the classifier pools: the last block of the last stage, or,
    in a pre-activation net, the final BN-ReLU after it (the last block's sum is not yet
    normalized or rectified there, so its map would not be of what the classifier sees)."""
    return model.norm if model.config.preact else model.stages[-1][-1]


def resize_maps(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """[N, K, h, w] -> [N, K, *size], bilinear (volumes [N, K, d, h, w]: trilinear): Captum's
    `LayerAttribution.interpolate`."""
    from captum.attr import LayerAttribution

    mode = "trilinear" if len(size) == 3 else "bilinear"
    return LayerAttribution.interpolate(maps, tuple(size), interpolate_mode=mode)


def gradcam(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): the layer's channels weighted by their mean
    gradient, summed, rectified."""
    from captum.attr import LayerGradCam

    cam = LayerGradCam(model, cam_layer(model)).attribute(x, target=target, relu_attributions=True)
    return resize_maps(cam.detach(), x.shape[2:])[:, 0]


def _activations_and_gradients(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    from captum.attr import LayerActivation, LayerGradientXActivation

    layer = cam_layer(model)
    acts = LayerActivation(model, layer).attribute(x)
    grads = LayerGradientXActivation(model, layer, multiply_by_inputs=False).attribute(
        x, target=target
    )
    return acts.detach(), grads.detach()


def gradcam_plus_plus(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhyay et al. 2018, eq. 19): each channel weighted by its positive
    gradients, each position's gradient weighted by alpha = g^2 / (2 g^2 + sum(A) g^3)."""
    acts, grads = _activations_and_gradients(model, x, target)
    g2, g3 = grads.pow(2), grads.pow(3)
    space = tuple(range(2, acts.ndim))
    denominator = 2 * g2 + acts.sum(dim=space, keepdim=True) * g3
    alpha = torch.where(denominator != 0, g2 / denominator.where(denominator != 0, 1.0), 0.0)
    weights = (alpha * grads.clamp(min=0)).sum(dim=space, keepdim=True)
    cam = (weights * acts).sum(dim=1, keepdim=True).clamp(min=0)
    return resize_maps(cam, x.shape[2:])[:, 0]


@torch.no_grad()
def _scorecam_one(
    model: nn.Module, x: torch.Tensor, acts: torch.Tensor, target: int, probs: Callable
) -> torch.Tensor:
    """One image [C, S, S] and its layer activations [K, h, w]: each channel, upsampled and
    scaled to [0, 1], masks the input; its weight is the target's probability on that input."""
    up = resize_maps(acts[None], x.shape[1:])[0]  # [K, S, S] (volumes: [K, D, S, S])
    space = tuple(range(1, up.ndim))
    low = up.amin(dim=space, keepdim=True)
    span = up.amax(dim=space, keepdim=True) - low
    keep = span.flatten() > 0  # a constant channel masks nothing and adds nothing
    up, masks = up[keep], ((up - low) / span.clamp(min=1e-12))[keep]
    cam = torch.zeros_like(x[0])
    for start in range(0, len(masks), SCORECAM_CHUNK):
        chunk = masks[start : start + SCORECAM_CHUNK]
        scores = probs(model(x[None] * chunk[:, None]))[:, target]
        weights = scores.view(-1, *[1] * (up.ndim - 1))
        cam += (weights * up[start : start + SCORECAM_CHUNK]).sum(0)
    return cam.clamp(min=0)


def scorecam(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, multilabel: bool = False
) -> torch.Tensor:
    """Score-CAM (Wang et al. 2020, as in the authors' code): no gradients; one forward
    pass per non-constant channel of the layer, so it costs K forward passes per image
    (K = 64 for resnet20, 512 for resnet18, 2048 for resnet50). Masked pixels become 0 in
    normalized space: the training mean."""
    from captum.attr import LayerActivation

    acts = LayerActivation(model, cam_layer(model)).attribute(x).detach()
    probs = torch.sigmoid if multilabel else (lambda z: z.softmax(1))
    return torch.stack(
        [
            _scorecam_one(model, xi, ai, int(t), probs)
            for xi, ai, t in zip(x, acts, target, strict=True)
        ]
    )


def integrated_gradients(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, mean: list[float], std: list[float]
) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al. 2017) from a black image, i.e. the zero image
    normalized like the inputs; |attribution| summed over the channels."""
    from captum.attr import IntegratedGradients

    shape = (1, -1) + (1,) * (x.ndim - 2)
    m = torch.tensor(mean, device=x.device).view(shape)
    s = torch.tensor(std, device=x.device).view(shape)
    black = ((0 - m) / s).expand_as(x)
    attr = IntegratedGradients(model).attribute(
        x, baselines=black, target=target, n_steps=50, internal_batch_size=64
    )
    return attr.detach().abs().sum(dim=1)
