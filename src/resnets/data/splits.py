"""The three splits of a dataset and how they are carved: validation from the training
data, and a test split where the data has none, stratified and with a fixed seed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import UsageError
from .augment import CropFlip
from .datasets import ImageTensors

SPLIT_SEED = 0  # splits never change with --seed, so runs stay comparable


def crop_padding(given: int | None, size: int) -> int:
    """The random crop's padding: --crop-padding as given (0 turns the crop off), else an
    eighth of the input size (4 pixels at CIFAR's 32), the same for every source."""
    return given if given is not None else max(size // 8, 1)


def choose_flips(
    given: bool | None, colour: bool, notes: list[str], switch=("--hflip", "--no-hflip")
) -> bool:
    """Random horizontal flips: as given, else on for colour photos and off for greyscale
    (scans, digits and text have a left and a right), the choice noted with `switch`, the
    (on, off) spelling for the user's interface."""
    if given is not None:
        return given
    notes.append(
        f"random horizontal flips: on, as for colour photos; {switch[1]} where left and right "
        "differ"
        if colour
        else "random horizontal flips: off for greyscale images (scans, digits and text have "
        f"a left and a right); {switch[0]} turns them on"
    )
    return colour


@dataclass(kw_only=True)
class ReadSplits:
    """The three splits as a source reads and carves them, in memory (`ImageTensors`) or as
    folders (`ImageFolderDataset`, a torch `Dataset` of files): everything but their
    normalization, which is measured on them once they are read (build.py) and completes
    them as `Splits`."""

    name: str
    train: ImageTensors | Dataset
    val: ImageTensors | Dataset | None
    test: ImageTensors | Dataset | None
    classes: list[str]
    channels: int
    input_size: int
    crop_padding: int
    hflip: bool
    resize_size: int | None = None
    in_memory: bool = True
    notes: list[str] = field(default_factory=list)
    decode: dict | None = None  # folders with --gpu-decode: DeviceDecoder settings
    fingerprint: str = ""  # of all three splits' contents (see provenance.py)
    stream_only: str | None = None  # why a folder cannot be decoded once, if it cannot
    decoded: dict[str, ImageTensors] = field(default_factory=dict)  # folders decoded once
    unreadable: list[str] = field(default_factory=list)  # files the decoding left out
    item_normalize: list[list[float]] | None = None  # Python items' own Normalize (items.py)
    reading: dict = field(default_factory=dict)  # 3D: WeightsMeta's inputs, input_depth, intensity
    rotate: float = 0.0  # training: random rotation bound in degrees (--rotate)
    scale: float = 0.0  # training: random zoom bound, a fraction (--scale)
    root: Path | None = None  # the folder the data's file names are relative to, if files

    @property
    def spatial_dims(self) -> int:
        """2 for images, 3 for volumes (N, C, D, H, W)."""
        train = self.tensors("train")
        return 3 if train is not None and train.images.ndim == 5 else 2

    @property
    def extent(self) -> tuple[int, ...]:
        """An input's spatial shape: (size, size), or a volume's (depth, height, width)."""
        train = self.tensors("train")
        if train is not None and train.images.ndim == 5:
            return tuple(train.images.shape[2:])
        return (self.input_size, self.input_size)

    def require_dims(self, dims: int, model: str) -> None:
        """A 2D model for images, a 3D one for volumes: said before anything runs."""
        if dims == self.spatial_dims:
            return
        if dims == 2:
            what = "clips" if self.name == "video" else "volumes"
            raise UsageError(
                f"{self.name} holds 3D {what} and {model} is a 2D model; leave --model out "
                "to have one chosen, or name a 3D one: resnet10_3d or resnet18_3d (volumes), "
                "r3d_18 (clips), ... (resnets list)"
            )
        raise UsageError(
            f"{model} is a 3D model and {self.name} holds 2D images; choose a 2D "
            "model (resnet18, resnet20, ...)"
        )

    def train_augment(self) -> CropFlip | None:
        """The on-device augmentation of the training split; None if it does nothing. Volumes
        shift in depth in proportion (a clip of 16 frames at 112 px by 2 frames, not 14)."""
        extent = self.extent
        depth = round(self.crop_padding * extent[0] / extent[-1]) if len(extent) == 3 else None
        if depth == 0 and self.crop_padding:
            depth = 1
        augment = CropFlip(
            self.crop_padding,
            self.hflip,
            self.spatial_dims,
            depth,
            self.rotate,
            self.scale,
            video=self.name == "video",
        )
        return augment if augment.active else None

    def tensors(self, name: str) -> ImageTensors | None:
        """A split as uint8 tensors, if it is held in memory (or decoded once); else None."""
        data = getattr(self, name)
        return data if self.in_memory else self.decoded.get(name)

    def train_labels(self) -> torch.Tensor | None:
        """The training split's labels (a folder that streams has them too; masks only when
        decoded)."""
        decoded = self.tensors("train")
        return decoded.labels if decoded is not None else getattr(self.train, "labels", None)


@dataclass(kw_only=True)
class Splits(ReadSplits):
    """The splits a run trains and is scored on: as read, with the mean and std that its
    inputs are normalized by."""

    mean: list[float]
    std: list[float]

    @classmethod
    def normalized(cls, read: ReadSplits, mean: list[float], std: list[float]) -> Splits:
        return cls(
            **{f.name: getattr(read, f.name) for f in fields(ReadSplits)}, mean=mean, std=std
        )


def carve(train, val, test, opts, notes: list[str], source: str, name: str = ""):
    """The one carving for every source: where the source has no test split, one held out of
    its training data (stratified, with the fixed seed); then, where it has no validation
    split, one carved from what is left. `source` names the data in the notes; `name` is
    the set's name (volumes and clips are counted as such). With --classes, the other
    classes' items go first, from every split."""
    train, val, test = keep_classes(train, val, test, getattr(opts, "classes", None), notes)
    if test is None:
        kept, held = stratified_split(strata(train), opts.test_split)
        train, test = train.subset(kept), train.subset(held)
        notes.append(
            f"test split: {len(test.labels)} {unit(test, name)} held out from {source} (fixed seed)"
        )
    if val is None:
        train, val = carve_val(train, opts.val_split, notes, name)
    return train, val, test


def keep_classes(train, val, test, asked, notes: list[str]):
    """Only the classes `asked` names (--classes: names or indices, comma-separated), in every
    split, relabelled 0..k-1 in the source's order; a split left with none of them is treated
    as absent (carved again), an empty training split refused."""
    if asked is None:
        return train, val, test
    if train.labels.ndim != 1:
        raise UsageError("--classes picks classes of data with one class per image, not masks")
    wanted = chosen_classes(asked, train.classes)
    remap = torch.full((len(train.classes),), -1, dtype=torch.long)
    remap[wanted] = torch.arange(len(wanted))
    names = [train.classes[i] for i in wanted]

    def keep(data):
        if data is None:
            return None
        index = (remap[data.labels] >= 0).nonzero().flatten()
        if len(index) == 0:
            return None
        kept = data.subset(index)
        return dataclasses.replace(kept, labels=remap[kept.labels], classes=names)

    def count(*parts) -> int:
        return sum(len(p.labels) for p in parts if p is not None)

    before = count(train, val, test)
    train, val, test = keep(train), keep(val), keep(test)
    if train is None:
        raise UsageError(f"--classes {asked}: the training data holds no image of these classes")
    others = [c for i, c in enumerate(remap.tolist()) if c < 0]
    left = before - count(train, val, test)
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    notes.append(
        f"classes: {len(names)} of {len(remap)} by --classes ({shown}); the {left} images of "
        f"the other {len(others)} are left out"
    )
    return train, val, test


def chosen_classes(asked: str | list, classes: list[str]) -> list[int]:
    """Indices of the classes named (or numbered) in `asked`, in the source's order; at
    least two; an unknown one refused with the names there are."""
    parts = asked if isinstance(asked, list | tuple) else str(asked).split(",")
    found = set()
    for part in (str(p).strip() for p in parts if str(p).strip()):
        if part in classes:
            found.add(classes.index(part))
        elif part.isdigit() and int(part) < len(classes):
            found.add(int(part))
        else:
            shown = ", ".join(classes[:20]) + (", ..." if len(classes) > 20 else "")
            raise UsageError(f"--classes: no class {part!r} in the data; its classes: {shown}")
    if len(found) < 2:
        raise UsageError(f"--classes {asked}: name two or more classes; a classifier needs two")
    return sorted(found)


def stratified_split(labels: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, split-off) indices; each class gives round(fraction x its count), at least one."""
    g = torch.Generator().manual_seed(SPLIT_SEED)
    keep, take = [], []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n = min(max(round(fraction * len(idx)), 1), len(idx) - 1) if len(idx) > 1 else 0
        take.append(idx[:n])
        keep.append(idx[n:])
    return torch.cat(keep).sort().values, torch.cat(take).sort().values


def carve_val(train, fraction: float | None, notes: list[str], name: str = ""):
    fraction = 0.1 if fraction is None else fraction
    if fraction == 0:
        notes.append("no validation set (--val-split 0): the last epoch's weights are kept")
        return train, None
    kept, held = stratified_split(strata(train), fraction)
    what = unit(train, name)
    notes.append(f"validation split: {len(held)} of {len(train.labels)} training {what}")
    return train.subset(kept), train.subset(held)


def unit(data, name: str = "") -> str:
    """What one sample of `data` (from the set called `name`) is, in the notes: images, or
    3D volumes or clips."""
    if getattr(data, "images", None) is None or data.images.ndim != 5:
        return "images"
    return "clips" if name == "video" else "volumes"


def strata(data) -> torch.Tensor:
    """Per-sample classes to stratify by; masks give none, so the split is simply random."""
    labels = data.labels
    return torch.zeros(len(labels), dtype=torch.long) if labels.ndim > 1 else labels
