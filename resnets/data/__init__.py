"""Data: datasets held as uint8 tensors or image folders, device augmentation, loaders."""

from .build import DATASETS, DataOptions, Loaders, Splits, load_splits, make_loaders
from .datasets import ImageTensors
from .loaders import Shard

__all__ = [
    "DATASETS",
    "DataOptions",
    "ImageTensors",
    "Loaders",
    "Shard",
    "Splits",
    "load_splits",
    "make_loaders",
]
