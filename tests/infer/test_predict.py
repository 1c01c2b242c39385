import json

import numpy as np
import torch
from PIL import Image

from resnets import ImageClassifier, load_model, predict
from resnets.cli import main
from resnets.data import DataOptions, load_splits


def save_digit_pngs(folder, n=6):
    """Test-split digits written as 8-bit greyscale PNG files, plus an RGB upscaled copy."""
    splits = load_splits(DataOptions(), seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = splits.test.images[i, 0].numpy()
        path = folder / f"{i}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    big = Image.fromarray(splits.test.images[0, 0].numpy()).resize((64, 64)).convert("RGB")
    big.save(folder / "big_rgb.jpg", quality=95)
    return paths, splits


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
    first = clf.predict(paths).predictions
    clf.save(tmp_path / "clf.safetensors")
    again = ImageClassifier.load(tmp_path / "clf.safetensors")
    assert [p.top for p in again.predict(paths).predictions] == [p.top for p in first]
    assert np.isfinite(first[0].top[0][1])
