"""3D ResNets on this CPU (issue 18): ours beside MONAI's and torchvision's, in one process.

    python benchmarks/volumes.py [--repeats 3] [--batch 2]

volume  ResNet-18 3D on 1x64^3 (one channel, as CT/MRI): resnets `resnet18_3d` and MONAI's
        `resnet18(spatial_dims=3, n_input_channels=1, conv1_t_stride=2, bias_downsample=False)`,
        the same network (tests/models/test_3d.py checks equal outputs).
clip    R3D-18 on 3x16x112x112 (a Kinetics clip): resnets `r3d_18` and torchvision's.

Training: samples/s of one SGD step (forward, backward, update) at `--batch`; inference:
samples/s at batch 1 and at `--batch`, eval mode, no grad. fp32, contiguous layout. Candidates
take turns after three warm-up calls each (with one, whichever model ran second measured up to
30 % slower in training); run it with nothing else running.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torchvision
from precision import timed  # benchmarks/ is on the path when this script runs

from resnets import create_model
from resnets.precision import cpu_description


def step(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    y = torch.zeros(len(x), dtype=torch.long)

    def run() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return run


def infer(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    model.eval()
    return torch.inference_mode()(lambda: model(x))


def compare(title: str, models: dict[str, Callable[[], torch.nn.Module]], shape: tuple,
            batch: int, repeats: int) -> None:  # fmt: skip
    print(f"\n## {title}: input {' x '.join(map(str, shape))}")
    built = {name: make() for name, make in models.items()}
    for label, n, make_call in (
        ("train", batch, step),
        ("infer", 1, infer),
        ("infer", batch, infer),
    ):
        x = torch.randn(n, *shape)
        calls = {name: make_call(m, x) for name, m in built.items()}
        seconds = timed(calls, repeats, warmup=3)  # 3D kernels settle after a few calls
        first = next(iter(seconds.values()))
        for name, s in seconds.items():
            print(f"  {label} batch {n:<2} {name:<22} {n / s:7.2f} samples/s   "
                  f"{first / s:5.2f}x {next(iter(seconds))}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    import monai
    from monai.networks.nets import resnet18 as monai_resnet18

    print(f"# {cpu_description()}")
    print(f"# torch {torch.__version__}, torchvision {torchvision.__version__}, monai "
          f"{monai.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    volume = {
        "MONAI resnet18": lambda: monai_resnet18(
            spatial_dims=3, n_input_channels=1, num_classes=2, conv1_t_stride=2,
            bias_downsample=False,
        ),
        "resnets resnet18_3d": lambda: create_model("resnet18_3d", in_chans=1, num_classes=2),
    }  # fmt: skip
    clip = {
        "torchvision r3d_18": lambda: torchvision.models.video.r3d_18(),
        "resnets r3d_18": lambda: create_model("r3d_18"),
    }
    compare("volume, ResNet-18 3D", volume, (1, 64, 64, 64), args.batch, args.repeats)
    compare("clip, R3D-18", clip, (3, 16, 112, 112), args.batch, args.repeats)


if __name__ == "__main__":
    main()
