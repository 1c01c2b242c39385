"""The run folder never loses what it did not make, nor a good run for a failing one."""

import datetime
import hashlib
import json
import shutil

import pytest

from resnets import train
from resnets.cli import main
from resnets.errors import DataError, TrainingError, UsageError
from resnets.training import run_folder as run_module
from resnets.training.resolve import resolve
from resnets.training.run_folder import default_folder

from ..helpers import quick, write_image_folder

QUICK = quick()


def snapshot(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_overwrite_refuses_a_folder_resnets_did_not_make(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.txt").write_text("years of work")
    (docs / "config.yaml").write_text("mine: true\n")
    before = snapshot(docs)
    code = main(["train", "--out", str(docs), "--overwrite", "--epochs", "1", "--no-progress"])
    assert code == 2
    assert "is not a resnets run folder" in capsys.readouterr().err
    assert snapshot(docs) == before


def test_overwrite_keeps_the_old_run_when_the_new_one_fails_first(digits_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    before = snapshot(run)
    with pytest.raises(TrainingError, match="NaN or infinite"):
        train(out=str(run), overwrite=True, lr=1e30, **QUICK)  # diverges in the first epoch
    assert snapshot(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing left aside


def test_overwrite_replaces_a_run_once_the_new_one_has_a_checkpoint(digits_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    old_summary = json.loads((run / "summary.json").read_text())
    train(out=str(run), overwrite=True, seed=5, **QUICK)
    new_summary = json.loads((run / "summary.json").read_text())
    assert new_summary["epochs"] == 1 != old_summary["epochs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_run_that_fails_at_start_leaves_nothing_behind(tmp_path):
    with pytest.raises(TrainingError):
        train(out=str(tmp_path / "new"), lr=1e30, **QUICK)
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "empty"
    existing.mkdir()
    with pytest.raises(TrainingError):
        train(out=str(existing), lr=1e30, **QUICK)
    assert existing.is_dir() and not any(existing.iterdir())  # as it was: empty, still there


def test_a_rerun_reuses_a_folder_left_by_a_run_that_never_trained(tmp_path):
    left = tmp_path / "left"
    left.mkdir()
    (left / "manifest.json").write_text("{}")  # what a killed start leaves
    (left / "config.yaml").write_text("epochs: 1\n")
    train(out=str(left), **QUICK)
    assert (left / "last.pt").is_file()


def test_strict_start_failure_on_bad_images_leaves_no_folder(tmp_path):
    data = write_image_folder(tmp_path / "imgs", per_class=8)
    for i in range(6):  # some land in the training split, read before any checkpoint
        (data / "circle" / f"broken{i}.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken\d\.png"):
        train(
            data=f"imagefolder:{data}",
            image_size=16,
            batch_size=4,
            strict=True,
            num_workers=0,
            out=str(tmp_path / "run"),
            **QUICK,
        )
    assert not (tmp_path / "run").exists()


def test_two_runs_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 11, 23, 9, 0, 0)

    monkeypatch.setattr(run_module.datetime, "datetime", Frozen)
    cfg = resolve({})
    (first, made), (second, _) = default_folder(cfg), default_folder(cfg)
    assert first != second and first.is_dir() and second.is_dir()
    assert made == [first, tmp_path / "runs"] or made == [first, first.parent]
    assert second.name == first.name + "-2"


def test_a_failed_start_gives_back_a_claimed_default_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="fewer than one batch"):
        train(batch_size=4096, **QUICK)
    assert not (tmp_path / "runs").exists()  # nor the runs/ folder it made


def test_resume_refuses_changed_data_and_keeps_the_split_when_told(tmp_path):
    data = write_image_folder(tmp_path / "imgs", per_class=10)
    run = tmp_path / "run"
    options = {"data": f"imagefolder:{data}", "image_size": 16, "batch_size": 4}
    options |= {"num_workers": 0, "progress": False, "tensorboard": False}
    train(out=str(run), epochs=1, **options)
    (data / "circle" / "0.jpg").unlink()
    (data / "square" / "extra.png").write_bytes((data / "square" / "1.png").read_bytes())
    with pytest.raises(DataError, match=r"1 added, e\.g\. square/extra\.png; 1 removed"):
        train(resume=str(run), epochs=2)
    summary = train(resume=str(run), epochs=2, allow_changed_data=True)
    assert summary["epochs"] == 2
    assert any("kept the run's split by file name" in n for n in summary["notes"])


def test_ctrl_c_before_the_first_checkpoint_of_an_overwrite_puts_the_old_run_back(
    digits_run, tmp_path, monkeypatch
):
    from resnets.training import loop
    from resnets.training.saving import Interrupted

    class StopNow:
        requested = True

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    before = snapshot(run)
    monkeypatch.setattr(loop, "StopRequest", StopNow)
    with pytest.raises(Interrupted, match="the run it was replacing is back in"):
        train(out=str(run), overwrite=True, **QUICK)
    assert snapshot(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_run_left_aside_by_a_killed_overwrite_is_put_back(digits_run, tmp_path):
    run, aside = tmp_path / "run", tmp_path / ".run.replaced-4242"
    shutil.copytree(digits_run, aside)
    before = snapshot(aside)
    run.mkdir()
    (run / "manifest.json").write_text("{}")  # the killed run got this far
    with pytest.raises(UsageError, match="already exists"):
        train(out=str(run), **QUICK)  # the old run is back, so this one must ask
    assert snapshot(run) == before and not aside.exists()


def test_an_out_inside_the_data_folder_is_refused(tmp_path):
    data = write_image_folder(tmp_path / "imgs", per_class=4)
    with pytest.raises(UsageError, match="inside the data folder"):
        train(data=f"imagefolder:{data}", out=str(data / "run"), **QUICK)
    assert not (data / "run").exists()


def test_a_failed_run_removes_the_parents_it_made(tmp_path):
    with pytest.raises(TrainingError):
        train(out=str(tmp_path / "x" / "y" / "z"), lr=1e30, **QUICK)
    assert not (tmp_path / "x").exists()


def test_relative_data_paths_are_recorded_absolute(tmp_path, monkeypatch):
    data = write_image_folder(tmp_path / "imgs", per_class=6)
    monkeypatch.chdir(tmp_path)
    s = train(
        data="imagefolder:imgs",
        image_size=16,
        batch_size=4,
        num_workers=0,
        out=str(tmp_path / "run"),
        **QUICK,
    )
    assert s["data"] == f"imagefolder:{data}"
    monkeypatch.chdir(tmp_path.parent)  # evaluate from elsewhere still finds the data
    from resnets import evaluate

    assert evaluate(tmp_path / "run").count == s["test_images"]
