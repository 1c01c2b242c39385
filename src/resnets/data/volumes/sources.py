"""The 3D folder sources, `volumes:DIR`, `video:DIR` and `segfolder:DIR` of volumes: their
reading options checked against the data, and each folder decoded once and kept in the disk
cache (cache.py) for the next run on the same files with the same options."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ...errors import UsageError
from ...options import DataOptions
from ..datasets import ImageTensors
from .cache import cached
from .folder import load_volume_folder, parse_spacing, parse_window
from .segfolder import holds_volumes, load_volume_segfolder
from .video import load_video_folder


def read_3d_folder(name: str, path: Path, opts: DataOptions) -> tuple[ImageTensors, list]:
    """A folder of volumes, clips, or volumes with masks, decoded once and kept in the disk
    cache for the next run with the same files and options (cache.py)."""
    window, spacing = parse_window(opts.window), parse_spacing(opts.spacing)
    if name == "video":
        options: tuple = (name, opts.image_size, opts.frames, opts.strict)
        load = partial(load_video_folder, path, opts.image_size, opts.frames, opts.strict)
    elif name == "volumes":
        options = (name, opts.image_size, window, spacing, opts.strict, opts.volume_index)
        load = partial(
            load_volume_folder,
            path,
            opts.image_size,
            window,
            spacing,
            opts.strict,
            opts.volume_index,
        )
    else:
        options = (name, opts.image_size, window, spacing, opts.mask_pattern, opts.volume_index)
        load = partial(
            load_volume_segfolder,
            path,
            opts.image_size,
            window,
            spacing,
            opts.mask_pattern,
            opts.volume_index,
        )
    return cached(path, options, opts.cache, load)


def check_3d_options(name: str, path: Path | None, opts: DataOptions) -> None:
    """--window, --spacing and --volume-index read volumes, --frames clips: given for other
    data, refused."""
    volumes = name == "volumes" or (name == "segfolder" and holds_volumes(path, opts.mask_pattern))
    checks = (
        ("--window", opts.window, volumes),
        ("--spacing", opts.spacing, volumes),
        ("--volume-index", opts.volume_index, volumes),
        ("--frames", opts.frames, name == "video"),
    )
    for flag, value, applies in checks:
        if value is not None and not applies:
            what = "video:DIR" if flag == "--frames" else "volumes:DIR and segfolder:DIR of volumes"
            raise UsageError(f"{flag} applies to {what}, not to --data {opts.data}")
