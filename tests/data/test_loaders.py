"""The sharding contract: processes and accumulation see the same global batches."""

from pathlib import Path

import pytest
import torch

from resnets.data import DataOptions, Shard, load_splits, make_loaders
from resnets.data.build import eval_loader
from resnets.data.loaders import GlobalBatches
from resnets.errors import UsageError

from ..helpers import write_image_folder


def batches_of(shard, opts=None, epoch=0, start=0, **kw):
    splits = load_splits(opts or DataOptions(), seed=0)
    loaders = make_loaders(
        splits, batch_size=32, shard=shard, device=torch.device("cpu"), seed=5, **kw
    )
    return list(loaders.train.epoch(epoch, start))


def test_two_processes_see_what_one_process_with_two_accumulation_steps_sees():
    accum = batches_of(Shard(0, 1, 2))
    rank0, rank1 = batches_of(Shard(0, 2, 1)), batches_of(Shard(1, 2, 1))
    assert len(accum) == len(rank0) == len(rank1) == 1295 // 32
    for a, r0, r1 in zip(accum, rank0, rank1, strict=True):
        assert torch.equal(a[0][0], r0[0][0]) and torch.equal(a[1][0], r1[0][0])
        assert torch.equal(a[1][1], r1[0][1])
    single = batches_of(Shard())
    assert torch.equal(torch.cat([accum[3][0][0], accum[3][1][0]]), single[3][0][0])


def test_resuming_mid_epoch_continues_the_same_sequence():
    full = batches_of(Shard(), epoch=2)
    tail = batches_of(Shard(), epoch=2, start=7)
    assert len(tail) == len(full) - 7
    assert all(torch.equal(a[0][0], b[0][0]) for a, b in zip(full[7:], tail, strict=True))
    assert not torch.equal(full[0][0][0], batches_of(Shard(), epoch=3)[0][0][0])


def test_batch_must_divide_over_processes_and_micro_batches():
    with pytest.raises(UsageError, match="must divide evenly over 3 processes"):
        GlobalBatches(100, 32, Shard(0, 3, 1), seed=0)
    with pytest.raises(UsageError, match="fewer than one batch"):
        GlobalBatches(10, 32, Shard(), seed=0)


def test_image_folder_batches_are_the_same_for_any_worker_count(tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=24)
    opts = DataOptions(data=f"imagefolder:{root}", image_size=16)
    a = batches_of(Shard(), opts, num_workers=0)
    b = batches_of(Shard(), opts, num_workers=2)
    assert len(a) == 1
    assert torch.equal(a[0][0][0], b[0][0][0]) and a[0][0][0].shape == (32, 3, 16, 16)


def test_corrupt_images_are_skipped_and_counted_when_streamed(tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=24)
    (root / "circle" / "0.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "square" / "1.png").write_bytes(b"")
    opts = DataOptions(data=f"imagefolder:{root}", image_size=16, val_split=0.0, cache="none")
    splits = load_splits(opts, seed=0)
    cpu = torch.device("cpu")
    loaders = make_loaders(splits, batch_size=8, shard=Shard(), device=cpu, seed=0, num_workers=0)
    used = sum(len(mb[0][1]) for mb in loaders.train.epoch(0)) + loaders.train.skipped
    assert used == len(splits.train) // 8 * 8  # each step's slots are images or counted skips
    skipped = 0
    for split in ("train", "test"):
        loader = eval_loader(splits, split, 8, cpu, num_workers=0)
        n = sum(len(y) for _, y in loader)
        skipped += loader.skipped
        assert n + loader.skipped == len(getattr(splits, split))
    assert skipped == 2


def test_corrupt_images_are_left_out_and_counted_when_decoded_once(tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=24)
    (root / "circle" / "0.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "square" / "1.png").write_bytes(b"")
    opts = DataOptions(data=f"imagefolder:{root}", image_size=16, val_split=0.0, num_workers=0)
    splits = load_splits(opts, seed=0)
    assert sorted(Path(f).name for f in splits.unreadable) == ["0.jpg", "1.png"]
    total = sum(len(splits.tensors(n)) for n in ("train", "test"))
    assert total == len(splits.train) + len(splits.test) - 2
    assert any("2 unreadable images left out" in n for n in splits.notes)
