import pytest
import torch

from resnets import create_model
from resnets.analysis import model_info
from resnets.analysis.info import _activation_bytes
from resnets.errors import UsageError


@pytest.mark.parametrize(
    ("name", "size", "gmacs"),
    [("resnet50", 224, 4.089), ("resnet18", 224, 1.814), ("resnet34", 224, 3.664)],
)
def test_macs_match_torchvision_model_cards(name, size, gmacs):
    assert round(model_info(name, size).macs / 1e9, 3) == gmacs


def test_cifar_resnet20_is_about_41_million_macs():
    info = model_info("resnet20")
    assert info.input_size == 32
    assert 40.5e6 < info.macs < 41.0e6
    assert info.params == 269_722


def test_rows_give_stage_shapes_and_sum_to_the_totals():
    info = model_info("resnet50", 224)
    assert [r.output_shape for r in info.rows[1:5]] == [
        (256, 56, 56),
        (512, 28, 28),
        (1024, 14, 14),
        (2048, 7, 7),
    ]
    assert sum(r.params for r in info.rows) == info.params
    assert sum(r.macs for r in info.rows) == info.macs


def test_activation_memory_on_meta_equals_a_real_forward_and_scales_with_batch():
    one = model_info("resnet20", 32, batch_size=1).activation_bytes
    four = model_info("resnet20", 32, batch_size=4).activation_bytes
    assert 0.99 < four / (4 * one) < 1.0  # BN's saved per-channel statistics do not scale
    real = _activation_bytes(create_model("resnet20"), torch.randn(1, 3, 32, 32))
    assert real == one


def test_info_of_a_built_model_leaves_it_untouched():
    model = create_model("resnet20", num_classes=3)
    info = model_info(model, 16)
    assert info.params == sum(p.numel() for p in model.parameters())
    assert not next(model.parameters()).is_meta


def test_small_inputs_at_batch_one_are_described_not_a_traceback():
    info = model_info("resnet50", 32)  # a 1x1 last stage: training-mode BN needs batch > 1
    assert info.rows[-2].output_shape == (2048, 1, 1)
    two, three = (model_info("resnet50", 32, n).activation_bytes for n in (2, 3))
    per_image = three - two
    assert info.activation_bytes == two - per_image


@pytest.mark.parametrize(
    ("name", "size"),
    [("resnet20", 32), ("resnext50_32x4d", 64), ("wide_resnet50_2", 64), ("resnet50d", 64)],
)
def test_macs_equal_torchs_flop_counter(name, size):
    from torch.utils.flop_counter import FlopCounterMode

    from resnets.analysis.info import count_macs

    model = create_model(name).eval()
    x = torch.randn(2, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert sum(count_macs(model, x).values()) == counter.get_total_flops() // 2


@pytest.mark.parametrize("name", ["r2plus1d_18", "resnet50_3d"])
def test_3d_macs_equal_torchs_flop_counter_and_info_reads_the_depth(name):
    from torch.utils.flop_counter import FlopCounterMode

    from resnets.analysis.info import count_macs, model_info

    model = create_model(name).eval()
    x = torch.randn(1, 3, 8, 32, 32)
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert sum(count_macs(model, x).values()) == counter.get_total_flops() // 2
    info = model_info(name, input_size=32, input_depth=8)
    assert info.macs == counter.get_total_flops() // 2
    assert "at 8x32x32 (depth x height x width)" in info.table()
    assert info.rows[0].output_shape[1] == (8 if name == "r2plus1d_18" else 2)  # video: depth kept


def test_input_depth_is_refused_for_a_2d_model():
    from resnets.analysis.info import model_info

    with pytest.raises(UsageError, match="--input-depth is for 3D models"):
        model_info("resnet18", input_depth=8)
