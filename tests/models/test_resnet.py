"""Architecture behaviour: shortcuts, pre-activation order, features, checkpointing, compile."""

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from resnets import ResNetConfig, create_model
from resnets.models import ResNet
from resnets.models.blocks import PreActBasicBlock, ZeroPadShortcut

from ..helpers import randomize_bn


class CountAdds(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.adds = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        adds = (torch.Tensor.__add__, torch.Tensor.__iadd__, torch.add, torch.Tensor.add)
        if func in (*adds, torch.Tensor.add_):
            self.adds += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(("resnet", "plain"), [("resnet20", "plain20"), ("resnet18", "plain18")])
def test_plain_twins_contain_no_shortcut_addition(resnet, plain):
    x = torch.randn(1, 3, 32, 32)
    counts = {}
    for name in (resnet, plain):
        model = create_model(name).eval()
        with CountAdds() as mode, torch.no_grad():
            model(x)
        counts[name] = mode.adds
        shortcuts = [b.shortcut for b in model.blocks()]
        assert all(s is None for s in shortcuts) == (name == plain)
    assert counts[resnet] == sum(create_model(resnet).config.layers)
    assert counts[plain] == 0


def test_option_a_shortcut_is_parameter_free_strided_and_zero_padded():
    sc = ZeroPadShortcut(16, 32, stride=2)
    x = torch.randn(2, 16, 8, 8)
    y = sc(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert not y[:, :8].any() and not y[:, 24:].any()
    model = create_model("resnet20")
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in model.modules())


def test_option_b_projects_only_where_shape_changes_and_c_everywhere():
    def projections(shortcut):
        model = create_model("resnet18", shortcut=shortcut)
        return sum(isinstance(b.shortcut, nn.Sequential) for b in model.blocks())

    assert projections("B") == 3
    assert projections("C") == 8


def test_preactivation_order_bn_relu_conv_and_unactivated_sum():
    block = create_model("preact_resnet18").stages[1][0]
    assert isinstance(block, PreActBasicBlock)
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen[name] = inputs[0]

        return hook

    block.bn1.register_forward_hook(record("bn1_in"))
    block.conv1.register_forward_hook(record("conv1_in"))
    block.shortcut.register_forward_hook(record("shortcut_in"))
    x = torch.randn(2, 64, 8, 8)
    out = block.eval()(x)
    assert seen["bn1_in"] is x  # the block starts with BN on its raw input
    assert seen["conv1_in"].min() >= 0  # conv1 reads BN-ReLU output
    assert torch.equal(seen["shortcut_in"], seen["conv1_in"])  # projection reads it too
    assert out.min() < 0  # no ReLU after the addition
    assert isinstance(create_model("preact_resnet18").norm[0], nn.BatchNorm2d)


def test_stride_in_1x1_moves_the_bottleneck_stride():
    v15 = create_model("resnet50").stages[1][0]
    v1 = create_model("resnet50", stride_in_1x1=True).stages[1][0]
    assert (v15.conv1.stride, v15.conv2.stride) == ((1, 1), (2, 2))
    assert (v1.conv1.stride, v1.conv2.stride) == ((2, 2), (1, 1))


def test_resnet_d_shortcut_average_pools_before_a_stride_1_projection():
    sc = create_model("resnet50d").stages[1][0].shortcut
    assert isinstance(sc.pool, nn.AvgPool2d) and sc.conv.stride == (1, 1)
    stem = create_model("resnet50d").stem
    assert [stem.conv1.out_channels, stem.conv2.out_channels, stem.conv3.out_channels] == [
        32,
        32,
        64,
    ]


def test_zero_init_residual_makes_each_block_start_as_its_shortcut():
    model = create_model("resnet18", zero_init_residual=True)
    for block in model.blocks():
        assert not block.bn2.weight.any()
    block = model.stages[0][0].eval()
    x = torch.randn(1, 64, 8, 8)
    assert torch.equal(block(x), torch.relu(x))


@pytest.mark.parametrize(
    ("name", "size", "strides", "channels"),
    [
        ("resnet50", 64, [4, 8, 16, 32], [256, 512, 1024, 2048]),
        ("resnet18", 64, [4, 8, 16, 32], [64, 128, 256, 512]),
        ("resnet20", 32, [1, 2, 4], [16, 32, 64]),
        ("preact_resnet34", 64, [4, 8, 16, 32], [64, 128, 256, 512]),
    ],
)
def test_feature_strides_and_channels(name, size, strides, channels):
    model = create_model(name, in_chans=1).eval()
    assert [f.stride for f in model.feature_info] == strides
    assert [f.channels for f in model.feature_info] == channels
    feats = model.forward_intermediates(torch.randn(2, 1, size, size))
    for f, s, c in zip(feats, strides, channels, strict=True):
        assert f.shape == (2, c, size // s, size // s)
    assert model.forward_features(torch.zeros(1, 1, size, size)).shape[1] == channels[-1]


def test_num_classes_zero_gives_pooled_features():
    model = create_model("resnet18", num_classes=0).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 512)


def test_wrong_channel_count_names_the_expected_shape():
    model = create_model("resnet18", in_chans=1)
    with pytest.raises(
        ValueError, match=r"expects input of shape \(N, 1, H, W\), got \(2, 3, 32, 32\)"
    ):
        model(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("name", ["resnet20", "resnet50d", "preact_resnet18"])
def test_checkpointing_gives_identical_gradients_and_bn_statistics(name):
    x = torch.randn(4, 3, 32, 32)
    results = []
    for enable in (False, True):
        torch.manual_seed(1)
        model = create_model(name, num_classes=5, drop_path_rate=0.2)
        model.set_grad_checkpointing(enable)
        model(x).logsumexp(1).sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        results.append((grads, [b.clone() for b in model.buffers()]))
    (g0, b0), (g1, b1) = results
    assert all(torch.equal(a, b) for a, b in zip(g0, g1, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(b0, b1, strict=True))


def test_checkpointing_stores_less_activation_memory():
    from resnets.analysis.info import _activation_bytes

    model = create_model("resnet56")
    x = torch.randn(8, 3, 32, 32)
    plain = _activation_bytes(model, x)
    model.set_grad_checkpointing(True)
    assert _activation_bytes(model, x) < plain / 3


def test_drop_path_is_random_in_training_and_off_in_eval():
    model = create_model("resnet20", drop_path_rate=0.5)
    x = torch.randn(4, 3, 16, 16)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
    rates = [b.drop_path.p for b in model.blocks() if hasattr(b.drop_path, "p")]
    assert rates[-1] == 0.5 and rates == sorted(rates)


VARIANTS = {
    "basic_A": ("resnet20", {}),
    "plain": ("plain20", {}),
    "bottleneck_deep_avgdown": ("resnet50d", {"layers": (1, 1, 1, 1)}),
    "resnext": ("resnext50_32x4d", {"layers": (1, 1, 1, 1)}),
    "preact_bottleneck_cifar": ("preact_resnet164", {"layers": (1, 1, 1)}),
    "preact_basic_wide": ("wrn16_8", {"drop_path_rate": 0.1}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_channels_last_matches_contiguous(variant):
    name, overrides = VARIANTS[variant]
    model = randomize_bn(create_model(name, **overrides)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_compiles_without_graph_breaks(variant):
    torch._dynamo.reset()
    name, overrides = VARIANTS[variant]
    model = create_model(name, **overrides).train()
    model.set_grad_checkpointing(variant == "preact_basic_wide")
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    x = torch.randn(2, 3, 32, 32)
    compiled(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.slow
def test_inductor_compile_matches_eager():
    torch._dynamo.reset()
    model = randomize_bn(create_model("resnet20")).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model)(x), model(x), rtol=1e-4, atol=1e-4)


def test_custom_config_builds_a_resnet():
    cfg = ResNetConfig(block="basic", layers=(1, 1), widths=(8, 16), stem="cifar", stem_width=8)
    assert ResNet(cfg)(torch.randn(1, 3, 8, 8)).shape == (1, 1000)
