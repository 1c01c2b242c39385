"""Data given as Python objects: Datasets, DataLoaders, arrays, lists of paths, DataFrames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from resnets import train
from resnets.data.datasets import load_digits
from resnets.data.items import find_normalize, to_image
from resnets.data.python import PythonData, python_splits, read_items
from resnets.errors import DataError, UsageError
from resnets.options import DataOptions

from ..helpers import quick

QUICK = quick(model="resnet20", batch_size=64, deterministic=True, seed=1)


def digits_in_class_order():
    """The bundled digits sorted by class (stably), as an image folder lists them."""
    d = load_digits()
    order = torch.sort(d.labels, stable=True).indices
    return d.images[order], d.labels[order]


class PilDigits(Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.classes = [str(c) for c in range(10)]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return Image.fromarray(self.images[i, 0].numpy()), int(self.labels[i])


def write_folder(root, images, labels):
    for i, (img, y) in enumerate(zip(images, labels.tolist(), strict=True)):
        (root / str(y)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0].numpy()).save(root / str(y) / f"{i:05d}.png")


def test_a_pil_dataset_arrays_and_an_image_folder_train_identically(tmp_path):
    images, labels = digits_in_class_order()
    write_folder(tmp_path / "folder", images, labels)
    arrays = (images.permute(0, 2, 3, 1).numpy(), labels.numpy())  # HWC arrays, as NumPy has them
    sources = {
        "folder": f"imagefolder:{tmp_path / 'folder'}",
        "pil": PilDigits(images, labels),
        "arrays": arrays,
        "loader": DataLoader(PilDigits(images, labels), batch_size=7, shuffle=True),
    }
    runs = {
        name: train(data=data, out=str(tmp_path / f"run-{name}"), **QUICK)
        for name, data in sources.items()
    }
    first = runs["folder"]
    for name, run in runs.items():
        assert run["input_size"] == 8, name
        assert run["test_acc1"] == first["test_acc1"], name
        assert run["test_loss"] == first["test_loss"], name
    assert any("sampler and batch size (7) are replaced" in n for n in runs["loader"]["notes"])
    assert any("flips: off for greyscale" in n for n in runs["pil"]["notes"])


def test_a_to_tensor_and_normalize_dataset_is_read_back_exactly():
    from torchvision import transforms

    images, labels = digits_in_class_order()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.25,))])

    class Transformed(PilDigits):
        def __getitem__(self, i):
            image, label = super().__getitem__(i)
            return transform(image), label

    data = Transformed(images[:50], labels[:50])
    data.transform = transform
    undo = find_normalize(DataLoader(data))
    assert undo is not None and undo.mean == (0.5,) and undo.std == (0.25,)
    read, raw, _ = read_items(data, "train data")
    assert torch.equal(torch.stack(read), images[:50]) and raw == labels[:50].tolist()


@pytest.mark.parametrize(
    ("image", "shape"),
    [
        (np.zeros((9, 7), np.uint8), (1, 9, 7)),
        (np.zeros((9, 7, 3), np.uint8), (3, 9, 7)),  # arrays: HWC
        (np.zeros((9, 7, 4), np.uint8), (3, 9, 7)),  # alpha dropped
        (torch.zeros(3, 9, 7), (3, 9, 7)),  # tensors: CHW
        (torch.zeros(9, 7, 1, dtype=torch.uint8), (1, 9, 7)),
        (Image.new("RGBA", (7, 9)), (3, 9, 7)),
        (Image.new("I;16", (7, 9)), (1, 9, 7)),
    ],
)
def test_every_image_form_becomes_uint8_chw(image, shape):
    out = to_image(image, "item 0")
    assert out.dtype == torch.uint8 and tuple(out.shape) == shape


def test_float_scales():
    x = torch.rand(3, 8, 8)
    assert torch.equal(to_image(x, "i"), (x * 255).round().to(torch.uint8))
    small = np.full((8, 8), 200, np.uint16)
    assert torch.equal(to_image(small, "i"), torch.full((1, 8, 8), 200, dtype=torch.uint8))
    # one rule for every item, never a per-image guess: other ranges are refused
    with pytest.raises(DataError, match=r"float pixels range over .*254"):
        to_image(x * 255, "i")
    with pytest.raises(DataError, match=r"integer pixels range over 0..4095.*12 or 16 bits"):
        to_image(np.arange(4096, dtype=np.uint16).reshape(64, 64), "i")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([torch.zeros(1, 8, 8)] * 20, r"item 0 is not \(image, label\) but of type Tensor"),
        ([(torch.zeros(1, 8, 8), 3)] * 19 + [(torch.zeros(1, 8, 8), -1)], "item 19: label -1"),
        ([(torch.full((1, 8, 8), float("nan")), 0)] * 2, "64 pixels are NaN"),
        ([(torch.randn(1, 8, 8) * 5, 0)] * 2, "float pixels range over .*, not 0..1"),
        ([(torch.zeros(5, 8, 8), 0)] * 2, r"shape \(5, 8, 8\) is neither"),
        ([(torch.zeros(1, 8, 8), "cat"), (torch.zeros(1, 8, 8), 1)], "labels mix class names"),
        ([(torch.zeros(1, 8, 8), torch.full((3,), 2.0))] * 2, "neither a class nor a 0/1"),
        ([(torch.zeros(1, 8, 8), [1, 0]), (torch.zeros(1, 8, 8), [1, 0, 1])], "another length"),
    ],
)
def test_bad_items_are_refused_naming_the_item(data, message):
    opts = DataOptions(data="python")
    with pytest.raises(DataError, match=message):
        python_splits(PythonData(data), opts, None, None)


def test_labels_outside_num_classes_and_classes_from_names(tmp_path):
    items = [(torch.zeros(1, 8, 8, dtype=torch.uint8), c) for c in ["b", "a", "c"] * 10]
    splits = python_splits(PythonData(items), DataOptions(data="python"), None, None)
    assert splits.classes == ["a", "b", "c"]

    class Opts(DataOptions):
        num_classes = 2

    numbered = [(torch.zeros(1, 8, 8), c % 3) for c in range(30)]
    with pytest.raises(DataError, match=r"label 2 is outside 0..1 \(2 classes\); 10 items"):
        python_splits(PythonData(numbered), Opts(data="python"), None, None)


def test_paths_with_a_missing_file_are_skipped_and_counted_or_refused(tmp_path):
    images, labels = digits_in_class_order()
    write_folder(tmp_path, images[:40], labels[:40])
    pairs = [(str(p), p.parent.name) for p in sorted(tmp_path.rglob("*.png"))]
    pairs.append((str(tmp_path / "gone.png"), "0"))
    splits = python_splits(PythonData(pairs), DataOptions(data="python"), None, None)
    assert sum(len(getattr(splits, n)) for n in ("train", "val", "test")) == 40
    assert any("1 unreadable files skipped" in n for n in splits.notes)
    with pytest.raises(DataError, match=r"item 40: cannot read .*gone.png"):
        python_splits(PythonData(pairs), DataOptions(data="python", strict=True), None, None)


def test_a_dataframe_of_paths_and_labels(tmp_path):
    pd = pytest.importorskip("pandas")
    images, labels = digits_in_class_order()
    write_folder(tmp_path, images[:60], labels[:60])
    files = sorted(tmp_path.rglob("*.png"))
    frame = pd.DataFrame(
        {"filename": [str(f) for f in files], "diagnosis": [f.parent.name for f in files]}
    )
    splits = python_splits(PythonData(frame), DataOptions(data="python"), None, None)
    assert splits.channels == 1 and splits.input_size == 224  # no model: the ImageNet default
    assert any("column 'filename'" in n and "'diagnosis'" in n for n in splits.notes)


def test_a_run_on_python_objects_resumes_only_with_them(tmp_path):
    images, labels = digits_in_class_order()
    data = (images, labels)
    train(data=data, out=str(tmp_path / "run"), **QUICK)
    with pytest.raises(UsageError, match="trained on Python objects; give them again"):
        train(resume=str(tmp_path / "run"), progress=False)
    with pytest.raises(UsageError, match="all as Python objects"):
        train(data="digits", val_data=data, out=str(tmp_path / "x"), **QUICK)


def test_one_hot_labels_extra_item_parts_and_numeric_names(tmp_path):
    img = torch.zeros(1, 8, 8, dtype=torch.uint8)
    one_hot = [(img, torch.eye(3)[i % 3], i) for i in range(30)]  # (image, label, index)
    splits = python_splits(PythonData(one_hot), DataOptions(data="python"), None, None)
    assert splits.train.labels.ndim == 1 and splits.classes == ["0", "1", "2"]
    assert any("items have 3 parts" in n for n in splits.notes)
    named = [(img, str(i % 12)) for i in range(48)]
    splits = python_splits(PythonData(named), DataOptions(data="python"), None, None)
    assert splits.classes == [str(i) for i in range(12)]  # "2" before "10"


def test_a_stack_of_four_greyscale_images_is_a_batch():
    from resnets.infer.images import expand_images

    assert len(expand_images(np.zeros((4, 16, 16), np.uint8))) == 4
    assert len(expand_images(torch.zeros(3, 16, 16))) == 1  # one RGB image


def test_evaluate_on_the_training_objects_scores_only_their_held_out_part(tmp_path, caplog):
    """The same arrays given again: the items used in training and validation are left out
    and said, so the score is the run's test score, not one over its own training images."""
    import logging

    from resnets import evaluate
    from resnets.data.provenance import item_digests, read_record
    from resnets.training.summary import summary_text

    images, labels = digits_in_class_order()
    data = (images, labels)
    summary = train(data=data, out=str(tmp_path / "run"), amp="none", **QUICK)
    with caplog.at_level(logging.INFO, logger="resnets"):
        report = evaluate(tmp_path / "run", data=data)
    assert report.count == summary["test_images"] and report.split == "test"
    assert report.acc1 == pytest.approx(summary["test_acc1"], abs=1e-9)
    held = len(labels) - summary["test_images"]
    assert report.left_out == held and f"{held} images left out" in report.text()
    assert f"{held} of the {len(labels)} items given were used to train" in caplog.text
    trained = set(read_record(tmp_path / "run")["items"]["train"])
    seen = [i for i, d in enumerate(item_digests(images)) if d in trained][:20]
    with pytest.raises(UsageError, match="all 20 items given were used to train or validate"):
        evaluate(tmp_path / "run", data=(images[seen], labels[seen]))
    nxt = summary_text(summary).split("next:")[1]
    assert f'resnets.evaluate("{tmp_path / "run"}", data=...)' in nxt
    assert "resnets evaluate " not in nxt


def test_a_copy_of_the_runs_npz_scores_only_what_the_run_held_out(tmp_path, caplog):
    """--data npz:COPY with the very arrays the run trained on: by default every split is
    scored, but the training and validation images are found by their digests and left out;
    --split all, asked for by name, keeps them and says how many there are."""
    import logging

    from resnets import evaluate

    images, labels = digits_in_class_order()
    arrays = {"train_images": images.squeeze(1), "train_labels": labels[:, None]}
    np.savez(tmp_path / "a.npz", **arrays)
    np.savez(tmp_path / "copy.npz", **arrays)
    summary = train(data=f"npz:{tmp_path / 'a.npz'}", out=str(tmp_path / "run"), **QUICK)
    copy = f"npz:{tmp_path / 'copy.npz'}"
    with caplog.at_level(logging.INFO, logger="resnets"):
        report = evaluate(tmp_path / "run", data=copy)  # other data: every split, "all"
    seen = len(labels) - summary["test_images"]
    assert report.count == summary["test_images"] and report.left_out == seen
    assert report.acc1 == pytest.approx(summary["test_acc1"], abs=1e-9)
    assert f"{seen} of the {len(labels)} images of {copy} were used to train" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="resnets"):
        asked = evaluate(tmp_path / "run", data=copy, split="all", out=tmp_path / "all")
    assert asked.count == len(labels) and asked.left_out == 0  # asked for by name: kept, said
    assert "kept, as the split was asked for by name" in caplog.text


def test_a_class_with_no_training_items_is_named_in_a_warning():
    """Labels 1 and 2 number three classes: class 0 has nothing to learn from, and says so."""
    from resnets.data import DataOptions, load_splits
    from resnets.data.python import take_objects

    x = np.random.default_rng(0).integers(0, 255, (60, 16, 16), dtype=np.uint8)
    y = np.ones(60, dtype=int)
    y[::3] = 2
    options = {"data": (x, y)}
    objects = take_objects(options)
    s = load_splits(DataOptions(**options), seed=0, objects=objects)
    assert s.classes == ["0", "1", "2"]
    assert [n for n in s.notes if n.startswith("warning")] == [
        "warning: no training images of class 0: the model cannot learn it; check the labels "
        "(or num_classes)"
    ]
