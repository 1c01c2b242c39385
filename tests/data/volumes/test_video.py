"""--data video:DIR: video files (PyAV) and folders of frames, in class folders."""

import numpy as np
import pytest
import torch
from PIL import Image

from resnets import train
from resnets.data.volumes.video import load_video_folder, picks
from resnets.errors import DataError
from resnets.training.summary import summary_text

from ...helpers import QUIET

av = pytest.importorskip("av")


def write_clip(path, frames: np.ndarray, fps: int = 10, codec: str = "mpeg4"):
    """(T, H, W, 3) uint8 frames as a video file."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2"} if codec == "mpeg4" else {}
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return path


def moving_square(down: bool, rng, length=24, height=32, width=40) -> np.ndarray:
    """A bright square sliding down (or up) across a noisy frame: which way it goes shows only
    over time, never in one frame."""
    frames = rng.integers(20, 60, (length, height, width, 3)).astype(np.uint8)
    x = int(rng.integers(4, width - 12))
    for t in range(length):
        y = round(t * (height - 8) / (length - 1))
        y = y if down else height - 8 - y
        frames[t, y : y + 8, x : x + 8] = 230
    return frames


def test_picks_the_middle_frame_of_each_segment_and_repeats_in_short_clips():
    assert picks(32, 4) == [4, 12, 20, 28]
    assert picks(3, 6) == [0, 0, 1, 1, 2, 2]


def test_video_files_and_frame_folders_load_as_clips_of_evenly_spaced_frames(tmp_path):
    ramp = np.repeat(np.linspace(0, 250, 40).astype(np.uint8), 24 * 36 * 3).reshape(40, 24, 36, 3)
    (tmp_path / "files").mkdir()
    write_clip(tmp_path / "files" / "ramp.mp4", ramp)
    folder = tmp_path / "frames" / "ramp"
    folder.mkdir(parents=True)
    for t, frame in enumerate(ramp[:10]):  # ten frames only: sampled, not padded
        Image.fromarray(frame).save(folder / f"{t:04d}.png")
    data, notes = load_video_folder(tmp_path, side=None, frames=5)
    assert data.images.shape == (2, 3, 5, 24, 24) and data.images.dtype == torch.uint8
    assert data.classes == ["files", "frames"]
    decoded = data.images[0].float().mean(dim=(0, 2, 3))
    expected = torch.tensor(ramp[[4, 12, 20, 28, 36], 0, 0, 0], dtype=torch.float32)
    torch.testing.assert_close(decoded, expected, atol=6, rtol=0)  # lossy codec
    from_folder = data.images[1, 0, :, 0, 0].tolist()
    assert from_folder == ramp[[1, 3, 5, 7, 9], 0, 0, 0].tolist()  # PNG: exact
    assert "5 frames each" in notes[0] and "resized to 24 px" in notes[0]
    assert "(--image-size)" in notes[0] and "clip lengths 10..40" in notes[1]


def test_a_frame_is_resized_on_its_shorter_side_and_centre_cropped(tmp_path):
    frames = np.zeros((4, 20, 60, 3), np.uint8)
    frames[:, :, 24:36] = 255  # the middle fifth is white: columns 2..8 of the 10 kept
    (tmp_path / "a").mkdir()
    write_clip(tmp_path / "a" / "wide.mp4", frames)
    data, _ = load_video_folder(tmp_path, side=10, frames=2)
    row = data.images[0, 0, 0, 5].float()
    assert data.images.shape[-2:] == (10, 10)
    assert row[3:7].min() > 200 and row[0] < 60 and row[-1] < 60


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.mp4", b"not a video at all", "is not a readable clip"),
        ("empty.avi", b"", "is not a readable clip"),
    ],
)
def test_a_malformed_clip_is_refused_in_one_line_naming_it(tmp_path, name, content, message):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / name).write_bytes(content)
    with pytest.raises(DataError, match=message) as caught:
        load_video_folder(tmp_path, side=8, frames=4)
    assert "\n" not in str(caught.value) and name in str(caught.value)


def test_a_folder_without_clips_says_what_it_wants(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("no clips here")
    with pytest.raises(DataError, match=r"has no clips \(video files"):
        load_video_folder(tmp_path, side=None, frames=None)


@pytest.mark.slow
def test_a_3d_model_learns_which_way_a_square_moves_from_video_files(tmp_path):
    """Up and down differ only in time: a (2+1)D-free full 3D net must see it from the clips."""
    rng = np.random.default_rng(0)
    for label in ("down", "up"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for k in range(30):
            write_clip(tmp_path / "data" / label / f"{k}.mp4", moving_square(label == "down", rng))
    summary = train(
        model="resnet10_3d",
        data=f"video:{tmp_path / 'data'}",
        frames=8,
        image_size=24,
        epochs=6,
        batch_size=8,
        lr=0.02,
        out=str(tmp_path / "run"),
        **QUIET,
    )
    assert summary["input_shape"] == [8, 24, 24]
    assert summary["test_acc1"] >= 90.0, summary
    text = summary_text(summary)  # clips counted as clips; no top-5 of two classes
    assert f"({summary['test_images']} clips, evaluated once)" in text and "top-5" not in text
    assert any(
        n.startswith("validation split:") and n.endswith("training clips") for n in summary["notes"]
    )


def test_an_unreadable_clip_is_left_out_and_named_unless_strict(tmp_path):
    rng = np.random.default_rng(6)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        write_clip(tmp_path / label / "ok.mp4", moving_square(label == "a", rng))
    (tmp_path / "a" / "broken.mp4").write_bytes(b"not a video")
    data, notes = load_video_folder(tmp_path, side=16, frames=4)
    assert len(data) == 2 and any(
        "1 unreadable clips left out" in n and "broken.mp4" in n for n in notes
    )
    with pytest.raises(DataError, match=r"broken\.mp4 is not a readable clip"):
        load_video_folder(tmp_path, side=16, frames=4, strict=True)


def test_flags_for_other_data_are_refused_not_ignored(tmp_path):
    from resnets.data.build import load_splits
    from resnets.errors import UsageError
    from resnets.options import DataOptions

    with pytest.raises(UsageError, match="--spacing applies to volumes:DIR"):
        load_splits(DataOptions(data=f"video:{tmp_path}", spacing="1.5"), seed=0)
    with pytest.raises(UsageError, match="--frames applies to video:DIR"):
        load_splits(DataOptions(data="digits", frames=8), seed=0)
