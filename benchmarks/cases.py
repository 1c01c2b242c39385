"""What the benchmark runs: each function returns a zero-argument callable doing one unit of
work (a few training steps, a batch of inference, a pass over data) and the images it covers.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import reference_cifar
import torch
import torchvision

from resnets.training.config import TrainConfig
from resnets.training.distributed import DistEnv
from resnets.training.loop import train_epoch
from resnets.training.setup import setup
from resnets.training.signals import StopRequest

Work = tuple[Callable[[], None], int]  # (run once, images per run)
CIFAR = {"resnet20", "resnet56"}


def classes(name: str) -> int:
    return 10 if name in CIFAR else 1000


def peer_model(name: str, source: str) -> torch.nn.Module | None:
    """torchvision's (or the reference CIFAR) model, or timm's; None if the source lacks it."""
    if source == "timm":
        try:
            import timm
        except ImportError:
            return None
        return timm.create_model(name, num_classes=classes(name)) if timm.is_model(name) else None
    if name in CIFAR:
        return getattr(reference_cifar, name)()
    return getattr(torchvision.models, name)()


def plain_train(
    model: torch.nn.Module, size: int, batch: int, steps: int, device: torch.device, amp: bool
) -> Work:
    """The loop users write: fixed random batch on the device, SGD, autocast when asked."""
    model = model.to(device).train()
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, classes_of(model), (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    def run() -> None:
        for _ in range(steps):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    return run, steps * batch


def classes_of(model: torch.nn.Module) -> int:
    fc = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    return fc.out_features


def resnets_train(
    name: str, size: int, batch: int, steps: int, device: torch.device, **fast: object
) -> Work:
    """Our real training loop (data pipeline, metrics, EMA-free) on GPU-resident synthetic data."""
    folder = Path(tempfile.mkdtemp(prefix="resnets-bench-"))
    cfg = TrainConfig(
        model=name,
        data="synthetic",
        image_size=size,
        synthetic_samples=steps * batch,
        synthetic_classes=classes(name),
        batch_size=batch,
        epochs=10**6,
        val_split=0.0,
        device=str(device),
        out=str(folder / "run"),
        progress=False,
        tensorboard=False,
        log_every=10**9,
        **fast,
    )
    run_state = setup(cfg, DistEnv(), device)
    epoch = iter(range(10**6))
    stop = StopRequest()

    def run() -> None:
        progress = run_state.progress
        progress.epoch, progress.epoch_step = next(epoch), 0  # as fit does
        train_epoch(run_state, progress.epoch, stop)  # the real loop, calling the real train_step

    return run, steps * batch


def inference(model: torch.nn.Module, x: torch.Tensor, amp: bool = False) -> Work:
    def run() -> None:
        with torch.inference_mode(), torch.autocast(x.device.type, torch.bfloat16, enabled=amp):
            model(x)

    return run, x.shape[0]


def onnxruntime_inference(model: torch.nn.Module, x: torch.Tensor) -> Work | None:
    """The same (BN-folded) model exported to ONNX and run by ONNX Runtime on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    path = Path(tempfile.mkdtemp(prefix="resnets-bench-")) / "model.onnx"
    torch.onnx.export(model.cpu().eval(), (x.cpu(),), str(path), dynamo=False, opset_version=17)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x.cpu().numpy()}

    def run() -> None:
        sess.run(None, feed)

    return run, x.shape[0]


def in_memory_augmentation(device: torch.device, n: int = 50_000, batch: int = 512) -> Work:
    """One epoch of CIFAR-style batches: gather, pad-crop, flip, normalize (no model)."""
    from resnets.data import DataOptions, Shard, load_splits, make_loaders

    opts = DataOptions(data="synthetic", image_size=32, synthetic_samples=n, hflip=True)
    splits = load_splits(opts, seed=0)
    loaders = make_loaders(splits, batch_size=batch, shard=Shard(), device=device, seed=0)
    epoch = iter(range(10**6))

    def run() -> None:
        for micro in loaders.train.epoch(next(epoch)):
            micro[0][0].sum()  # touch the batch so the work is done
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run, len(loaders.train) * batch


def folder_decoding(device: torch.device, images: int = 512, workers: int | None = None) -> Work:
    """One epoch over a folder of 500x375 JPEGs: decode, random-resized crop 224, to device."""
    from PIL import Image

    from resnets.data import DataOptions, Shard, load_splits, make_loaders

    root = Path(tempfile.mkdtemp(prefix="resnets-bench-jpeg-"))
    g = torch.Generator().manual_seed(0)
    for i in range(images):
        folder = root / f"c{i % 4}"
        folder.mkdir(exist_ok=True)
        pixels = (torch.rand(375, 500, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
    opts = DataOptions(data=f"imagefolder:{root}", image_size=224, val_split=0.0, test_split=0.1)
    splits = load_splits(opts, seed=0)
    loaders = make_loaders(
        splits, batch_size=64, shard=Shard(), device=device, seed=0, num_workers=workers
    )
    epoch = iter(range(10**6))

    def run() -> None:
        for micro in loaders.train.epoch(next(epoch)):
            micro[0][0].sum()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run, len(loaders.train) * 64
