"""Shared fixtures: tiny real-format data and helpers for exact comparisons."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN layer non-trivial statistics so that parity tests compare real numbers."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm3d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(1 + torch.randn(m.num_features, generator=g) * 0.1)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker per core: one thread each
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch) -> None:
    """Disk caches of decoded images go to a temporary folder, never the user's ~/.cache."""
    monkeypatch.setenv("RESNETS_CACHE", str(tmp_path_factory.mktemp("cache")))


# ---- tiny datasets in their real on-disk formats ------------------------------------------

import gzip  # noqa: E402
import io  # noqa: E402
import pickle  # noqa: E402
import struct  # noqa: E402
import tarfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def write_cifar(
    root: Path, per_batch: int = 40, name: str = "cifar10", archive: bool = True
) -> Path:
    """A CIFAR-10/100 in the official python-pickle format (folder, or .tar.gz archive)."""
    rng = np.random.default_rng(0)
    n_classes = 10 if name == "cifar10" else 100
    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    label_key = b"labels" if name == "cifar10" else b"fine_labels"
    if name == "cifar10":
        files = {f"data_batch_{i}": per_batch for i in range(1, 6)} | {"test_batch": per_batch}
        meta_name, meta = "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]}
    else:
        files = {"train": per_batch * 5, "test": per_batch}
        meta_name, meta = "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)]}
    blobs = {meta_name: pickle.dumps(meta, protocol=2)}
    for fname, n in files.items():
        labels = rng.integers(0, n_classes, n).tolist()
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        blobs[fname] = pickle.dumps({b"data": data, label_key: labels}, protocol=2)
    root.mkdir(parents=True, exist_ok=True)
    if archive:
        path = root / ("cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz")
        with tarfile.open(path, "w:gz") as tar:
            for fname, blob in blobs.items():
                info = tarfile.TarInfo(f"{folder}/{fname}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        return path
    (root / folder).mkdir(exist_ok=True)
    for fname, blob in blobs.items():
        (root / folder / fname).write_bytes(blob)
    return root / folder


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    raw = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def write_mnist(root: Path, name: str = "MNIST", n: int = 60, gz: bool = True) -> Path:
    rng = np.random.default_rng(1)
    raw = root / name / "raw"
    for prefix, count in (("train", n), ("t10k", n // 3)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)), gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, count), gz)
    return root


def write_image_folder(
    root: Path,
    classes=("circle", "square"),
    per_class: int = 12,
    size: int = 20,
    gray: bool = False,
) -> Path:
    """Images of two drawable shapes (learnable), as PNG and JPEG, one folder per class."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(2)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            s = size + int(rng.integers(0, 8))  # mixed sizes on purpose
            im = Image.new("L" if gray else "RGB", (s, s), 0 if gray else (20, 20, 20))
            draw = ImageDraw.Draw(im)
            lo, hi = s // 5, s - s // 5
            fill = 230 if gray else tuple(int(v) for v in rng.integers(120, 256, 3))
            if c % 2 == 0:
                draw.ellipse((lo, lo, hi, hi), fill=fill)
            else:
                draw.rectangle((lo, lo, hi, hi), fill=fill)
            im.save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """One short finished training run on the bundled digits, shared by inference tests."""
    from resnets import train

    run = tmp_path_factory.mktemp("runs") / "digits"
    train(out=str(run), epochs=3, progress=False, tensorboard=False, seed=0)
    return run
