"""resnets runs: the table of run folders and the comparison of two, read from real runs."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resnets import train
from resnets.analysis import runs as runs_module
from resnets.analysis.compare import compare_runs
from resnets.analysis.runs import list_runs, read_run, runs_table
from resnets.errors import UsageError
from resnets.tasks import TASKS
from resnets.training import loop
from resnets.training.saving import Interrupted
from resnets.training.signals import StopRequest

from ..helpers import StopAtStep, quick

# --amp pinned: "auto" chooses by a measurement, and two runs on a loaded machine may choose
# differently (which compare would rightly list as a difference)
QUICK = quick(
    data="synthetic", synthetic_samples=64, image_size=16, batch_size=16, epochs=2, amp="none"
)


def crash(run, measure):
    raise RuntimeError("the test split's disk went away")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Real runs: a and b (finished, lr 0.1 and 0.05), seg (segmentation, finished), nested/cut
    (stopped by a SIGINT in its second epoch) and crashed (an error after its last epoch
    checkpoint)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RESNETS_CACHE", str(tmp_path_factory.mktemp("cache")))
        train(out=str(root / "a"), **QUICK)
        train(out=str(root / "b"), **{**QUICK, "lr": 0.05})
        train(out=str(root / "seg"), **{**QUICK, "data": "shapes", "task": "segmentation"})
        mp.setattr(loop, "StopRequest", lambda: StopAtStep(5))
        with pytest.raises(Interrupted):
            train(out=str(root / "nested" / "cut"), **QUICK)
        mp.setattr(loop, "StopRequest", StopRequest)
        mp.setattr(loop, "finish", crash)
        with pytest.raises(RuntimeError, match="disk went away"):
            train(out=str(root / "crashed"), **QUICK)
    return root


def by_name(rows):
    return {r.path.name: r for r in rows}


def age(folder: Path, seconds: float) -> None:
    """As if every file of the folder had been written `seconds` earlier."""
    for path in folder.rglob("*"):
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def test_rows_match_the_summaries(root):
    rows = by_name(list_runs(root))
    assert set(rows) == {"a", "b", "seg", "cut", "crashed"}
    for name, task, metric in (
        ("a", "classification", "acc1"),
        ("b", "classification", "acc1"),
        ("seg", "segmentation", "dice"),
    ):
        row, summary = rows[name], json.loads((root / name / "summary.json").read_text())
        assert (row.state, row.model, row.data, row.task) == (
            "finished",
            "resnet20",
            summary["data"],
            task,
        )
        assert (row.epochs, row.planned) == (summary["epochs"], 2)
        assert (row.metric, row.best) == (metric, summary[f"best_val_{metric}"])
        tests = {k.removeprefix("test_"): v for k, v in summary.items() if k.startswith("test_")}
        assert row.test == {k: v for k, v in tests.items() if k != "images"}
        assert row.test_score == summary[f"test_{metric}"]
        assert row.seconds >= summary["train_seconds"]
        assert row.started is not None
    assert set(rows["seg"].test) == {"dice", "iou", "pixel_acc", "loss"}
    seg_line = next(line for line in runs_table(list(rows.values())).splitlines() if "seg " in line)
    assert f"{rows['seg'].test['dice']:.2f} Dice / {rows['seg'].test['iou']:.2f} IoU" in seg_line


def test_a_run_stopped_by_ctrl_c_reads_interrupted(root):
    row = read_run(root / "nested" / "cut")
    assert row.state == "interrupted"
    assert f"resnets train --resume {row.path}" in row.reason
    with open(row.path / "metrics.csv") as f:
        first = next(csv.DictReader(f))
    assert (row.epochs, row.planned, row.test) == (1, 2, {})
    assert row.best == float(first["val_acc1"])  # from metrics.csv: there is no summary


def test_a_run_that_raised_reads_failed_with_its_error(root):
    row = read_run(root / "crashed")
    assert row.state == "failed"
    assert row.reason == "RuntimeError: the test split's disk went away; last.pt resumes it"


def test_a_killed_run_reads_running_until_it_has_been_quiet_too_long(root, tmp_path):
    killed = tmp_path / "killed"
    shutil.copytree(root / "crashed", killed)
    (killed / "FAILED.json").unlink()  # a kill writes nothing on the way out
    assert not (killed / "summary.json").exists()
    assert read_run(killed).state == "running"  # written seconds ago
    age(killed, 24 * 3600)
    row = read_run(killed)
    assert row.state == "failed" and "last.pt resumes it" in row.reason


def test_only_a_save_after_the_last_epoch_and_start_that_is_no_step_file_means_a_stop(
    root, tmp_path
):
    run = tmp_path / "crashed"
    shutil.copytree(root / "crashed", run)  # times kept: written seconds ago, so "running"
    (run / "FAILED.json").unlink()
    later = (run / "metrics.csv").stat().st_mtime_ns + 10**9
    os.utime(run / "last.pt", ns=(later, later))
    assert read_run(run).state == "interrupted"
    os.link(run / "last.pt", run / "step-00000007.pt")  # --save-every-steps links last.pt
    assert read_run(run).state == "running"
    (run / "step-00000007.pt").unlink()
    os.utime(run / "manifest.json", ns=(later + 1, later + 1))  # resumed since the stop
    assert read_run(run).state == "running"


def test_an_unreadable_or_half_written_folder_is_a_row_not_a_crash(root, tmp_path):
    shutil.copytree(root / "a", tmp_path / "corrupt")
    (tmp_path / "corrupt" / "config.yaml").write_text("model: [resnet20\nlr: 0.1\n")
    (tmp_path / "half").mkdir()
    shutil.copy(root / "a" / "manifest.json", tmp_path / "half")  # killed before config.yaml
    (tmp_path / "bad-summary").mkdir()
    for name in ("manifest.json", "config.yaml", "metrics.csv"):
        shutil.copy(root / "a" / name, tmp_path / "bad-summary")
    (tmp_path / "bad-summary" / "summary.json").write_text('{"epochs": 2,')
    shutil.copytree(root / "a", tmp_path / "list")
    (tmp_path / "list" / "config.yaml").write_text("- resnet20\n")
    rows = by_name(list_runs(tmp_path))
    assert {n: r.state for n, r in rows.items()} == dict.fromkeys(rows, "unreadable")
    assert set(rows) == {"corrupt", "half", "bad-summary", "list"}
    assert rows["list"].reason == "config.yaml: not a mapping of names to values"
    assert rows["corrupt"].reason.startswith("config.yaml: ")
    assert rows["half"].reason == "config.yaml: No such file or directory"
    assert rows["bad-summary"].reason.startswith("summary.json: ")
    table = runs_table([*rows.values(), *list_runs(root)], sort="best")
    assert f"unreadable: {tmp_path / 'corrupt'}: config.yaml: " in table


@pytest.mark.parametrize("key", ["start", "model", "data", "best", "test", "time"])
def test_each_sort_key_orders_the_table_with_missing_values_last(root, key):
    rows = list_runs(root)
    lines = runs_table(rows, sort=key).splitlines()
    assert lines[0].split() == [
        "run",
        "model",
        "data",
        "epochs",
        "best",
        "val",
        "test",
        "time",
        "state",
        "started",
    ]
    assert len({line.index(" 2/2 ") for line in lines[1:] if " 2/2 " in line}) == 1  # aligned
    shown = [by_name(rows)[Path(line.split()[0]).name] for line in lines[1:]]
    value, descending = runs_module.SORTS[key]
    values = [value(r) for r in shown]
    known = [v for v in values if v is not None]
    assert known == sorted(known, reverse=descending)
    assert values == known + [None] * (len(values) - len(known))
    assert len(shown) == len(rows)


def test_sorting_puts_what_the_key_says_first_and_refuses_an_unknown_key(root):
    rows = list_runs(root)

    def order(key):
        return [r.path.name for r in runs_module.sort_runs(rows, key)]

    assert order("data")[0] == "seg"  # shapes before synthetic
    assert order("test")[-2:] == ["crashed", "cut"]  # no test numbers: last, in path order
    assert order("start")[:2] == ["a", "b"]
    with pytest.raises(UsageError, match=r"sort by one of start, model, data, best, test, time$"):
        runs_table(rows, sort="accuracy")
    with pytest.raises(UsageError, match="'accuracy'"):
        runs_table([], sort="accuracy")


def test_an_empty_folder_says_how_to_make_a_run(tmp_path):
    message = runs_table(list_runs(tmp_path / "none"), root=tmp_path / "none")
    assert message == (
        f"no runs found under {tmp_path / 'none'}; "
        f"make one with: resnets train --out {tmp_path / 'none'}/NAME"
    )


def test_compare_lists_exactly_the_differing_keys_and_writes_a_figure(root, tmp_path, monkeypatch):
    c = compare_runs(root / "a", root / "b", out=tmp_path / "ab.png")
    assert c.differences == {"lr": (0.1, 0.05)}
    assert c.ignored == ["out"]
    assert c.figure == tmp_path / "ab.png"
    assert c.figure.read_bytes().startswith(b"\x89PNG") and c.figure.stat().st_size > 10_000
    text = c.text()
    assert "config: 1 difference (ignored, as they do not change the training: out)" in text
    assert text.splitlines()[4].split() == ["lr", "0.1", "0.05"]
    monkeypatch.chdir(tmp_path)  # the default lies beside run A, never in the current folder
    figure = compare_runs(root / "a", root / "nested" / "cut").figure
    assert figure == root.resolve() / "compare-a-cut.png" and figure.stat().st_size > 0
    assert not (tmp_path / "compare-a-cut.png").exists()


def test_compare_names_a_folder_that_is_not_a_run(root, tmp_path):
    with pytest.raises(UsageError, match=re.escape(f"{tmp_path} is not a run folder")):
        compare_runs(root / "a", tmp_path)


def test_the_table_loads_neither_pytorch_nor_matplotlib(root):
    code = (
        "import sys\nfrom resnets.analysis.runs import list_runs, runs_table\n"
        f"runs_table(list_runs({str(root)!r}))\n"
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_the_scores_mirror_the_tasks():
    assert {n: t.score for n, t in TASKS.items()} == runs_module.SCORES
    for name, shown in runs_module.TEST_SHOWN.items():
        assert set(shown) <= set(TASKS[name].test_keys)


def test_the_runs_command_prints_the_table_json_and_a_comparison(root, tmp_path, capsys):
    from resnets.cli import main

    assert main(["runs", str(root), "--sort", "test"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["run", "model", "data"] and len(lines) >= 6
    assert main(["runs", str(root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {Path(r["path"]).name for r in rows} == {"a", "b", "seg", "cut", "crashed"}
    figure = tmp_path / "ab.png"
    assert main(["runs", "--compare", str(root / "a"), str(root / "b"), "--out", str(figure)]) == 0
    assert "lr" in capsys.readouterr().out and figure.stat().st_size > 1000
    assert main(["runs", str(root), "--sort", "speed"]) == 2  # argparse names the choices
    assert "invalid choice" in capsys.readouterr().err


def test_a_failed_run_resumed_to_its_end_reads_finished(root, tmp_path):
    run = tmp_path / "crashed"
    shutil.copytree(root / "crashed", run)
    train(resume=str(run))
    assert not (run / "FAILED.json").exists()
    assert read_run(run).state == "finished"
