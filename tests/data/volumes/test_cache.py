"""Decoded volume and clip folders are kept on disk between runs, keyed by files and options."""

import os

import numpy as np
import torch

from resnets.data.build import load_splits
from resnets.data.cache import cache_dir
from resnets.options import DataOptions


def volumes(root, rng):
    for label in ("a", "b"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for k in range(6):
            np.save(root / label / f"{k}.npy", rng.normal(size=(6, 8, 8)).astype(np.float32))
    return root


def test_a_second_run_reads_the_decoded_folder_from_the_disk_cache(tmp_path):
    root = volumes(tmp_path / "data", np.random.default_rng(0))
    opts = DataOptions(data=f"volumes:{root}", image_size=8)
    first = load_splits(opts, seed=0)
    assert len(list(cache_dir().glob("folder-*.pt"))) == 1
    second = load_splits(opts, seed=0)
    assert any("read from the disk cache" in n for n in second.notes)
    assert not any("read from the disk cache" in n for n in first.notes)
    assert any("kept in the disk cache" in n for n in first.notes)  # written: said too
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(first, split).images, getattr(second, split).images)
    assert first.notes[0] == second.notes[0]  # what was read is still said


def test_a_changed_file_or_option_reads_the_files_again(tmp_path):
    root = volumes(tmp_path / "data", np.random.default_rng(1))
    load_splits(DataOptions(data=f"volumes:{root}", image_size=8), seed=0)
    changed = root / "a" / "0.npy"
    os.utime(changed, ns=(1, 1))  # another modification time: another cache entry
    again = load_splits(DataOptions(data=f"volumes:{root}", image_size=8), seed=0)
    other = load_splits(DataOptions(data=f"volumes:{root}", image_size=6), seed=0)
    assert not any("read from the disk cache" in n for n in again.notes + other.notes)
    assert len(list(cache_dir().glob("folder-*.pt"))) == 3


def test_cache_none_writes_nothing_and_a_damaged_cache_is_rebuilt(tmp_path):
    root = volumes(tmp_path / "data", np.random.default_rng(2))
    load_splits(DataOptions(data=f"volumes:{root}", image_size=8, cache="none"), seed=0)
    assert not list(cache_dir().glob("folder-*.pt"))
    load_splits(DataOptions(data=f"volumes:{root}", image_size=8), seed=0)
    (entry,) = cache_dir().glob("folder-*.pt")
    entry.write_bytes(b"damaged")
    rebuilt = load_splits(DataOptions(data=f"volumes:{root}", image_size=8), seed=0)
    assert not any("read from the disk cache" in n for n in rebuilt.notes)
    assert torch.load(entry, weights_only=True)["images"].shape == (12, 1, 8, 8, 8)
