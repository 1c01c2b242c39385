"""Small datasets held in memory as uint8 tensors: digits, CIFAR, MNIST, synthetic.

Each loader returns `ImageTensors` for its official splits; `data/build.py` carves the
validation (and, where there is no official one, the test) split.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .colours import IGNORE_INDEX


@dataclass
class ImageTensors:
    """Images [N, C, H, W] uint8 (volumes and clips [N, C, D, H, W]), labels [N] int64 (or a
    mask per image), the class names and, for data read from files, the file each item came
    from (what a run's record and its predicted masks name them by)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    files: list[Path] | None = None

    def __post_init__(self) -> None:
        what = "images" if self.images.ndim <= 4 else "volumes or clips"
        if len(self.images) == 0:
            raise DataError(f"the dataset is empty: it holds no {what}")
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} {what} but {len(self.labels)} labels")
        if self.files is not None and len(self.files) != len(self.images):
            raise DataError(f"{len(self.images)} {what} but {len(self.files)} file names")
        if self.labels.ndim == 2:  # multi-label: a 0/1 row per image, a column per class
            if (
                self.labels.shape[1] != len(self.classes)
                or ((self.labels != 0) & (self.labels != 1)).any()
            ):
                raise DataError(
                    f"multi-label targets must be 0/1 rows of {len(self.classes)} (one per class), "
                    f"got shape {tuple(self.labels.shape)}"
                )
            return
        counted = self.labels[self.labels != IGNORE_INDEX] if self.labels.ndim >= 3 else self.labels
        low, high = (int(counted.min()), int(counted.max())) if counted.numel() else (0, 0)
        if low < 0 or high >= len(self.classes):
            raise DataError(
                f"labels range over {low}..{high} but there are {len(self.classes)} classes; "
                "labels must be 0..num_classes-1"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ImageTensors:
        files = None if self.files is None else [self.files[i] for i in index.tolist()]
        return ImageTensors(self.images[index], self.labels[index], self.classes, files)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def is_segmentation(self) -> bool:
        """Labels are masks [N, H, W] or [N, D, H, W] (a class per pixel or voxel) rather than a
        class per image."""
        return self.labels.ndim >= 3


def resize(data: ImageTensors, size: int) -> ImageTensors:
    """Resize every image once (bilinear, antialiased) and keep uint8; volumes to a cube of
    side `size` (trilinear); masks (per-pixel labels) by nearest neighbour."""
    target = (size,) * (data.images.ndim - 2)
    if tuple(data.images.shape[2:]) == target:
        return data
    out = []
    for chunk in data.images.split(4096 if len(target) == 2 else 64):
        if len(target) == 2:
            x = F.interpolate(chunk.float(), size=target, mode="bilinear", antialias=True)
        else:
            x = F.interpolate(chunk.float(), size=target, mode="trilinear")
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    labels = data.labels
    if data.is_segmentation:
        labels = F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest")
        labels = labels[:, 0].to(data.labels.dtype)
    return ImageTensors(torch.cat(out), labels, data.classes, data.files)


def load_digits() -> ImageTensors:
    """scikit-learn's 1,797 handwritten digits (8x8, values 0..16), shipped with the package."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = torch.from_numpy(np.rint(bunch.images * (255 / 16)).astype(np.uint8))[:, None]
    return ImageTensors(images, torch.from_numpy(bunch.target).long(), [str(c) for c in range(10)])


def make_synthetic(
    n: int, size: int, num_classes: int, channels: int = 3, seed: int = 0
) -> ImageTensors:
    """Random images whose class shifts a fixed random pattern: learnable, for tests and speed."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.rand(num_classes, channels, size, size, generator=g) * 255
    labels = torch.randint(0, num_classes, (n,), generator=g)
    noise = torch.randn(n, channels, size, size, generator=g) * 48
    images = (patterns[labels] * 0.5 + 64 + noise).clamp_(0, 255).to(torch.uint8)
    return ImageTensors(images, labels, [f"class{c}" for c in range(num_classes)])


def make_shapes(n: int, size: int, channels: int = 1, seed: int = 0) -> ImageTensors:
    """Segmentation toy data: one circle or square per noisy image, and its mask
    (0 background, 1 circle, 2 square)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images = torch.empty(n, channels, size, size, dtype=torch.uint8)
    masks = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        r = int(torch.randint(size // 8, size // 4 + 1, (), generator=g))
        cy, cx = torch.randint(r, size - r, (2,), generator=g).tolist()
        if torch.rand((), generator=g) < 0.5:
            inside, cls = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r, 1
        else:
            inside, cls = ((yy - cy).abs() <= r) & ((xx - cx).abs() <= r), 2
        noise = torch.randn(channels, size, size, generator=g) * 25 + 70
        images[i] = (noise + inside * 110).clamp(0, 255).to(torch.uint8)
        masks[i][inside] = cls
    return ImageTensors(images, masks, ["background", "circle", "square"])


# ---- CIFAR: the official python pickles, read from a folder or the .tar.gz directly ----

_CIFAR = {
    "cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz", "batches.meta", "label_names"),
    "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz", "meta", "fine_label_names"),
}
_CIFAR_FILES = {
    "cifar10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
    "cifar100": (["train"], ["test"]),
}


class _SafeUnpickler(pickle.Unpickler):
    """CIFAR's pickles hold dicts, lists, bytes and numpy arrays; nothing else may load."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2: a pure function
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"refused to unpickle {module}.{name}: not part of the CIFAR format")


def _unpickle(raw: bytes, source: str) -> dict:
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{source} is not a CIFAR pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{source} is not a CIFAR pickle (holds a {type(obj).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_reader(root: Path, name: str):
    """A function reading one member file, from the extracted folder or the archive."""
    folder, archive, *_ = _CIFAR[name]
    for candidate in (root / folder, root):
        if (candidate / _CIFAR_FILES[name][1][0]).is_file():
            return lambda member: (candidate / member).read_bytes()
    tar_path = root if root.is_file() else root / archive
    if tar_path.is_file():
        try:
            with tarfile.open(tar_path, "r:gz") as tar:  # every member is needed: read them all
                files = {
                    Path(m.name).name: tar.extractfile(m).read()
                    for m in tar.getmembers()
                    if m.isfile()
                }
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"cannot read {tar_path} ({e}); download it again") from None

        def read(member: str) -> bytes:
            if member not in files:
                raise DataError(f"{tar_path} lacks {member}; it is not the official archive")
            return files[member]

        return read
    raise DataError(
        f"no {name} found in {root}: expected {folder}/ or {archive} there; "
        "pass --download to fetch it, or point --data at the folder, e.g. --data cifar10:PATH"
    )


def load_cifar(name: str, root: Path, download: bool = False) -> tuple[ImageTensors, ImageTensors]:
    """The official train and test sets of CIFAR-10 or CIFAR-100."""
    if download:
        _download(name, root)
    read = _cifar_reader(root, name)
    meta = _unpickle(read(_CIFAR[name][2]), _CIFAR[name][2])
    classes = [c.decode() if isinstance(c, bytes) else c for c in meta[_CIFAR[name][3]]]
    label_key = "labels" if name == "cifar10" else "fine_labels"
    splits = []
    for members in _CIFAR_FILES[name]:
        data, labels = [], []
        for member in members:
            batch = _unpickle(read(member), member)
            data.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(batch[label_key])
        images = torch.from_numpy(np.concatenate(data))
        splits.append(ImageTensors(images, torch.tensor(labels, dtype=torch.long), classes))
    return splits[0], splits[1]


# ---- MNIST and Fashion-MNIST: torchvision's folder layout of IDX files (.gz or not) ----

_MNIST = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_MNIST_CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}


def _read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 8 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(
            f"{path} is truncated: expected {int(np.prod(dims))} values, got {body.size}"
        )
    return body.reshape(dims)


def _find_idx(root: Path, name: str, stem: str) -> Path:
    for folder in (root / _MNIST[name] / "raw", root / "raw", root):
        for suffix in ("", ".gz"):
            if (folder / (stem + suffix)).is_file():
                return folder / (stem + suffix)
    raise DataError(
        f"no {name} file {stem}[.gz] in {root}/{_MNIST[name]}/raw; pass --download to fetch it, "
        f"or point --data at the folder, e.g. --data {name}:PATH"
    )


def load_mnist(name: str, root: Path, download: bool = False) -> tuple[ImageTensors, ImageTensors]:
    """MNIST or Fashion-MNIST, official train (60k) and test (10k) sets."""
    if download:
        _download(name, root)
    splits = []
    for prefix in ("train", "t10k"):
        images = _read_idx(_find_idx(root, name, f"{prefix}-images-idx3-ubyte"))
        labels = _read_idx(_find_idx(root, name, f"{prefix}-labels-idx1-ubyte"))
        x = torch.from_numpy(images.copy())[:, None]
        splits.append(
            ImageTensors(x, torch.from_numpy(labels.astype(np.int64)), _MNIST_CLASSES[name])
        )
    return splits[0], splits[1]


def _download(name: str, root: Path) -> None:
    """Fetch with torchvision's downloaders (needs a network)."""
    from torchvision import datasets

    cls = {
        "cifar10": datasets.CIFAR10,
        "cifar100": datasets.CIFAR100,
        "mnist": datasets.MNIST,
        "fashion-mnist": datasets.FashionMNIST,
    }[name]
    root.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except (OSError, RuntimeError) as e:
        raise DataError(f"could not download {name} into {root} ({e})") from None
