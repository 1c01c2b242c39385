"""Data: datasets held as uint8 tensors or image folders, device augmentation, loaders."""

from ..options import DATASETS, DataOptions
from .build import Loaders, load_splits, make_loaders
from .datasets import ImageTensors
from .loaders import Shard
from .splits import Splits

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
