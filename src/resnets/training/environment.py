"""What a run's manifest records of the machine and the software it ran on: versions, the git
revision of the code (marked -dirty when it has uncommitted changes), host and CPU count."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any


def environment() -> dict[str, Any]:
    from importlib.metadata import version

    import numpy
    import torch
    import torchvision

    return {
        "versions": {
            "resnets": version("resnets"),  # the installed package's own record
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": numpy.__version__,
        },
        "git_revision": git_revision(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def git_revision() -> str | None:
    src = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
    )
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
