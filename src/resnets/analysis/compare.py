"""Two runs side by side: the config keys whose values differ and both runs' curves in one
figure, the API of `resnets runs --compare A B`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ResnetsError, UsageError
from ..plots import curves_by_model
from ..training.run_folder import is_run_folder
from .runs import HEADER, IGNORED, LABELS, RunRow, align, cells, read_run

ABSENT = "(not set)"  # a key one run's config lacks (written by another resnets version)


@dataclass
class Comparison:
    """Two runs: the config keys whose values differ, and both runs' curves in one figure."""

    a: RunRow
    b: RunRow
    differences: dict[str, tuple[Any, Any]]  # key -> (a's value, b's value)
    ignored: list[str]  # keys that differed but do not change the training (IGNORED)
    figure: Path | None  # None when neither run has finished an epoch

    def text(self) -> str:
        """Both paths, the config keys that differ, then both runs' results, in columns."""
        n = len(self.differences)
        ignored = f" (ignored, as they do not change the training: {', '.join(self.ignored)})"
        config = [[k, str(va), str(vb)] for k, (va, vb) in self.differences.items()]
        a, b = cells(self.a), cells(self.b)
        shown = ("best val", "test", "epochs", "time", "state")
        results = [[h, a[HEADER.index(h)], b[HEADER.index(h)]] for h in shown]
        return "\n".join(
            [
                f"A: {self.a.path}",
                f"B: {self.b.path}",
                f"config: {n} difference{'' if n == 1 else 's'}{ignored if self.ignored else ''}",
                *align([*config, ["", "", ""], *results], ["", "A", "B"]),
                f"figure: {self.figure or 'none (neither run has finished an epoch)'}",
            ]
        )


def config_differences(a: dict, b: dict) -> tuple[dict[str, tuple[Any, Any]], list[str]]:
    """Keys whose values differ (in a's key order), and those of IGNORED that differed."""
    keys = list(dict.fromkeys([*a, *b]))
    differ = [k for k in keys if a.get(k, ABSENT) != b.get(k, ABSENT)]
    kept = {k: (a.get(k, ABSENT), b.get(k, ABSENT)) for k in differ if k not in IGNORED}
    return kept, [k for k in differ if k in IGNORED]


def compare_runs(a: str | Path, b: str | Path, out: str | Path | None = None) -> Comparison:
    """The config differences of two runs and a PNG of their train loss and validation score
    per epoch (default: compare-A-B.png in the folder that holds run A, never the current
    folder; `out` a file or a folder)."""
    rows = []
    for path in (Path(a), Path(b)):
        if not is_run_folder(path):
            raise UsageError(f"{path} is not a run folder (it has no manifest.json)")
        row = read_run(path)
        if row.state == "unreadable":
            raise ResnetsError(f"cannot compare {path}: {row.reason}")
        rows.append(row)
    differences, ignored = config_differences(rows[0].config, rows[1].config)
    tags = [re.sub(r"[^\w.-]", "_", r.path.resolve().name) for r in rows]
    target = Path(out) if out is not None else rows[0].path.resolve().parent
    target = target / f"compare-{tags[0]}-{tags[1]}.png" if target.is_dir() else target
    return Comparison(rows[0], rows[1], differences, ignored, _plot(rows, target))


def _plot(rows: list[RunRow], path: Path) -> Path | None:
    """Train loss and validation score per epoch, the two runs overlaid (A solid, B dashed)."""
    metrics = {r.metric for r in rows}
    label = LABELS.get(rows[0].metric, rows[0].metric) if len(metrics) == 1 else "score"
    panels: dict[str, list[str]] = {"train loss": [], f"validation {label} (%)": []}
    series, styles = {}, {}
    for tag, style, row in zip("AB", ("-", "--"), rows, strict=True):
        epochs = [r.get("epoch") for r in row.history]
        for panel, key in zip(panels, ("train_loss", f"val_{row.metric}"), strict=True):
            values = [r.get(key) for r in row.history]
            if any(v is not None for v in values):
                name = f"{tag}: {row.path.name} ({panel.split(' (')[0]})"
                series[name] = (epochs, [math.nan if v is None else v for v in values])
                styles[name] = style
                panels[panel].append(name)
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return curves_by_model(series, path, "", "", styles, panels=panels)
