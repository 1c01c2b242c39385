import torch

from resnets.data.augment import CropFlip, MixUpCutMix, match_channels, normalize


def test_batched_crop_equals_per_sample_pad_and_slice():
    x = torch.randint(0, 256, (16, 3, 10, 12), dtype=torch.uint8)
    aug = CropFlip(padding=3, hflip=True)
    p = aug.sample(16, torch.Generator().manual_seed(0))
    out = aug.apply(x, p)
    padded = torch.nn.functional.pad(x, (3, 3, 3, 3))
    for i in range(16):
        dy, dx = int(p["dy"][i]), int(p["dx"][i])
        ref = padded[i, :, dy : dy + 10, dx : dx + 12]
        if p["flip"][i]:
            ref = ref.flip(2)
        assert torch.equal(out[i], ref)
    assert {int(v) for v in p["dy"]} > {3}  # offsets vary


def test_normalize_and_channel_matching():
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = normalize(x, torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.5, 1.0]))
    assert torch.allclose(out[:, 0], torch.tensor(2.0)) and torch.allclose(
        out[:, 2], torch.tensor(0.5)
    )
    gray = match_channels(x, 1)
    assert gray.shape == (2, 1, 4, 4) and int(gray.max()) == 255
    assert match_channels(gray, 3).shape == (2, 3, 4, 4)


def test_mixup_targets_are_soft_and_sum_to_one():
    mix = MixUpCutMix(mixup_alpha=0.4, cutmix_alpha=0.0, num_classes=5, label_smoothing=0.1)
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    p = mix.sample(torch.Generator().manual_seed(3))
    xm, t = mix.apply(x, y, p)
    torch.testing.assert_close(t.sum(1), torch.ones(6))
    torch.testing.assert_close(xm, x * p["lam"] + x.flip(0) * (1 - p["lam"]))


def test_cutmix_area_sets_lambda():
    mix = MixUpCutMix(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=3)
    x, y = torch.zeros(4, 1, 10, 10), torch.tensor([0, 1, 2, 1])
    x[2:] = 1.0
    p = mix.sample(torch.Generator().manual_seed(5))
    xm, t = mix.apply(x, y, p)
    pasted = (xm[0] == 1).float().mean().item()  # sample 0 receives a box from sample 3
    assert abs(t[0, 0].item() - (1 - pasted)) < 1e-6
