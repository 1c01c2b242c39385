"""Segmentation masks as data sets ship them: read each mask as stored, and decide once per set
how raw values become classes (`infer_scheme`, `apply`); pairing.py finds each image's mask.

Class per pixel is int64; IGNORE_INDEX (-100, F.cross_entropy's default ignore_index) marks
pixels no loss or metric should count, such as VOC's void border (palette index 255).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import DataError
from .colours import IGNORE_INDEX, parse_table
from .decode import GREY_MODES, check_size

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_CLASSES = 32  # more distinct values than this is not one value per class
SAMPLE = 200  # masks read to decide the scheme
LOSSY_FORMATS = {"JPEG", "MPO"}
_HINT = "pass --mask-colours FILE mapping colours to classes, or save one value per class"


@dataclass(frozen=True)
class MaskFile:
    """One mask as stored: kind 'grey' or 'palette' (values [H, W] ints) or 'rgb' ([H, W, 3])."""

    path: Path
    kind: str
    values: np.ndarray
    format: str  # Pillow's im.format: "PNG", "JPEG", ...
    palette: np.ndarray | None = None  # [256, 3] uint8 for palette masks

    @property
    def lossy(self) -> bool:
        """JPEG masks carry artefacts: their values are near, not equal to, the ones drawn."""
        return self.format in LOSSY_FORMATS

    def rgb(self) -> np.ndarray:
        """The colours [H, W, 3] uint8 a viewer shows, for mapping through a colour table."""
        if self.kind == "rgb":
            return self.values
        if self.kind == "palette":
            return self.palette[self.values]
        if self.values.min() < 0 or self.values.max() > 255:
            raise DataError(f"{self.path} holds values outside 0..255; save it as 8-bit")
        return np.repeat(self.values.astype(np.uint8)[..., None], 3, axis=-1)


class UnreadableMask(DataError):
    """A mask file that does not open as an image: its pair is left out, as a broken image's
    is (or, with --strict, the run stops)."""


def read_mask(path: Path) -> MaskFile:
    """Read a mask with Pillow as stored (palette indices kept; grey-looking colour as grey)."""
    from PIL import Image

    check_size(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return _from_pil(path, im)
    except DataError:
        raise
    except Exception as e:
        raise UnreadableMask(
            f"{path} cannot be read as a mask ({type(e).__name__}): not an image file, or a "
            "damaged one"
        ) from None


def _from_pil(path: Path, im: Image) -> MaskFile:
    """A MaskFile from an open image; RGB with (near-, if JPEG) equal channels counts as grey."""
    fmt = im.format or ""
    if im.mode in ("P", "PA"):
        palette = np.zeros((256, 3), np.uint8)
        given = np.array(im.getpalette("RGB") or [], np.uint8).reshape(-1, 3)[:256]
        palette[: len(given)] = given
        index = np.asarray(im.getchannel(0))
        if (palette == palette[:, :1]).all():
            return MaskFile(path, "grey", palette[index, 0], fmt)
        return MaskFile(path, "palette", index, fmt, palette)
    if im.mode in GREY_MODES:
        values = np.asarray(im.getchannel(0) if im.mode in ("LA", "La") else im)
        if values.dtype.kind == "f" and (values != np.round(values)).any():
            raise DataError(f"{path} holds non-integer values; save one integer per class")
        return MaskFile(
            path, "grey", values.astype(np.int64) if values.dtype.kind in "fb" else values, fmt
        )
    rgb = np.asarray(im.convert("RGB"))
    spread = int((rgb.max(-1) - rgb.min(-1)).max())
    if spread == 0:
        return MaskFile(path, "grey", rgb[..., 0], fmt)
    if fmt in LOSSY_FORMATS and spread <= 48:  # JPEG chroma noise on a black-and-white mask
        return MaskFile(path, "grey", np.asarray(im.convert("L")), fmt)
    return MaskFile(path, "rgb", rgb, fmt)


def check_same_size(image_path: Path, mask_path: Path) -> None:
    """Refuse a mask whose width and height differ from its image's (headers only)."""
    from PIL import Image

    try:
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            (w, h), (mw, mh) = image.size, mask.size
    except Exception as e:
        raise DataError(f"{image_path} or {mask_path} cannot be read ({e}); re-save it") from None
    if (w, h) != (mw, mh):
        raise DataError(
            f"mask {mask_path} is {mw}x{mh} but its image {image_path} is {w}x{h}; "
            "resize the mask (nearest neighbour) or fix the pairing"
        )


@dataclass(frozen=True)
class MaskScheme:
    """How raw mask values become classes, decided once for the whole set.

    `source` is the view read from each file ('grey', 'palette' or 'rgb' colours); with a
    `threshold`, grey >= threshold is class 1, else 0; otherwise `table` maps each raw value
    (an int, or r<<16|g<<8|b for colours) to its class or IGNORE_INDEX."""

    classes: tuple[str, ...]
    note: str
    source: str
    table: dict[int, int] = field(default_factory=dict)
    threshold: int | None = None


def infer_scheme(
    masks: Sequence[Path], colours: dict | None = None, sample: int = SAMPLE
) -> MaskScheme:
    """Decide the set's scheme from up to `sample` evenly spaced masks; `colours` is a table
    like {"0,0,0": "background", "255,0,0": "polyp"} (see `load_colours`)."""
    if not masks:
        raise DataError("no mask files to read; put masks next to the images")
    files, unreadable = [], []
    for p in list(masks)[:: -(-len(masks) // sample)]:
        try:
            files.append(read_mask(p))
        except UnreadableMask as e:  # its pair is left out when the images are read
            unreadable.append(e)
    if not files:
        raise unreadable[0]
    if colours is not None:
        return _table_scheme(files, colours)
    kinds = {f.kind: f for f in files}
    if len(kinds) > 1 and kinds.keys() != {"grey", "rgb"}:  # grey among colours: black-only
        (a, fa), (b, fb) = list(kinds.items())[:2]
        raise DataError(f"{fa.path} is a {a} mask but {fb.path} is {b}; save all masks one way")
    decide = {"grey": _grey_scheme, "palette": _palette_scheme, "rgb": _colour_scheme}
    return decide["rgb" if "rgb" in kinds else files[0].kind](files)


def _grey_scheme(files: list[MaskFile]) -> MaskScheme:
    """Few exact values are classes; JPEG or many levels near 0 and 255 are thresholded."""
    hists = [_histogram(f.values) for f in files]
    total = sum(hists, Counter())
    values, lossy = sorted(total), any(f.lossy for f in files)
    if lossy or len(values) > MAX_CLASSES:
        near = sum(c for v, c in total.items() if v <= 20 or 235 <= v <= 255) / sum(total.values())
        if near >= 0.95 and values[-1] >= 128:
            why = "masks are JPEG" if lossy else f"masks have {len(values)} grey levels"
            note = f"{why}: thresholded at 128 into 2 classes (background, foreground)"
            return MaskScheme(("background", "foreground"), note, "grey", threshold=128)
        why = "JPEG values not near 0 and 255" if lossy else f"over {MAX_CLASSES}"
        raise _unmappable(files, hists, f"grey values ({why})")
    if values[0] >= 0 and values[-1] < MAX_CLASSES:
        table = {v: v for v in range(values[-1] + 1)}
        note = f"masks hold grey values {values}: each value is its class"
    else:
        table = {v: i for i, v in enumerate(values)}
        note = f"masks hold grey values {values}: classes in that order"
    names = tuple(str(v) for v in table)
    if values in ([0, 1], [0, 255]):
        names = ("background", "foreground")
        note = f"masks hold 0 and {values[1]}: 0 is background, {values[1]} is foreground"
    return MaskScheme(names, note, "grey", table)


def _palette_scheme(files: list[MaskFile]) -> MaskScheme:
    """Each palette index is its class; index 255 is VOC's void border and is ignored."""
    total = sum((_histogram(f.values) for f in files), Counter())
    top = max([v for v in total if v != 255], default=0)
    table = {v: v for v in range(top + 1)}
    note = f"masks are palette images: each palette index 0..{top} is its class"
    if 255 in total:
        table[255] = IGNORE_INDEX
        note += f"; index 255 is the void border, ignored (label {IGNORE_INDEX})"
    return MaskScheme(tuple(str(v) for v in range(top + 1)), note, "palette", table)


def _colour_scheme(files: list[MaskFile]) -> MaskScheme:
    """Without a table, each of a few exact colours becomes a class named 'r,g,b'."""
    if jpeg := next((f for f in files if f.lossy), None):
        raise DataError(f"{jpeg.path} is a JPEG colour mask whose colours are inexact; {_HINT}")
    hists = [_histogram(_codes(f.rgb())) for f in files]
    codes = sorted(sum(hists, Counter()))
    if len(codes) > MAX_CLASSES:
        raise _unmappable(files, hists, f"colours (over {MAX_CLASSES})")
    note = f"masks use {len(codes)} colours, each a class named 'r,g,b'; a colour table names them"
    names = tuple(_colour_name(c) for c in codes)
    return MaskScheme(names, note, "rgb", {c: i for i, c in enumerate(codes)})


def _table_scheme(files: list[MaskFile], colours: dict) -> MaskScheme:
    """Map every mask's colours through the user's table (nearest colour for JPEG masks)."""
    classes, table = parse_table(colours)
    for f in files:
        unknown = set() if f.lossy else set(_histogram(_codes(f.rgb()))) - table.keys()
        if unknown:
            colour = _colour_name(min(unknown))
            raise DataError(f"{f.path} has colour {colour}, missing from the colour table; add it")
    how = "nearest table colour (JPEG)" if any(f.lossy for f in files) else "colour table"
    note = f"masks mapped by the {how}: {len(table)} colours into {len(classes)} classes"
    return MaskScheme(classes, note, "rgb", table)


def apply(scheme: MaskScheme, mask: MaskFile) -> torch.Tensor:
    """Class per pixel [H, W] int64 under the set's scheme; IGNORE_INDEX where ignored."""
    if scheme.source == "rgb":
        values = _codes(mask.rgb())
    elif mask.kind != scheme.source:
        raise DataError(f"{mask.path} is a {mask.kind} mask, the set's are {scheme.source}")
    else:
        values = mask.values
    if scheme.threshold is not None:
        return torch.from_numpy((values >= scheme.threshold).astype(np.int64))
    if scheme.source == "rgb" and mask.lossy:
        return torch.from_numpy(_nearest(values, scheme.table))
    keys = np.array(sorted(scheme.table))
    pos = np.searchsorted(keys, values).clip(max=len(keys) - 1)
    unknown = keys[pos] != values
    if unknown.any():
        raw = int(values[unknown][0])
        shown = _colour_name(raw) if scheme.source == "rgb" else raw
        raise DataError(f"{mask.path} has value {shown}, absent from the masks sampled; {_HINT}")
    return torch.from_numpy(np.array([scheme.table[k] for k in keys.tolist()], np.int64)[pos])


def _nearest(codes: np.ndarray, table: dict[int, int]) -> np.ndarray:
    """Class of the table colour nearest each pixel's (JPEG colours are only near)."""
    keys, inverse = np.unique(codes, return_inverse=True)
    gap = np.abs(_rgb(keys)[:, None] - _rgb(np.array(list(table)))[None]).sum(-1)
    return np.array(list(table.values()), np.int64)[gap.argmin(1)][inverse.reshape(codes.shape)]


def _codes(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 -> [H, W] int32 colour codes r<<16|g<<8|b."""
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]


def _rgb(codes: np.ndarray) -> np.ndarray:
    return np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], -1)


def _colour_name(code: int) -> str:
    return ",".join(str(v) for v in _rgb(np.array(code)).tolist())


def _histogram(values: np.ndarray) -> Counter:
    """Pixel count per distinct value."""
    keys, counts = np.unique(values, return_counts=True)
    return Counter(dict(zip(keys.tolist(), counts.tolist(), strict=True)))


def _unmappable(files: list[MaskFile], hists: list[Counter], what: str) -> DataError:
    """The error for a set fitting no rule, naming its file with the most distinct values."""
    i = max(range(len(files)), key=lambda i: len(hists[i]))
    return DataError(f"{files[i].path} has {len(hists[i])} distinct {what}; {_HINT}")
