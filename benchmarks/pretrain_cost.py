"""The cost of two views (issue 27): images per second of a pretraining step (two views made
on the device, the method's heads and loss, backward, SGD) against a plain supervised step
of the same backbone on the same batch, timed side by side in one process, round after round
(ABAB...), so that a busy or slow machine slows both alike. The ratio is the figure.

    python benchmarks/pretrain_cost.py [--model resnet20] [--size 32] [--batch 128] [--rounds 5]

Prints a table with the CPU's flags and writes benchmarks/pretrain_cost-latest.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from resnets.fewlabels.methods import Method
from resnets.fewlabels.views import TwoViews
from resnets.models import create_model
from resnets.options import PRETRAIN_METHODS
from resnets.precision import cpu_description

HERE = Path(__file__).resolve().parent


def supervised(model, x, y, opt):
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def pretraining(method, views, x, step, opt):
    v1, v2 = views(x, 0, 0, step, len(x), slice(0, len(x)))
    loss = method(v1, v2)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    method.after_step(0.5)


def seconds(fn, steps: int) -> float:
    start = time.perf_counter()
    for i in range(steps):
        fn(i)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet20")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--methods", nargs="*", default=list(PRETRAIN_METHODS))
    args = p.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    plain = create_model(args.model, num_classes=10)
    plain.train()
    sgd = torch.optim.SGD(plain.parameters(), lr=0.01, momentum=0.9)
    views = TwoViews((0.5,) * 3, (0.25,) * 3, hflip=True)
    rows = []
    for name in args.methods:
        method = Method(name, create_model(args.model, num_classes=0), queue_size=4096).train()
        opt = torch.optim.SGD([q for q in method.parameters() if q.requires_grad], lr=0.01)
        ours, peer = [], []
        seconds(lambda i: supervised(plain, x, y, sgd), 1)  # warm-up of both
        seconds(lambda i, m=method, o=opt: pretraining(m, views, x, i, o), 1)
        for _ in range(args.rounds):
            peer.append(seconds(lambda i: supervised(plain, x, y, sgd), args.steps))
            ours.append(
                seconds(lambda i, m=method, o=opt: pretraining(m, views, x, i, o), args.steps)
            )
        images = args.batch * args.steps
        sup, pre = images / statistics.median(peer), images / statistics.median(ours)
        rows.append(
            {"method": name, "supervised_ips": sup, "pretrain_ips": pre, "ratio": sup / pre}
        )
    cpu = cpu_description()
    print(f"{args.model} at {args.size} px, batch {args.batch}, {torch.get_num_threads()} threads")
    print(f"CPU: {cpu}")
    print(f"{'method':<10}{'supervised img/s':>18}{'pretrain img/s':>16}{'cost':>8}")
    for r in rows:
        print(
            f"{r['method']:<10}{r['supervised_ips']:>18.0f}{r['pretrain_ips']:>16.0f}{r['ratio']:>7.2f}x"
        )
    out = {"args": vars(args), "cpu": cpu, "threads": torch.get_num_threads(), "rows": rows}
    (HERE / "pretrain_cost-latest.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
