"""2D weights into a 3D model: I3D's inflation (Carreira & Zisserman 2017).

Each 2D kernel (O, I, kh, kw) is repeated along depth kt times and divided by kt, so a volume
whose slices are all one image gives, away from the depth boundaries, the 2D model's
activations on that image (the "boring video" check). BN, the classifier and 1x1 convs keep
their values; a 1x3x3 conv (the spatial stages of a mixed-convolution net) takes the kernel
as it is. (2+1)D convs have no 2D counterpart of the same shape and are refused.
"""

from __future__ import annotations

import torch

from ..errors import WeightsError

StateDict = dict[str, torch.Tensor]


def needs_inflation(state: StateDict, own: StateDict) -> bool:
    """Whether `state` holds 2D conv kernels where the model (`own`) has 3D ones."""
    return any(k in own and v.ndim == 4 and own[k].ndim == 5 for k, v in state.items())


def inflate(state: StateDict, own: StateDict, name: str) -> tuple[StateDict, int]:
    """`state` with every 2D conv kernel inflated to the model's 3D shape; (state, count)."""
    if any(k.endswith((".spatial.weight", ".temporal.weight")) for k in own):
        raise WeightsError(
            f"{name} holds 2D weights, which inflate into full-3D or mixed-convolution models "
            "(resnet18_3d, r3d_18, mc3_18), not into (2+1)D convs"
        )
    out, count = dict(state), 0
    for key, value in state.items():
        target = own.get(key)
        if target is None or value.ndim != 4 or target.ndim != 5:
            continue
        if tuple(target.shape[3:]) != tuple(value.shape[2:]):
            raise WeightsError(
                f"{name}: {key} is {tuple(value.shape[2:])} in 2D but "
                f"{tuple(target.shape[2:])} in the model; only depth can be added"
            )
        depth = target.shape[2]
        out[key] = value.unsqueeze(2).repeat(1, 1, depth, 1, 1) / depth
        count += 1
    return out, count
