"""Old argument names that keep working for one release, each with a warning that names the
new one: `@renamed(source="weights")` lets `f(source=x)` call `f(weights=x)`."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def renamed(**old_to_new: str) -> Callable[[F], F]:
    """A decorator: keyword `old` is passed on as `new`, with a DeprecationWarning shown at the
    caller's line; giving both is an error, as Python's own would be for one name twice."""

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(f"{func.__name__}() got {old}= and {new}=; {old} is {new}")
                warnings.warn(
                    f"{func.__name__}({old}=...) is now {func.__name__}({new}=...); "
                    f"{old}= goes in the next release",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap
