"""The CLI shell: output of info and list, and one-line errors with exit codes."""

import json
import subprocess
import sys

import pytest

from resnets.cli import main


def test_info_prints_params_macs_and_stages(capsys):
    assert main(["info", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "25,557,032 parameters" in out and "4.089 G per image" in out
    assert "2048 x 7 x 7" in out


def test_info_json_with_input_size(capsys):
    assert main(["info", "resnet20", "--input-size", "32", "--batch-size", "8", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 269_722 and data["batch_size"] == 8
    assert [r["name"] for r in data["rows"]] == ["stem", "stage1", "stage2", "stage3", "head"]


def test_list_filters(capsys):
    assert main(["list", "wrn*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["wrn16_8", "wrn28_10", "wrn40_4"]


def test_unknown_model_is_one_line_with_suggestions_and_exit_2(capsys):
    assert main(["info", "resnet5O"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("error: unknown model 'resnet5O'; did you mean") and "resnet50" in err


def test_impossible_override_exits_2(capsys):
    assert main(["info", "resnet18", "--in-chans", "0"]) == 2
    assert "in_chans must be at least 1" in capsys.readouterr().err


def test_console_script_runs_as_a_module():
    done = subprocess.run(
        [sys.executable, "-m", "resnets", "info", "nope"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "Traceback" not in done.stderr


def test_train_prints_a_one_screen_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(["train", "--epochs", "1", "--out", str(out), "--no-progress", "--no-tensorboard"])
        == 0
    )
    text = capsys.readouterr().out
    assert "test top-1 / top-5" in text and str(out) in text and len(text.splitlines()) < 20


def test_train_rejects_bad_values_with_exit_2(tmp_path, capsys):
    assert main(["train", "--batch-size", "-1", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == "error: batch_size must be in [1, inf), got -1"
    assert main(["train", "--epochs", "two"]) == 2
    assert "epochs in arguments must be an integer, got 'two'" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lrr: 0.1\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "did you mean lr" in capsys.readouterr().err
    assert main(["train", "--device", "cuda:7"]) == 2
    assert "does not exist here" in capsys.readouterr().err


def test_every_option_is_a_flag():
    from resnets.cli import build_parser
    from resnets.training.config import FIELDS

    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for name in FIELDS:
        assert "--" + name.replace("_", "-") in text, name


def test_importing_the_cli_loads_no_torch():
    code = "import sys, resnets.cli, resnets; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("where", ["resnets.cli._add_train_flags", "resnets.data.load_splits"])
def test_ctrl_c_during_start_up_is_one_line(where, tmp_path, monkeypatch, capsys):
    import importlib

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    module, name = where.rsplit(".", 1)
    target = importlib.import_module(module)
    if name == "load_splits":  # as the training setup imported it
        target = importlib.import_module("resnets.training.setup")
    monkeypatch.setattr(target, name, interrupted)
    assert main(["train", "--out", str(tmp_path / "r"), "--epochs", "1"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"
    assert not (tmp_path / "r").exists()


def test_a_mistyped_flag_gets_a_suggestion(capsys):
    assert main(["train", "--imagesize", "28"]) == 2
    assert "did you mean --image-size?" in capsys.readouterr().err


def test_a_closed_pipe_is_not_a_traceback(monkeypatch):
    class ClosedPipe:  # what `resnets list | head -1` leaves behind once head has exited
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["list"]) == 0
