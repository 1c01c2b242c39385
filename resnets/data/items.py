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
    """A single image (not a batch, a path or a pair)."""
    if _is_pil(obj):
        return True
    if isinstance(obj, torch.Tensor | np.ndarray):
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
            f"{where} is a {type(obj).__name__}, not an image: give a PIL image, a CHW tensor "
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
        if int(x.min()) < 0:
            raise DataError(f"{where}: integer pixels below 0 ({int(x.min())}); give uint8 images")
        return (x >> 8 if int(x.max()) > 255 else x).to(torch.uint8)
    x = x.float()
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise DataError(f"{where}: {bad} pixels are NaN or infinite; fix or leave out this image")
    if undo is not None:
        x = undo.apply(x)
    low, high = float(x.min()), float(x.max())
    if low >= -1e-3 and high <= 1 + 1e-3:
        return (x * 255).round_().clamp_(0, 255).to(torch.uint8)
    if low >= 0 and high <= 255 and undo is None:
        return x.round().to(torch.uint8)
    raise DataError(
        f"{where}: float pixels range over {low:.3g}..{high:.3g}, not 0..1"
        + ("" if undo is None else " even after taking back the dataset's Normalize")
        + "; give images before Normalize (resnets normalizes them itself), or uint8"
    )


def to_label(obj: Any, where: str) -> int | str:
    """A class index (int) or class name (str) from an int, NumPy/torch scalar or string."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, torch.Tensor | np.ndarray | np.generic):
        n = obj.numel() if isinstance(obj, torch.Tensor) else np.size(obj)
        if n != 1:
            raise DataError(
                f"{where}: the label has {n} values; a class label is one number "
                "(multi-label targets are not supported from Python objects yet)"
            )
        obj = obj.item()
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
