"""Why `--amp auto` keeps 3D models in fp32 on a CPU: how often PyTorch's bf16 Conv3d (oneDNN)
gives non-finite weight gradients where fp32 gives finite ones, on plain torch.nn.Conv3d.

    python benchmarks/bf16_conv3d.py [--trials 20]

Each row: a Conv3d and an input shape, the trials whose bf16 autocast weight gradient held
NaN or inf, and those whose finite bf16 gradient was more than 5 % (of the largest entry) from
fp32's. The failures come where the input is thinner in depth than the kernel: resnet10_3d's
stem (7x7x7, stride 2) on a 4-frame clip, and its first stage (depth 2) on an 8-frame clip.
Training that net on 8-frame clips (tests/data/volumes/test_video.py) went NaN at step 10 in
bf16 and reached 100 % test top-1 in fp32. Rows of zeros on another machine or torch release
are the signal to let the probe decide again (resnets/precision.py: choose_amp).
"""

from __future__ import annotations

import argparse

import torch

from resnets.precision import cpu_description

CASES = [  # (input shape N, C, D, H, W), (out channels, kernel, stride, padding)
    ((4, 3, 4, 16, 16), (64, 7, 2, 3)),
    ((4, 3, 8, 24, 24), (64, 7, 2, 3)),
    ((4, 3, 16, 32, 32), (64, 7, 2, 3)),
    ((8, 64, 2, 6, 6), (64, 3, 1, 1)),  # resnet10_3d's first stage on an 8-frame clip at 24 px
    ((8, 64, 4, 6, 6), (64, 3, 1, 1)),
    ((4, 64, 2, 3, 3), (128, 3, 2, 1)),
]


def trial(shape: tuple[int, ...], conv: tuple[int, int, int, int], seed: int) -> str:
    torch.manual_seed(seed)
    out, k, s, p = conv
    layer = torch.nn.Conv3d(shape[1], out, k, s, p, bias=False)
    x = torch.randn(shape)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = torch.autograd.grad(layer(x).float().sum(), layer.weight)[0]
    ref = torch.autograd.grad(layer(x).sum(), layer.weight)[0]
    if not low.isfinite().all():
        return "nonfinite"
    return "off" if (low - ref).abs().max() > 0.05 * ref.abs().max() else "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    print(f"# torch {torch.__version__}; {cpu_description()}")
    print("| input (N, C, D, H, W) | conv (out, k, stride, pad) | non-finite | > 5 % off |")
    print("|---|---|---|---|")
    for shape, conv in CASES:
        seen = [trial(shape, conv, seed) for seed in range(args.trials)]
        print(f"| {shape} | {conv} | {seen.count('nonfinite')}/{args.trials} | "
              f"{seen.count('off')}/{args.trials} |")  # fmt: skip


if __name__ == "__main__":
    main()
