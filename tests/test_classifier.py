"""`ImageClassifier` as tutorials use it: Python data in, class indices out, save and load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import resnets
from resnets.data.datasets import load_digits
from resnets.errors import UnknownNameError


class Digits(Dataset):
    """The bundled digits upsampled to 32 px, 3 channels, as CHW floats in [0, 1] (what a
    tutorial's ToTensor gives)."""

    def __init__(self, index):
        self.classes = [str(c) for c in range(10)]
        d = load_digits()
        x = d.images[index].float() / 255
        self.x = F.interpolate(x, size=32, mode="bilinear").clamp(0, 1).expand(-1, 3, -1, -1)
        self.y = d.labels[index]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def split(train=1200, val=250):
    perm = torch.randperm(1797, generator=torch.Generator().manual_seed(0))
    return perm[:train], perm[train : train + val], perm[train + val :]


@pytest.mark.slow
def test_the_tutorial_snippet_runs_unchanged_and_learns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/ and the saved file land here
    train_idx, val_idx, test_idx = split(train=400)  # held-out: 1,147 images
    train_loader = DataLoader(Digits(train_idx), batch_size=64, shuffle=True)
    val_loader = DataLoader(Digits(val_idx), batch_size=64)
    test_set = Digits(test_idx)
    image = test_set[0][0]

    clf = resnets.ImageClassifier(num_classes=10, variant="resnet18")
    clf.train(train_loader, val_loader, epochs=90)
    label = clf.predict(image)  # image: a CHW tensor; the tutorial expects the class index
    clf.save("clf.pth")
    clf.load("clf.pth")

    assert isinstance(label, int) and label == clf.predict(image)
    report = clf.evaluate(DataLoader(test_set, batch_size=64))
    # measured 98.6 % in 163 s on one thread beside another busy one (640 images took 211 s)
    assert report.count == len(test_idx) and report.acc1 >= 95
    batch = clf.predict(test_set.x[:16])
    assert isinstance(batch, list) and batch == [clf.predict(x) for x in test_set.x[:16]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("clf") / "run"
    train_idx, _, _ = split()
    clf = resnets.ImageClassifier("resnet20", num_classes=10, lr=0.05, batch_size=64)
    clf.train(Digits(train_idx), epochs=2, out=str(out), progress=False, tensorboard=False)
    return clf


def test_constructor_options_are_used_and_unknown_ones_refused(trained):
    assert trained.summary["steps"] == 2 * ((1200 - 240 - 96) // 64)
    config = (trained.weights.parent / "config.yaml").read_text()
    assert "lr: 0.05" in config and "batch_size: 64" in config
    with pytest.raises(UnknownNameError, match="did you mean lr"):
        resnets.ImageClassifier("resnet20", lrr=0.1)


def test_predict_takes_every_image_form(trained, tmp_path):
    _, _, test_idx = split()
    x = Digits(test_idx[:4]).x
    probs = trained.predict_proba(x)
    assert probs.shape == (4, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    want = probs.argmax(1).tolist()
    arrays = [np.ascontiguousarray((v.permute(1, 2, 0) * 255).round().byte().numpy()) for v in x]
    assert trained.predict(list(arrays)) == want
    assert trained.predict([Image.fromarray(a) for a in arrays]) == want
    Image.fromarray(arrays[0]).save(tmp_path / "one.png")
    assert trained.predict(tmp_path / "one.png") == want[0]
    assert trained.predict(str(tmp_path)) == want[:1]  # a folder is a batch
    with pytest.raises(resnets.ResnetsError, match="NaN"):
        trained.predict(torch.full((3, 32, 32), float("nan")))


@pytest.mark.parametrize("name", ["clf.safetensors", "clf.pt", "clf.pth", "clf.weights"])
def test_save_then_load_round_trips_for_any_suffix(trained, tmp_path, name):
    x = Digits(split()[2][:8]).x
    path = trained.save(tmp_path / name)
    loaded = resnets.ImageClassifier.load(path)
    assert np.array_equal(loaded.predict_proba(x), trained.predict_proba(x))
    assert loaded.classes == trained.classes and loaded.variant == "resnet20"
    other = resnets.ImageClassifier("resnet20", num_classes=10)
    assert other.load(path) is other  # on an instance: that one is loaded
    assert np.array_equal(other.predict_proba(x), trained.predict_proba(x))
    if not name.endswith(".safetensors"):  # a plain state_dict, its metadata beside it
        state = torch.load(path, weights_only=True)
        model = resnets.create_model("resnet20", num_classes=10)
        model.load_state_dict(state)
        assert (tmp_path / f"{name}.json").is_file()


def test_evaluate_python_data(trained):
    with pytest.raises(resnets.ResnetsError, match=r"was scored once .*test_acc1"):
        trained.evaluate()  # the objects are not kept: the run's test split is in its summary
    _, _, test_idx = split()
    report = trained.evaluate(DataLoader(Digits(test_idx), batch_size=32))
    assert report.count == len(test_idx) and report.split == "data"
    assert (trained.weights.parent / "eval" / "python" / "eval-data.json").is_file()
