"""--data volumes:DIR: NIfTI and .npy files and DICOM series in class folders."""

import numpy as np
import pytest
import torch

from resnets import train
from resnets.data.volumes.folder import load_volume_folder, parse_window, read_case
from resnets.errors import DataError

from ...helpers import QUIET, write_dicom

nibabel = pytest.importorskip("nibabel")


def _nifti(path, array):
    nibabel.save(nibabel.Nifti1Image(array.astype(np.float32), np.eye(4)), str(path))
    return path


def _volume(bright: bool, rng, shape=(12, 10, 8)):
    """A noisy (x, y, z) volume with a bright or dark cube in the middle."""
    v = rng.normal(100, 10, shape)
    v[3:9, 3:7, 2:6] += 300 if bright else -60
    return v


def test_nifti_and_npy_cases_load_as_class_volumes_with_depth_along_the_slices(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(3):
        (tmp_path / "lesion").mkdir(exist_ok=True)
        (tmp_path / "normal").mkdir(exist_ok=True)
        _nifti(tmp_path / "lesion" / f"case{k}.nii.gz", _volume(True, rng))
        np.save(tmp_path / "normal" / f"case{k}.npy", _volume(False, rng).T)  # (z, y, x)
    ramp = np.broadcast_to(np.arange(8, dtype=np.float32), (12, 10, 8))  # rises along z
    _nifti(tmp_path / "lesion" / "ramp.nii", ramp)
    data, notes = load_volume_folder(tmp_path, side=8, window=None)
    assert data.images.shape == (7, 1, 8, 8, 8) and data.images.dtype == torch.uint8
    assert data.classes == ["lesion", "normal"] and data.labels.tolist() == [0] * 4 + [1] * 3
    ramp_volume = data.images[3, 0].float()  # sorted: case0..2, then ramp
    assert (ramp_volume.mean(dim=(1, 2)).diff() > 0).all()  # depth is the NIfTI z axis
    assert "resampled to 8^3 voxels" in notes[0] and "z-score per volume" in notes[1]


def test_a_dicom_series_is_one_volume_in_hounsfield_units(tmp_path):
    series = tmp_path / "ct" / "patient1"
    series.mkdir(parents=True)
    for z in range(6):  # written out of order: position decides
        pixels = np.full((8, 8), 1024 + 100 * z, dtype=np.uint16)  # HU -> 0, 100, ... 500
        f = write_dicom(series / f"s{(z * 7) % 6}.dcm", pixels, slope=1, intercept=-1024)
        import pydicom

        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [0, 0, float(z)]
        ds.save_as(str(f))
    (tmp_path / "other").mkdir()
    np.save(tmp_path / "other" / "x.npy", np.zeros((6, 8, 8), np.float32))
    data, notes = load_volume_folder(tmp_path, side=6, window=parse_window("250,500"))
    ct = data.images[0, 0].float().mean(dim=(1, 2))
    expected = ((torch.arange(6) * 100.0) / 500).clamp(0, 1) * 255  # window 0..500 HU
    torch.testing.assert_close(ct, expected, atol=20, rtol=0)  # trilinear resampling blurs a bit
    assert "window centre 250, width 500" in notes[1]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.nii.gz", b"not a nifti file", "is not a readable volume"),
        ("flat.npy", None, r"has shape \(8, 8\); a volume is \(D, H, W\)"),
    ],
)
def test_a_malformed_volume_is_refused_in_one_line_naming_it(tmp_path, name, content, message):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "b" / "ok.npy", np.zeros((4, 4, 4), np.float32))
    if content is None:
        np.save(tmp_path / "a" / name, np.zeros((8, 8), np.float32))
    else:
        (tmp_path / "a" / name).write_bytes(content)
    with pytest.raises(DataError, match=message) as caught:
        load_volume_folder(tmp_path, side=4, window=None, strict=True)
    assert "\n" not in str(caught.value) and name in str(caught.value)
    np.save(tmp_path / "a" / "fine.npy", np.ones((4, 4, 4), np.float32))
    data, notes = load_volume_folder(tmp_path, side=4, window=None)  # not strict: left out
    assert (
        len(data) == 2
        and "1 unreadable volumes left out (--strict stops instead)" in (notes[2])
        and name in notes[2]
    )
    (tmp_path / "a" / "fine.npy").unlink()
    with pytest.raises(DataError, match="class a has no readable volumes"):
        load_volume_folder(tmp_path, side=4, window=None)


def test_a_4d_nifti_names_its_shape_as_nibabel_does_and_one_volume_is_chosen(tmp_path):
    rng = np.random.default_rng(3)
    first, second = _volume(True, rng), _volume(False, rng)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        _nifti(tmp_path / c / "scan.nii.gz", np.stack([first, second], -1))  # (x, y, z, 2)
    with pytest.raises(DataError) as caught:
        load_volume_folder(tmp_path, side=8, window=None, strict=True)
    text = str(caught.value)
    assert "holds 2 volumes (shape (12, 10, 8, 2): x, y, z" in text
    assert "--volume-index N (0..1)" in text and "\n" not in text
    data, _ = load_volume_folder(tmp_path, side=8, window=None, index=1)
    (tmp_path / "one").mkdir()
    alone = read_case(_nifti(tmp_path / "one" / "v.nii.gz", second), "auto", (8, 8, 8))[0]
    assert torch.equal(data.images[0], alone)
    chosen = read_case(tmp_path / "a" / "scan.nii.gz", "auto", (8, 8, 8), None, 1)[0]
    assert torch.equal(chosen, alone)
    with pytest.raises(DataError, match="--volume-index 2 is past them"):
        load_volume_folder(tmp_path, side=8, window=None, index=2, strict=True)


def test_an_empty_class_folder_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "a" / "ok.npy", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(DataError, match=r"class folder .*b has no volumes"):
        load_volume_folder(tmp_path, side=4, window=None)


def test_a_bad_window_is_refused():
    with pytest.raises(DataError, match="--window takes CENTRE,WIDTH"):
        parse_window("40")
    with pytest.raises(DataError, match="width must be positive"):
        parse_window("40,0")


def test_a_volume_folder_trains_a_3d_model(tmp_path):
    rng = np.random.default_rng(1)
    for label, bright in (("lesion", True), ("normal", False)):
        (tmp_path / "data" / label).mkdir(parents=True)
        for k in range(12):
            _nifti(tmp_path / "data" / label / f"{k}.nii.gz", _volume(bright, rng))
    summary = train(
        model="resnet10_3d",
        data=f"volumes:{tmp_path / 'data'}",
        image_size=16,
        epochs=2,
        batch_size=4,
        out=str(tmp_path / "run"),
        **QUIET,
    )
    assert summary["input_shape"] == [16, 16, 16] and summary["test_images"] == 4  # 20 % of 24


def test_the_default_side_comes_from_the_smallest_volume_read_from_headers(tmp_path):
    """NIfTI, .npy, .npz (a leading axis of 1 dropped) and a DICOM series: without
    --image-size the cube's side is the largest side of the smallest volume, at most 64."""
    rng = np.random.default_rng(2)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
    _nifti(tmp_path / "a" / "big.nii.gz", rng.normal(size=(70, 66, 40)))
    np.savez(tmp_path / "a" / "small.npz", volume=rng.normal(size=(1, 9, 20, 14)))
    np.save(tmp_path / "b" / "mid.npy", rng.normal(size=(30, 22, 25)).astype(np.float32))
    series = tmp_path / "b" / "ct"
    series.mkdir()
    for z in range(5):
        write_dicom(series / f"{z}.dcm", np.full((24, 21), 1000 + z, dtype=np.uint16))
    data, notes = load_volume_folder(tmp_path, side=None, window=None)
    assert data.images.shape == (4, 1, 20, 20, 20)  # max(9, 20, 14) = 20 < 24, 30, 70
    assert "resampled to 20^3 voxels (--image-size sets the side)" in notes[0]


def _spaced_nifti(path, array, zooms):
    image = nibabel.Nifti1Image(array.astype(np.float32), np.diag([*zooms, 1.0]))
    nibabel.save(image, str(path))
    return path


def test_spacing_resamples_each_volume_to_millimetres_then_fits_the_cube(tmp_path):
    """A 2 mm-thick scan of 4 slices is 8 mm deep: at 1 mm it fills the 8-voxel cube; the
    same array at 1 mm is 4 mm deep and is padded, half a cube of black either side."""
    for label in ("thick", "thin", "big"):
        (tmp_path / label).mkdir()
    block = np.full((8, 8, 4), 300.0)  # (x, y, z)
    _spaced_nifti(tmp_path / "thick" / "a.nii.gz", block, (1, 1, 2))
    _spaced_nifti(tmp_path / "thin" / "a.nii.gz", block, (1, 1, 1))
    _spaced_nifti(tmp_path / "big" / "a.nii.gz", np.full((20, 8, 8), 300.0), (1, 1, 1))
    data, notes = load_volume_folder(tmp_path, side=8, window=(100, 200), spacing=(1, 1, 1))
    big, thick, thin = (data.images[i, 0] for i in range(3))  # classes in name order
    assert (thick == 255).all()  # 300 HU through window 0..200: white, the whole cube
    assert (thin[2:6] == 255).all() and (thin[:2] == 0).all() and (thin[6:] == 0).all()
    assert (big == 255).all()  # 20 mm wide, cut to the centre 8 mm
    assert "1x1x1 mm voxels" in notes[0] and "1 reached past the cube and were cut" in notes[0]
    for i, label in enumerate(("big", "thick", "thin")):  # predict reads a file the same way
        again, _ = read_case(tmp_path / label / "a.nii.gz", "window 100,200", (8, 8, 8), [1, 1, 1])
        assert torch.equal(again, data.images[i])


def test_a_dicom_series_spacing_comes_from_positions_and_pixel_spacing(tmp_path):
    import pydicom

    from resnets.data.volumes.folder import _dicom_series

    for z in range(4):
        f = write_dicom(tmp_path / f"{z}.dcm", np.full((6, 6), 1000, dtype=np.uint16))
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient, ds.PixelSpacing = [0, 0, 2.5 * z], [0.7, 0.8]
        ds.save_as(str(f))
    volume, spacing = _dicom_series(tmp_path)
    assert volume.shape == (4, 6, 6) and spacing == pytest.approx((2.5, 0.7, 0.8))


@pytest.mark.parametrize("text", ["0", "1,2", "a", "-1,1,1"])
def test_a_bad_spacing_is_refused_in_one_line(text):
    from resnets.data.volumes.folder import parse_spacing

    with pytest.raises(DataError, match="--spacing takes millimetres"):
        parse_spacing(text)


def test_labels_at_the_cube_go_back_onto_the_files_own_voxels():
    from resnets.data.volumes.folder import resample, to_file_voxels

    labels = torch.zeros(4, 8, 8)
    labels[1:3, 2:6, 3:5] = 1  # (z, y, x) on the file's own voxels, 2 mm slices
    geometry, target = ((4, 8, 8), (2.0, 1.0, 1.0)), [1.0, 1.0, 1.0]
    cube = resample(labels, (6, 6, 6), geometry[1], tuple(target), mode="nearest-exact")[0]
    back = to_file_voxels(cube, geometry, target)  # 8 mm deep, 6 kept: slices 0 and 3 cut
    assert back.shape == (4, 8, 8) and torch.equal(back[1:3, 1:7, 1:7], labels[1:3, 1:7, 1:7])
    stretched = resample(labels, (6, 6, 6), None, None, mode="nearest-exact")[0]
    again = to_file_voxels(stretched, geometry, None)  # nearest both ways: edges may move
    assert again.shape == (4, 8, 8) and (again * labels).sum() >= 0.5 * labels.sum()
