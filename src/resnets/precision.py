"""Which precision the hardware computes natively, and `--amp auto`: bf16 where the device has
it and a short probe on the model and input at hand measures it faster, fp32 otherwise.

CPUs differ: with AVX512_BF16 or AMX, oneDNN runs bf16 convolutions natively (measured 2-3x
fp32 for ResNet-50 on such a CPU); without them bf16 is emulated and slower, and even with
them tiny convolutions (ResNet-20 at 8 px) run slower in bf16. So the capability is detected
through PyTorch (its cpuinfo queries), and the speed is measured, never assumed.
"""

from __future__ import annotations

import copy
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

PROBE_STEPS = 2  # timed forward+backward passes per precision, after one warm-up each
PROBE_BATCH = 16  # at most this many images per probe pass
PROBE_GAIN = 1.1  # bf16 is chosen only when at least this much faster than fp32


def cpu_features() -> dict[str, bool]:
    """The CPU's bf16/int8 features, from PyTorch's cpuinfo queries (torch.cpu._is_*), or
    from /proc/cpuinfo's flags where this PyTorch lacks them."""
    queries = {
        "avx512_bf16": "_is_avx512_bf16_supported",
        "amx": "_is_amx_tile_supported",
        "vnni": "_is_vnni_supported",
        "avx512": "_is_avx512_supported",
        "avx2": "_is_avx2_supported",
    }
    flags = _proc_flags()
    found = {}
    for name, query in queries.items():
        ask = getattr(torch.cpu, query, None)
        if ask is not None:
            found[name] = bool(ask())
        else:
            spelled = {"avx512": "avx512f", "amx": "amx_tile", "vnni": "avx512_vnni"}
            found[name] = spelled.get(name, name) in flags
    found["vnni"] = found["vnni"] or "avx_vnni" in flags  # AVX-VNNI: PyTorch asks for AVX-512's
    return found


def _proc_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """/proc/cpuinfo's flags (empty where there is no such file)."""
    return set(_proc_field(cpuinfo, "flags").split())


def _proc_field(cpuinfo: Path, field: str) -> str:
    """The first `field: value` of /proc/cpuinfo ("" where there is none, as on macOS)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return ""
    line = next((x for x in text.splitlines() if x.split(":")[0].strip() == field), "")
    return line.partition(":")[2].strip()


def cpu_description() -> str:
    """The CPU's model and its vector/matrix flags, printed beside every CPU figure."""
    flags = sorted(f for f in _proc_flags() if f.startswith(("avx2", "avx512", "avx_vnni", "amx")))
    model = _proc_field(Path("/proc/cpuinfo"), "model name") or platform.processor() or "?"
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{model}; PyTorch CPU capability {capability}; flags: {' '.join(flags) or 'none'}"


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """(whether `device` computes bf16 natively, what was found)."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        native = major >= 8
        return native, f"CUDA compute capability {major}.{minor}" + ("" if native else " < 8.0")
    if device.type != "cpu":
        return False, f"no bf16 autocast rule for {device.type}"
    features = cpu_features()
    if features["amx"] or features["avx512_bf16"]:
        return True, "the CPU has " + ("AMX" if features["amx"] else "AVX512_BF16")
    best = "AVX-512" if features["avx512"] else "AVX2" if features["avx2"] else "no AVX2"
    return False, f"the CPU has {best} but no AVX512_BF16 or AMX (bf16 would be emulated)"


def choose_amp(
    requested: str,
    device: torch.device,
    probe: Callable[[torch.dtype | None], float],
    deterministic: bool = False,
    dims: int = 2,
) -> tuple[str, str | None]:
    """The autocast precision to use and a note saying why (None: nothing to say).
    `probe(dtype)` returns seconds per step with autocast to `dtype` (None: fp32; NaN: the
    gradients were not finite). A timed probe can decide either way near its threshold, so
    `deterministic` runs skip it. `dims`: 3 for volumes and clips."""
    if requested == "fp16" and device.type == "cpu":
        return "fp16", (
            "--amp fp16 on a CPU is emulated (measured about 10x slower than fp32); "
            "use --amp bf16 on a CPU with AVX512_BF16/AMX, or --amp none"
        )
    if requested == "bf16" and device.type == "cpu" and dims == 3:
        return "bf16", (
            "--amp bf16 on a CPU with a 3D model: oneDNN's bf16 Conv3d gave wrong or "
            "non-finite gradients on thin inputs in our tests "
            "(benchmarks/bf16_conv3d.py); --amp none is safe"
        )
    if requested != "auto":
        return requested, None
    native, found = native_bf16(device)
    if not native:
        return "none", f"--amp auto: fp32, as {found}"
    if deterministic:
        return "none", (
            "--amp auto: fp32, as --deterministic runs do not let a timed probe "
            "decide (--amp bf16 to use it)"
        )
    if device.type == "cuda":
        return "bf16", f"--amp auto: bf16, as {found}"
    if dims == 3:  # benchmarks/bf16_conv3d.py: oneDNN's bf16 Conv3d backward on a CPU
        return "none", (
            "--amp auto: fp32, as bf16 3D convolutions on a CPU gave wrong or "
            "non-finite gradients in our tests (benchmarks/bf16_conv3d.py; --amp "
            "bf16 forces it)"
        )
    fp32, bf16 = probe(None), probe(torch.bfloat16)
    if math.isnan(bf16) and not math.isnan(fp32):  # e.g. oneDNN's bf16 Conv3d on thin inputs
        return "none", (
            "--amp auto: fp32, as bf16 gave non-finite gradients in a probe on this "
            f"model and input, and fp32 did not ({found})"
        )
    gain = fp32 / bf16
    if gain >= PROBE_GAIN:
        return "bf16", f"--amp auto: bf16, {gain:.2f}x fp32 in a probe on this model ({found})"
    return "none", (
        f"--amp auto: fp32, as bf16 ran at {gain:.2f}x fp32 in a probe on this model "
        f"and input, short of the {PROBE_GAIN}x it must gain ({found})"
    )


def step_seconds(
    model: torch.nn.Module,
    shape: tuple[int, ...],
    dtype: torch.dtype | None,
    channels_last: bool = True,
) -> float:
    """Seconds of one training forward+backward of a copy of `model` (the run's own weights,
    statistics and random state untouched) on a random batch of `shape`; NaN if its gradients
    were not finite."""
    device = next(model.parameters()).device
    twin = copy.deepcopy(model).train()
    fmt = torch.channels_last if channels_last and len(shape) == 4 else torch.contiguous_format
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(shape, generator=g).to(device).contiguous(memory_format=fmt)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = twin(x)
        out.float().sum().backward()

    with torch.random.fork_rng(devices=[]):
        seconds = min_seconds(step, PROBE_STEPS)
    finite = all(p.grad is None or bool(p.grad.isfinite().all()) for p in twin.parameters())
    return seconds if finite else math.nan


def min_seconds(call: Callable[[], object], runs: int) -> float:
    """The fastest of `runs` timed calls, after one untimed warm-up call."""
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)
