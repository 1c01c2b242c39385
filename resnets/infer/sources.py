"""Where weights come from: a run folder, or a weights file that may belong to one."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError


def resolve_source(source: str | Path) -> tuple[Path, Path | None]:
    """(weights file, run folder or None) for a run folder or a weights file."""
    path = Path(source)
    if path.is_dir():
        weights = path / "best.safetensors"
        if not weights.is_file():
            raise UsageError(f"{path} is not a finished run: it has no best.safetensors")
        return weights, path
    if not path.is_file():
        raise UsageError(f"{path} is neither a run folder nor a weights file")
    run = path.parent
    if path.name == "best.safetensors" and (run / "config.yaml").is_file():
        return path, run  # a run's own weights: its data and eval folder go with them
    return path, None
