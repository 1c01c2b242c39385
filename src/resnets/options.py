"""Options as declared data, torch-free: each option's default, help and the interval of
values that can be meant. The CLI builds its flags from these declarations, and every
options object checks its numbers against them when it is made.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from typing import Literal

from .errors import ConfigError

DATASETS = (
    "digits",
    "synthetic",
    "cifar10",
    "cifar100",
    "mnist",
    "fashion-mnist",
    "imagefolder",
    "shapes",  # segmentation: synthetic circles and squares with masks
    "segfolder",  # segmentation: PATH/images/* with PATH/masks/* of the same names
    "csv",  # labels in a table: path and label columns, paths relative to the CSV
    "shapes3d",  # 3D: synthetic spheres, cubes and tori in noisy volumes
    "npz",  # MedMNIST-style arrays: train_images, train_labels, val_..., test_... (2D or 3D)
    "volumes",  # 3D: class folders of NIfTI, .npy/.npz volumes or DICOM series
    "video",  # 3D: class folders of clips (video files or folders of frames)
    "shapes-boxes",  # detection: synthetic circles, squares and triangles with their boxes
    "coco",  # detection: a COCO JSON file, its images beside it
    "voc",  # detection: Pascal VOC XML folders
    "yolo",  # detection: YOLO txt folders (normalised centre and size per line)
)


# Choices of the commands, one list each: the CLI offers them and the API checks them.
BACKENDS = ("eager", "fast", "compile", "onnxruntime", "auto")
EXPORT_FORMATS = ("onnx", "torchscript", "safetensors")
CONVERT_TARGETS = ("resnets", "torchvision", "timm")
SPLITS = ("train", "val", "test")
TASKS = ("classification", "segmentation", "multilabel", "detection")  # what outputs mean
# detection: torchvision's heads on a resnets FPN; fasterrcnn-c5 is the seed's own single-map
# design (RPN and RoI pooling on the last stage only)
DETECTION_HEADS = ("fasterrcnn", "retinanet", "fcos", "fasterrcnn-c5")
EVAL_SPLITS = (*SPLITS, "all")  # all: every image of the data, its splits one after another
EXPERIMENTS = ("degradation", "gradients")
EXPLAIN_METHODS = ("gradcam", "gradcam++", "scorecam", "integrated-gradients")
PRETRAIN_METHODS = ("simclr", "moco", "byol", "simsiam", "barlow", "vicreg")  # resnets pretrain
FEWSHOT_METHODS = ("protonet", "simpleshot", "logistic", "pixels")  # pixels: the baseline


def split_spec(spec: str) -> tuple[str, str | None]:
    """ "imagefolder:~/x" -> ("imagefolder", "~/x"); "digits" -> ("digits", None)."""
    name, _, path = spec.partition(":")
    return name, path or None


def absolute_data(spec: str) -> str:
    """A --data spec with its path made absolute, so that the run folder's record of it still
    finds the data from another working folder."""
    name, path = split_spec(spec)
    return f"{name}:{os.path.abspath(os.path.expanduser(path))}" if path else spec


def option(default, help: str, bounds: str | None = None):
    """A dataclass field with help text and, for numbers, the interval of values that can be
    meant, e.g. "[0, 1)" or "(0, inf)": the CLI flag, the docs and the validation read it here."""
    metadata = {"help": help} if bounds is None else {"help": help, "bounds": bounds}
    return field(default=default, metadata=metadata)


def parse_bounds(text: str) -> tuple[float, bool, float, bool]:
    """ "[0, 1)" -> (0.0, True, 1.0, False): low, low included, high, high included."""
    low, high = (part.strip() for part in text[1:-1].split(","))
    return float(low), text[0] == "[", float(high), text[-1] == "]"


def in_bounds(value: float, bounds: str) -> bool:
    low, low_in, high, high_in = parse_bounds(bounds)
    above = value >= low if low_in else value > low
    below = value <= high if high_in else value < high
    return above and below and not math.isnan(value)


def check_bounds(options: object) -> None:
    """Every number of a dataclass of options within the interval its field declares."""
    for f in fields(options):
        bounds, value = f.metadata.get("bounds"), getattr(options, f.name)
        if bounds is None or value is None:
            continue
        for v in value if isinstance(value, tuple) else (value,):
            if not in_bounds(v, bounds):
                raise ConfigError(f"{f.name} must be in {bounds}, got {v}")


@dataclass
class DataOptions:
    """The data-related training options (each is also a `resnets train` flag)."""

    data: str = option(
        "digits",
        "digits | synthetic | cifar10[:PATH] | cifar100[:PATH] | mnist[:PATH] | "
        "fashion-mnist[:PATH] | imagefolder:PATH | csv:FILE; segmentation: shapes | "
        "segfolder:PATH; 3D: shapes3d | npz:FILE | volumes:PATH | video:PATH; detection: "
        "shapes-boxes | coco:FILE | voc:DIR | yolo:DIR | csv:FILE (path, x1, y1, x2, y2, label)",
    )
    image_size: int | None = option(
        None,
        "resize images to this side (default: native; folders: from the model and images)",
        "[1, inf)",
    )
    val_split: float | None = option(
        None, "fraction of training data held out for validation (0.1)", "[0, 1)"
    )
    test_split: float = option(
        0.2, "fraction held out as test set where the data has none", "[0, 1)"
    )
    download: bool = option(False, "download CIFAR / MNIST with torchvision (needs a network)")
    num_workers: int | None = option(
        None, "image-folder decoding processes (default: CPUs - 1, max 8)", "[0, inf)"
    )
    strict: bool = option(
        False,
        "fail on an unreadable image (detection: on any box problem) instead of skipping and "
        "counting it",
    )
    synthetic_samples: int = option(
        2048, "training images for --data synthetic (shapes3d: a quarter of it)", "[1, inf)"
    )
    synthetic_classes: int = option(10, "classes for --data synthetic", "[2, inf)")
    crop_padding: int | None = option(
        None, "random-crop padding in pixels (default: size / 8)", "[0, inf)"
    )
    hflip: bool | None = option(
        None, "random horizontal flips (default: on for CIFAR and RGB folders, off for grey)"
    )
    train_crop: str | None = option(None, "folders: random-resized | resize (default by size)")
    eval_resize: int | None = option(
        None, "folders: shorter side before the centre crop", "[1, inf)"
    )
    gpu_decode: bool = option(False, "folders: decode JPEGs on the training device (nvJPEG)")
    cache: Literal["auto", "memory", "disk", "none"] = option(
        "auto", "folders: decode once into memory or a disk cache (auto: memory if it fits)"
    )
    path_column: str | None = option(
        None, "csv: the column of image paths (default: found by name)"
    )
    label_column: str | None = option(
        None, "csv: the label column, or several 0/1 columns 'a,b,c' (default: found by name)"
    )
    frames: int | None = option(
        None, "video: frames sampled per clip, spread evenly over it (default 16)", "[1, inf)"
    )
    rotate: float = option(
        0.0,
        "training: random rotation up to this many degrees (volumes: about each axis)",
        "[0, 180]",
    )
    scale: float = option(
        0.0, "training: random zoom by up to this fraction, e.g. 0.1 for 0.9..1.1x", "[0, 1)"
    )
    spacing: str | None = option(
        None,
        "volumes: resample to this voxel spacing in mm (one number, or X,Y,Z), then centre-crop "
        "or pad to --image-size (default: stretch each volume to the cube)",
    )
    window: str | None = option(
        None,
        "volumes: CT window 'CENTRE,WIDTH' in HU, e.g. 40,400 (default: z-score, or "
        "40,400 for DICOM series)",
    )
    volume_index: int | None = option(
        None,
        "volumes: which volume of a 4D file to read (a NIfTI's 4th axis, an array's first; from 0)",
        "[0, inf)",
    )
    mask_pattern: str | None = option(
        None,
        "segfolder: how an image names its mask: a name in masks/, e.g. '{stem}_mask.png', or "
        "IMAGES=MASKS inside the folder, e.g. 'images/{id}_training.tif=1st_manual/"
        "{id}_manual1.gif' (* matches any text)",
    )
    mask_colours: str | None = option(
        None, "segfolder: JSON or CSV file mapping mask colours 'r,g,b' to class names"
    )
    normalize: Literal["dataset", "imagenet", "weights"] | None = option(
        None,
        "mean/std: the training split's own, ImageNet's, or the --pretrained resnets weights' "
        "own (default: dataset; with --pretrained, the weights' own where they carry it, else "
        "imagenet)",
    )
    allow_changed_data: bool = option(
        False, "resume or evaluate a run whose data changed, keeping its split by file name"
    )
    classes: str | None = option(
        None,
        "only these classes, by name or index, e.g. 0,1,2,3,4 (the others' images are left "
        "out of every split; few-shot: the base classes a backbone learns)",
    )

    def __post_init__(self) -> None:
        check_bounds(self)
