"""What several test modules share: quick training options, tiny data in real on-disk formats
(a CIFAR pickle, MNIST's IDX files, an image folder, DICOM, digit PNGs) and helpers for exact
comparisons. Fixtures live in conftest.py."""

from __future__ import annotations

import gzip
import io
import itertools
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from resnets.data import DataOptions, load_splits
from resnets.training.signals import StopRequest

QUIET = {"progress": False, "tensorboard": False}  # a training run without bar or event files


def quick(**options):
    """Options for a short, quiet training run (one epoch, QUIET), with `options` on top."""
    return {"epochs": 1, **QUIET} | options


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


def write_dicom(path, pixels, photometric="MONOCHROME2", slope=None, intercept=None, window=None):
    """An uncompressed 16-bit DICOM file, as scanners write them."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality, ds.PatientID = "CT", "test"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def save_digit_pngs(folder, n=6):
    """Test-split digits written as 8-bit greyscale PNG files, plus an RGB upscaled copy."""
    splits = load_splits(DataOptions(), seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = splits.test.images[i, 0].numpy()
        path = folder / f"{i}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    big = Image.fromarray(splits.test.images[0, 0].numpy()).resize((64, 64)).convert("RGB")
    big.save(folder / "big_rgb.jpg", quality=95)
    return paths, splits


def numpy_ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Guo et al. 2017, written out: sum over bins (lo, hi] of |B|/n |acc(B) - conf(B)|."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            gap = (pred[inside] == labels[inside]).mean() - conf[inside].mean()
            ece += inside.mean() * abs(gap)
    return ece


class StopAtStep(StopRequest):
    """A SIGINT that arrives just after optimizer step `step`."""

    def __init__(self, step: int):
        super().__init__()
        self.step, self.reads = step, 0

    @property
    def requested(self):
        self.reads += 1
        return self.reads >= self.step

    @requested.setter
    def requested(self, value):
        pass
