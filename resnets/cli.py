"""`resnets <command>`: parse, call the Python API, print. Nothing here that the API lacks."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import sys
from collections.abc import Callable, Sequence

from .errors import ResnetsError, UsageError
from .logs import configure_logging
from .options import BACKENDS, CONVERT_TARGETS, EXPERIMENTS, EXPORT_FORMATS, SPLITS

Handler = Callable[[argparse.Namespace], int | None]
BACKEND_HELP = "eager: as trained; fast: folded BN + channels_last (+bf16 on GPU); auto: fastest"


def _cmd_list(args: argparse.Namespace) -> None:
    from .models import get_config, list_models

    names = list_models(args.pattern)
    if args.json:
        print(json.dumps({n: get_config(n).to_dict() for n in names}, indent=2))
        return
    for name in names:
        cfg = get_config(name)
        kind = ("preact " if cfg.preact else "") + cfg.block
        print(f"{name:<20} {kind:<18} layers={list(cfg.layers)} shortcut={cfg.shortcut}")


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UsageError(f"--{name} must be at least 1, got {value}")


def _cmd_info(args: argparse.Namespace) -> None:
    from .analysis import model_info

    _positive("input-size", args.input_size)
    _positive("batch-size", args.batch_size)
    overrides = {} if args.in_chans is None else {"in_chans": args.in_chans}
    if args.num_classes is not None:
        overrides["num_classes"] = args.num_classes
    info = model_info(args.model, args.input_size, args.batch_size, **overrides)
    if args.json:
        data = {k: v for k, v in vars(info).items() if k != "rows"}
        data["rows"] = [vars(r) for r in info.rows]
        print(json.dumps(data, indent=2))
    else:
        print(info.table())


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; unset flags stay out of the namespace."""
    import typing

    from .training.config import FIELDS, HINTS

    p.add_argument("--config", help="YAML or TOML file of options (flags override it)")
    p.add_argument("--nproc", type=int, help="start torchrun with N processes on this machine")
    for name, f in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        hint = HINTS[name]
        kwargs = {"default": argparse.SUPPRESS, "help": f.metadata.get("help", "")}
        if typing.get_origin(hint) is typing.Literal:
            kwargs["choices"] = typing.get_args(hint)
        elif bool in typing.get_args(hint) or hint is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        p.add_argument(flag, metavar=name.upper().replace("_", "-"), **kwargs)


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import train

    flags = {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS}
    if args.nproc:
        from .training.distributed import launch

        argv = sys.argv[1:]
        drop = [i for i, a in enumerate(argv) if a == "--nproc" or a.startswith("--nproc=")]
        for i in reversed(drop):
            del argv[i : i + (1 if "=" in argv[i] else 2)]
        return launch(args.nproc, argv)
    summary = train(args.config, **flags)
    if not args.quiet and int(os.environ.get("RANK", "0")) == 0:
        from .training.report import summary_text

        print(summary_text(summary))
    return 0


_NOT_OPTIONS = {"command", "handler", "config", "nproc", "quiet"}


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from .infer import evaluate

    _positive("batch-size", args.batch_size)
    report = evaluate(
        args.source, data=args.data, split=args.split, tta_flip=args.tta_flip,
        batch_size=args.batch_size, device=args.device, out=args.out, backend=args.backend,
        allow_changed_data=args.allow_changed_data,
    )  # fmt: skip
    if args.json:
        import dataclasses

        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        print(report.table())


def _cmd_predict(args: argparse.Namespace) -> int:
    from .infer import predict

    _positive("topk", args.topk)
    result = predict(
        args.weights, args.images, topk=args.topk, device=args.device, backend=args.backend,
        masks_out=args.masks_out, overwrite=args.overwrite,
    )  # fmt: skip
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    if result.failed:
        print(f"error: {len(result.failed)} images could not be read", file=sys.stderr)
        return 1
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2), like every other error here."""

    def error(self, message: str):
        if message.startswith("unrecognized arguments: "):
            parsers = [self] + [
                p for a in self._actions if isinstance(a, argparse._SubParsersAction)
                for p in a.choices.values()
            ]  # fmt: skip
            flags = sorted({o for p in parsers for a in p._actions for o in a.option_strings})
            typed = message.split(": ", 1)[1].split()
            close = [m for t in typed for m in difflib.get_close_matches(t, flags, n=1)]
            if close:
                message += f"; did you mean {', '.join(close)}?"
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _cmd_export(args: argparse.Namespace) -> None:
    from .infer.export import export

    report = export(
        args.weights, args.format, out=args.out, dynamic_batch=args.dynamic_batch,
        images=args.images, tolerance=args.tolerance, overwrite=args.overwrite,
    )  # fmt: skip
    print(report.text())


def _cmd_convert(args: argparse.Namespace) -> None:
    from .infer.convert import convert

    report = convert(
        args.source, args.output, model=args.model, to=args.to, overwrite=args.overwrite
    )
    print(report.text())


def _int_list(name: str, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--{name} takes integers separated by commas, got {text!r}") from None


def _cmd_experiment(args: argparse.Namespace) -> None:
    from .analysis import experiments

    depths = _int_list("depths", args.depths) if args.depths else None
    common = {"data": args.data, "overwrite": args.overwrite}
    if args.name == "degradation":
        options = {"depths": depths or (20, 56), "epochs": args.epochs or 30, **common}
        if args.recipe:
            options["recipe"] = args.recipe
        result = experiments.degradation(out=args.out or "experiments/degradation", **options)
    else:
        result = experiments.gradient_flow(
            depths=depths or (20, 32, 44, 56, 110), steps=args.steps,
            out=args.out or "experiments/gradients", **common,
        )  # fmt: skip
    print(result.text())


def _inspect_commands(sub) -> None:
    """list and info: the registry and model statistics."""
    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    p.add_argument("--json", action="store_true", help="print each model's config as JSON")
    p.set_defaults(handler=_cmd_list)

    p = sub.add_parser("info", help="parameters, MACs, stage shapes, activation memory")
    p.add_argument("model", help="registered model name (see `resnets list`)")
    p.add_argument("--input-size", type=int, default=None, help="image side (default: 224/32)")
    p.add_argument("--batch-size", type=int, default=1, help="batch for activation memory")
    p.add_argument("--in-chans", type=int, default=None, help="input channels")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_info)


def _training_commands(sub) -> None:
    """train: one flag per TrainConfig field."""
    p = sub.add_parser(
        "train",
        help="train a model (default: ResNet-20 on the bundled digits)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_train_flags(p)
    p.set_defaults(handler=_cmd_train)


def _inference_commands(sub) -> None:
    """evaluate and predict."""
    p = sub.add_parser("evaluate", help="accuracy, per-class metrics, confusion matrix")
    p.add_argument("source", help="run folder or weights file (.safetensors / .pt)")
    p.add_argument("--data", help="dataset spec (default: the run's own)")
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--tta-flip", action="store_true", help="average with the flipped image")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="folder for eval-SPLIT.json and confusion-SPLIT.png")
    p.add_argument("--backend", default="eager", choices=BACKENDS, help=BACKEND_HELP)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--allow-changed-data",
        action="store_true",
        help="the run's data changed: evaluate its own split, kept by file name",
    )
    p.set_defaults(handler=_cmd_evaluate)

    p = sub.add_parser("predict", help="top-k classes for image files or folders")
    p.add_argument("weights", help="run folder or weights file with resnets metadata")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--masks-out", default="masks", help="segmentation: folder for mask PNGs")
    p.add_argument("--overwrite", action="store_true", help="segmentation: replace mask files")
    p.add_argument("--backend", default="eager", choices=BACKENDS, help=BACKEND_HELP)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print predictions as JSON")
    p.set_defaults(handler=_cmd_predict)


def _exports_commands(sub) -> None:
    """export and convert."""
    p = sub.add_parser("export", help="ONNX / TorchScript / safetensors, with a parity check")
    p.add_argument("weights", help="run folder or weights file with resnets metadata")
    p.add_argument("--format", default="onnx", choices=EXPORT_FORMATS)
    p.add_argument("--out", help="output file (default: RUN/export/model.FORMAT)")
    p.add_argument("--dynamic-batch", action="store_true", help="any batch size (ONNX/TS)")
    p.add_argument("--images", nargs="+", help="images for the parity check (default: test split)")
    p.add_argument(
        "--tolerance", type=float, default=1e-4,
        help="max |logit difference| relative to the largest |logit|",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("convert", help="state_dicts between torchvision, timm and resnets")
    p.add_argument("source", help=".pth / .safetensors in any supported layout")
    p.add_argument(
        "output", help="the suffix picks the format: .safetensors, or .pth/.pt/.bin (torch.save)"
    )
    p.add_argument("--model", help="architecture name (needed unless the file says)")
    p.add_argument("--to", default="resnets", choices=CONVERT_TARGETS)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(handler=_cmd_convert)


def _experiments_commands(sub) -> None:
    """the paper's experiments."""
    p = sub.add_parser("experiment", help="the paper's experiments: degradation, gradients")
    p.add_argument("name", choices=EXPERIMENTS)
    p.add_argument("--depths", help="comma list (default 20,56 / 20,32,44,56,110)")
    p.add_argument("--data", default="digits", help="dataset spec, e.g. cifar10:PATH")
    p.add_argument("--epochs", type=int, help="degradation: epochs per model (default 30)")
    p.add_argument("--recipe", help="degradation: a training recipe, e.g. paper-cifar")
    p.add_argument("--steps", type=int, default=20, help="gradients: SGD steps (default 20)")
    p.add_argument("--out", help="output folder (default experiments/NAME)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(handler=_cmd_experiment)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except KeyboardInterrupt:  # at any moment: while importing, parsing, loading, training
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `resnets ... | head` closed the pipe: not an error of ours
        # point stdout at /dev/null, so that the flush at exit does not fail again (a stdout
        # without a file, as in tests, needs nothing)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed
        return int(e.code or 0)
    configure_logging(args.quiet)
    try:
        code = args.handler(args)
    except ResnetsError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
