"""`resnets <command>`: parse, call the Python API, print. Nothing here that the API lacks.

parser.py declares the commands and their flags (torch-free, so `--help` is instant);
commands.py holds one handler per command, each importing the part of the API it calls.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

from ..errors import ResnetsError
from ..logs import configure_logging
from .parser import build_parser

__all__ = ["build_parser", "main"]


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
        print(f"{e.prefix}{e}", file=sys.stderr)
        return e.exit_code
    return int(code or 0)
