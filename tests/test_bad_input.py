"""Bad input, tried systematically: every case must give a one-line error, a non-zero exit
code, and leave every existing file (and the folder listing) exactly as it was."""

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from resnets import create_model
from resnets.cli import main
from resnets.errors import UsageError
from resnets.training.config import FIELDS
from resnets.training.resolve import resolve

from .helpers import write_image_folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, digits_run) -> Path:
    """A folder with a finished run, images good and bad, configs, and weights files."""
    ws = tmp_path_factory.mktemp("workspace")
    shutil.copytree(digits_run, ws / "run")
    img = ws / "img"
    img.mkdir()
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(img / "ok.png")
    (img / "zero.jpg").write_bytes(b"")
    good_jpeg = img / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        good_jpeg
    )
    (img / "truncated.jpg").write_bytes(good_jpeg.read_bytes()[:300])
    (img / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    (img / "text.jpg").write_text("this is not an image")
    Image.new("L", (12_000, 12_000)).save(img / "huge.png")
    write_image_folder(ws / "shapes", per_class=6)
    (ws / "shapes" / "empty").mkdir()
    write_image_folder(ws / "oneclass", classes=("only",), per_class=6)
    (ws / "emptydir").mkdir()
    (ws / "emptydir_docs").mkdir()
    (ws / "emptydir_docs" / "notes.txt").write_text("mine")
    write_image_folder(ws / "shapes_named", per_class=4)
    (ws / "afile").write_text("x")
    cfg = ws / "cfg"
    cfg.mkdir()
    (cfg / "bad.yaml").write_text("epochs: [1,\n")
    (cfg / "bad.toml").write_text("epochs = = 3\n")
    (cfg / "unknown.yaml").write_text("epoch: 3\n")
    (cfg / "type.yaml").write_text("batch_size: big\n")
    (cfg / "type.toml").write_text('epochs = "three"\n')
    w = ws / "weights"
    w.mkdir()
    torch.save(create_model("resnet32").state_dict(), w / "resnet32.pth")
    torch.save({"conv1.weight": torch.zeros(1)}, w / "foreign.pth")
    (w / "truncated.safetensors").write_bytes((ws / "run" / "best.safetensors").read_bytes()[:100])
    with open(w / "evil.pth", "wb") as f:
        f.write(b"\x80\x02cposix\nsystem\nq\x00X\x05\x00\x00\x00touchq\x01\x85q\x02Rq\x03.")
    for name, source in (("truncated", "last.pt"), ("foreign", None)):
        broken = ws / f"{name}_run"
        shutil.copytree(digits_run, broken)
        if source:
            data = (broken / source).read_bytes()
            (broken / "last.pt").write_bytes(data[: len(data) // 3])
        else:
            torch.save(create_model("resnet20").state_dict(), broken / "last.pt")
    return ws


R, IMG, W = "run", "img", "weights"
CASES = {
    # images given to predict
    "zero-byte JPEG": (["predict", R, f"{IMG}/zero.jpg"], "could not be read"),
    "truncated JPEG": (["predict", R, f"{IMG}/truncated.jpg"], "could not be read"),
    "corrupt PNG": (["predict", R, f"{IMG}/corrupt.png"], "could not be read"),
    "text file named .jpg": (["predict", R, f"{IMG}/text.jpg"], "could not be read"),
    "huge image": (["predict", R, f"{IMG}/huge.png"], "could not be read"),
    "missing image": (["predict", R, f"{IMG}/nope.png"], "does not exist"),
    "empty image folder": (["predict", R, "emptydir"], "no images given"),
    "topk zero": (["predict", R, f"{IMG}/ok.png", "--topk", "0"], "--topk must be at least 1"),
    "weights without metadata": (
        ["predict", f"{W}/resnet32.pth", f"{IMG}/ok.png"],
        "no resnets metadata",
    ),
    "truncated weights": (
        ["predict", f"{W}/truncated.safetensors", f"{IMG}/ok.png"],
        "cannot read",
    ),
    "weights that carry code": (["predict", f"{W}/evil.pth", f"{IMG}/ok.png"], "refused to load"),
    "no such run": (["evaluate", "nope"], "neither a run folder nor a weights file"),
    "bad split": (["evaluate", R, "--split", "dev"], "invalid choice: 'dev'"),
    # datasets
    "empty class folder": (["train", "--data", "imagefolder:shapes"], "has no images"),
    "one class": (["train", "--data", "imagefolder:oneclass"], "only one class"),
    "missing data folder": (["train", "--data", "imagefolder:nope"], "does not exist"),
    "imagefolder without path": (["train", "--data", "imagefolder"], "needs a path"),
    "unknown dataset": (["train", "--data", "imagenet"], "unknown dataset"),
    "cifar not there": (["train", "--data", "cifar10:emptydir"], "no cifar10 found"),
    "val split too big": (["train", "--val-split", "1.5"], r"val_split must be in \[0, 1\)"),
    "batch bigger than data": (["train", "--batch-size", "4096"], "fewer than one batch"),
    # checkpoints and weights
    "truncated checkpoint": (["train", "--resume", "truncated_run"], "unreadable or truncated"),
    "foreign checkpoint": (
        ["train", "--resume", "foreign_run"],
        "not a resnets training checkpoint",
    ),
    "resume nothing": (["train", "--resume", "emptydir"], "no run to resume"),
    "missing pretrained": (["train", "--pretrained", f"{W}/nope.pth"], "does not exist"),
    "pretrained of another depth": (
        ["train", "--pretrained", f"{W}/resnet32.pth"],
        "does not fit resnet20",
    ),
    "pretrained not a ResNet": (
        ["train", "--pretrained", f"{W}/foreign.pth"],
        "not a ResNet state_dict",
    ),
    # configuration
    "malformed YAML": (["train", "--config", "cfg/bad.yaml"], "cannot parse"),
    "malformed TOML": (["train", "--config", "cfg/bad.toml"], "cannot parse"),
    "unknown config key": (["train", "--config", "cfg/unknown.yaml"], "did you mean epochs"),
    "wrong type in YAML": (["train", "--config", "cfg/type.yaml"], "must be an integer"),
    "wrong type in TOML": (["train", "--config", "cfg/type.toml"], "must be an integer"),
    "missing config file": (["train", "--config", "cfg/nope.yaml"], "does not exist"),
    "negative batch size": (["train", "--batch-size", "-1"], r"must be in \[1, inf\)"),
    "zero batch size": (["train", "--batch-size", "0"], r"must be in \[1, inf\)"),
    "zero epochs": (["train", "--epochs", "0"], r"must be in \[1, inf\)"),
    "negative lr": (["train", "--lr", "-0.1"], r"lr must be in \(0, inf\)"),
    "zero lr": (["train", "--lr", "0"], r"lr must be in \(0, inf\)"),
    "negative clip-grad": (["train", "--clip-grad", "-1"], r"clip_grad must be in \(0, inf\)"),
    "momentum above one": (["train", "--momentum", "2"], r"momentum must be in \[0, 1\)"),
    "min-lr above lr": (["train", "--min-lr", "0.5"], "must be below the peak lr"),
    "label smoothing 1.5": (["train", "--label-smoothing", "1.5"], "label_smoothing must be"),
    "epochs and steps": (["train", "--epochs", "2", "--steps", "9"], "both set in arguments"),
    "overwrite a user's folder": (
        ["train", "--out", "emptydir_docs", "--overwrite"],
        "not a resnets run folder",
    ),
    "num-classes not the data's": (["train", "--num-classes", "3"], "digits has 10 classes"),
    "unknown amp": (["train", "--amp", "fp8"], "invalid choice: 'fp8'"),
    "unknown flag": (["train", "--epocs", "3"], "unrecognized arguments"),
    "freeze too many stages": (["train", "--freeze-stages", "9"], "has 3 stages"),
    "nonexistent device": (["train", "--device", "cuda:7"], "does not exist here"),
    "unknown device": (["train", "--device", "tpu"], "unknown device"),
    "unknown model": (["train", "--model", "resnet5"], "unknown model 'resnet5'"),
    "output is a file": (["train", "--out", "afile"], "is a file"),
    "output is an existing run": (["train", "--out", R], "already exists"),
    "impossible model option": (
        ["info", "resnet18", "--in-chans", "0"],
        "in_chans must be at least 1",
    ),
    "zero input size": (
        ["info", "resnet18", "--input-size", "0"],
        "--input-size must be at least 1",
    ),
    "a run's CSV as weights": (
        ["predict", f"{R}/metrics.csv", f"{IMG}/ok.png"],
        "cannot read .*metrics.csv as PyTorch weights",
    ),
    "depths not integers": (
        ["experiment", "gradients", "--depths", "20,x"],
        "--depths takes integers separated by commas",
    ),
    "an image given as the weights": (
        ["evaluate", f"{IMG}/ok.png"],
        "is an image, not weights: give the run folder",
    ),
    "an image given as an npz": (
        ["train", "--data", f"npz:{IMG}/ok.png"],
        r"is not a readable .npz file \(not a NumPy .npz archive\)",
    ),
    "a mask pattern for class folders": (
        ["train", "--data", "imagefolder:shapes_named", "--mask-pattern", "{stem}_gt.png"],
        "--mask-pattern applies to --data segfolder:DIR",
    ),
    "a CSV that is an image": (
        ["train", "--data", f"csv:{IMG}/ok.png"],
        "is not a UTF-8 CSV text file",
    ),
    "evaluate with unknown classes": (
        ["evaluate", f"{R}/best.safetensors", "--data", "imagefolder:shapes_named"],
        "classes the weights do not know: circle",
    ),
}


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "dir"
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_nonzero_exit_and_changes_nothing(
    case, workspace, monkeypatch, capsys
):
    argv, message = CASES[case]
    monkeypatch.chdir(workspace)
    before = snapshot(workspace)
    code = main(["-q", *argv] if argv[0] == "predict" else argv)
    err = capsys.readouterr().err.strip()
    assert code != 0, case
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(message, err), err
    assert snapshot(workspace) == before, "files changed"


def test_there_are_at_least_30_kinds():
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    "make",
    [
        lambda p: Image.new("CMYK", (40, 30), (10, 200, 30, 0)).save(p.with_suffix(".jpg")),
        lambda p: Image.fromarray(np.full((30, 40), 40000, np.uint16)).save(p.with_suffix(".png")),
        lambda p: Image.new("P", (40, 30), 3).save(p.with_suffix(".png")),
        lambda p: Image.new("RGBA", (40, 30), (200, 10, 10, 80)).save(p.with_suffix(".png")),
        lambda p: Image.new("RGB", (640, 30), (1, 2, 3)).save(p.with_suffix(".png"), format="JPEG"),
        lambda p: Image.new("L", (3, 3), 90).save(p.with_suffix(".bmp")),
    ],
    ids=["cmyk-jpeg", "16-bit-png", "palette-png", "alpha-png", "jpeg-named-png", "tiny-bmp"],
)
def test_unusual_but_valid_images_are_predicted(make, digits_run, tmp_path, capsys):
    make(tmp_path / "image")
    (path,) = list(tmp_path.glob("image.*"))
    assert main(["predict", str(digits_run), str(path), "--topk", "1"]) == 0
    assert path.name in capsys.readouterr().out


values = st.one_of(
    st.integers(-10, 10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.booleans(),
    st.none(),
    st.lists(st.integers(-5, 5), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*FIELDS, "bogus", "epoch"]), values, max_size=4))
def test_any_option_values_either_resolve_or_fail_as_usage_errors(flags):
    try:
        cfg = resolve(flags)
    except UsageError:
        return
    assert cfg.batch_size > 0 and cfg.epochs > 0 and cfg.lr > 0
