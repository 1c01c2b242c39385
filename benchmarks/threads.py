"""The default job's training speed with the cores idle and with one kept busy by another
process (issue 34): torch's own thread count (one per core: what resnets used before it
measured the load), resnets' choice now, and OMP_NUM_THREADS=1.

    python benchmarks/threads.py [--epochs 3]

Each variant is `resnets train` in a fresh process; images/s is the summary's (training
steps only). The busy process is a Python loop that never sleeps. Prints a table with the
CPU's flags and writes benchmarks/threads-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUSY = "while True: pass"


def train(out: Path, epochs: int, flags: list[str], env: dict[str, str]) -> dict:
    command = [sys.executable, "-m", "resnets", "train", "--epochs", str(epochs), "--out"]
    command += [str(out), "--no-progress", "--no-tensorboard", *flags]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    from resnets.precision import cpu_description

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    plain = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    variants = [
        (f"--threads {cores} (torch's default)", ["--threads", str(cores)], plain),
        ("resnets' choice", [], plain),
        ("OMP_NUM_THREADS=1", [], plain | {"OMP_NUM_THREADS": "1"}),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for load in ("idle", "one core busy"):
            busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load != "idle" else None
            try:
                for name, flags, env in variants:
                    s = train(Path(tmp) / f"run-{len(rows)}", args.epochs, flags, env)
                    said = [n for n in s["notes"] if n.startswith("threads:")]
                    rows.append(
                        {
                            "load": load,
                            "variant": name,
                            "images_per_second": s["images_per_second"],
                            "note": said[0] if said else "",
                        }
                    )
                    print(rows[-1], flush=True)
            finally:
                if busy is not None:
                    busy.kill()
    print(f"\nCPU: {cpu_description()}; {cores} cores")
    print("| cores | variant | images/s |")
    for r in rows:
        print(f"| {r['load']} | {r['variant']} | {r['images_per_second']:,.0f} |")
    (HERE / "threads-latest.json").write_text(
        json.dumps({"cpu": cpu_description(), "cores": cores, "rows": rows}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
