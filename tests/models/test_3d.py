"""3D ResNets: parameter counts and outputs equal to torchvision's video models and MONAI's
3D ResNets, every family member in 3D, and I3D inflation from 2D weights."""

import pytest
import torch
import torchvision

from resnets import ResNet, create_model, get_config
from resnets.errors import ConfigError, WeightsError
from resnets.models.keys import (
    from_torchvision,
    from_torchvision_video,
    to_torchvision,
    to_torchvision_video,
)
from resnets.models.weights import load_state

from ..helpers import randomize_bn


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# torchvision's documented counts (Kinetics-400 heads)
VIDEO = {"r3d_18": 33_371_472, "mc3_18": 11_695_440, "r2plus1d_18": 31_505_325}
# MONAI's resnet{d}(spatial_dims=3, n_input_channels=3, num_classes=400, bias_downsample=False):
# MedicalNet's layout; MONAI's default bias_downsample=True adds 896 (basic) / 3,840 (bottleneck)
VOLUME = {10: 14_604_624, 18: 33_409_104, 34: 63_718_736, 50: 47_018_576,
          101: 86_064_720, 152: 118_223_440, 200: 127_423_056}  # fmt: skip


@pytest.mark.parametrize("name", sorted(VIDEO))
def test_video_models_equal_torchvisions_bit_for_bit(name):
    torch.manual_seed(0)
    reference = randomize_bn(getattr(torchvision.models.video, name)()).eval()
    ours = create_model(name).eval()
    assert n_params(ours) == n_params(reference) == VIDEO[name]
    ours.load_state_dict(from_torchvision_video(reference.state_dict(), ours.config))
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
    back = to_torchvision_video(ours.state_dict(), ours.config)
    assert set(back) == set(reference.state_dict())
    assert to_torchvision(ours.state_dict(), ours.config).keys() == back.keys()  # convert --to


@pytest.mark.parametrize(("depth", "count"), sorted(VOLUME.items()))
def test_volume_models_have_monais_parameter_counts(depth, count):
    with torch.device("meta"):
        model = create_model(f"resnet{depth}_3d")
        biased = create_model(f"resnet{depth}_3d", shortcut_bias=True)
    assert n_params(model) == count
    assert n_params(biased) - count == (896 if depth < 50 else 3840)


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("bias", [False, True])
def test_monai_weights_load_by_key_mapping_and_give_the_same_outputs(depth, bias):
    nets = pytest.importorskip("monai.networks.nets")
    torch.manual_seed(0)
    reference = getattr(nets, f"resnet{depth}")(
        spatial_dims=3, n_input_channels=3, conv1_t_stride=2, bias_downsample=bias
    )
    reference = randomize_bn(reference).eval()
    ours = create_model(f"resnet{depth}_3d", shortcut_bias=bias).eval()
    assert n_params(ours) == n_params(reference)
    load_state(ours, reference.state_dict(), None, "MONAI")
    x = torch.randn(1, 3, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))
    if bias:  # MONAI's default weights into the MedicalNet layout: refused with the fix
        with pytest.raises(WeightsError, match="build the model with shortcut_bias=True"):
            load_state(create_model(f"resnet{depth}_3d"), reference.state_dict(), None, "MONAI")


def test_shortcut_a_pads_after_the_channels_in_3d_as_medicalnet_does():
    """MedicalNet's resnet18/34 weights use shortcut A, whose zeros follow the channels."""
    nets = pytest.importorskip("monai.networks.nets")
    torch.manual_seed(0)
    reference = nets.resnet18(
        spatial_dims=3,
        n_input_channels=1,
        conv1_t_stride=2,
        shortcut_type="A",
        bias_downsample=False,
    )
    reference = randomize_bn(reference).eval()
    ours = create_model("resnet18_3d", in_chans=1, shortcut="A").eval()
    assert n_params(ours) == n_params(reference)
    load_state(ours, reference.state_dict(), None, "MONAI")
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"block": "bottleneck", "groups": 4, "width_per_group": 16},  # ResNeXt
        {"preact": True},
        {"block": "bottleneck", "width_factor": 2},  # wide
        {"stem": "cifar", "shortcut": "A"},
        {"stem": "deep", "avg_down": True, "shortcut": "B"},
        {"shortcut": "none"},
        {"stem": "video", "conv3d": "mixed", "shortcut": "A"},
        {"stem": "video", "conv3d": "2plus1d", "block": "bottleneck"},
    ],
)
def test_every_family_member_exists_in_3d(changes):
    cfg = get_config("resnet10_3d").replace(
        widths=(8, 16, 16, 32), stem_width=8, num_classes=3, **changes
    )
    model = ResNet(cfg)
    x = torch.randn(2, 3, 32, 32, 32, requires_grad=True)
    model.set_grad_checkpointing()
    out = model(x)
    assert out.shape == (2, 3)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3, D, H, W\)"):
        model(torch.randn(2, 3, 16, 16))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"conv3d": "mixed"}, "conv3d='mixed' is a 3D option; set spatial_dims=3"),
        ({"stem": "video"}, "stem='video' is a 3D option"),
        ({"spatial_dims": 1}, "spatial_dims must be 2"),
    ],
)
def test_3d_options_on_a_2d_net_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        get_config("resnet18").replace(**changes)


def test_inflated_2d_weights_reproduce_2d_activations_on_a_boring_volume():
    """I3D's check: a volume whose slices are all one image gives the 2D model's activations
    at every stage, away from the depth boundaries (where zero padding differs)."""
    torch.manual_seed(0)
    flat = randomize_bn(create_model("resnet18", num_classes=5)).eval()
    deep = create_model("resnet18_3d", num_classes=5).eval()
    load_state(deep, flat.state_dict(), None, "resnet18 (2D)")
    image = torch.randn(1, 3, 32, 32)
    volume = image.unsqueeze(2).repeat(1, 1, 320, 1, 1)
    with torch.no_grad():
        planar, solid = flat.forward_intermediates(image), deep.forward_intermediates(volume)
    for stage, (a, b) in enumerate(zip(planar, solid, strict=True)):
        middle = b[:, :, b.shape[2] // 2]
        torch.testing.assert_close(middle, a, rtol=1e-4, atol=1e-4 * a.abs().max().item())
        edge = (b[:, :, 0] - a).abs().max() / a.abs().max()
        assert edge > 1e-3, f"stage {stage}: the boundary should differ (zero padding)"


def test_2d_weights_do_not_inflate_into_2plus1d_convs():
    flat = create_model("resnet18")
    with pytest.raises(WeightsError, match=r"not into \(2\+1\)D convs"):
        load_state(create_model("r2plus1d_18"), flat.state_dict(), None, "resnet18")


def test_monai_layout_is_torchvisions_2d_names():
    nets = pytest.importorskip("monai.networks.nets")
    reference = nets.resnet10(spatial_dims=3, n_input_channels=1, bias_downsample=False)
    ours = create_model("resnet10_3d", in_chans=1)
    mapped = from_torchvision(reference.state_dict(), ours.config)
    assert set(mapped) == set(ours.state_dict())
