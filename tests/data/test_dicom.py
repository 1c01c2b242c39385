"""DICOM: rescale slope and intercept, the file's window, MONOCHROME1, 16-bit values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resnets.data import DataOptions, load_splits
from resnets.data.decode import decode
from resnets.errors import DataError

from ..helpers import write_dicom

pydicom = pytest.importorskip("pydicom")


def ramp(rows=12, cols=20):
    return np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols) * 200  # 0..47,800


def test_rescale_and_window_map_hounsfield_units_to_8_bits(tmp_path):
    raw = ramp()
    f = write_dicom(tmp_path / "ct.dcm", raw, slope=0.5, intercept=-1024, window=(40, 400))
    hu = raw.astype(np.float64) * 0.5 - 1024  # what the values mean
    low, high = 40 - 200, 40 + 200
    want = np.round((np.clip(hu, low, high) - low) * 255 / (high - low)).astype(np.uint8)
    got = decode(f, 1)
    assert got.shape == (1, 12, 20) and got.dtype == torch.uint8
    assert torch.equal(got[0], torch.from_numpy(want))
    assert 0 < int(got.float().mean()) < 255  # the window, not the 16-bit range's high byte


def test_monochrome1_is_inverted_and_without_window_the_full_range_is_used(tmp_path):
    raw = ramp()
    plain = decode(write_dicom(tmp_path / "a.dcm", raw), 1)
    want = np.round(raw.astype(np.float64) * 255 / raw.max()).astype(np.uint8)
    assert torch.equal(plain[0], torch.from_numpy(want))
    inverted = decode(write_dicom(tmp_path / "b.dcm", raw, photometric="MONOCHROME1"), 3)
    assert inverted.shape == (3, 12, 20) and torch.equal(inverted[0], 255 - plain[0])


def test_a_folder_of_dicom_files_trains_like_any_folder(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("normal", "nodule"):
        (tmp_path / "scans" / c).mkdir(parents=True)
        for i in range(8):
            img = rng.integers(0, 2000, (16, 16)).astype(np.uint16)
            if c == "nodule":
                img[5:11, 5:11] = 4000
            write_dicom(tmp_path / "scans" / c / f"{i}.dcm", img)
    (tmp_path / "scans" / "nodule" / "bad.dcm").write_bytes(b"not a dicom file at all")
    s = load_splits(
        DataOptions(data=f"imagefolder:{tmp_path / 'scans'}", num_workers=0, image_size=16), 0
    )
    assert s.classes == ["nodule", "normal"] and s.channels == 1
    assert sum(len(s.tensors(n)) for n in ("train", "val", "test")) == 16  # bad.dcm skipped
    assert any("bad.dcm" in f for f in s.unreadable)
    with pytest.raises(DataError, match=r"bad.dcm is not a readable DICOM image"):
        decode(tmp_path / "scans" / "nodule" / "bad.dcm", 1)


def test_files_are_read_by_their_content_not_their_name(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((6, 9), 77, np.uint8)).save(tmp_path / "photo.png")
    (tmp_path / "photo.png").rename(tmp_path / "really-a-png.dcm")
    assert torch.equal(decode(tmp_path / "really-a-png.dcm", 1), torch.full((1, 6, 9), 77))
    f = write_dicom(tmp_path / "scan.dcm", ramp())
    f.rename(tmp_path / "scan-without-suffix")  # the DICM marker is enough
    assert decode(tmp_path / "scan-without-suffix", 1).shape == (1, 12, 20)
