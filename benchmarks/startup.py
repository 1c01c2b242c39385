"""Start-up time of the `resnets` command (issue 13): wall time of whole processes, as a user
waits for them, and what the first imports cost.

    python benchmarks/startup.py [--runs 7] [--source DIR]

Each command runs `--runs` times in a fresh interpreter (the first run of each is reported
apart: it pays for a cold file cache); the table gives the median and the minimum of the
others. `--source DIR` times another checkout of resnets (e.g. a `git worktree` of an older
commit) with this interpreter, for before/after figures side by side in one run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time

from resnets.precision import cpu_description

COMMANDS = (
    ["--help"],
    ["--version"],
    ["train", "--help"],
    ["predict", "--help"],
    ["info", "resnet50"],
)


def run_once(argv: list[str], source: str | None) -> float:
    """Seconds for one `resnets ARGV` in a new interpreter (the console script's own code)."""
    path = f"import sys; sys.path.insert(0, {source!r}); " if source else ""
    code = path + f"from resnets.cli import main; sys.exit(main({argv!r}))"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; " + code], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


HEAVY = ("torch", "torch._dynamo", "torchvision", "numpy", "sklearn", "matplotlib", "yaml")


def heavy_imports(argv: list[str], source: str | None) -> list[str]:
    """The heavy packages this command loads, with their cumulative import time
    (python -X importtime; a package imported by another is counted inside both)."""
    path = f"import sys; sys.path.insert(0, {source!r}); " if source else ""
    code = "import sys; " + path + f"from resnets.cli import main; main({argv!r})"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                          capture_output=True, text=True)  # fmt: skip
    found = {}
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and parts[2].strip() in HEAVY:
            found[parts[2].strip()] = int(parts[1].strip()) / 1e6
    return [f"{name} {found[name]:.2f} s" for name in HEAVY if name in found] or ["none"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--source", help="a checkout of resnets to time instead of this one")
    args = parser.parse_args()
    label = args.source or "installed resnets"
    print(f"# start-up of {label}; python {platform.python_version()}; {cpu_description()}")
    print(f"{'command':<22} {'first s':>8} {'median s':>9} {'min s':>7}   heavy imports")
    for argv in COMMANDS:
        times = [run_once(argv, args.source) for _ in range(args.runs)]
        rest = times[1:] or times
        heavy = ", ".join(heavy_imports(argv, args.source))
        print(f"{' '.join(argv):<22} {times[0]:>8.2f} {statistics.median(rest):>9.2f} "
              f"{min(rest):>7.2f}   {heavy}")  # fmt: skip


if __name__ == "__main__":
    main()
