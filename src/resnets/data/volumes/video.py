"""`--data video:DIR`: class folders of clips, for the video ResNets (r3d_18, mc3_18, ...).

    DIR/<class>/<clip>.mp4 | .avi | .mkv | .mov | .webm | .m4v   through PyAV (resnets[video])
    DIR/<class>/<clip>/<frame>.jpg | .png | ...                   a clip as a folder of frames

Each clip becomes (3, T, S, S) uint8 once, kept in memory like the other sets:
- frames: T (`--frames`, 16) spread evenly over the whole clip, the middle frame of each of
  T equal segments (TSN's sampling); a clip of fewer frames repeats some;
- each frame resized (antialiased) so that its shorter side is S, then centre-cropped to
  S x S. S is `--image-size`, else 112 (torchvision's video models) or the clips' smallest
  shorter side when that is less.
Training shifts clips in time and space and flips them on the device (`CropFlip`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import DataError
from ..datasets import ImageTensors
from ..decode import IMAGE_EXTENSIONS, decode
from ..external import class_cases, guarded, need, read_each, skipped_notes

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
DEFAULT_FRAMES, DEFAULT_SIDE = 16, 112


def load_video_folder(
    root: Path, side: int | None, frames: int | None, strict: bool = False
) -> tuple[ImageTensors, list[str]]:
    """Every clip under `root`'s class folders, as one ImageTensors (N, 3, T, S, S), and
    notes on what was sampled. A clip that cannot be read is left out and said (`strict`:
    refused)."""
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; --data video:DIR takes class folders of clips")
    hint = f"video files ({', '.join(VIDEO_SUFFIXES[:5])}, ...) or folders of frames"
    classes, clips = class_cases(root, _clips, "clips", hint)
    count = frames or DEFAULT_FRAMES
    sizes, _, _ = read_each(clips, partial(guarded, _frame_size, what="clip"), strict, "clips")
    target = side or min(DEFAULT_SIDE, min(sizes))
    read, kept, skipped = read_each(
        clips,
        partial(guarded, lambda p: _read(p, count, target), what="clip"),
        strict,
        "clips",
        classes,
    )
    images, lengths = [clip for clip, _ in read], [length for _, length in read]
    short = sum(n < count for n in lengths)
    notes = [
        f"{len(images)} clips in {len(classes)} classes; {count} frames each, spread evenly over "
        f"the clip" + ("" if frames else " (--frames)") + f"; frames resized to {target} px on "
        "the shorter side and centre-cropped" + ("" if side else " (--image-size)"),
        f"clip lengths {min(lengths)}..{max(lengths)} frames"
        + (f"; {short} clips shorter than {count} frames repeat some" if short else ""),
        *skipped_notes(skipped, "clips"),
    ]
    labels, files = torch.tensor([label for _, label in kept]), [path for path, _ in kept]
    return ImageTensors(torch.stack(images), labels, classes, files), notes


def _clips(folder: Path) -> list[Path]:
    """A class folder's video files and frame folders, in name order."""
    return [p for p in sorted(folder.iterdir()) if not p.name.startswith(".") and is_clip(p)]


def is_clip(p: Path) -> bool:
    """A video file, or a folder of frames."""
    if p.is_dir():
        return bool(_frame_files(p))
    return p.suffix.lower() in VIDEO_SUFFIXES


def _frame_files(folder: Path) -> list[Path]:
    return sorted(q for q in folder.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS)


def _frame_size(path: Path) -> int:
    """A clip's shorter side from its header (a frame folder: its first frame's)."""
    if path.is_dir():
        from PIL import Image

        with Image.open(_frame_files(path)[0]) as image:
            return min(image.size)
    with need("av", "video").open(str(path)) as container:
        if not container.streams.video:
            raise DataError(f"{path} has no video stream")
        codec = container.streams.video[0].codec_context
        return min(codec.width, codec.height)


def read_clip(path: Path, frames: int, side: int) -> torch.Tensor:
    """One new clip as (3, frames, side, side) uint8, sampled as a model's training clips
    were."""
    return guarded(lambda p: _read(p, frames, side), path, "clip")[0]


def picks(total: int, count: int) -> list[int]:
    """The middle frame of each of `count` equal segments of `total` frames."""
    return [min(int((i + 0.5) * total / count), total - 1) for i in range(count)]


def _read(path: Path, count: int, side: int) -> tuple[torch.Tensor, int]:
    """((3, count, side, side) uint8, the clip's length in frames)."""
    if path.is_file() and path.suffix.lower() not in VIDEO_SUFFIXES:
        raise DataError(
            f"{path} is not a clip (video files {', '.join(VIDEO_SUFFIXES)} or "
            "folders of frames are)"
        )
    if path.is_dir():
        files = _frame_files(path)
        chosen = [_fit(decode(files[i], 3), side) for i in picks(len(files), count)]
        return torch.stack(chosen, 1), len(files)
    frames, length = _decode_video(path, count, side)
    return torch.stack([frames[i] for i in picks(len(frames), count)], 1), length


def _decode_video(path: Path, count: int, side: int) -> tuple[list[torch.Tensor], int]:
    """(the frames to sample from, already fitted to `side`, the clip's length): only the
    chosen frames when the container states its length, else every frame (sampled by the
    caller)."""
    with need("av", "video").open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        wanted = set(picks(stream.frames, count)) if stream.frames else None
        kept, seen = [], 0
        for seen, frame in enumerate(container.decode(stream), 1):
            if wanted is None or seen - 1 in wanted:
                rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
                kept.append(_fit(torch.from_numpy(rgb).permute(2, 0, 1), side))
    if not kept:
        raise DataError(f"{path} holds no video frames")
    return kept, seen  # a header that overstated the length gives fewer; the caller repeats


def _fit(image: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 (3, H, W) -> (3, side, side): the shorter side to `side`, then the centre."""
    h, w = image.shape[1:]
    scale = side / min(h, w)
    size = (max(round(h * scale), side), max(round(w * scale), side))
    if size != (h, w):
        x = F.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True)
        image = x[0].round_().clamp_(0, 255).to(torch.uint8)
    top, left = (size[0] - side) // 2, (size[1] - side) // 2
    return image[:, top : top + side, left : left + side]
