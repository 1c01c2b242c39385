"""Segmentation folders with masks as data sets ship them, read end to end."""

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.data import DataOptions, load_splits
from resnets.data.colours import IGNORE_INDEX
from resnets.data.datasets import make_shapes
from resnets.errors import DataError

from ..helpers import QUIET


def write_set(root, masks_as="png", suffix="", n=24, palette=False):
    """The shapes set (circle or square on noise) with binary masks written as data sets do."""
    shapes = make_shapes(n, 48, seed=1)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        Image.fromarray(shapes.images[i, 0].numpy()).save(root / "images" / f"im{i}.jpg")
        fg = (shapes.labels[i] > 0).numpy().astype(np.uint8)
        if palette:
            mask = Image.fromarray(fg, "P")
            mask.putpalette([0, 0, 0, 200, 30, 30] + [0, 0, 0] * 253 + [255, 255, 255])
            border = np.asarray(mask).copy()
            border[0, :] = 255  # VOC's void border
            mask = Image.fromarray(border, "P")
            mask.putpalette([0, 0, 0, 200, 30, 30] + [0, 0, 0] * 253 + [255, 255, 255])
        else:
            mask = Image.fromarray(fg * 255).convert("RGB")
        kw = {"quality": 75} if masks_as == "jpg" else {}
        mask.save(root / "masks" / f"im{i}{suffix}.{masks_as}", **kw)
    return root


def load(root, **kw):
    return load_splits(DataOptions(data=f"segfolder:{root}", image_size=48, **kw), seed=0)


def test_jpeg_masks_give_the_classes_png_masks_give(tmp_path):
    png = load(write_set(tmp_path / "png"))
    jpg = load(write_set(tmp_path / "jpg", masks_as="jpg", suffix="_mask"))
    assert png.classes == jpg.classes == ["background", "foreground"]
    assert any("JPEG: thresholded at 128" in n for n in jpg.notes)
    default = load_splits(DataOptions(data=f"segfolder:{tmp_path / 'png'}"), seed=0)
    assert default.input_size == 128 and any("input size 128 px" in n for n in default.notes)
    a, b = png.train.labels, jpg.train.labels
    assert (a == b).float().mean() > 0.99 and set(b.unique().tolist()) == {0, 1}


def test_palette_masks_keep_the_void_border_out_of_the_classes(tmp_path):
    s = load(write_set(tmp_path / "voc", palette=True))
    assert s.classes == ["0", "1"]
    assert (s.train.labels[:, 0, :] == IGNORE_INDEX).all()
    assert set(s.train.labels.unique().tolist()) == {IGNORE_INDEX, 0, 1}


def test_a_mask_of_another_size_is_refused_naming_it(tmp_path):
    root = write_set(tmp_path / "png", n=4)
    Image.new("L", (10, 10)).save(root / "masks" / "im2.png")
    with pytest.raises(DataError, match=r"mask .*im2\.png is 10x10 but its image .*is 48x48"):
        load(root)


def test_training_ignores_void_pixels(tmp_path):
    from resnets import train

    root = write_set(tmp_path / "voc", palette=True)
    s = train(
        data=f"segfolder:{root}",
        task="segmentation",
        model="resnet18",
        image_size=48,
        batch_size=8,
        epochs=1,
        out=str(tmp_path / "run"),
        **QUIET,
    )
    assert s["test_dice"] is not None and torch.isfinite(torch.tensor(s["test_dice"]))


def test_masks_named_otherwise_are_found_by_a_pattern(tmp_path):
    root = write_set(tmp_path / "set", n=8)
    for m in sorted((root / "masks").iterdir()):
        m.rename(m.with_name("label-" + m.name))
    with pytest.raises(DataError, match="pass --mask-pattern"):
        load(root)
    s = load(root, mask_pattern="label-{stem}.png")
    assert s.classes == ["background", "foreground"]


def test_a_changed_folder_keeps_the_runs_split_by_file_name(tmp_path):
    """--allow-changed-data scores the run's own test images, found by name, not a re-split
    of the changed folder (which would move training images into the test split)."""
    from resnets import evaluate, train

    root = write_set(tmp_path / "set", n=24)
    s = train(
        data=f"segfolder:{root}",
        task="segmentation",
        model="resnet20",
        image_size=48,
        batch_size=8,
        epochs=1,
        out=str(tmp_path / "run"),
        **QUIET,
        amp="none",
    )
    extra = write_set(tmp_path / "more", n=30)
    for i in range(24, 30):  # six new pairs: a re-split would move others into the test split
        (extra / "images" / f"im{i}.jpg").rename(root / "images" / f"im{i}.jpg")
        (extra / "masks" / f"im{i}.png").rename(root / "masks" / f"im{i}.png")
    with pytest.raises(DataError, match="changed since the run was made"):
        evaluate(tmp_path / "run")
    report = evaluate(tmp_path / "run", allow_changed_data=True)
    assert report.count == s["test_images"]
    assert report.dice == pytest.approx(s["test_dice"], abs=1e-6)


def test_test_masks_are_named_after_their_images_at_their_size_and_reports_are_files(
    tmp_path, monkeypatch
):
    """The test split's masks in RUN/test-masks are named after their images, at the images'
    own size; evaluate writes eval-test.json; predict's default folder is the run's."""
    import json

    from resnets import evaluate, predict, train

    root = write_set(tmp_path / "set", n=24)
    s = train(
        data=f"segfolder:{root}",
        task="segmentation",
        model="resnet20",
        image_size=32,
        batch_size=8,
        epochs=1,
        out=str(tmp_path / "run"),
        **QUIET,
    )
    masks = sorted((tmp_path / "run" / "test-masks").iterdir())
    assert len(masks) == s["test_images"] == 5
    for mask in masks:
        image = root / "images" / mask.name.removesuffix(".png")
        assert image.is_file() and Image.open(mask).size == Image.open(image).size == (48, 48)
    report = evaluate(tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "eval" / "eval-test.json").read_text())
    assert saved["dice"] == report.dice and saved["count"] == 5
    assert report.files["report"] == str(tmp_path / "run" / "eval" / "eval-test.json")
    evaluate(tmp_path / "run", out=tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "eval-test.json").is_file()
    monkeypatch.chdir(tmp_path / "set")  # nothing may land in the current folder
    before = sorted(p.name for p in (tmp_path / "set").iterdir())
    result = predict(tmp_path / "run", [root / "images" / "im0.jpg"])
    assert result.predictions[0].mask == str(tmp_path / "run" / "predictions" / "im0.jpg.png")
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == before


def test_the_notes_say_sizes_decoding_and_flips_and_a_broken_pair_is_left_out(tmp_path):
    root = write_set(tmp_path / "set", n=12)
    (root / "images" / "im3.jpg").write_bytes(b"not a jpeg")
    s = load(root)
    assert sum(len(getattr(s, n)) for n in ("train", "val", "test")) == 11
    notes = "\n".join(s.notes)
    assert "11 images of 48x48 kept" in notes and "decoded once in" in notes
    assert "1 pair with an unreadable image or mask left out" in notes and "im3.jpg" in notes
    assert "random horizontal flips: off" in notes and "masks paired by name" in notes
    with pytest.raises(DataError, match=r"cannot read .*im3\.jpg"):
        load(root, strict=True)


def test_a_mask_that_is_not_an_image_costs_its_pair_and_strict_stops_on_a_missing_mask(tmp_path):
    root = write_set(tmp_path / "set", n=12)
    (root / "masks" / "im0.png").write_bytes(b"not a png")  # first of the scheme's sample
    (root / "masks" / "im5.png").unlink()
    s = load(root)
    assert sum(len(getattr(s, n)) for n in ("train", "val", "test")) == 10
    notes = "\n".join(s.notes)
    assert "1 image without a mask left out, e.g. im5.jpg (looked for" in notes
    assert "1 pair with an unreadable image or mask left out" in notes and "im0.jpg" in notes
    with pytest.raises(DataError, match=r"im5\.jpg has no mask \(looked for .*drop --strict"):
        load(root, strict=True)
