"""Decode once: folders held in memory or a disk cache give the batches the stream gives."""

import os
import re

import pytest
import torch

from resnets.data import DataOptions, Shard, load_splits, make_loaders
from resnets.data import cache as cache_module
from resnets.data.build import eval_loader
from resnets.errors import UsageError

from ..conftest import write_image_folder

CPU = torch.device("cpu")


def folder_opts(root, **kw):
    return DataOptions(data=f"imagefolder:{root}", image_size=16, num_workers=0, **kw)


def first_batches(splits, n=2):
    loaders = make_loaders(splits, batch_size=8, shard=Shard(), device=CPU, seed=3, num_workers=0)
    out = []
    for epoch in (0, 1):
        out += [mb[0] for _, mb in zip(range(n), loaders.train.epoch(epoch), strict=False)]
    return out


def test_cached_and_streamed_batches_are_identical(tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=24)
    streamed = load_splits(folder_opts(root, cache="none"), seed=0)
    cached = load_splits(folder_opts(root, cache="memory"), seed=0)
    assert not streamed.decoded and set(cached.decoded) == {"train", "val", "test"}
    assert streamed.mean == cached.mean and streamed.std == cached.std
    for (xs, ys), (xc, yc) in zip(first_batches(streamed), first_batches(cached), strict=True):
        assert torch.equal(xs, xc) and torch.equal(ys, yc)
    for split in ("val", "test"):
        a = list(eval_loader(streamed, split, 8, CPU, num_workers=0))
        b = list(eval_loader(cached, split, 8, CPU, num_workers=0))
        assert all(torch.equal(x, y) for (x, _), (y, _) in zip(a, b, strict=True))


def test_a_cache_over_the_memory_budget_falls_back_to_streaming(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "shapes", per_class=12)
    monkeypatch.setattr(cache_module, "memory_budget", lambda: 1000)
    splits = load_splits(folder_opts(root), seed=0)
    assert not splits.decoded
    assert any("exceed the memory budget" in n for n in splits.notes)
    monkeypatch.setattr(cache_module, "memory_budget", lambda: 10**9)
    assert load_splits(folder_opts(root), seed=0).decoded


def test_disk_cache_is_reused_and_invalidated_when_a_file_changes(tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=12)
    first = load_splits(folder_opts(root, cache="disk"), seed=0)
    files = sorted(cache_module.cache_dir().glob("*.npy"))
    assert len(files) == 3  # one per split
    again = load_splits(folder_opts(root, cache="disk"), seed=0)
    assert sorted(cache_module.cache_dir().glob("*.npy")) == files
    decoding = re.compile(r"decoding (\d+) images took")
    assert any(decoding.match(n) for n in first.notes)
    assert not any(decoding.match(n) for n in again.notes)  # read back, not decoded
    assert torch.equal(first.decoded["train"].images, again.decoded["train"].images)
    changed = first.test.files[0]
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = load_splits(folder_opts(root, cache="disk"), seed=0)
    assert len(list(cache_module.cache_dir().glob("*.npy"))) == 4  # the test split anew
    counts = [int(m[1]) for n in third.notes if (m := decoding.match(n))]
    assert counts == [len(third.test)]  # the rate counts only what was decoded


def test_random_resized_crops_stream_and_say_why(tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=12)
    splits = load_splits(folder_opts(root, train_crop="random-resized"), seed=0)
    assert not splits.decoded and any("random-resized" in n for n in splits.notes)
    with pytest.raises(UsageError, match="--cache memory is not possible"):
        load_splits(folder_opts(root, train_crop="random-resized", cache="memory"), seed=0)


def test_dataset_normalization_is_measured_and_imagenet_is_on_request(tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=12, gray=True)
    own = load_splits(folder_opts(root), seed=0)
    pixels = own.tensors("train").images.double() / 255
    assert own.mean == pytest.approx([pixels.mean().item()], abs=1e-5)
    streamed = load_splits(folder_opts(root, cache="none"), seed=0)
    assert streamed.mean == pytest.approx(own.mean, abs=1e-5)  # all 17 images in the sample
    imagenet = load_splits(folder_opts(root, normalize="imagenet"), seed=0)
    assert imagenet.mean == pytest.approx([0.449], abs=1e-3)
