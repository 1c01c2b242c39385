"""resnets against torchvision (and timm), side by side in one process.

    python benchmarks/bench.py                        # every suite on the CPU (and GPU if any)
    python benchmarks/bench.py --suite train --models resnet50 --rounds 7
    python benchmarks/bench.py --record               # also append the tables to RESULTS.md

Each comparison runs its contenders round-robin (A, B, C, A, B, C, ...) so that a noisy
machine slows all of them alike, and reports the median of the rounds. Ratios are
resnets / peer: above 1 means resnets is faster.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import cases

import resnets
from resnets.analysis import model_info
from resnets.infer.backends import predictor

SIZES = {"resnet18": 224, "resnet50": 224, "resnet20": 32, "resnet56": 32}
PEAK_BF16_TFLOPS = {
    "H100 SXM": 989.4,
    "H100 PCIe": 756.0,
    "H100": 989.4,
    "H200": 989.4,
    "A100": 312.0,
}


def measure(
    contenders: dict[str, cases.Work], rounds: int, device: torch.device
) -> dict[str, dict]:
    """Rounds in a fresh random order each (seeded), after one warm-up call per contender;
    images/s from the median round. Shuffling matters: a fixed order charges one contender
    for what the previous one leaves behind (ONNX Runtime's spinning threads did)."""
    order = random.Random(0)
    results = {}
    for name, (run, _) in contenders.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        run()  # warm-up: compilation, autotuning, allocator
        _sync(device)
        results[name] = {"times": [], "peak_mib": _peak(device)}
    for _ in range(rounds):
        names = list(contenders)
        order.shuffle(names)
        for name in names:
            run = contenders[name][0]
            _sync(device)
            start = time.perf_counter()
            run()
            _sync(device)
            results[name]["times"].append(time.perf_counter() - start)
    for name, (_, images) in contenders.items():
        median = statistics.median(results[name]["times"])
        results[name] |= {"images_per_s": images / median, "ms_per_run": 1000 * median}
    return results


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None


def train_suite(model: str, device: torch.device, args) -> dict[str, cases.Work]:
    size, gpu = SIZES[model], device.type == "cuda"
    batch = args.batch or (
        256 if gpu and size == 224 else 512 if gpu else 16 if size == 224 else 128
    )
    steps = args.steps or (10 if gpu else 1)
    out: dict[str, cases.Work] = {}
    peer = "torchvision" if model not in cases.CIFAR else "reference"
    out[f"{peer} (plain loop{', bf16 autocast' if gpu else ''})"] = cases.plain_train(
        cases.peer_model(model, "torchvision"), size, batch, steps, device, amp=gpu
    )
    timm_model = cases.peer_model(model, "timm") if not args.no_timm else None
    if timm_model is not None:
        out[f"timm (plain loop{', bf16 autocast' if gpu else ''})"] = cases.plain_train(
            timm_model, size, batch, steps, device, amp=gpu
        )
    variants = {
        "resnets (default: channels_last)": {},
        "resnets contiguous layout": {"channels_last": False},
    }
    if args.compile:
        variants["resnets channels_last+compile"] = {"compile": True}
    if gpu:
        variants = {k: v | {"amp": "bf16"} for k, v in variants.items()}
    for label, fast in variants.items():
        out[label] = cases.resnets_train(model, size, batch, steps, device, **fast)
    return out


def infer_suite(model: str, device: torch.device, args) -> dict[str, cases.Work]:
    """The peer in eager mode against resnets' inference backends (what predict uses)."""
    size, gpu = SIZES[model], device.type == "cuda"
    batch = args.infer_batch or (256 if gpu else 1)
    x = torch.randn(batch, 3, size, size, device=device)
    peer = cases.peer_model(model, "torchvision").to(device).eval()
    label = "torchvision" if model not in cases.CIFAR else "reference"
    out = {f"{label} eager{' (bf16 autocast)' if gpu else ''}": cases.inference(peer, x, amp=gpu)}
    backends = ["eager", "fast"] + (["compile"] if args.compile else [])
    backends += [] if gpu else ["onnxruntime"]
    for backend in backends:
        run = predictor(resnets.create_model(model).eval(), device, backend)
        out[f"resnets backend={backend}"] = cases.inference(run, x)
    return out


def data_suite(device: torch.device, args) -> dict[str, cases.Work]:
    out = {
        "in-memory CIFAR augmentation (crop+flip+normalize)": cases.in_memory_augmentation(device)
    }
    out["image folder: JPEG decode + RRC 224, worker processes"] = cases.folder_decoding(device)
    return out


def report(title: str, results: dict[str, dict], flops_per_image: float | None, device) -> str:
    """A markdown table; the first contender is the baseline of the ratio column."""
    base = next(iter(results.values()))["images_per_s"]
    peak = _peak_tflops(device)
    lines = [
        f"**{title}**",
        "",
        "| contender | images/s | ms per run | vs first | MFU | peak MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        ips = r["images_per_s"]
        mfu = (
            f"{100 * ips * flops_per_image / (peak * 1e12):.1f} %"
            if peak and flops_per_image
            else "n/a"
        )
        mem = f"{r['peak_mib']:.0f}" if r["peak_mib"] else "n/a"
        ratio = f"{ips / base:.2f}x" if flops_per_image else "n/a"
        lines.append(f"| {name} | {ips:,.1f} | {r['ms_per_run']:.1f} | {ratio} | {mfu} | {mem} |")
    return "\n".join(lines) + "\n"


def _peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def machine(device: torch.device) -> str:
    import torchvision

    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    versions = [f"torch {torch.__version__}", f"torchvision {torchvision.__version__}"]
    for mod in ("timm", "onnxruntime"):
        with contextlib.suppress(ImportError):
            versions.append(f"{mod} {__import__(mod).__version__}")
    return f"{device.type}: {what}; " + ", ".join(versions)


def plan(device: torch.device, args) -> list[tuple[str, Callable[[], dict], float | None]]:
    """(title, build contenders, FLOPs per image) for every requested comparison."""
    jobs = []
    for model in args.models.split(","):
        flops = 2 * model_info(model, SIZES[model]).macs
        if "train" in args.suite:
            title = f"train {model} @ {SIZES[model]}"
            jobs.append((title, partial(train_suite, model, device, args), 3 * flops))
        if "infer" in args.suite:
            title = f"inference {model} @ {SIZES[model]}"
            jobs.append((title, partial(infer_suite, model, device, args), flops))
    if "data" in args.suite:
        jobs.append(("data path alone", partial(data_suite, device, args), None))
    return jobs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    p.add_argument("--suite", default="train,infer,data", help="comma list of train, infer, data")
    p.add_argument("--models", default=",".join(SIZES), help="comma list of " + ", ".join(SIZES))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, help="training batch (default by device and size)")
    p.add_argument("--steps", type=int, help="training steps per round")
    p.add_argument("--infer-batch", type=int, help="inference batch (default 256 GPU, 1 CPU)")
    p.add_argument("--compile", action="store_true", help="add torch.compile contenders")
    p.add_argument("--no-timm", action="store_true")
    p.add_argument("--json", help="write all numbers here")
    p.add_argument("--record", action="store_true", help="append the tables to RESULTS.md")
    args = p.parse_args(argv)
    command = " ".join(["python benchmarks/bench.py", *(sys.argv[1:] if argv is None else argv)])

    names = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [torch.device(d) for d in names if d == "cpu" or torch.cuda.is_available()]
    sections, raw = [], {}
    for device in devices:
        sections.append(f"### {datetime.date.today()}: {machine(device)}\n\n`{command}`\n")
        for title, build, flops in plan(device, args):
            print(f"[{device}] {title} ...", file=sys.stderr, flush=True)
            results = measure(build(), args.rounds, device)
            raw[f"{device} {title}"] = results
            table = report(title, results, flops, device)
            print(table, flush=True)
            sections.append(table)
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=2))
    if args.record:
        with open(Path(__file__).parent / "RESULTS.md", "a") as f:
            f.write("\n" + "\n".join(sections))


if __name__ == "__main__":
    main()
