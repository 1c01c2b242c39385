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


def test_the_module_runs_from_the_folder_that_holds_a_clone(tmp_path):
    """A clone named resnets/ in the current folder must not shadow the installed package
    (python puts the current folder first on the path): the src layout keeps the package
    one level down."""
    clone = tmp_path / "resnets"
    (clone / "src").mkdir(parents=True)
    (clone / "pyproject.toml").write_text("[project]\nname = 'resnets'\n")
    done = subprocess.run(
        [sys.executable, "-m", "resnets", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("resnets ") and "unknown" not in done.stdout


def test_train_prints_a_one_screen_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(["train", "--epochs", "1", "--out", str(out), "--no-progress", "--no-tensorboard"])
        == 0
    )
    text = capsys.readouterr().err  # the log: epoch lines, then the summary
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


@pytest.mark.parametrize(
    "where", ["resnets.cli.parser._add_train_flags", "resnets.data.load_splits"]
)
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


def test_a_flag_of_another_command_is_not_suggested_back(capsys):
    assert main(["convert", "a.pth", "b.pth", "--out", "x"]) == 2  # --out is train's, not convert's
    err = capsys.readouterr().err
    assert err.startswith("error: unrecognized arguments: --out x")
    assert "did you mean --out" not in err and "(see resnets convert --help)" in err


def test_a_closed_pipe_is_not_a_traceback(monkeypatch):
    class ClosedPipe:  # what `resnets list | head -1` leaves behind once head has exited
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["list"]) == 0


def _python(code: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.mark.parametrize(
    "argv", [["--help"], ["--version"], ["train", "--help"], ["predict", "--help"]]
)
def test_help_and_version_load_no_torch(argv):
    code = (
        "import sys\nfrom resnets.cli import main\n"
        f"code = main({argv!r})\nprint(code, 'torch' in sys.modules, file=sys.stderr)"
    )
    done = _python(code)
    assert done.stderr.strip().splitlines()[-1] == "0 False"
    assert "resnets" in done.stdout


def test_train_help_shows_the_default_recipes_values_and_readable_booleans():
    from resnets.cli import build_parser

    parser = build_parser()._subparsers._group_actions[0].choices["train"]
    text = " ".join(parser.format_help().split())  # argparse wraps lines anywhere
    for shown in ("(default: 0.1)", "(default: 30)", "(default: 128)", "(default: 0.0005)"):
        assert shown in text, shown
    assert "--no-no-" not in text
    assert "--decay-norm-bias, --no-decay-norm-bias" in text
    assert "{sgd,adamw}" in text  # choices shown, not a placeholder


def test_an_old_option_name_still_reads_as_it_meant(tmp_path):
    from resnets.training.resolve import resolve

    old = tmp_path / "old.yaml"
    old.write_text("no_decay_norm_bias: true\n")
    assert resolve({}, old).decay_norm_bias is False
    assert resolve({"no_decay_norm_bias": False}).decay_norm_bias is True
    assert resolve({"recipe": "modern"}).decay_norm_bias is False
    assert resolve({}).decay_norm_bias is True


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_works_before_or_after_the_command_name(where, tmp_path, capsys):
    args = ["train", "--epochs", "1", "--out", str(tmp_path / "r"), "--no-tensorboard"]
    assert main(["-q", *args] if where == "before" else [*args, "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert (tmp_path / "r" / "summary.json").is_file()


def test_a_piped_log_has_epoch_lines_and_no_bar_noise(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "resnets",
            "train",
            "--epochs",
            "2",
            "--out",
            str(tmp_path / "r"),
            "--no-tensorboard",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    lines = done.stderr.splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 2
    assert any("test top-1 / top-5" in line for line in lines)


def test_the_python_api_logs_like_the_command_and_can_be_silenced(tmp_path):
    def train(name: str) -> str:
        out = str(tmp_path / name)
        return f"resnets.train(epochs=1, out={out!r}, tensorboard=False)\n"

    later = "logging.basicConfig(level=logging.INFO, format='ROOT %(message)s')\n"
    both = _python("import logging, resnets\n" + train("a") + later + train("b"))
    assert both.returncode == 0, both.stderr
    first = both.stderr.partition("ROOT ")[0]
    assert "epoch   1/1" in first and "note: validation split" in first  # as the CLI prints
    assert "ROOT epoch   1/1" in both.stderr  # a root handler set up later takes the records
    assert both.stderr.count("epoch   1/1") == 2  # each run's line once, not twice
    silenced = "import logging, resnets\nlogging.getLogger('resnets').setLevel(logging.WARNING)\n"
    quiet = _python(silenced + train("c"))
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_bash_completion_completes_commands_flags_and_choices(capsys):
    import shutil

    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert main(["completion", "zsh"]) == 0
    assert capsys.readouterr().out.startswith("#compdef resnets")
    if shutil.which("bash") is None:
        pytest.skip("no bash here")

    def complete(*words: str) -> list[str]:
        call = (
            f"COMP_WORDS=(resnets {' '.join(words)}); COMP_CWORD={len(words)}; "
            '_shtab_resnets; echo "${COMPREPLY[@]}"'
        )
        done = subprocess.run(
            ["bash", "-c", script + "\n" + call], capture_output=True, text=True, check=True
        )
        return done.stdout.split()

    assert complete("tr") == ["train"]
    assert complete("train", "--lr-s") == ["--lr-scaling"]
    assert complete("evaluate", "run", "--split", '""') == ["train", "val", "test", "all"]
