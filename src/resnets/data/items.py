"""One image or label as Python holds it, made into what resnets trains on: a uint8 tensor
[C, H, W] and a class index. The same rule serves training, `evaluate` and `predict`, so a
tensor given to `predict` is read exactly as the training items were.

Images: a PIL image; a NumPy array or torch tensor [H, W], [C, H, W] (tensors' layout) or
[H, W, C] (arrays' layout), C in 1, 3, 4 (alpha dropped); uint8 as it is, 16-bit to its high
byte, bool to 0/255, floats in [0, 1] (what `ToTensor` makes) times 255. Floats that a
`Normalize` transform shifted are taken back first, when that transform is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import DataError


@dataclass(frozen=True)
class Undo:
    """A `Normalize(mean, std)` the items went through, to take back: x * std + mean."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[0]
        mean = torch.tensor(self.mean, dtype=x.dtype).view(-1, 1, 1).expand(c, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(-1, 1, 1).expand(c, 1, 1)
        return x * std + mean


def find_normalize(obj: Any) -> Undo | None:
    """The `Normalize` inside a dataset's transform (torchvision's v1 or v2, within Compose,
    Subset or a DataLoader), if there is one."""
    for _ in range(8):  # DataLoader -> Subset -> dataset ...
        inner = getattr(obj, "dataset", None)
        if inner is None or inner is obj:
            break
        obj = inner
    todo = [getattr(obj, "transform", None), getattr(obj, "transforms", None)]
    while todo:
        t = todo.pop()
        if t is None:
            continue
        if type(t).__name__ == "Normalize" and hasattr(t, "mean") and hasattr(t, "std"):
            mean = tuple(float(v) for v in np.atleast_1d(np.asarray(t.mean, dtype=float)))
            std = tuple(float(v) for v in np.atleast_1d(np.asarray(t.std, dtype=float)))
            return Undo(mean, std)
        todo += [v for v in getattr(t, "transforms", []) or []]
        todo.append(getattr(t, "transform", None))
    return None


def is_image(obj: Any) -> bool:
    """A single image (not a batch, a path or a pair). Given on its own, [2 or 4, H, W] is
    taken as a batch of greyscale images, not as 2 or 4 channels."""
    if _is_pil(obj):
        return True
    if isinstance(obj, torch.Tensor | np.ndarray):
        if obj.ndim == 3 and not _hwc(obj) and obj.shape[0] in (2, 4):
            return False
        return obj.ndim == 2 or (obj.ndim == 3 and (_chw(obj) or _hwc(obj)))
    return False


def to_image(obj: Any, where: str, undo: Undo | None = None) -> torch.Tensor:
    """uint8 [C, H, W], C 1 or 3, from any image form above; `where` names the item in
    errors ("item 17")."""
    if _is_pil(obj):
        return _from_pil(obj)
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise DataError(f"{where}: an array of Python objects is not an image")
        x = torch.from_numpy(np.ascontiguousarray(obj))
        layout = "hwc" if obj.ndim == 3 and _hwc(obj) else "chw"
    elif isinstance(obj, torch.Tensor):
        x = obj.detach().cpu()
        layout = "chw" if x.ndim == 2 or _chw(x) else "hwc"
    else:
        raise DataError(
            f"{where} has type {type(obj).__name__}, not an image: give a PIL image, a CHW tensor "
            "or an HWC array"
        )
    if x.ndim == 2:
        x = x[None]
    elif x.ndim != 3 or not (_chw(x) or _hwc(x)):
        raise DataError(
            f"{where}: an image of shape {tuple(x.shape)} is neither [C, H, W] nor [H, W, C] "
            "with 1, 3 or 4 channels"
        )
    elif layout == "hwc":
        x = x.permute(2, 0, 1)
    x = x[:3] if x.shape[0] == 4 else x  # alpha is dropped, as for files
    if x.shape[0] == 2:
        raise DataError(f"{where}: an image with 2 channels; give 1 (grey) or 3 (RGB)")
    return _to_uint8(x, where, undo).contiguous()


def _to_uint8(x: torch.Tensor, where: str, undo: Undo | None) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x
    if x.dtype == torch.bool:
        return x.to(torch.uint8) * 255
    if not x.is_floating_point():
        x = x.long()
        low, high = int(x.min()), int(x.max())
        if low < 0 or high > 255:
            raise DataError(
                f"{where}: integer pixels range over {low}..{high}, not 0..255; resnets cannot "
                "know their range (12 or 16 bits?): scale them to uint8 or to floats in [0, 1]"
            )
        return x.to(torch.uint8)
    x = x.float()
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise DataError(f"{where}: {bad} pixels are NaN or infinite; fix or leave out this image")
    if undo is not None:
        x = undo.apply(x)
    low, high = float(x.min()), float(x.max())
    if low >= -1e-3 and high <= 1 + 1e-3:
        return (x * 255).round_().clamp_(0, 255).to(torch.uint8)
    raise DataError(
        f"{where}: float pixels range over {low:.3g}..{high:.3g}, not 0..1"
        + (
            "; a Normalize is taken back only when it is in the dataset's `transform` (or "
            "`transforms`) attribute: give images before Normalize (resnets normalizes them "
            "itself), floats in [0, 1], or uint8"
            if undo is None
            else " even after taking back the dataset's Normalize; give images in [0, 1]"
        )
    )


def to_label(obj: Any, where: str) -> int | str | tuple[float, ...]:
    """A class index (int) or class name (str) from an int, NumPy/torch scalar or string; a
    0/1 vector (tensor, array, list) is a multi-label target, one value per label."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, list | tuple):
        obj = np.asarray(obj)
    if isinstance(obj, torch.Tensor | np.ndarray | np.generic):
        values = np.asarray(obj.detach().cpu() if isinstance(obj, torch.Tensor) else obj)
        if values.size != 1:
            flat = values.reshape(-1).astype(np.float64)
            if values.ndim != 1 or not np.isin(flat, (0.0, 1.0)).all():
                raise DataError(
                    f"{where}: a label of shape {values.shape} is neither a class nor a 0/1 "
                    "vector (one value per label, for multi-label)"
                )
            return tuple(flat.tolist())
        obj = values.item()
    if isinstance(obj, bool) or not isinstance(obj, int | float) or float(obj) != int(obj):
        raise DataError(f"{where}: label {obj!r} is not a class index or a class name")
    return int(obj)


def _is_pil(obj: Any) -> bool:
    return type(obj).__module__.startswith("PIL.") and hasattr(obj, "getbands")


def _chw(x) -> bool:
    return x.ndim == 3 and x.shape[0] in (1, 2, 3, 4) and x.shape[-1] > 4


def _hwc(x) -> bool:
    return x.ndim == 3 and x.shape[-1] in (1, 2, 3, 4) and x.shape[0] > 4


def _from_pil(im) -> torch.Tensor:
    from PIL import Image

    from .decode import _to_8bit

    if im.mode == "I" or im.mode.startswith("I;16") or im.mode == "F":
        im = Image.fromarray(_to_8bit(np.asarray(im), im.mode))
    grey = im.mode in ("1", "L", "LA") or (
        im.mode in ("P", "PA") and _grey_palette(im.getpalette("RGB") or [])
    )
    arr = np.asarray(im.convert("L" if grey else "RGB"))
    t = torch.from_numpy(arr.copy())
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def _grey_palette(rgb: list[int]) -> bool:
    return all(len(set(rgb[i : i + 3])) == 1 for i in range(0, len(rgb), 3))


def class_indices(
    labels: list[int | str], classes: list[str] | None, num_classes: int | None, what: str
) -> tuple[torch.Tensor, list[str], str]:
    """Labels as indices into the class names (multi-label: 0/1 rows), and where the names
    came from."""
    if any(isinstance(v, tuple) for v in labels):
        return _multi_hot(labels, classes, what)
    if all(isinstance(v, str) for v in labels):
        names = classes or sorted(set(labels), key=_name_order)  # type: ignore[arg-type]
        unknown = sorted(set(labels) - set(names))  # type: ignore[arg-type]
        if unknown:
            raise DataError(f"{what}: labels {unknown[:5]} are not among the classes {names[:10]}")
        index = {c: i for i, c in enumerate(names)}
        return torch.tensor([index[v] for v in labels]), names, "the label names, sorted"
    if any(isinstance(v, str) for v in labels):
        raise DataError(f"{what}: labels mix class names and numbers; use one kind")
    y = torch.tensor(labels, dtype=torch.long)
    count = len(classes) if classes else num_classes or int(y.max()) + 1
    bad = ((y < 0) | (y >= count)).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{what} item {i}: label {int(y[i])} is outside 0..{count - 1} "
            f"({count} classes); {len(bad)} items have such labels"
        )
    if classes:
        return y, classes, "the dataset's `classes`"
    given = "num_classes" if num_classes else "the largest label"
    return y, [str(c) for c in range(count)], f"numbered 0..{count - 1} ({given})"


def _name_order(name: str) -> tuple:
    """Numbers in numeric order ("2" before "10"), then names alphabetically."""
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _multi_hot(labels: list, classes: list[str] | None, what: str):
    lengths = {len(v) if isinstance(v, tuple) else 1 for v in labels}
    if len(lengths) != 1:
        i = next(
            i for i, v in enumerate(labels) if not isinstance(v, tuple) or len(v) != len(labels[0])
        )
        raise DataError(f"{what} item {i}: its label has another length than item 0's 0/1 vector")
    (n,) = lengths
    names = classes if classes and len(classes) == n else [str(j) for j in range(n)]
    hot = torch.tensor(labels, dtype=torch.float32)
    if (hot.sum(1) == 1).all():  # one-hot rows: one class each, not a multi-label set
        return hot.argmax(1), names, f"{n} classes, from one-hot rows"
    return hot, names, f"{n} labels, one per 0/1 value (multi-label)"
