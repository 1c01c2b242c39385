import math

import torch

from resnets.data import augment
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


QUARTER = torch.tensor([[math.pi / 2]])


def test_a_quarter_turn_of_an_image_is_rot90_exactly():
    x = torch.randint(0, 256, (1, 2, 6, 6), dtype=torch.uint8)
    out = augment._turn(x, QUARTER, torch.ones(1), mask_last=False)
    assert out.dtype == torch.uint8
    assert torch.equal(out, x.rot90(1, (2, 3))) or torch.equal(out, x.rot90(-1, (2, 3)))


def test_a_volume_turns_about_each_axis_and_a_clip_only_within_its_frames():
    x = torch.randint(0, 256, (1, 1, 4, 4, 4), dtype=torch.uint8)
    turns = {
        "about depth": torch.tensor([[math.pi / 2, 0.0, 0.0]]),
        "about height": torch.tensor([[0.0, math.pi / 2, 0.0]]),
        "about width": torch.tensor([[0.0, 0.0, math.pi / 2]]),
    }
    planes = {"about depth": (3, 4), "about height": (2, 4), "about width": (2, 3)}
    for name, angles in turns.items():
        out = augment._turn(x, angles, torch.ones(1), mask_last=False)
        dims = planes[name]
        assert torch.equal(out, x.rot90(1, dims)) or torch.equal(out, x.rot90(-1, dims)), name
    clip = torch.randint(0, 256, (1, 3, 5, 6, 6), dtype=torch.uint8)  # 5 frames
    out = augment._turn(clip, QUARTER, torch.ones(1), mask_last=False)
    assert torch.equal(out, clip.rot90(1, (3, 4))) or torch.equal(out, clip.rot90(-1, (3, 4)))


def test_zooming_out_leaves_the_border_black_and_its_labels_ignored():
    image = torch.full((1, 1, 8, 8), 200, dtype=torch.uint8)
    mask = torch.ones(1, 1, 8, 8, dtype=torch.uint8)  # every pixel class 1
    out = augment._turn(torch.cat([image, mask], 1), torch.zeros(1, 1), torch.tensor([0.5]), True)
    assert out[0, 0, 0, 0] == 0 and out[0, 1, 0, 0] == 255  # from outside: black, ignored
    assert out[0, 0, 4, 4] == 200 and out[0, 1, 4, 4] == 1  # the centre keeps its class
    assert set(out[0, 1].unique().tolist()) == {1, 255}  # nearest: no blended labels


def test_rotation_and_zoom_are_drawn_within_their_bounds_and_only_when_asked():
    gen = torch.Generator().manual_seed(0)
    plain = CropFlip(padding=2, hflip=True, dims=3).sample(64, gen)
    assert "angles" not in plain and "zoom" not in plain
    drawn = CropFlip(2, True, dims=3, rotate=10, scale=0.1).sample(256, gen)
    assert drawn["angles"].shape == (256, 3) and drawn["zoom"].shape == (256,)
    assert drawn["angles"].abs().max() <= math.radians(10)
    assert drawn["zoom"].min() >= 0.9 and drawn["zoom"].max() <= 1.1
    assert drawn["angles"].abs().max() > math.radians(9)  # the bound is reached, not shrunk
    clip = CropFlip(2, True, dims=3, rotate=10, video=True).sample(8, gen)
    assert clip["angles"].shape == (8, 1)  # within the frame only


def test_clips_shift_in_time_by_their_own_padding():
    aug = CropFlip(padding=0, hflip=False, dims=3, depth_padding=1)
    x = torch.arange(6, dtype=torch.uint8).view(1, 1, 6, 1, 1).expand(32, 1, 6, 8, 8).contiguous()
    p = aug.sample(32, torch.Generator().manual_seed(1))
    out = aug.apply(x, p)
    assert set(p["dz"].tolist()) == {0, 1, 2}  # at most one frame either way
    for i in range(32):
        shift = int(p["dz"][i]) - 1
        kept = out[i, 0, :, 4, 4].tolist()  # a pixel: its frame index, or 0 where padded
        expected = [t + shift if 0 <= t + shift < 6 else 0 for t in range(6)]
        assert kept == expected
