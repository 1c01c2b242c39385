import pytest

from resnets import ResNetConfig, create_model
from resnets.errors import ConfigError, UnknownNameError


def test_width_not_divisible_by_groups_is_a_clear_value_error():
    with pytest.raises(ValueError, match="not divisible into 32 groups"):
        ResNetConfig(
            block="bottleneck", layers=(1, 1), widths=(64, 100), groups=32, width_per_group=4
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"block": "triple"}, "block='triple' is not one of 'basic', 'bottleneck'"),
        ({"shortcut": "D"}, "shortcut='D' is not one of"),
        ({"layers": (2, 0, 2, 2)}, "layers must be a tuple of positive integers"),
        ({"layers": (2, 2), "widths": (64, 128, 256)}, "equal length"),
        ({"groups": 32}, "basic blocks support only groups=1"),
        ({"shortcut": "A", "avg_down": True}, "avg_down needs a projection shortcut"),
        ({"shortcut": "none", "drop_path_rate": 0.1}, "plain network has no branch"),
        ({"drop_rate": 1.5}, r"drop_rate must be in \[0, 1\)"),
        ({"in_chans": 0}, "in_chans must be at least 1"),
        ({"stem": "deep", "stem_width": 33}, "even stem_width"),
        ({"stride_in_1x1": True}, "bottleneck blocks only"),
        ({"preact": "yes"}, "preact must be true or false"),
        ({"shortcut": "A", "stem_width": 128}, "cannot shrink 128 to 64"),
    ],
)
def test_impossible_configs_name_the_problem(fields, message):
    base = {"block": "basic", "layers": (2, 2, 2, 2)}
    with pytest.raises(ConfigError, match=message):
        ResNetConfig(**(base | fields))


def test_unknown_override_suggests_the_field():
    with pytest.raises(UnknownNameError, match="did you mean num_classes"):
        create_model("resnet18", num_clases=10)


def test_lists_become_tuples_and_round_trip_through_dict():
    cfg = ResNetConfig(block="basic", layers=[1, 1], widths=[8, 16], stem="cifar", stem_width=8)
    assert cfg.layers == (1, 1)
    assert ResNetConfig.from_dict(cfg.to_dict()) == cfg


def test_depth_counts_weighted_layers_as_the_paper():
    from resnets import get_config

    assert [get_config(n).depth for n in ("resnet18", "resnet50", "resnet110")] == [18, 50, 110]
    assert get_config("preact_resnet164").depth == 164
