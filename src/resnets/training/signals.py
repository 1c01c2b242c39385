"""SIGINT / SIGTERM: finish the current step, save, and stop; a second Ctrl-C stops at once."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType


class StopRequest:
    """While active, the first SIGINT or SIGTERM only sets `requested`; the loop saves and stops."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        name = signal.Signals(signum).name
        print(
            f"\n{name}: finishing the current step, then saving (Ctrl-C again to quit at once)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
