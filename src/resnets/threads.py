"""CPU threads for the cores that are free. PyTorch starts one intra-op thread per core it
may use; when another process keeps a core busy, the threads on it are descheduled and every
parallel region waits for the slowest (the default job on 2 cores, one of them busy: 126
images/s with 2 threads, 2,117 with OMP_NUM_THREADS=1). So a CPU run counts the cores this
process may use (its affinity), measures for a moment which of them others keep busy, and
uses one thread per free core. OMP_NUM_THREADS (torchrun sets 1) and --threads decide instead.

`resnets train` decides before PyTorch loads, in OMP_NUM_THREADS (`preset_threads`): OpenMP
then never starts a thread for a busy core (on 2 cores with one busy, the default job trained
at 3,809 images/s with the count lowered after PyTorch loaded, 4,994 set before). The Python
API, where PyTorch is already loaded, lowers the count in PyTorch (`choose_threads`).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SAMPLE_SECONDS = 0.2  # how long the cores' load is watched
BUSY = 0.5  # a core whose busy share over the sample passes this is taken by another process
_preset: str | None = None  # what preset_threads decided, said by choose_threads in the run


@dataclass
class ThreadChoice:
    threads: int
    note: str | None  # what was decided and why; None when nothing needed saying


def allowed_cores() -> list[int]:
    """The CPUs this process may run on (its affinity, e.g. a container's or taskset's)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return list(range(os.cpu_count() or 1))


def cpu_times() -> dict[int, tuple[int, int]] | None:
    """Per CPU, (busy, total) jiffies since boot from /proc/stat; None where there is none."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    out = {}
    for line in lines:
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        values = [int(v) for v in fields[:8]]
        idle = values[3] + values[4]  # idle + iowait
        out[int(name[3:])] = (sum(values) - idle, sum(values))
    return out


def busy_cores(cores: list[int], seconds: float = SAMPLE_SECONDS) -> list[int] | None:
    """Which of `cores` other processes kept busy over `seconds` (this process sleeps while
    it watches); None where the load cannot be read."""
    before = cpu_times()
    if before is None:
        return None
    time.sleep(seconds)
    after = cpu_times() or {}
    busy = []
    for core in cores:
        if core not in before or core not in after:
            continue
        work = after[core][0] - before[core][0]
        total = after[core][1] - before[core][1]
        if total > 0 and work / total > BUSY:
            busy.append(core)
    return busy


def busy_note(threads: int, cores: list[int], busy: list[int]) -> str:
    return (
        f"threads: {threads} of {len(cores)} cores, as {len(busy)} "
        f"{'was' if len(busy) == 1 else 'were'} busy with other work over "
        f"{SAMPLE_SECONDS:g} s (threads on a busy core make every step wait); --threads N decides"
    )


def free_cores() -> tuple[int, str] | None:
    """(threads, the note) when other processes keep some of this process's cores busy."""
    cores = allowed_cores()
    busy = busy_cores(cores)
    if not busy:  # all free, or the load is unknown: PyTorch's own choice
        return None
    threads = max(1, len(cores) - len(busy))
    return threads, busy_note(threads, cores, busy)


def preset_threads() -> None:
    """Before PyTorch loads: the free cores' count in OMP_NUM_THREADS, unless it is set (or
    PyTorch is loaded already, when it would change nothing but child processes)."""
    global _preset
    if os.environ.get("OMP_NUM_THREADS") or "torch" in sys.modules:
        return
    found = free_cores()
    if found is not None:
        os.environ["OMP_NUM_THREADS"] = str(found[0])
        _preset = found[1]


def choose_threads(asked: int | None, device, fixed: bool = False) -> ThreadChoice:
    """The intra-op thread count for a run on `device` (a torch.device), set in PyTorch:
    --threads, else OMP_NUM_THREADS (preset_threads' choice is said), else one per allowed core
    that no other process keeps busy. `fixed` (--deterministic): the count never follows the
    load, which would change the sums' order between reruns; a busy core is only said."""
    import torch

    if device.type != "cpu":
        return ThreadChoice(torch.get_num_threads(), None)
    if asked is not None:
        torch.set_num_threads(asked)
        return ThreadChoice(asked, None)
    if os.environ.get("OMP_NUM_THREADS"):  # PyTorch read it when it loaded
        return ThreadChoice(torch.get_num_threads(), _preset)
    found = free_cores()
    if found is None:
        return ThreadChoice(torch.get_num_threads(), None)
    threads, note = found
    if fixed:
        kept = torch.get_num_threads()
        return ThreadChoice(
            kept,
            f"threads: {kept}, though other work kept cores busy: --deterministic keeps the "
            f"count, so reruns compute alike (--threads {threads} would run faster here and "
            "as alike)",
        )
    torch.set_num_threads(threads)
    return ThreadChoice(threads, note)
