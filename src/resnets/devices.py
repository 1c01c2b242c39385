"""Choosing the compute device from a user's --device string."""

from __future__ import annotations

import torch

from .errors import UsageError


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """'auto' picks CUDA, then MPS, then the CPU; 'cuda' means this process's local GPU."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = local_rank if device.index is None else device.index
        if index >= count:
            raise UsageError(
                f"device {spec!r} does not exist here ({count} CUDA devices); use --device cpu"
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise UsageError("device 'mps' is not available here; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unsupported device {spec!r}; use auto, cpu, cuda, cuda:N or mps")
    return device
