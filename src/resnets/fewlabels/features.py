"""A backbone's pooled features (what its classifier reads, before the last linear layer)
of every image of a data source, prepared as the backbone's weights were trained."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import DataOptions, load_splits
from ..data.build import eval_loader
from ..errors import UsageError
from ..models import ResNet
from ..models.meta import WeightsMeta
from ..options import SPLITS

PIXELS_MAX = 64 * 64 * 3  # inputs up to this many values also keep their pixels (a baseline)


@dataclass
class Features:
    """Pooled features [N, D] float32 of N images, their labels [N] (0..len(classes)-1), and
    the normalized input pixels [N, P] where inputs are small (else None)."""

    vectors: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    pixels: torch.Tensor | None
    notes: list[str]


@torch.no_grad()
def embed(backbone: ResNet, loader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(features, labels, pixels or None) of every batch of `loader`, the backbone in eval
    mode: BatchNorm uses its running statistics, so an image's features never depend on the
    other images of its batch."""
    backbone.eval()
    vectors, labels, pixels = [], [], []
    for x, y in loader:
        vectors.append(backbone.forward_head(backbone.forward_features(x), pre_logits=True).float())
        labels.append(y)
        if x[0].numel() <= PIXELS_MAX:
            pixels.append(x.flatten(1).float())
    kept = torch.cat(pixels).cpu() if len(pixels) == len(vectors) else None
    return torch.cat(vectors).cpu(), torch.cat(labels).cpu(), kept


def source_features(
    backbone: ResNet,
    meta: WeightsMeta,
    opts: DataOptions,
    device: torch.device,
    batch_size: int = 256,
    splits: tuple[str, ...] = SPLITS,
) -> Features:
    """The features of the images of `splits` (all three by default) of the data `opts` names,
    at the weights' input size and normalized with their mean and std."""
    opts.image_size = opts.image_size or meta.input_size
    own = (meta.mean, meta.std) if meta.mean and meta.std else None
    read = load_splits(
        opts, seed=0, channels=meta.config.in_chans, decode=splits, normalization=own
    )
    if read.spatial_dims != backbone.config.spatial_dims:
        raise UsageError(f"{opts.data} does not fit {meta.model}: 2D images and 3D volumes differ")
    parts = [eval_loader(read, s, batch_size, device) for s in splits]
    found = [embed(backbone, p) for p in parts if p is not None]
    vectors, labels = torch.cat([f[0] for f in found]), torch.cat([f[1] for f in found])
    if labels.ndim != 1:
        raise UsageError(f"{opts.data} has masks or several labels per image; few-shot needs one")
    pixels = None if any(f[2] is None for f in found) else torch.cat([f[2] for f in found])
    return Features(vectors, labels, read.classes, pixels, list(read.notes))


def run_options(run: Path | None, data: str | None, meta: WeightsMeta) -> DataOptions:
    """The data options of `run` (as in its config.yaml), with `data` in place of its data
    when given; a weights file without a run needs `data`."""
    import dataclasses

    import yaml

    names = {f.name for f in dataclasses.fields(DataOptions)}
    saved: dict = {}
    if run is not None and (run / "config.yaml").is_file():
        saved = yaml.safe_load((run / "config.yaml").read_text()) or {}
    opts = DataOptions(**{k: v for k, v in saved.items() if k in names})
    if data is not None:
        opts = DataOptions(data=data, image_size=meta.input_size, eval_resize=meta.resize_size)
    elif not saved:
        raise UsageError("weights without a run folder need --data (e.g. --data digits)")
    return opts
