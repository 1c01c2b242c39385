"""Volumes: the bundled shapes3d set, MedMNIST-style .npz files (2D and 3D), 3D crops."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resnets import evaluate, train
from resnets.data.augment import CropFlip
from resnets.data.volumes.arrays import SHAPES3D, load_npz, make_shapes3d
from resnets.errors import DataError, UsageError

from ...helpers import QUIET


def test_shapes3d_is_balanced_deterministic_and_three_dimensional():
    a, b = make_shapes3d(30, 16, seed=1), make_shapes3d(30, 16, seed=1)
    assert a.images.shape == (30, 1, 16, 16, 16) and a.images.dtype == torch.uint8
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.labels.bincount().tolist() == [10, 10, 10] and a.classes == SHAPES3D
    # the shape is brighter than the background, and each class fills a different fraction
    bright = (a.images.float() > 130).float().mean(dim=(1, 2, 3, 4))
    by_class = [bright[a.labels == k].mean() for k in range(3)]
    assert min(by_class) > 0.01 and by_class[2] < by_class[0] < by_class[1]  # torus < sphere < cube


def test_crop_flip_shifts_volumes_in_depth_too():
    x = torch.arange(2 * 4 * 5 * 6, dtype=torch.uint8).view(2, 1, 4, 5, 6)
    aug = CropFlip(padding=1, hflip=False, dims=3)
    p = aug.sample(2, torch.Generator().manual_seed(0))
    out = aug.apply(x, p)
    padded = F.pad(x, (1, 1) * 3)
    for i in range(2):
        dz, dy, dx = (int(p[k][i]) for k in ("dz", "dy", "dx"))
        expected = padded[i, :, dz : dz + 4, dy : dy + 5, dx : dx + 6]
        assert torch.equal(out[i], expected)


def _write_npz(path, dims: int, n: int = 48, side: int = 28):
    """Two classes told apart by brightness: dark and bright noisy volumes (or images)."""
    rng = np.random.default_rng(0)
    shape = (side,) * dims

    def split(count):
        labels = np.arange(count) % 2
        base = np.where(labels == 1, 150, 60).reshape((-1,) + (1,) * dims)
        images = np.clip(base + rng.normal(0, 20, (count, *shape)), 0, 255).astype(np.uint8)
        return images, labels[:, None].astype(np.int64)

    arrays = {}
    for name, count in (("train", n), ("val", n // 4), ("test", n // 4)):
        arrays[f"{name}_images"], arrays[f"{name}_labels"] = split(count)
    np.savez(path, **arrays)
    return path


def test_a_two_class_28_cubed_npz_trains_end_to_end(tmp_path):
    data = _write_npz(tmp_path / "vessels.npz", dims=3)
    summary = train(
        model="resnet10_3d",
        data=f"npz:{data}",
        epochs=3,
        batch_size=8,
        lr=0.02,
        out=str(tmp_path / "run"),
        **QUIET,
    )
    assert summary["test_acc1"] >= 90.0
    notes = " ".join(summary["notes"])
    assert "validation split: the file's own, 12 images" in notes
    assert "volumes of 28 x 28 x 28 voxels" in notes
    assert (
        "vessels.npz: 2 classes named 0..1 (the file names none); its splits: train, val, test"
        in notes
    )
    for backend in ("eager", "fast"):  # the run's own test split again; BN folded in 3D too
        report = evaluate(tmp_path / "run", backend=backend)
        assert report.count == 12 and report.acc1 == pytest.approx(summary["test_acc1"])


def test_a_2d_npz_trains_a_2d_model_and_a_2d_model_refuses_volumes(tmp_path):
    flat = _write_npz(tmp_path / "flat.npz", dims=2, n=64)
    summary = train(
        model="resnet20",
        data=f"npz:{flat}",
        epochs=1,
        batch_size=16,
        out=str(tmp_path / "run"),
        **QUIET,
    )
    assert summary["test_images"] == 16
    assert any(n.startswith("only 4 optimizer steps (4 per epoch") for n in summary["notes"])
    solid = _write_npz(tmp_path / "solid.npz", dims=3, n=16, side=8)
    with pytest.raises(UsageError, match="holds 3D volumes and resnet20 is a 2D model"):
        train(
            model="resnet20",
            data=f"npz:{solid}",
            epochs=1,
            out=str(tmp_path / "r2"),
            **QUIET,
        )
    assert not (tmp_path / "r2").exists()


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": np.zeros((4, 8, 8), np.uint8)}, "needs arrays train_images and train_labels"),
        (
            {"train_images": np.zeros((4, 8, 8), np.uint8), "train_labels": np.zeros(3, np.int64)},
            "4 train images but 3 train labels",
        ),
        (
            {"train_images": np.zeros((4, 8), np.uint8), "train_labels": np.zeros(4, np.int64)},
            r"has shape \(4, 8\); expected",
        ),
        (
            {"train_images": np.full((4, 8, 8), 2.0), "train_labels": np.zeros(4, np.int64)},
            r"float images must lie in \[0, 1\]",
        ),
        (
            {"train_images": np.zeros((4, 8, 8), np.uint8), "train_labels": -np.ones(4, np.int64)},
            "labels must be class indices",
        ),
    ],
)
def test_a_malformed_npz_is_refused_in_one_line(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as caught:
        load_npz(path)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_an_npz_is_refused(tmp_path):
    path = tmp_path / "fake.npz"
    path.write_text("not a zip")
    with pytest.raises(DataError, match=r"is not a readable \.npz file"):
        load_npz(path)


@pytest.mark.slow
def test_the_bundled_3d_job_learns(tmp_path):
    """A shorter cut of the README's job (resnet18_3d at 32^3, 15 epochs: >= 95 % in about 3
    minutes, benchmarks/RESULTS.md), within the test suite's time: at 24^3, with no model
    given, so that the volumes choose resnet10_3d (fit.py) and say so."""
    summary = train(
        data="shapes3d",
        image_size=24,
        epochs=6,
        batch_size=32,
        lr=0.02,
        out=str(tmp_path / "run"),
        **QUIET,
    )
    assert summary["test_images"] == 128
    assert summary["model"] == "resnet10_3d"
    assert "model resnet10_3d (not resnet20, a 2D model): the data holds volumes" in "\n".join(
        summary["notes"]
    )
    assert summary["test_acc1"] >= 85.0, summary


def test_float_npz_pixels_are_scaled_and_the_note_says_so(tmp_path):
    path = tmp_path / "float.npz"
    images = np.linspace(0, 1, 4 * 8 * 8 * 3).reshape(4, 8, 8, 3)  # RGB, as MedMNIST 2D
    np.savez(path, train_images=images, train_labels=np.array([[0], [1], [2], [1]]))
    splits, notes = load_npz(path)
    assert splits["train"].images.shape == (4, 3, 8, 8)
    assert splits["train"].images.max() == 255 and splits["train"].images.min() == 0
    assert notes == [
        "float.npz: 3 classes named 0..2 (the file names none); its splits: train; "
        "float pixels in [0, 1] scaled by 255"
    ]
