"""Decode once: folders held in memory or a disk cache give the batches the stream gives."""

import os
import re

import pytest
import torch

from resnets.data import DataOptions, Shard, load_splits, make_loaders
from resnets.data import cache as cache_module
from resnets.data.build import eval_loader
from resnets.errors import DataError, UsageError

from ..helpers import write_image_folder

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


def _truncated_pngs(folder, n):
    """PNGs whose header opens but whose pixels are cut off: they fail only when decoded."""
    import io

    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "PNG")
    for i in range(n):
        (folder / f"-cut{i:03d}.png").write_bytes(buffer.getvalue()[:60])


@pytest.mark.parametrize("kind", ["not-images", "truncated"])
def test_a_class_folder_with_nothing_readable_is_refused_in_one_line(tmp_path, kind):
    root = write_image_folder(tmp_path / "shapes", per_class=12)
    if kind == "not-images":
        (root / "broken").mkdir()
        for i in range(12):
            (root / "broken" / f"{i}.png").write_bytes(b"not an image" * (i + 1))
    else:
        _truncated_pngs(root / "broken", 12)
    with pytest.raises(DataError) as e:
        load_splits(folder_opts(root), seed=0)
    text = str(e.value)
    assert "\n" not in text and "broken" in text
    assert ("none of its 12 files opens" if kind == "not-images" else "could be decoded") in text


def test_a_decoding_batch_of_only_unreadable_files_is_left_out_not_a_traceback(tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=12)
    _truncated_pngs(root / "circle", 400)  # "-" sorts first: the first batch of 256 is all bad
    splits = load_splits(folder_opts(root, cache="memory"), seed=0)
    assert len(splits.unreadable) == 400
    assert sum(len(splits.tensors(n)) for n in ("train", "val", "test")) == 24


def test_a_streamed_class_that_never_decodes_stops_the_run(tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=12)
    _truncated_pngs(root / "broken", 12)
    splits = load_splits(folder_opts(root, cache="none"), seed=0)
    loaders = make_loaders(splits, batch_size=4, shard=Shard(), device=CPU, seed=0, num_workers=0)
    with pytest.raises(DataError, match="could be decoded"):
        for epoch in range(3):
            for _ in loaders.train.epoch(epoch):
                pass
