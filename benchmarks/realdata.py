"""Defaults on real data, as a new user runs them (issue 34): `resnets train` in a fresh
process on class folders, wall time of the whole command, the summary's test figures.

    python benchmarks/realdata.py pneumonia [--seeds 0 1 2]   # ../shared/data/pneumoniamnist.npz
    python benchmarks/realdata.py digits500 [--seeds 0 1 2]   # defaults against --batch-size 128
    python benchmarks/realdata.py nodules [--seeds 0 1 2]     # a made 3D set (nodules_npz)
    python benchmarks/realdata.py SET --variants '' '--label-smoothing 0.1'   # flags compared

pneumonia: PneumoniaMNIST's own train/val/test as PNG class folders, defaults only; the
MedMNIST v2 paper's best ResNet row is AUC 0.962 / ACC 0.884 (ResNet-50 at 224 px).
digits500: the bundled digits drawn as 28 px PNGs, 500 for training (stratified, seeded) and
the other 1,297 as the test split; the defaults (which fit the batch to 500 images) against
the same run at the old fixed batch of 128.
nodules: 1,188 made 28^3 volumes, 22 % in the minority class (`nodules_npz`), defaults only
(which choose the 3D model) against `--model resnet18_3d` (seed 0 only: it takes 8 minutes).
Prints a table with the CPU's flags and writes
benchmarks/realdata-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NPZ = HERE.parent.parent / "shared" / "data" / "pneumoniamnist.npz"


def write_pngs(root: Path, images: np.ndarray, labels: np.ndarray, names: dict[int, str]) -> None:
    from PIL import Image

    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:05d}.png")


def pneumonia_folder(root: Path, npz: Path) -> Path:
    data = np.load(npz)
    for split in ("train", "val", "test"):
        names = {0: "normal", 1: "pneumonia"}
        write_pngs(root / split, data[f"{split}_images"], data[f"{split}_labels"][:, 0], names)
    return root


def digits_folder(root: Path, train_images: int = 500, size: int = 28) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255 / 16)).astype(np.uint8)
    big = np.stack(
        [np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in images]
    )
    order = np.random.default_rng(0).permutation(len(images))
    per_class = train_images // 10
    train = np.concatenate([order[bunch.target[order] == c][:per_class] for c in range(10)])
    test = np.setdiff1d(order, train)
    names = {c: str(c) for c in range(10)}
    write_pngs(root / "train", big[train], bunch.target[train], names)
    write_pngs(root / "test", big[test], bunch.target[test], names)
    return root


def nodules_npz(path: Path, n: int = 1188, size: int = 28, positive: float = 0.22) -> Path:
    """A 3D set harder than shapes3d, MedMNIST-style (train/val/test 70/10/20 %): noisy,
    smoothed "tissue" volumes, each with a bright blob; in class 1 (`positive` of them, the
    minority) the blob is elongated along a random axis, in class 0 round. Seeded."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1).astype(np.float32)
    labels = (rng.random(n) < positive).astype(np.int64)
    volumes = np.empty((n, size, size, size), np.uint8)
    for i, label in enumerate(labels):
        noise = rng.normal(0, 1, (size // 4,) * 3)
        tissue = np.kron(noise, np.ones((4, 4, 4)))[:size, :size, :size]
        centre = rng.uniform(8, size - 8, 3)
        radii = np.full(3, rng.uniform(2.5, 4.0))
        if label:
            radii[rng.integers(3)] *= rng.uniform(1.6, 2.0)
        blob = (((grid - centre) / radii) ** 2).sum(-1) <= 1
        volume = 0.6 * tissue + 1.5 * blob + rng.normal(0, 0.6, tissue.shape)
        volumes[i] = np.clip((volume + 3) * 40, 0, 255).astype(np.uint8)
    cut = [int(n * 0.7), int(n * 0.8)]
    parts = dict(zip(("train", "val", "test"), np.split(np.arange(n), cut), strict=True))
    arrays = {}
    for split, index in parts.items():
        arrays[f"{split}_images"] = volumes[index]
        arrays[f"{split}_labels"] = labels[index, None]
    np.savez_compressed(path, **arrays)
    return path


def run(data: str, out: Path, seed: int, *flags: str) -> dict:
    command = [sys.executable, "-m", "resnets", "train", "--data", data]
    command += ["--out", str(out), "--seed", str(seed), "--no-progress", *flags]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return summary | {"wall_seconds": round(wall, 1), "flags": list(flags), "seed": seed}


def row(s: dict) -> str:
    auc = f"{s['test_auc'] / 100:.4f}" if s.get("test_auc") is not None else "-"
    cut = f"{s['test_acc_cut'] / 100:.3f}" if s.get("test_acc_cut") is not None else "-"
    balanced = s.get("test_balanced_acc_cut")
    balanced = f"{balanced / 100:.3f}" if balanced is not None else "-"
    return (
        f"| {' '.join(s['flags']) or 'defaults'} | {s['seed']} | {s['notes_batch']} | {auc} | "
        f"{s['test_acc1'] / 100:.3f} | {cut} | {balanced} | {s['epochs']} | "
        f"{s['wall_seconds']:.0f} |"
    )


def batch_of(summary: dict, out: Path) -> str:
    import yaml

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    return f"{cfg['model']} / {cfg['batch_size']} / {cfg['lr']:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=("pneumonia", "digits500", "nodules"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--npz", type=Path, default=NPZ)
    parser.add_argument(
        "--variants",
        nargs="+",
        metavar="FLAGS",
        help="run these instead of the set's own comparison, each a quoted set of flags "
        "('' for defaults), e.g. '' '--label-smoothing 0.1' '--ema-decay 0.99'",
    )
    args = parser.parse_args()
    from resnets.precision import cpu_description

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.set == "pneumonia":
            data, variants = f"imagefolder:{pneumonia_folder(tmp / 'data', args.npz)}", [()]
        elif args.set == "digits500":
            data = f"imagefolder:{digits_folder(tmp / 'data')}"
            variants = [(), ("--batch-size", "128")]
        else:
            data = f"npz:{nodules_npz(tmp / 'nodules.npz')}"
            variants = [(), ("--model", "resnet18_3d")]
        if args.variants is not None:
            variants = [tuple(v.split()) for v in args.variants]
        for flags in variants:
            for seed in args.seeds if flags[:1] != ("--model",) else args.seeds[:1]:
                out = tmp / f"run-{len(results)}"
                s = run(data, out, seed, *flags)
                s["notes_batch"] = batch_of(s, out)
                results.append(s)
                print(row(s), flush=True)
    print(f"\nCPU: {cpu_description()}")
    print(
        "| flags | seed | model / batch / lr | test AUC | ACC at 0.5 | ACC at val threshold "
        "| balanced ACC there | epochs | wall s |"
    )
    for s in results:
        print(row(s))
    for flags in {tuple(s["flags"]) for s in results}:
        group = [s for s in results if tuple(s["flags"]) == flags]
        keys = ("test_auc", "test_acc1", "test_acc_cut", "wall_seconds")
        means = {
            k: statistics.mean(s[k] for s in group) for k in keys if group[0].get(k) is not None
        }
        print(f"mean {' '.join(flags) or 'defaults'}: {means}")
    (HERE / "realdata-latest.json").write_text(
        json.dumps({"cpu": cpu_description(), "set": args.set, "runs": results}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
