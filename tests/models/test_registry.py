import pytest
import torch

from resnets import create_model, get_config, list_models
from resnets.errors import UnknownNameError

# torchvision's model cards and the CIFAR reference implementation (He et al. 2015, 4.2);
# ResNet-D counts as timm reports them; WRN-28-10 as in Zagoruyko & Komodakis (36.5M).
PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
    "resnet18d": 11_708_744,
    "resnet34d": 21_816_904,
    "resnet50d": 25_576_264,
    "resnet101d": 44_568_392,
    "preact_resnet50": 25_549_352,  # timm's resnetv2_50
    "wrn28_10": 36_479_194,
}


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_count_equals_reference(name):
    with torch.device("meta"):
        model = create_model(name)
    assert count(model) == PARAMS[name]


def test_plain_twins_have_the_same_parameters_as_option_a_resnets():
    for depth in (20, 32, 44, 56, 110):
        with torch.device("meta"):
            assert count(create_model(f"plain{depth}")) == count(create_model(f"resnet{depth}"))


def test_wrn_matches_its_paper_rounding():
    with torch.device("meta"):
        assert round(count(create_model("wrn28_10")) / 1e6, 1) == 36.5
        assert round(count(create_model("wrn16_8")) / 1e6, 1) == 11.0
        assert round(count(create_model("wrn40_4")) / 1e6, 1) == 8.9
        assert round(count(create_model("preact_resnet164")) / 1e6, 1) == 1.7
        assert round(count(create_model("preact_resnet1001")) / 1e6, 1) == 10.3


REQUIRED = (
    "resnet18 resnet34 resnet50 resnet101 resnet152 resnext50_32x4d resnext101_32x8d "
    "resnext101_64x4d wide_resnet50_2 wide_resnet101_2 resnet50b resnet50c resnet50d resnet18d "
    "resnet34d resnet101d preact_resnet18 preact_resnet34 preact_resnet50 preact_resnet101 "
    "preact_resnet152 resnet20 resnet32 resnet44 resnet56 resnet110 resnet1202 plain20 plain32 "
    "plain44 plain56 plain110 preact_resnet164 preact_resnet1001 wrn28_10 wrn16_8 wrn40_4"
).split()


def test_every_required_name_is_registered():
    assert set(REQUIRED) <= set(list_models())


def test_list_models_filters_by_pattern():
    assert list_models("resnext*") == ["resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d"]
    assert "plain20" in list_models("plain*") and "resnet20" not in list_models("plain*")


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownNameError, match=r"did you mean .*resnet50\b"):
        create_model("resnet05")


HEAVY = {"resnet1202", "preact_resnet1001", "wide_resnet101_2", "resnext101_32x8d",
         "resnet152_3d", "resnet200_3d"}  # fmt: skip


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in list_models()]
)
def test_forward_shape_of_every_registered_model(name):
    cfg = get_config(name)
    size = 16 if cfg.stem == "cifar" else 64
    extent = (size, size) if cfg.spatial_dims == 2 else (8, 32, 32)  # 3D: depth, height, width
    model = create_model(name, num_classes=7).train()  # batch statistics: untrained eval-mode
    with torch.no_grad():  # BN is the identity, and 600 residual sums would overflow
        out = model(torch.randn(2, 3, *extent))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
