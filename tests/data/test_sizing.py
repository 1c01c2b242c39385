"""The input size a folder trains at, from the model and the images."""

import pytest
from PIL import Image

from resnets.data import DataOptions, load_splits
from resnets.data.sizing import ModelSize, choose_size
from resnets.models import get_config

RESNET20 = ModelSize("resnet20", 32, 4)
RESNET18 = ModelSize("resnet18", 224, 32)


def images(folder, sizes, mode="L"):
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (w, h) in enumerate(sizes):
        path = folder / f"{i}.png"
        Image.new(mode, (w, h), 0 if mode == "L" else (0, 0, 0)).save(path)
        files.append(path)
    return files


def test_models_carry_their_natural_size_and_stride():
    assert (get_config("resnet20").input_size, get_config("resnet20").total_stride) == (32, 4)
    assert (get_config("resnet50").input_size, get_config("resnet50").total_stride) == (224, 32)
    assert get_config("wrn28_10").input_size == 32 and get_config("resnet50d").input_size == 224


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_uniform_small_images_train_at_their_own_size(tmp_path, mode):
    files = images(tmp_path, [(28, 28)] * 5, mode)
    size, reason = choose_size(files, RESNET20, None)
    assert size == 28 and "28x28" in reason and "own size" in reason


def test_mixed_sizes_train_at_the_models_size(tmp_path):
    files = images(tmp_path, [(28, 28), (30, 30), (40, 36)])
    size, reason = choose_size(files, RESNET20, None)
    assert size == 32 and "vary from 28x28 to 40x36" in reason


def test_large_images_train_at_the_models_size(tmp_path):
    files = images(tmp_path, [(500, 375)] * 3)
    assert choose_size(files, RESNET20, None)[0] == 32
    assert choose_size(files, RESNET18, None)[0] == 224


def test_images_smaller_than_the_model_takes_use_its_natural_size(tmp_path):
    files = images(tmp_path, [(28, 28)] * 3)
    size, reason = choose_size(files, RESNET18, None)
    assert size == 224 and "smaller than the 32 px" in reason


def test_image_size_flag_overrides_and_is_said(tmp_path):
    files = images(tmp_path, [(28, 28)] * 3)
    assert choose_size(files, RESNET20, 64) == (64, "input size 64 px, as given by --image-size")


def test_folder_splits_note_the_decision(tmp_path):
    for c in ("a", "b"):
        images(tmp_path / "set" / c, [(24, 24)] * 10, "RGB")
    opts = DataOptions(data=f"imagefolder:{tmp_path / 'set'}", num_workers=0)
    splits = load_splits(opts, seed=0, model=RESNET20)
    assert splits.input_size == 24 and splits.channels == 3
    assert any("24x24" in n for n in splits.notes)
    assert splits.tensors("train").images.shape[1:] == (3, 24, 24)
