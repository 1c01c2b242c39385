"""Image folders against in-memory data and against torchvision's ImageFolder (issue 9).

    python benchmarks/folders.py make-digits DIR [--copies 4]   # digits as 28 px grey PNGs
    python benchmarks/folders.py make-jpegs DIR [--images 2000]   # an ImageNet-style folder
    python benchmarks/folders.py cached DIR                 # training images/s: folder vs memory
    python benchmarks/folders.py stream DIR                 # loading images/s: ours vs torchvision

`cached`: ResNet-20 training steps on a folder of small PNGs, read the way `resnets train`
reads it (decoded once, timed), against the same images handed over as tensors; rounds
alternate between the two. `stream`: one pass of a loader over a JPEG folder with the same
workers and transforms (random-resized crop 224 and flip, normalized floats), ours against
torchvision's `ImageFolder` + `DataLoader`. Ratios are resnets / peer: above 1 is faster.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import resnets
from resnets.data import DataOptions, Shard, load_splits, make_loaders
from resnets.data.build import default_workers
from resnets.data.datasets import ImageTensors, load_digits
from resnets.data.loaders import GlobalBatches, InMemoryTrainLoader
from resnets.data.sizing import ModelSize
from resnets.precision import cpu_description


def make_digits(root: Path, copies: int = 1, size: int = 28) -> int:
    """scikit-learn's digits as `size` px greyscale PNGs, one folder per class. Copies after
    the first are shifted by up to 2 px and rescaled by up to 10 %, so they differ."""
    from PIL import Image

    digits, rng = load_digits(), np.random.default_rng(0)
    n = 0
    for i, (img, label) in enumerate(zip(digits.images[:, 0], digits.labels, strict=True)):
        base = Image.fromarray(img.numpy()).resize((size, size), Image.BICUBIC)
        for c in range(copies):
            out = base
            if c:
                scale = rng.uniform(0.9, 1.1)
                side = round(size * scale)
                dx, dy = rng.integers(-2, 3, 2)
                canvas = Image.new("L", (size, size), 0)
                canvas.paste(base.resize((side, side), Image.BICUBIC),
                             ((size - side) // 2 + dx, (size - side) // 2 + dy))  # fmt: skip
                out = canvas
            folder = root / str(int(label))
            folder.mkdir(parents=True, exist_ok=True)
            out.save(folder / f"{i:04d}-{c}.png")
            n += 1
    return n


def make_jpegs(root: Path, images: int = 2000, classes: int = 10) -> int:
    """Photo-sized RGB JPEGs (sides 300-500 px, quality 90) of smooth colour fields and
    noise, so decoding costs what a photo's would."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(images):
        w, h = (int(v) for v in rng.integers(300, 501, 2))
        yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
        base = np.stack([np.sin(xx * rng.uniform(2, 9) + yy * c + c) for c in range(3)], -1)
        pixels = (base * 80 + 128 + rng.normal(0, 20, (h, w, 3))).clip(0, 255).astype(np.uint8)
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)
    return images


def machine() -> str:
    """The CPU, its vector flags and torch's dispatch level, beside every CPU figure."""
    import torchvision

    return (
        f"{cpu_description()}; {torch.get_num_threads()} threads; "
        f"torch {torch.__version__}, torchvision {torchvision.__version__}"
    )


def _train_rate(loader, model, steps: int) -> float:
    """Images/s over `steps` SGD steps of `model` on batches from `loader`."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    n, start = 0, time.perf_counter()
    for epoch in range(100):
        for micro in loader.epoch(epoch):
            x, y = micro[0]
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
            if n >= steps * len(y):
                return n / (time.perf_counter() - start)
    return n / (time.perf_counter() - start)


def cached(root: Path, rounds: int, steps: int) -> dict:
    """Training images/s from the folder (decoded once) and from the same tensors in memory."""
    cpu = torch.device("cpu")
    opts = DataOptions(data=f"imagefolder:{root}", val_split=0.0, test_split=0.2)
    start = time.perf_counter()
    splits = load_splits(opts, seed=0, model=ModelSize("resnet20", 32, 4))
    setup_seconds = time.perf_counter() - start
    folder = make_loaders(splits, batch_size=128, shard=Shard(), device=cpu, seed=0).train
    train = splits.tensors("train")
    memory_data = ImageTensors(train.images.clone(), train.labels.clone(), train.classes)
    memory = InMemoryTrainLoader(
        memory_data, GlobalBatches(len(memory_data), 128, Shard(), 0), cpu,
        torch.tensor(splits.mean), torch.tensor(splits.std), folder.augment,
    )  # fmt: skip
    streamed = load_splits(DataOptions(**{**vars(opts), "cache": "none"}), seed=0,
                           model=ModelSize("resnet20", 32, 4))  # fmt: skip
    streamed.mean, streamed.std = splits.mean, splits.std
    stream = make_loaders(streamed, batch_size=128, shard=Shard(), device=cpu, seed=0).train
    loaders = {"folder": folder, "memory": memory, "stream": stream}
    model = resnets.create_model("resnet20", num_classes=10, in_chans=1)
    for loader in loaders.values():
        _train_rate(loader, model, 3)  # warm-up (and the stream's worker start)
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    order = list(loaders)
    for r in range(rounds):
        for name in order[r % 3 :] + order[: r % 3]:
            rates[name].append(_train_rate(loaders[name], model, steps))
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {
        "images": len(train), "size": splits.input_size, "notes": splits.notes,
        "setup_seconds (scan, split, decode, stats)": round(setup_seconds, 2),
        "folder images/s": round(med["folder"], 1), "memory images/s": round(med["memory"], 1),
        "ratio folder/memory": round(med["folder"] / med["memory"], 3),
        "streamed (--cache none) images/s": round(med["stream"], 1),
        "ratio streamed/memory": round(med["stream"] / med["memory"], 3),
    }  # fmt: skip


def _pass_rate(loader) -> float:
    n, start = 0, time.perf_counter()
    for batch in loader:
        n += len(batch[1])
    return n / (time.perf_counter() - start)


def _ours(root: Path, workers: int):
    opts = DataOptions(
        data=f"imagefolder:{root}", image_size=224, val_split=0.0, test_split=0.01,
        num_workers=workers, normalize="imagenet",
    )  # fmt: skip
    splits = load_splits(opts, seed=0)
    train = make_loaders(splits, batch_size=64, shard=Shard(), device=torch.device("cpu"),
                         seed=0, num_workers=workers).train  # fmt: skip
    epoch = iter(range(10**6))

    class OnePass:
        def __iter__(self):
            for micro in train.epoch(next(epoch)):
                yield micro[0]

    return OnePass(), splits


def _torchvision(root: Path, workers: int, files: list):
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets
    from torchvision.transforms import v2

    tf = v2.Compose([
        v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip(), v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])  # fmt: skip
    full = datasets.ImageFolder(str(root), transform=tf)
    index = {p: i for i, (p, _) in enumerate(full.samples)}
    same = Subset(full, [index[str(f)] for f in files])  # the very files ours reads
    return DataLoader(
        same, batch_size=64, shuffle=True, num_workers=workers, drop_last=True,
        persistent_workers=workers > 0, prefetch_factor=4 if workers else None,
    )  # fmt: skip


def stream(root: Path, rounds: int, workers: int | None) -> dict:
    workers = default_workers() if workers is None else workers
    ours, splits = _ours(root, workers)
    peer = _torchvision(root, workers, splits.train.files)
    _pass_rate(ours), _pass_rate(peer)  # warm-up: page cache, worker start
    rates: dict[str, list[float]] = {"resnets": [], "torchvision": []}
    for r in range(rounds):
        for name in ("resnets", "torchvision") if r % 2 == 0 else ("torchvision", "resnets"):
            rates[name].append(_pass_rate(ours if name == "resnets" else peer))
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {
        "images": len(splits.train), "workers": workers, "notes": splits.notes,
        "resnets images/s": round(med["resnets"], 1),
        "torchvision images/s": round(med["torchvision"], 1),
        "ratio resnets/torchvision": round(med["resnets"] / med["torchvision"], 3),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["make-digits", "make-jpegs", "cached", "stream"])
    p.add_argument("root", type=Path)
    p.add_argument("--copies", type=int, default=4)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--workers", type=int)
    a = p.parse_args(argv)
    if a.what == "make-digits":
        print(f"{make_digits(a.root, a.copies)} PNGs in {a.root}")
    elif a.what == "make-jpegs":
        print(f"{make_jpegs(a.root, a.images)} JPEGs in {a.root}")
    else:
        result = (
            cached(a.root, a.rounds, a.steps)
            if a.what == "cached"
            else stream(a.root, a.rounds, a.workers)
        )
        print(json.dumps({"machine": machine(), "command": " ".join(sys.argv), **result}, indent=1))


if __name__ == "__main__":
    main()
