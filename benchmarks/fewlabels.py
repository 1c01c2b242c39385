"""Few labels on the bundled digits (issue 27), as a user runs it: `resnets pretrain` on the
training split with the labels unused, then `resnets probe` (1, 5 and 14 labels per class,
5 draws) and `resnets fewshot` on classes 5-9 of the test split (images the backbone never
saw), each method in a fresh process, one after another.

    python benchmarks/fewlabels.py [--methods simclr byol ...] [--epochs 100] [--models]

--models adds probe's fine-tunes and models from scratch (30 more short runs per method).
Prints a table with the CPU's flags and writes benchmarks/fewlabels-latest.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def resnets(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "resnets", *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout) if "--json" in args else {}


def main() -> None:
    from resnets.options import PRETRAIN_METHODS
    from resnets.precision import cpu_description

    p = argparse.ArgumentParser()
    p.add_argument("--methods", nargs="*", default=list(PRETRAIN_METHODS))
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--models", action="store_true")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            run = Path(tmp) / method
            start = time.perf_counter()
            resnets(
                "pretrain",
                "--method",
                method,
                "--epochs",
                str(args.epochs),
                "--out",
                str(run),
                "--no-progress",
                "-q",
            )
            wall = time.perf_counter() - start
            summary = json.loads((run / "summary.json").read_text())
            extra = [] if args.models else ["--linear-only"]
            probe = resnets("probe", str(run), "--json", *extra)
            shots = resnets(
                "fewshot", str(run), "--classes", "5,6,7,8,9", "--split", "test", "--json"
            )
            rows.append(
                {
                    "method": method,
                    "wall_s": round(wall, 1),
                    "train_s": summary["train_seconds"],
                    "val_knn": summary["val_knn"],
                    "probe": probe["accuracy"],
                    "fewshot": shots["accuracy"],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    cpu = cpu_description()
    print(f"CPU: {cpu}")
    head = "method   kNN    linear 1 / 5 / 14        pixels 5   1-shot  5-shot  (SimpleShot)  s"
    print(head)
    for r in rows:
        lin = " / ".join(f"{r['probe']['linear'][n]['mean']:.1f}" for n in ("1", "5", "14"))
        pix = r["probe"]["pixels"]["5"]["mean"]
        one, five = (r["fewshot"]["simpleshot"][k]["mean"] for k in ("1", "5"))
        print(
            f"{r['method']:<8}{r['val_knn']:6.1f}   {lin:<22}{pix:8.1f}{one:9.1f}{five:8.1f}"
            f"{r['train_s']:14.0f}"
        )
    out = {"args": vars(args), "cpu": cpu, "rows": rows}
    (HERE / "fewlabels-latest.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
