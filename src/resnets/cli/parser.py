"""The commands and their flags, declared without importing PyTorch: `--help` is instant."""

from __future__ import annotations

import argparse
import difflib

from .. import options
from . import commands, fewlabels

BACKEND_HELP = "eager: as trained; fast: folded BN + channels_last (+bf16 on GPU); auto: fastest"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2), like every other error here."""

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but arguments nobody takes are judged by the command they were
        given to: its own flags are the ones suggested."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            commands = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
            chosen = getattr(parsed, "command", None)
            owner = commands[0].choices.get(chosen, self) if commands else self
            owner.unrecognized(extras)
        return parsed

    def unrecognized(self, extras: list[str]) -> None:
        flags = sorted({o for a in self._actions for o in a.option_strings})
        close = [m for t in extras for m in difflib.get_close_matches(t, flags, n=1)]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        self.error(f"unrecognized arguments: {' '.join(extras)}{hint}")

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


class _Defaults(argparse.HelpFormatter):
    """Each option's default at the end of its help, unless there is nothing to say (None, an
    off switch) or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def _as_typed(value) -> str:
    """A default as a user would type it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, its help ending in the default recipe's value; unset
    flags stay out of the namespace (so that the recipe and the config file can set them)."""
    import typing

    from ..training.config import FIELDS, HINTS
    from ..training.recipes import RECIPES

    p.add_argument("--config", help="YAML or TOML file of options (flags override it)")
    p.add_argument("--nproc", type=int, help="start torchrun with N processes on this machine")
    for name, f in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        hint = HINTS[name]
        default = RECIPES["default"].get(name, f.default)
        text = f.metadata.get("help", "")
        if default is not None and "default" not in text:
            text += f" (default: {_as_typed(default)})"
        kwargs = {"default": argparse.SUPPRESS, "help": text.replace("%", "%%")}
        if typing.get_origin(hint) is typing.Literal:  # argparse shows the choices
            p.add_argument(flag, choices=typing.get_args(hint), **kwargs)
        elif bool in typing.get_args(hint) or hint is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            p.add_argument(flag, metavar=name.upper().replace("_", "-"), **kwargs)


def _inspect_commands(sub) -> None:
    """list and info: the registry and model statistics."""
    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    p.add_argument("--json", action="store_true", help="print each model's config as JSON")
    p.set_defaults(handler=commands.cmd_list)

    p = sub.add_parser("info", help="parameters, MACs, stage shapes, activation memory")
    p.add_argument("model", help="registered model name (see `resnets list`)")
    p.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="image side, or height and width of a 3D input (default: the model's)",
    )
    p.add_argument(
        "--input-depth",
        type=int,
        default=None,
        help="3D models: slices or frames (default: the model's, e.g. 16 for video)",
    )
    p.add_argument("--batch-size", type=int, default=1, help="batch for activation memory")
    p.add_argument("--in-chans", type=int, default=None, help="input channels")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=commands.cmd_info)


def _training_commands(sub) -> None:
    """train: one flag per TrainConfig field."""
    p = sub.add_parser(
        "train",
        help="train a model (default: ResNet-20 on the bundled digits)",
        description="Train a model. Defaults are the default recipe's; --recipe changes them.",
    )
    _add_train_flags(p)
    p.set_defaults(handler=commands.cmd_train)


def _inference_commands(sub) -> None:
    """evaluate, predict and explain."""
    _evaluate_command(sub)
    _predict_command(sub)
    _explain_command(sub)


def _evaluate_command(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="accuracy, per-class metrics, confusion matrix", formatter_class=_Defaults
    )
    p.add_argument("weights", help="run folder, weights file (.safetensors / .pt) or .onnx export")
    p.add_argument("--data", help="dataset spec (default: the run's own)")
    p.add_argument(
        "--split",
        choices=options.EVAL_SPLITS,
        help="all: every image; default: the run's test split, or all of --data OTHER",
    )
    p.add_argument("--tta-flip", action="store_true", help="average with the flipped image")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument(
        "--out", help="folder for eval-SPLIT.json and confusion-SPLIT.png (default: RUN/eval)"
    )
    p.add_argument("--backend", default="eager", choices=options.BACKENDS, help=BACKEND_HELP)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--explain",
        type=int,
        default=0,
        metavar="K",
        help="Grad-CAM maps of the K most confidently wrong images (in mistakes-SPLIT/)",
    )
    p.add_argument(
        "--allow-changed-data",
        action="store_true",
        help="the run's data changed: evaluate its own split, kept by file name",
    )
    p.set_defaults(handler=commands.cmd_evaluate)


def _predict_command(sub) -> None:
    p = sub.add_parser(
        "predict", help="top-k classes for image files or folders", formatter_class=_Defaults
    )
    p.add_argument(
        "weights", help="run folder, weights file with resnets metadata, or .onnx export"
    )
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--topk", type=int, default=5, help="classes shown per image")
    p.add_argument(
        "--score-threshold",
        type=float,
        default=0.25,
        help="detection: boxes at or above this score are drawn and listed",
    )
    p.add_argument("--out", help="write the predictions to a .csv or .json file, not the screen")
    p.add_argument(
        "--masks-out",
        help="segmentation: folder for the masks (PNG; volumes: NIfTI or .npy; detection: the "
        "drawn boxes; default: "
        "RUN/predictions, or WEIGHTS-predictions beside a weights file)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--backend", default="eager", choices=options.BACKENDS, help=BACKEND_HELP)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--json", action="store_true", help="print predictions as JSON")
    p.set_defaults(handler=commands.cmd_predict)


def _explain_command(sub) -> None:
    """explain: saliency maps."""
    p = sub.add_parser(
        "explain",
        help="where the model looked: saliency maps over the images",
        formatter_class=_Defaults,
    )
    p.add_argument("weights", help="run folder or weights file with resnets metadata")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument(
        "--method", default="gradcam", choices=options.EXPLAIN_METHODS, help="how the map is made"
    )
    p.add_argument("--target", help="class name or index to explain (default: each top-1)")
    p.add_argument(
        "--out",
        help="folder for one PNG per image (default: RUN/explanations, or "
        "WEIGHTS-explanations beside a weights file)",
    )
    p.add_argument("--topk", type=int, default=3, help="classes named on each picture")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=commands.cmd_explain)


def _exports_commands(sub) -> None:
    """export and convert."""
    p = sub.add_parser("export", help="ONNX / TorchScript / safetensors, with a parity check")
    p.add_argument("weights", help="run folder or weights file with resnets metadata")
    p.add_argument("--format", default="onnx", choices=options.EXPORT_FORMATS)
    p.add_argument("--out", help="output file (default: RUN/export/model.FORMAT)")
    p.add_argument("--dynamic-batch", action="store_true", help="any batch size (ONNX/TS)")
    p.add_argument("--images", nargs="+", help="images for the parity check (default: test split)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="max |logit difference| relative to the largest |logit|",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    p.add_argument(
        "--int8",
        action="store_true",
        help="quantize the ONNX export to INT8 for the CPU (ONNX Runtime, static, QDQ), judged "
        "by test-split top-1; written to RUN/export/model.int8.onnx",
    )
    p.add_argument(
        "--calibration",
        type=int,
        default=300,
        help="with --int8: calibration images (an even sample of the run's training split, or "
        "the first N of --images) (default: 300)",
    )
    p.add_argument(
        "--max-drop",
        type=float,
        default=1.0,
        help="with --int8: most test top-1 points INT8 may lose against float32 (default: 1)",
    )
    p.set_defaults(handler=commands.cmd_export)

    _convert_command(sub)


def _convert_command(sub) -> None:
    """convert: state_dicts between layouts."""
    p = sub.add_parser("convert", help="state_dicts between torchvision, timm and resnets")
    p.add_argument("weights", help=".pth / .safetensors in any supported layout")
    p.add_argument(
        "output", help="the suffix picks the format: .safetensors, or .pth/.pt/.bin (torch.save)"
    )
    p.add_argument("--model", help="architecture name (needed unless the file says)")
    p.add_argument("--to", default="resnets", choices=options.CONVERT_TARGETS)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(handler=commands.cmd_convert)


def _experiments_commands(sub) -> None:
    """the paper's experiments."""
    p = sub.add_parser("experiment", help="the paper's experiments: degradation, gradients")
    p.add_argument("name", choices=options.EXPERIMENTS)
    p.add_argument("--depths", help="comma list (default 20,56 / 20,32,44,56,110)")
    p.add_argument("--data", default="digits", help="dataset spec, e.g. cifar10:PATH")
    p.add_argument("--epochs", type=int, help="degradation: epochs per model (default 30)")
    p.add_argument("--recipe", help="degradation: a training recipe, e.g. paper-cifar")
    p.add_argument("--steps", type=int, default=20, help="gradients: SGD steps (default 20)")
    p.add_argument("--out", help="output folder (default experiments/NAME)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(handler=commands.cmd_experiment)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="resnets", description="The ResNet family: build, train, evaluate, export, inspect."
    )
    parser.add_argument("--version", action="version", version=f"resnets {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    _inspect_commands(sub)
    _training_commands(sub)
    _inference_commands(sub)
    _exports_commands(sub)
    _experiments_commands(sub)
    fewlabels.add_commands(sub, _Defaults, _add_train_flags)
    _bookkeeping_commands(sub)
    for command in sub.choices.values():  # -q after the command name as well as before it
        command.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            default=argparse.SUPPRESS,
            help="print errors only",
        )
    return parser


def _bookkeeping_commands(sub) -> None:
    """runs and completion."""
    p = sub.add_parser("runs", help="a table of the runs under a folder, or two compared")
    p.add_argument("root", nargs="?", default="runs", help="folder searched for runs")
    p.add_argument(
        "--sort", default="start", choices=commands.RUN_SORT_KEYS, help="row order (default: start)"
    )
    p.add_argument(
        "--compare", nargs=2, metavar=("A", "B"), help="two runs: config differences and curves"
    )
    p.add_argument(
        "--out", help="--compare: the curves PNG (default: compare-A-B.png beside run A)"
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(handler=commands.cmd_runs)

    p = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description='Enable tab completion: eval "$(resnets completion bash)" in ~/.bashrc, '
        "or for zsh: resnets completion zsh > ~/.zfunc/_resnets (a folder on $fpath).",
    )
    p.add_argument("shell", choices=("bash", "zsh"))
    p.set_defaults(handler=_print_completion)


def _print_completion(args: argparse.Namespace) -> None:
    import shtab  # a script made from this very parser: every command, flag and choice

    print(shtab.complete(build_parser(), shell=args.shell))
