import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnets import ImageClassifier, load_model, predict
from resnets.cli import main
from resnets.errors import UsageError

from ..helpers import QUIET, save_digit_pngs


def test_predictions_on_files_equal_the_model_on_the_same_pixels(digits_run, tmp_path):
    paths, splits = save_digit_pngs(tmp_path / "imgs")
    result = predict(digits_run, paths, topk=3)
    model = load_model(digits_run / "best.safetensors").eval()
    meta = model.weights_meta
    x = (splits.test.images[: len(paths)].float() / 255 - meta.mean[0]) / meta.std[0]
    with torch.no_grad():
        probs = model(x).softmax(1)
    for pred, p in zip(result.predictions, probs, strict=True):
        assert pred.top[0][0] == meta.classes[int(p.argmax())]
        assert abs(pred.top[0][1] - float(p.max())) < 1e-5
        assert len(pred.top) == 3


def test_any_size_rgb_and_folders_and_unreadable_files(digits_run, tmp_path, capsys):
    save_digit_pngs(tmp_path / "imgs", n=2)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code = main(["predict", str(digits_run / "best.safetensors"), str(tmp_path / "imgs"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # one file could not be read: said, and a non-zero exit
    assert len(out["predictions"]) == 3 and list(out["failed"]) == [
        str(tmp_path / "imgs" / "broken.png")
    ]
    assert all(abs(sum(t["prob"] for t in p["top"]) - 1) < 0.05 for p in out["predictions"])


def test_image_classifier_train_predict_save_load(tmp_path):
    clf = ImageClassifier(variant="resnet20", num_classes=10)
    summary = clf.train(data="digits", epochs=2, out=str(tmp_path / "run"), progress=False)
    assert summary["test_acc1"] > 30
    paths, _ = save_digit_pngs(tmp_path / "imgs", n=2)
    first = clf.predict_proba(paths)
    assert clf.predict(paths) == first.argmax(1).tolist()
    assert np.array_equal(
        predict(clf.weights, paths, topk=1).predictions[0].top[0][1:], [first[0].max()]
    )
    clf.save(tmp_path / "clf.safetensors")
    again = ImageClassifier.load(tmp_path / "clf.safetensors")
    assert np.array_equal(again.predict_proba(paths), first)
    assert clf.evaluate().count == summary["test_images"]  # the run's own test split


def save_mixed_images(folder):
    """Good images in every format, mode and several sizes, greyscale and colour."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, (mode, fmt) in enumerate(
        [
            ("L", "png"),
            ("RGB", "jpg"),
            ("P", "gif"),
            ("RGBA", "webp"),
            ("L", "webp"),
            ("I;16", "tiff"),
            ("P", "bmp"),
            ("LA", "png"),
            ("RGB", "tiff"),
            ("1", "png"),
        ]
    ):
        h, w = 20 + 7 * i, 50 - 3 * i
        rgb = rng.integers(0, 256, (h, w, 3), np.uint8)
        im = Image.fromarray(rgb[..., 0].astype(np.uint16) * 200) if mode == "I;16" else None
        (im or Image.fromarray(rgb).convert(mode)).save(folder / f"{i}_{mode[0]}.{fmt}")
        names.append(folder / f"{i}_{mode[0]}.{fmt}")
    frames = [Image.new("L", (30, 20), v) for v in (40, 200)]  # animated: its first frame
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(folder / "anim.webp", save_all=True, append_images=frames[1:])
    return [*names, folder / "anim.gif", folder / "anim.webp"]


def test_a_greyscale_model_reads_every_format_mode_and_frame_count(digits_run, tmp_path):
    good = save_mixed_images(tmp_path / "imgs")
    result = predict(digits_run, [tmp_path / "imgs"])
    assert result.failed == {}
    assert sorted(p.path for p in result.predictions) == sorted(map(str, good))


def test_one_bad_file_costs_only_itself(digits_run, tmp_path, monkeypatch):
    """Unreadable files, and decodes that give a shape the batch cannot take, are reported
    one by one; every good image in the same batch is still predicted."""
    images_module = importlib.import_module("resnets.infer.images")  # where predict decodes

    good = save_mixed_images(tmp_path / "imgs")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "zero.jpg").write_bytes(b"")
    (bad / "text.png").write_text("not an image")
    (bad / "truncated.png").write_bytes(good[0].read_bytes()[:60])
    wrong = {  # files that decode, to what a batch cannot hold
        "two_channels.png": torch.zeros(2, 30, 30, dtype=torch.uint8),
        "frames.png": torch.zeros(3, 1, 30, 30, dtype=torch.uint8),
        "floats.png": torch.zeros(1, 30, 30),
        "empty.png": torch.zeros(1, 0, 30, dtype=torch.uint8),
    }
    for name in [*wrong, "odd.png"]:
        Image.new("L", (8, 8)).save(bad / name)

    class OddError(Exception):
        pass

    real_decode = images_module.decode

    def decode(path, channels):
        if path.name == "odd.png":
            raise OddError
        return wrong[path.name] if path.name in wrong else real_decode(path, channels)

    monkeypatch.setattr(images_module, "decode", decode)
    result = predict(digits_run, [tmp_path / "imgs", bad], batch_size=64)
    assert sorted(p.path for p in result.predictions) == sorted(map(str, good))
    assert sorted(result.failed) == sorted(str(f) for f in bad.iterdir())
    assert result.failed[str(bad / "odd.png")] == "OddError"
    assert result.failed[str(bad / "two_channels.png")].startswith("decoded to torch.uint8 [2,")


@pytest.fixture(scope="module")
def seg_weights(tmp_path_factory):
    """A tiny segmentation run (shapes, 32 x 32, one epoch): only its masks' files matter."""
    from resnets import train

    run = tmp_path_factory.mktemp("seg") / "run"
    train(
        task="segmentation",
        data="shapes",
        synthetic_samples=64,
        epochs=1,
        image_size=32,
        batch_size=32,
        out=str(run),
        **QUIET,
    )
    return run / "best.safetensors"


def test_segmentation_masks_never_collide_and_keep_the_image_size(seg_weights, tmp_path):
    rng = np.random.default_rng(0)
    sizes = {"a/x.png": (40, 30), "b/x.png": (20, 50), "b/x.jpg": (33, 33), "b/c/x.png": (9, 7)}
    for name, (h, w) in sizes.items():
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w), np.uint8)).save(tmp_path / "in" / name)
    result = predict(seg_weights, [tmp_path / "in"], masks_out=tmp_path / "masks", batch_size=3)
    assert result.failed == {}
    masks = {
        Path(p.path).relative_to(tmp_path / "in").as_posix(): p.mask for p in result.predictions
    }
    assert masks == {name: str(tmp_path / "masks" / (name + ".png")) for name in sizes}
    for name, (h, w) in sizes.items():
        mask = np.asarray(Image.open(masks[name]))
        assert mask.shape == (h, w) and set(np.unique(mask)) <= {0, 127, 254}


def test_segmentation_masks_never_overwrite_an_input(seg_weights, tmp_path):
    """A mask whose path is one of the inputs is refused; the same file twice is no clash."""
    (tmp_path / "in" / "m").mkdir(parents=True)
    Image.new("L", (16, 16), 90).save(tmp_path / "in" / "x.png")
    Image.new("L", (16, 16), 30).save(tmp_path / "in" / "m" / "x.png.png")
    before = (tmp_path / "in" / "m" / "x.png.png").read_bytes()
    inputs = [tmp_path / "in", tmp_path / "in" / "m" / "x.png.png"]
    result = predict(seg_weights, inputs, masks_out=tmp_path / "in" / "m")
    assert list(result.failed) == [str(tmp_path / "in" / "x.png")]
    assert "would overwrite" in result.failed[str(tmp_path / "in" / "x.png")]
    assert (tmp_path / "in" / "m" / "x.png.png").read_bytes() == before
    assert [p.path for p in result.predictions] == [str(inputs[1])] * 2


def test_existing_mask_files_are_replaced_only_with_overwrite(seg_weights, tmp_path):
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.new("L", (30, 20), 90).save(tmp_path / "in" / "x.png")
    masks = tmp_path / "masks"
    masks.mkdir()
    (masks / "x.png.png").write_bytes(b"mine")
    result = predict(seg_weights, [tmp_path / "in"], masks_out=masks)
    assert "pass --overwrite" in next(iter(result.failed.values()))
    assert (masks / "x.png.png").read_bytes() == b"mine"
    result = predict(seg_weights, [tmp_path / "in"], masks_out=masks, overwrite=True)
    assert not result.failed and Image.open(masks / "x.png.png").size == (30, 20)


def test_predictions_to_csv_and_json_files(digits_run, tmp_path, capsys):
    import csv

    paths, _ = save_digit_pngs(tmp_path / "imgs", n=3)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    table = tmp_path / "out.csv"
    code = main(
        ["predict", str(digits_run), str(tmp_path / "imgs"), "--topk", "2", "--out", str(table)]
    )
    assert code == 1  # one unreadable image: said, and in the file
    captured = capsys.readouterr()
    assert (
        captured.out == ""
        and f"wrote 5 rows (4 predicted, 1 unreadable) to {table}" in captured.err
    )
    rows = list(csv.DictReader(table.open()))
    assert list(rows[0]) == ["path", "class_1", "prob_1", "class_2", "prob_2", "mask", "error"]
    direct = predict(digits_run, [*paths, tmp_path / "imgs" / "big_rgb.jpg"], topk=2)
    by_path = {r["path"]: r for r in rows}
    for p in direct.predictions:
        row = by_path[p.path]
        assert [row["class_1"], row["class_2"]] == [c for c, _ in p.top]
        assert float(row["prob_1"]) == pytest.approx(p.top[0][1], abs=1e-6)
    assert by_path[str(tmp_path / "imgs" / "broken.png")]["error"]
    as_json = tmp_path / "out.json"
    result = predict(digits_run, paths, topk=1, out=as_json)
    assert json.loads(as_json.read_text()) == json.loads(json.dumps(result.to_dict()))
    with pytest.raises(UsageError, match="exists; pass --overwrite"):
        predict(digits_run, paths, out=as_json)
    with pytest.raises(UsageError, match=r"name a \.csv or \.json file"):
        predict(digits_run, paths, out=tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()
