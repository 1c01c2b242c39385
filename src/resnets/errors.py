"""Errors written for users: one line that names the bad value and the fix.

The CLI turns a `ResnetsError` into that line and its `exit_code`; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ResnetsError(Exception):
    """A failure the user can act on (missing file, broken data, a run that diverged)."""

    exit_code = 1
    prefix = "error: "  # what the CLI prints before the message


class UsageError(ResnetsError, ValueError):
    """Bad arguments or configuration: the command was asked for something impossible."""

    exit_code = 2


class ConfigError(UsageError):
    """A model or training configuration that cannot be built."""


class UnknownNameError(UsageError, KeyError):
    """A name (model, recipe, dataset, config key) that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(ResnetsError):
    """A weights or checkpoint file that does not fit, cannot be read, or is unsafe."""


class DataError(ResnetsError):
    """A dataset that is missing, empty or broken."""


class TrainingError(ResnetsError):
    """A run that cannot go on (non-finite loss, unwritable run folder)."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> UnknownNameError:
    """Build the error for an unknown `name`, suggesting the closest known ones."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + ", ".join(close) + "?"
    else:
        shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
        hint = f"known: {shown}"
    return UnknownNameError(f"unknown {kind} {name!r}; {hint}")
