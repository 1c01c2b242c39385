"""The `resnets` logger as the command prints it: our messages on stderr, one line each."""

from __future__ import annotations

import logging
import sys


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (tests and notebooks replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(quiet: bool) -> None:
    """Our messages on stderr; other libraries' loggers stay at their own (warning) level."""
    log = logging.getLogger("resnets")
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.ERROR if quiet else logging.INFO)


def default_logging() -> None:
    """Library use: print our INFO lines (epochs, notes) as the command does, unless the user
    configured logging (a handler or a level on the `resnets` logger, or a root handler). A
    root handler set up after an earlier call (logging.basicConfig in a notebook) takes over:
    the handler this function added goes, and the records flow to the root again."""
    log = logging.getLogger("resnets")
    ours = [h for h in log.handlers if getattr(h, "resnets_default", False)]
    if logging.getLogger().handlers:
        for handler in ours:
            log.removeHandler(handler)
        if ours:
            log.propagate, log.level = True, logging.NOTSET
        return
    if not log.handlers and log.level == logging.NOTSET:
        configure_logging(quiet=False)
        log.handlers[-1].resnets_default = True


def interactive() -> bool:
    """Whether progress bars can redraw: a terminal, or a notebook (a pipe or a log file gets
    the per-epoch lines only, not carriage-return noise)."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules
