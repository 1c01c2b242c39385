"""Precision on this CPU (issue 11), side by side in one process, with the CPU's flags:

    python benchmarks/precision.py [--repeats 5] [--models resnet18,resnet50] [--threads N]
                                   [--parts training,inference,accuracy]

training   images/s of one SGD step (forward, backward, update) at batch 16, 224 px,
           channels_last: torchvision's model in fp32 and under bf16 autocast, and what
           `--amp auto` picks for our model of the same name (its own probe, as in a run).
inference  batch-1 latency and batch-16 throughput at 224 px: torchvision eager (fp32, NCHW,
           the reference a user starts from), ONNX Runtime fp32 (BN folded), our `fast`
           backend in bf16, our `auto` backend (what it picked is printed), and our INT8 ONNX
           (QDQ, per-channel; calibrated on random images, as speed does not depend on them).
accuracy   top-1 of fp32 and INT8 on the test split of two runs trained here: resnet20 on
           digits (8 px), and resnet18 on a folder of digits PNGs at 64 px.

Candidates are timed in turns (A B C A B C ...) and the median is reported, so a slow spell
of the machine falls on all of them alike. Run it with nothing else running.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from folders import make_digits  # benchmarks/ is on the path when this script runs

from resnets import create_model, train
from resnets.infer.backends import OnnxRuntimePredictor, choose_backend, onnx_bytes, predictor
from resnets.infer.export import export
from resnets.infer.optimize import fold_bn
from resnets.infer.quantize import quantize_onnx
from resnets.models.keys import from_torchvision
from resnets.precision import choose_amp, cpu_description, step_seconds

SIDE = 224
BATCH = 16


def timed(
    candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median seconds of each call, the candidates taking turns after `warmup` calls each."""
    for _ in range(warmup):
        for call in candidates.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, call in candidates.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def sgd_step(model: torch.nn.Module, dtype: torch.dtype | None) -> Callable[[], None]:
    """One training step of `model` on a fixed random batch, under autocast to `dtype`."""
    model = model.train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(BATCH, 3, SIDE, SIDE).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (BATCH,))

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def training(name: str, repeats: int) -> None:
    steps = {
        "fp32": sgd_step(getattr(torchvision.models, name)(), None),
        "bf16": sgd_step(getattr(torchvision.models, name)(), torch.bfloat16),
    }
    seconds = timed(steps, repeats)
    ours = create_model(name)
    shape = (BATCH, 3, SIDE, SIDE)
    amp, why = choose_amp("auto", torch.device("cpu"), lambda dt: step_seconds(ours, shape, dt))
    fp32, bf16 = BATCH / seconds["fp32"], BATCH / seconds["bf16"]
    print(f"{name:<9} fp32 {fp32:6.1f} img/s   bf16 {bf16:6.1f} img/s   bf16/fp32 "
          f"{bf16 / fp32:.2f}x   ours --amp auto: {amp} ({why})")  # fmt: skip


def inference(name: str, repeats: int, folder: Path) -> None:
    reference = getattr(torchvision.models, name)().eval()
    ours = create_model(name).eval()
    ours.load_state_dict(from_torchvision(reference.state_dict(), ours.config))  # same weights
    example = torch.randn(1, 3, SIDE, SIDE)
    fp32_onnx = folder / f"{name}.onnx"
    fp32_onnx.write_bytes(onnx_bytes(fold_bn(ours), example))
    int8_onnx = folder / f"{name}.int8.onnx"
    quantize_onnx(fp32_onnx, int8_onnx, torch.randn(64, 3, SIDE, SIDE))
    backends: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "torchvision eager": torch.inference_mode()(reference),
        "onnxruntime": OnnxRuntimePredictor(fp32_onnx.read_bytes()),
        "fast bf16": predictor(ours, torch.device("cpu"), "fast", dtype="bfloat16"),
        "INT8 (ORT)": OnnxRuntimePredictor(int8_onnx.read_bytes()),
    }
    for batch in (1, BATCH):
        picked, why = choose_backend(ours, torch.device("cpu"), batch)
        x = torch.randn(batch, 3, SIDE, SIDE)
        calls = {label: (lambda run=run, x=x: run(x)) for label, run in backends.items()}
        seconds = timed(calls, repeats * (6 if batch == 1 else 1))
        seconds["ours auto"] = seconds[picked]
        base = seconds["onnxruntime"]
        print(f"  {name} batch {batch}: auto picks {picked} ({why})")
        for label, s in seconds.items():
            figure = f"{s * 1e3:7.1f} ms" if batch == 1 else f"{batch / s:7.1f} img/s"
            print(f"    {label:<18} {figure}   time {s / base:5.2f}x ONNX Runtime fp32")


def accuracy(folder: Path) -> None:
    digits64 = folder / "digits64"
    make_digits(digits64, size=64)  # PNG class folders (benchmarks/folders.py)
    jobs = {
        "resnet20, digits 8 px": dict(model="resnet20", data="digits", epochs=15),
        "resnet18, digits PNG folder 64 px": dict(
            model="resnet18", data=f"imagefolder:{digits64}",
            image_size=64, epochs=3, batch_size=64,
        ),
    }  # fmt: skip
    for label, options in jobs.items():
        out = folder / label.split(",")[0]
        start = time.perf_counter()
        train(out=str(out), progress=False, tensorboard=False, **options)
        trained = time.perf_counter() - start
        report = export(out, "onnx", int8=True)
        print(f"{label} (trained {trained:.0f} s): test {report.test_images} images, top-1 fp32 "
              f"{report.fp32_top1:.2f} %, INT8 {report.int8_top1:.2f} % (drop "
              f"{report.drop:.2f} points), agreement {report.top1_agreement:.1f} %; "
              f"{report.quantization['weights']}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="resnet18,resnet50")
    parser.add_argument("--parts", default="training,inference,accuracy")
    parser.add_argument("--threads", type=int, help="PyTorch and ONNX Runtime threads")
    args = parser.parse_args()
    import onnxruntime

    if args.threads:
        torch.set_num_threads(args.threads)
    parts = args.parts.split(",")
    print(f"# {cpu_description()}")
    print(f"# torch {torch.__version__}, torchvision {torchvision.__version__}, onnxruntime "
          f"{onnxruntime.__version__}, {torch.get_num_threads()} threads, "
          f"oneDNN {torch.backends.mkldnn.is_available()}")  # fmt: skip
    names = args.models.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        if "training" in parts:
            print(f"\n## training, batch {BATCH}, {SIDE} px, channels_last")
            for name in names:
                training(name, args.repeats)
        if "inference" in parts:
            print(f"\n## inference, {SIDE} px")
            for name in names:
                inference(name, args.repeats, Path(tmp))
        if "accuracy" in parts:
            print("\n## INT8 accuracy (export --int8, calibration 300 training images)")
            accuracy(Path(tmp))


if __name__ == "__main__":
    main()
