"""--gpu-decode, exercised on the CPU: the same code path, decode_jpeg(device="cpu")."""

import torch

from resnets.data import DataOptions, Shard, load_splits, make_loaders
from resnets.data.build import eval_loader
from resnets.data.device_decode import random_resized_crop_params

from ..helpers import write_image_folder

CPU = torch.device("cpu")


def test_crop_parameters_stay_inside_the_image_and_cover_the_scale_range():
    g = torch.Generator().manual_seed(0)
    areas = []
    for _ in range(500):
        top, left, h, w = random_resized_crop_params(300, 400, g)
        assert top >= 0 and top + h <= 300 and left >= 0 and left + w <= 400
        areas.append(h * w / (300 * 400))
    assert min(areas) < 0.15 and max(areas) > 0.85
    assert random_resized_crop_params(10, 1000, g)[2:] == (10, 13)  # extreme ratio: fallback


def test_device_decoded_eval_images_equal_the_worker_path(tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=12, size=40)
    common = {"data": f"imagefolder:{root}", "image_size": 24, "eval_resize": 28}
    cpu = load_splits(DataOptions(**common), seed=0)
    dev = load_splits(DataOptions(**common, gpu_decode=True), seed=0)
    a = [x for x, _ in eval_loader(cpu, "test", 8, CPU, num_workers=0)]
    b = [x for x, _ in eval_loader(dev, "test", 8, CPU, num_workers=0)]
    assert len(a) == len(b) and all(
        torch.allclose(p, q, atol=1e-6) for p, q in zip(a, b, strict=True)
    )


def test_device_decoding_trains_reproducibly_and_counts_unreadable_files(tmp_path):
    root = write_image_folder(tmp_path / "shapes", per_class=20, size=40)
    (root / "circle" / "0.jpg").write_bytes(b"\xff\xd8\xff broken")
    opts = DataOptions(data=f"imagefolder:{root}", image_size=32, val_split=0.0, gpu_decode=True)
    splits = load_splits(opts, seed=0)
    runs = []
    for workers in (0, 2):
        loaders = make_loaders(
            splits, batch_size=8, shard=Shard(), device=CPU, seed=1, num_workers=workers
        )
        runs.append([mb[0][0] for mb in loaders.train.epoch(0)])
        for _ in loaders.test:
            pass
        bad = loaders.train.skipped + loaders.test.skipped
    assert all(torch.equal(p, q) for p, q in zip(runs[0], runs[1], strict=True))
    assert runs[0][0].shape[1:] == (3, 32, 32)
    assert bad == 1
