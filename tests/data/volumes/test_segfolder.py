"""segfolder:DIR of volumes: NIfTI or .npy volumes with mask volumes, trained in 3D."""

from pathlib import Path

import numpy as np
import pytest

from resnets import evaluate, predict, train
from resnets.data.volumes.segfolder import load_volume_segfolder
from resnets.errors import DataError

from ...helpers import QUIET

nibabel = pytest.importorskip("nibabel")


def ball(rng, size=16):
    """A noisy volume with a bright ball at a random place, and its mask (1 inside)."""
    axis = np.arange(size)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    centre = rng.uniform(5, size - 5, 3)
    inside = ((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) <= 3.5**2
    volume = rng.normal(100, 15, (size,) * 3) + 150 * inside
    return volume.astype(np.float32), inside.astype(np.uint8)


def write_set(root, n, rng, suffix="_seg"):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(n):
        volume, mask = ball(rng)
        nibabel.save(
            nibabel.Nifti1Image(volume.T, np.eye(4)), str(root / "images" / f"c{k}.nii.gz")
        )
        np.save(root / "masks" / f"c{k}{suffix}.npy", mask)  # (z, y, x), as the NIfTI reads
    return root


def test_volumes_pair_with_their_masks_and_keep_voxels_aligned(tmp_path):
    rng = np.random.default_rng(0)
    write_set(tmp_path, 3, rng)
    data, notes = load_volume_segfolder(tmp_path, side=16, window=None, spacing=None)
    assert data.images.shape == (3, 1, 16, 16, 16) and data.labels.shape == (3, 16, 16, 16)
    assert data.classes == ["0", "1"] and data.is_segmentation
    bright = data.images[:, 0].float()
    assert bright[data.labels == 1].mean() > bright[data.labels == 0].mean() + 60
    assert "segmentation classes: the mask values 0, 1" in notes[1]


def test_a_mask_of_another_shape_or_with_fractions_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    write_set(tmp_path, 1, rng)
    np.save(tmp_path / "masks" / "c0_seg.npy", np.zeros((8, 16, 16), np.uint8))
    with pytest.raises(DataError, match="a mask labels each voxel of its volume"):
        load_volume_segfolder(tmp_path, 16, None, None)
    np.save(tmp_path / "masks" / "c0_seg.npy", np.full((16, 16, 16), 0.5, np.float32))
    with pytest.raises(DataError, match="not class indices"):
        load_volume_segfolder(tmp_path, 16, None, None)


@pytest.mark.slow
def test_a_3d_unet_learns_to_segment_balls_and_evaluate_agrees(tmp_path):
    rng = np.random.default_rng(2)
    data = write_set(tmp_path / "data", 40, rng, suffix="")
    summary = train(
        model="resnet10_3d",
        task="segmentation",
        data=f"segfolder:{data}",
        image_size=16,
        epochs=10,
        batch_size=4,
        lr=0.05,
        out=str(tmp_path / "run"),
        **QUIET,
    )
    assert summary["test_dice"] >= 75.0, summary  # measured 89.2
    saved = sorted((tmp_path / "run" / "test-masks").glob("*_mask.nii.gz"))  # as their scans
    assert len(saved) == summary["test_images"]
    assert (data / "images" / saved[0].name.replace("_mask", "")).is_file()
    assert nibabel.load(saved[0]).shape == (16, 16, 16)
    report = evaluate(tmp_path / "run")
    assert report.dice == pytest.approx(summary["test_dice"], abs=0.01)
    assert set(np.unique(np.asarray(nibabel.load(saved[0]).dataobj)).tolist()) <= {0, 1}
    new = tmp_path / "new"
    write_set(new, 2, np.random.default_rng(9))
    result = predict(tmp_path / "run", new / "images", masks_out=tmp_path / "masks")
    assert len(result.predictions) == 2 and not result.failed
    for p in result.predictions:  # a NIfTI mask over its scan, at the scan's own shape
        assert p.mask.endswith(Path(p.path).name.removesuffix(".nii.gz") + "_mask.nii.gz")
        mask = nibabel.load(p.mask)
        truth = np.load(new / "masks" / (Path(p.path).name.removesuffix(".nii.gz") + "_seg.npy"))
        assert np.allclose(mask.affine, nibabel.load(p.path).affine)
        got = np.asarray(mask.dataobj).T  # back to (z, y, x)
        assert 2 * (got * truth).sum() / (got.sum() + truth.sum()) >= 0.6  # Dice on the file
