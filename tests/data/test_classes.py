"""--classes: a subset of a source's classes, in every split, relabelled 0..k-1."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from resnets.data import DataOptions, load_splits
from resnets.errors import UsageError
from tests.helpers import write_image_folder


def _all_labels(splits) -> torch.Tensor:
    parts = [getattr(splits, n) for n in ("train", "val", "test")]
    return torch.cat([p.labels for p in parts if p is not None])


def test_digits_keep_exactly_the_named_classes():
    splits = load_splits(DataOptions(data="digits", classes="5,6,7,8,9"), seed=0)
    labels = _all_labels(splits)
    counts = torch.bincount(torch.from_numpy(load_digits().target))
    assert splits.classes == ["5", "6", "7", "8", "9"]
    assert len(labels) == int(counts[5:].sum())
    assert torch.equal(torch.bincount(labels), counts[5:])  # relabelled 0..4, none lost
    assert any("classes: 5 of 10 by --classes" in n for n in splits.notes)


def test_folder_classes_by_name_and_by_index(tmp_path):
    root = write_image_folder(tmp_path / "f", classes=("ant", "bee", "cat"), per_class=10)
    by_name = load_splits(DataOptions(data=f"imagefolder:{root}", classes="cat,ant"), seed=0)
    by_index = load_splits(DataOptions(data=f"imagefolder:{root}", classes="0,2"), seed=0)
    for splits in (by_name, by_index):
        assert splits.classes == ["ant", "cat"]  # the source's order, not the order typed
        files = [f for n in ("train", "val", "test") for f in getattr(splits, n).files]
        assert len(files) == 20
        assert {f.parent.name for f in files} == {"ant", "cat"}
        labels = _all_labels(splits)
        assert [splits.classes[i] for i in labels] == [f.parent.name for f in files]


@pytest.mark.parametrize(
    ("asked", "message"),
    [("3,zebra", "no class 'zebra'"), ("4", "two or more"), ("12,13", "no class '12'")],
)
def test_bad_classes_are_refused(asked, message):
    with pytest.raises(UsageError, match=message):
        load_splits(DataOptions(data="digits", classes=asked), seed=0)
