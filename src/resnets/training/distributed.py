"""PyTorch's own distributed engine: processes come from torchrun, sync from DDP.

`resnets train` run under `torchrun` finds RANK / WORLD_SIZE / LOCAL_RANK in the
environment and joins the process group (NCCL on GPUs, gloo on CPUs). `--nproc N` is a
convenience that starts torchrun itself on one machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..data import Shard
from ..devices import resolve_device
from ..errors import UsageError


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def shard(self, accum: int = 1) -> Shard:
        return Shard(self.rank, self.world_size, accum)


def setup_distributed(device_spec: str) -> tuple[DistEnv, torch.device]:
    """Join the process group if torchrun started us; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    env = DistEnv(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world)
    device = resolve_device(device_spec, env.local_rank)
    if env.active and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    return env, device


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any) -> Any:
    """Process 0's `obj` on every process."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every process if `flag` is true on any (e.g. a stop request)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run `resnets <argv>` under torchrun with `nproc` processes on this machine."""
    if nproc < 1:
        raise UsageError(f"--nproc must be at least 1, got {nproc}")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "resnets",
        *argv,
    ]
    return subprocess.call(cmd)
