import pickle

import numpy as np
import pytest
import torch

from resnets.data import DataOptions, load_splits
from resnets.data import datasets as ds
from resnets.data.python import PythonData
from resnets.data.splits import Splits, stratified_split
from resnets.errors import DataError, UsageError

from ..helpers import write_cifar, write_image_folder, write_mnist


def test_digits_are_the_bundled_1797_images():
    d = ds.load_digits()
    assert d.images.shape == (1797, 1, 8, 8) and d.images.dtype == torch.uint8
    assert d.images.max() == 255 and d.classes == [str(i) for i in range(10)]


@pytest.mark.parametrize("archive", [True, False])
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reads_the_official_pickles_from_archive_or_folder(tmp_path, name, archive):
    write_cifar(tmp_path, per_batch=20, name=name, archive=archive)
    train, test = ds.load_cifar(name, tmp_path)
    assert train.images.shape == (100, 3, 32, 32) and test.images.shape == (20, 3, 32, 32)
    assert len(train.classes) == (10 if name == "cifar10" else 100)
    # row-major CHW, as the format documents: red plane first
    raw = (
        pickle.loads(
            (tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes(), encoding="bytes"
        )
        if (name == "cifar10" and not archive)
        else None
    )
    if raw is not None:
        assert torch.equal(train.images[0, 0].flatten(), torch.from_numpy(raw[b"data"][0, :1024]))


def test_cifar_pickle_that_carries_code_is_refused(tmp_path):
    folder = write_cifar(tmp_path, per_batch=4, archive=False)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match=r"refused to unpickle builtins\.print"):
        ds.load_cifar("cifar10", tmp_path)


def test_missing_cifar_says_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(DataError, match=r"no cifar10 found in .*--download"):
        ds.load_cifar("cifar10", tmp_path)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_torchvision_layout(tmp_path, gz):
    write_mnist(tmp_path, "FashionMNIST", gz=gz)
    train, test = ds.load_mnist("fashion-mnist", tmp_path)
    assert train.images.shape == (60, 1, 28, 28) and len(test) == 20
    assert train.classes[0] == "T-shirt/top"


def test_truncated_idx_is_a_clear_error(tmp_path):
    write_mnist(tmp_path, gz=False)
    f = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        ds.load_mnist("mnist", tmp_path)


def test_labels_out_of_range_are_rejected():
    with pytest.raises(DataError, match=r"labels range over 0\.\.12 but there are 10 classes"):
        ds.ImageTensors(
            torch.zeros(3, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 5, 12]), list("abcdefghij")
        )


def test_stratified_split_is_fixed_and_keeps_every_class():
    labels = torch.arange(100) % 4
    keep, take = stratified_split(labels, 0.2)
    _, take2 = stratified_split(labels, 0.2)
    assert torch.equal(take, take2) and len(take) == 20
    assert set(labels[take].tolist()) == {0, 1, 2, 3}
    assert not set(keep.tolist()) & set(take.tolist())


def test_digits_splits_are_disjoint_and_do_not_move_with_the_seed():
    a = load_splits(DataOptions(), seed=0)
    b = load_splits(DataOptions(), seed=7)
    assert torch.equal(a.test.images, b.test.images) and torch.equal(a.val.labels, b.val.labels)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    rows = {tuple(x.flatten().tolist()) for x in a.test.images}
    train_rows = [tuple(x.flatten().tolist()) for x in a.train.images]
    assert sum(r in rows for r in train_rows) < 20  # digits has a few duplicate images, no more


def test_val_split_zero_says_so():
    s = load_splits(DataOptions(val_split=0.0), seed=0)
    assert s.val is None and any("no validation set" in n for n in s.notes)


def test_cifar_validation_is_carved_from_train_never_test(tmp_path):
    write_cifar(tmp_path, per_batch=100)
    s = load_splits(DataOptions(data=f"cifar10:{tmp_path}"), seed=0)
    assert len(s.test) == 100 and len(s.train) + len(s.val) == 500
    assert 40 <= len(s.val) <= 60 and s.hflip and s.crop_padding == 4


def test_channels_and_size_follow_the_request(tmp_path):
    write_mnist(tmp_path)
    s = load_splits(DataOptions(data=f"mnist:{tmp_path}", image_size=32), seed=0, channels=3)
    assert s.train.images.shape[1:] == (3, 32, 32) and len(s.mean) == 3


def test_image_folder_layouts_and_channel_detection(tmp_path):
    root = tmp_path / "shapes"
    write_image_folder(root / "train", per_class=10)
    write_image_folder(root / "val", per_class=4)
    s = load_splits(DataOptions(data=f"imagefolder:{root}", image_size=16), seed=0)
    assert s.classes == ["circle", "square"] and s.channels == 3 and not s.in_memory
    assert len(s.test) == 8  # val/ is the test set when there is no test/
    assert len(s.train) + len(s.val) == 20
    x, _ = s.test[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.uint8
    gray = write_image_folder(tmp_path / "gray", per_class=6, gray=True)
    g = load_splits(DataOptions(data=f"imagefolder:{gray}", image_size=16), seed=0)
    assert g.channels == 1 and len(g.mean) == 1


@pytest.mark.parametrize("source", ["digits", "imagefolder"])
@pytest.mark.parametrize("padding", [0, 3, None])
def test_crop_padding_is_what_was_asked_on_every_source(tmp_path, source, padding):
    """0 turns the random crop off on a folder as on an in-memory set (a folder once read 0 as
    "not given"); unset, it is an eighth of the 16-pixel input: 2."""
    data = "digits"
    if source == "imagefolder":
        data = f"imagefolder:{write_image_folder(tmp_path / 'f', per_class=6)}"
    opts = DataOptions(data=data, image_size=16, train_crop="resize", crop_padding=padding)
    assert load_splits(opts, seed=0).crop_padding == (2 if padding is None else padding)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "has no class folders"),
        (lambda root: (root / "cat").mkdir(parents=True), "has no images"),
    ],
)
def test_broken_image_folders_are_named(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DataError, match=message):
        load_splits(DataOptions(data=f"imagefolder:{root}"), seed=0)


def test_unknown_dataset_suggests():
    with pytest.raises(UsageError, match="did you mean cifar10"):
        load_splits(DataOptions(data="cifar"), seed=0)


def test_synthetic_is_learnable_and_sized():
    s = load_splits(DataOptions(data="synthetic", image_size=12, synthetic_samples=200), seed=0)
    assert s.train.images.shape[1:] == (3, 12, 12)
    means = torch.stack([s.train.images[s.train.labels == c].float().mean(0) for c in range(10)])
    assert (means[0] - means[1]).abs().mean() > 10  # classes differ by their pattern
    assert np.isclose(sum(len(getattr(s, k)) for k in ("train", "val")), 200)


@pytest.mark.parametrize("source", ["digits", "imagefolder", "python"])
def test_every_source_is_carved_by_one_rule_and_says_so_alike(tmp_path, source):
    """Test, then validation, held out by `splits.carve` whatever the source; the notes count
    what the splits hold, in the same words; the splits come whole, normalization included."""
    objects = None
    data = {"digits": "digits", "python": "python"}.get(source)
    if source == "imagefolder":
        data = f"imagefolder:{write_image_folder(tmp_path / 'f', per_class=20)}"
    if source == "python":
        images = ds.load_digits().images[:200]
        objects = PythonData((images.numpy(), (torch.arange(200) % 4).numpy()))
    s = load_splits(DataOptions(data=data, image_size=16), seed=0, objects=objects)
    seen = len(s.train) + len(s.val)
    assert any(n.startswith(f"test split: {len(s.test)} images held out from") for n in s.notes)
    assert f"validation split: {len(s.val)} of {seen} training images" in s.notes
    assert isinstance(s, Splits) and len(s.mean) == len(s.std) == s.channels
