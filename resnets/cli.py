"""`resnets <command>`: parse, call the Python API, print. Nothing here that the API lacks."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from .errors import ResnetsError

Handler = Callable[[argparse.Namespace], int | None]


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


def _cmd_info(args: argparse.Namespace) -> None:
    from .analysis import model_info

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


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="resnets", description="The ResNet family: build, train, evaluate, export, inspect."
    )
    parser.add_argument("--version", action="version", version=f"resnets {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.ERROR if args.quiet else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    try:
        code = args.handler(args)
    except ResnetsError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
