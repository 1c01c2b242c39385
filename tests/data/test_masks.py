import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.data.colours import IGNORE_INDEX, load_colours
from resnets.data.masks import apply, check_same_size, infer_scheme, read_mask
from resnets.data.pairing import pair_masks
from resnets.errors import DataError, UsageError

H, W = 48, 64


def _blobs(seed: int) -> np.ndarray:
    """A 0/1 mask [H, W]: a disc and a rectangle placed by `seed`."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    cy, cx = g.integers(12, 36), g.integers(12, 52)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 81
    box = (yy >= 2) & (yy < 10) & (xx >= g.integers(0, 40)) & (xx < 60)
    return (disc | box).astype(np.uint8)


def _save(path, array: np.ndarray, mode: str | None = None, **kw):
    Image.fromarray(array).convert(mode or Image.fromarray(array).mode).save(path, **kw)
    return path


def _classes(paths, colours=None):
    scheme = infer_scheme(paths, colours)
    return scheme, [apply(scheme, read_mask(p)) for p in paths]


def test_binary_png_masks_give_background_and_foreground(tmp_path):
    truth = [_blobs(i) for i in range(3)]
    paths = [_save(tmp_path / f"m{i}.png", t * 255) for i, t in enumerate(truth)]
    scheme, ys = _classes(paths)
    assert scheme.classes == ("background", "foreground") and scheme.threshold is None
    for y, t in zip(ys, truth, strict=True):
        assert y.dtype == torch.int64 and torch.equal(y, torch.from_numpy(t).long())


@pytest.mark.parametrize("channels,noise", [(1, 0), (3, 0), (3, 30)])
def test_jpeg_masks_are_thresholded_into_the_png_classes(tmp_path, channels, noise):
    g = np.random.default_rng(0)
    truth = [_blobs(i) for i in range(4)]
    paths = []
    for i, t in enumerate(truth):
        pixels = np.repeat(t[..., None] * 255, channels, -1) + g.integers(
            -noise, noise + 1, (H, W, channels)
        )
        paths.append(
            _save(
                tmp_path / f"m{i}.jpg", pixels.clip(0, 255).astype(np.uint8).squeeze(), quality=75
            )
        )
    raw = np.stack([np.asarray(Image.open(p), dtype=int) for p in paths])
    assert len(np.unique(raw)) > 2  # JPEG artefacts are there
    if noise:  # and colour noise: the channels differ
        assert (raw.max(-1) - raw.min(-1)).max() > 0
    scheme, ys = _classes(paths)
    assert scheme.classes == ("background", "foreground") and "JPEG" in scheme.note
    for y, t in zip(ys, truth, strict=True):
        assert (y.numpy() == t).mean() >= 0.99


def test_small_integer_masks_keep_their_values_as_classes(tmp_path):
    paths = [_save(tmp_path / "a.png", _blobs(0) * 2), _save(tmp_path / "b.png", _blobs(1))]
    scheme, ys = _classes(paths)
    assert scheme.classes == ("0", "1", "2")
    assert torch.equal(ys[0], torch.from_numpy(_blobs(0) * 2).long())


def test_palette_indices_are_classes_and_255_is_ignored(tmp_path):
    index = np.zeros((H, W), np.uint8)
    index[10:20, 10:20], index[30:40, 30:50] = 1, 2
    index[9, 9:21] = index[20, 9:21] = 255  # VOC's void border
    palette = np.zeros((256, 3), np.uint8)
    palette[1], palette[2], palette[255] = (128, 0, 0), (0, 128, 0), (224, 224, 192)
    im = Image.fromarray(index, "P")
    im.putpalette(palette.ravel().tolist())
    im.save(tmp_path / "voc.png")
    scheme, (y,) = _classes([tmp_path / "voc.png"])
    assert scheme.classes == ("0", "1", "2") and "void" in scheme.note
    expected = torch.from_numpy(index).long()
    expected[expected == 255] = IGNORE_INDEX
    assert torch.equal(y, expected) and int((y == IGNORE_INDEX).sum()) == 24


def test_colour_masks_map_through_the_table(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[5:15, 5:25] = (255, 0, 0)
    rgb[20:40, 30:60] = (0, 0, 255)
    path = _save(tmp_path / "c.png", rgb)
    table = {"0,0,0": "background", "0,0,255": "water", (255, 0, 0): "polyp"}
    scheme, (y,) = _classes([path], table)
    assert scheme.classes == ("background", "water", "polyp")
    assert int(y[10, 10]) == 2 and int(y[30, 40]) == 1 and int(y[0, 0]) == 0
    assert int((y == 2).sum()) == 200 and int((y == 1).sum()) == 600
    with pytest.raises(DataError, match=r"c\.png has colour 0,0,255"):
        infer_scheme([path], {"0,0,0": "background", "255,0,0": "polyp"})
    jpeg = _save(tmp_path / "c.jpg", rgb, quality=75)  # colours are only near: nearest wins
    assert len(np.unique(np.asarray(Image.open(jpeg)).reshape(-1, 3), axis=0)) > 3
    _, (y_jpeg,) = _classes([jpeg], table)
    assert (y_jpeg == y).double().mean() >= 0.97


def test_colour_masks_without_a_table_become_rgb_classes(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[5:15, 5:25] = (255, 0, 0)
    black = _save(tmp_path / "black.png", rgb * 0)  # reads as grey; the set is still colour
    scheme, (y, y_black) = _classes([_save(tmp_path / "c.png", rgb), black])
    assert scheme.classes == ("0,0,0", "255,0,0") and int((y == 1).sum()) == 200
    assert not y_black.any()
    with pytest.raises(DataError, match=r"c\.jpg is a JPEG colour mask"):
        infer_scheme([_save(tmp_path / "c.jpg", rgb, quality=75)])


@pytest.mark.parametrize("channels,what", [((), "grey values"), ((3,), "colours")])
def test_noise_masks_are_refused_naming_the_file(tmp_path, channels, what):
    noise = np.random.default_rng(0).integers(0, 256, (H, W, *channels), dtype=np.uint8)
    clean = _save(tmp_path / "clean.png", np.zeros((H, W, *channels), np.uint8))
    path = _save(tmp_path / "noise.png", noise)
    with pytest.raises(DataError, match=rf"noise\.png has \d+ distinct {what}"):
        infer_scheme([clean, path])


def _is_file(path):
    return path.is_file() and path.suffix != ".txt"


def test_masks_pair_by_stem_with_suffixes_and_other_extensions(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for name in ("img1.jpg", "img2.png", "img3.png", "img4.png"):
        (images / name).touch()
    for name in ("img1_mask.png", "IMG2_Segmentation.PNG", "img4.tif", "notes.txt"):
        (masks / name).touch()
    pairs, missing, note = pair_masks(tmp_path, None, _is_file)
    assert [(i.name, m.name) for i, m in pairs] == [
        ("img1.jpg", "img1_mask.png"),
        ("img2.png", "IMG2_Segmentation.PNG"),
        ("img4.png", "img4.tif"),
    ]
    assert [(p.name, looked) for p, looked in missing] == [
        ("img3.png", "masks/img3[_mask, _seg, ...].*")
    ]
    assert "the same name" in note and "+_mask" in note
    (masks / "img3_gt.png").touch()
    pairs, missing, _ = pair_masks(tmp_path, "{stem}_gt.*", _is_file)
    assert [(i.name, m.name) for i, m in pairs] == [("img3.png", "img3_gt.png")]


def test_two_candidate_masks_are_refused_naming_both(tmp_path):
    (tmp_path / "images").mkdir(), (tmp_path / "masks").mkdir()
    (tmp_path / "images" / "a.jpg").touch()
    (tmp_path / "masks" / "a.png").touch(), (tmp_path / "masks" / "a_mask.png").touch()
    with pytest.raises(DataError, match=r"a\.png and .*a_mask\.png"):
        pair_masks(tmp_path, None, _is_file)


def test_the_drive_layout_pairs_by_a_field_of_the_image_name(tmp_path):
    """DRIVE: training/images/21_training.tif with training/1st_manual/21_manual1.gif."""
    (tmp_path / "images").mkdir(), (tmp_path / "1st_manual").mkdir()
    for n in (21, 22, 23):
        (tmp_path / "images" / f"{n}_training.tif").touch()
    for n in (21, 22):
        (tmp_path / "1st_manual" / f"{n}_manual1.gif").touch()
    rule = "images/{id}_training.tif=1st_manual/{id}_manual1.gif"
    pairs, missing, note = pair_masks(tmp_path, rule, _is_file)
    assert [(i.name, m.name) for i, m in pairs] == [
        ("21_training.tif", "21_manual1.gif"),
        ("22_training.tif", "22_manual1.gif"),
    ]
    assert [(p.name, looked) for p, looked in missing] == [
        ("23_training.tif", "1st_manual/23_manual1.gif")
    ]
    assert "images/ with 1st_manual/" in note
    with pytest.raises(DataError, match=r"for 21_training\.tif it looked for 1st_manual/21_x\.png"):
        pair_masks(tmp_path, "images/{id}_training.tif=1st_manual/{id}_x.png", _is_file)


@pytest.mark.parametrize(
    "rule,message",
    [
        ("masks/{stem}.png", "takes no folder"),
        ("{name}_mask.png", "must be made of {stem}"),
        ("images/a.tif=masks/{id}.png", "needs a {field}"),
        ("images/{id}.tif=masks/{other}.png", "must be made of {id}"),
        ("{id}.tif=masks/{id}.png", "FOLDER/NAME"),
    ],
)
def test_a_pattern_that_cannot_pair_is_refused_in_one_line(tmp_path, rule, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        pair_masks(tmp_path, rule, _is_file)


def test_colour_tables_load_from_json_and_csv(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"0,0,0": "background", "255,0,0": "polyp"}))
    (tmp_path / "c.csv").write_text("name,r,g,b\nbackground,0,0,0\npolyp,255,0,0\nvoid,9,9,9\n")
    assert load_colours(tmp_path / "c.json") == {"0,0,0": "background", "255,0,0": "polyp"}
    table = load_colours(tmp_path / "c.csv")
    assert table == {"0,0,0": "background", "255,0,0": "polyp", "9,9,9": "void"}
    rgb = np.full((4, 4, 3), 9, np.uint8)
    rgb[0, 0] = (255, 0, 0)
    scheme, (y,) = _classes([_save(tmp_path / "m.png", rgb)], table)
    assert scheme.classes == ("background", "polyp")
    assert int(y[0, 0]) == 1 and int((y == IGNORE_INDEX).sum()) == 15
    (tmp_path / "bad.csv").write_text("0,0,300,background\n")
    with pytest.raises(DataError, match=r"bad\.csv"):
        load_colours(tmp_path / "bad.csv")


def test_mask_of_another_size_is_refused(tmp_path):
    image = _save(tmp_path / "i.png", np.zeros((H, W), np.uint8))
    mask = _save(tmp_path / "m.png", np.zeros((H, W + 1), np.uint8))
    check_same_size(image, image)
    with pytest.raises(DataError, match=rf"m\.png is {W + 1}x{H} but its image .*i\.png"):
        check_same_size(image, mask)
