"""The paper's experiments, runnable on a CPU in minutes (and on real data with --data).

degradation: plain and residual networks at two depths, trained with one recipe, their
    training and validation error per epoch side by side (He et al. 2015, Fig. 6): the deeper
    plain net trains worse, the deeper ResNet does not.
gradients: each conv layer's gradient norm, input to output, at initialization and after a
    few steps, for plain and residual nets of growing depth.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataOptions, load_splits
from ..data.augment import normalize
from ..errors import UsageError
from ..files import atomic_write_text
from ..models import create_model, get_config
from ..plots import curves_by_model
from ..training import train

# One recipe for both families: a 5-epoch warm-up, and no zero-init (plain nets have no
# residual branch to start at zero).
DEGRADATION_RECIPE = {"warmup_epochs": 5.0, "zero_init_residual": False}


@dataclass
class ExperimentResult:
    figure: Path
    table: Path
    final: dict[str, dict[str, float]]  # model -> its last-epoch numbers

    def text(self) -> str:
        lines = [f"{'model':<10} " + " ".join(f"{k:>14}" for k in next(iter(self.final.values())))]
        for name, row in self.final.items():
            lines.append(f"{name:<10} " + " ".join(f"{v:>14.2f}" for v in row.values()))
        return "\n".join([*lines, f"figure: {self.figure}", f"table: {self.table}"])


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"{out} already exists; pass --overwrite or choose another --out")
    out.mkdir(parents=True, exist_ok=True)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def degradation(
    depths: tuple[int, ...] = (20, 56),
    data: str = "digits",
    epochs: int = 30,
    out: str | Path = "experiments/degradation",
    overwrite: bool = False,
    **options: Any,
) -> ExperimentResult:
    """Train plain-N and ResNet-N for each depth with the same options; plot their errors."""
    out = Path(out)
    names = [f"{kind}{d}" for kind in ("plain", "resnet") for d in depths]
    for name in names:
        get_config(name)  # fails early, with suggestions, for a depth the paper lacks
    _prepare(out, overwrite)
    common = {"data": data, "epochs": epochs, "progress": False, "tensorboard": False}
    common |= DEGRADATION_RECIPE | options
    rows, final = [], {}
    for name in names:
        run = out / "runs" / name
        summary = train(model=name, out=str(run), overwrite=True, **common)
        with open(run / "metrics.csv") as f:
            for r in csv.DictReader(f):
                rows.append(
                    {
                        "model": name,
                        "epoch": int(r["epoch"]),
                        "train_error": 100 - float(r["train_acc1"]),
                        "val_error": 100 - float(r["val_acc1"]) if r.get("val_acc1") else None,
                    }
                )
        last = rows[-1]
        final[name] = {
            "train_error": last["train_error"],
            "val_error": last["val_error"] if last["val_error"] is not None else float("nan"),
            "test_error": 100 - summary["test_acc1"],
        }
    _write_csv(out / "degradation.csv", rows)
    series, styles = {}, {}
    for name in names:
        mine = [r for r in rows if r["model"] == name]
        epochs_ = [r["epoch"] for r in mine]
        series[f"{name} train"] = (epochs_, [r["train_error"] for r in mine])
        series[f"{name} validation"] = (epochs_, [r["val_error"] for r in mine])
        styles[f"{name} train"], styles[f"{name} validation"] = "--", "-"
    panels = {
        f"plain networks ({data})": [k for k in series if k.startswith("plain")],
        f"ResNets ({data})": [k for k in series if k.startswith("resnet")],
    }
    figure = curves_by_model(
        series, out / "degradation.png", "error (%)", "degradation", styles, panels=panels
    )
    return ExperimentResult(figure, out / "degradation.csv", final)


def _conv_grad_norms(model: nn.Module) -> list[float]:
    """Each conv weight's gradient norm, from the input side to the output side."""
    return [
        m.weight.grad.norm().item()
        for m in model.modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)
    ]


def gradient_flow(
    depths: tuple[int, ...] = (20, 32, 44, 56, 110),
    data: str = "digits",
    steps: int = 20,
    batch_size: int = 128,
    out: str | Path = "experiments/gradients",
    overwrite: bool = False,
    seed: int = 0,
) -> ExperimentResult:
    """Per-layer gradient norms at initialization and after `steps` SGD steps."""
    out = Path(out)
    names = [f"{kind}{d}" for kind in ("plain", "resnet") for d in depths]
    for name in names:
        get_config(name)
    _prepare(out, overwrite)
    splits = load_splits(DataOptions(data=data, val_split=0.0), seed=seed)
    mean, std = torch.tensor(splits.mean), torch.tensor(splits.std)
    x_all = normalize(splits.train.images, mean, std)
    y_all = splits.train.labels
    rows, final, series, styles = [], {}, {}, {}
    for name in names:
        torch.manual_seed(seed)
        model = create_model(name, num_classes=len(splits.classes), in_chans=splits.channels)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        g = torch.Generator().manual_seed(seed)
        for step in range(steps + 1):
            index = torch.randint(0, len(y_all), (batch_size,), generator=g)
            opt.zero_grad()
            F.cross_entropy(model(x_all[index]), y_all[index]).backward()
            if step in (0, steps):
                norms = _conv_grad_norms(model)
                for i, n in enumerate(norms):
                    rows.append({"model": name, "step": step, "layer": i + 1, "grad_norm": n})
                label = f"{name} {'init' if step == 0 else f'step {steps}'}"
                series[label] = ([(i + 1) / len(norms) for i in range(len(norms))], norms)
                styles[label] = "--" if name.startswith("plain") else "-"
            opt.step()
        at_init = [r["grad_norm"] for r in rows if r["model"] == name and r["step"] == 0]
        final[name] = {
            "first_layer": at_init[0],
            "last_layer": at_init[-1],
            "first/last": at_init[0] / at_init[-1],
        }
    _write_csv(out / "gradients.csv", rows)
    panels = {
        "at initialization": [k for k in series if k.endswith("init")],
        f"after {steps} steps": [k for k in series if k.endswith(f"step {steps}")],
    }
    figure = curves_by_model(
        series,
        out / "gradients.png",
        "gradient norm of each 3x3 conv",
        "gradients",
        styles,
        log_y=True,
        panels=panels,
        xlabel="relative depth (input to output)",
    )
    return ExperimentResult(figure, out / "gradients.csv", final)
