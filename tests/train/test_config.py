import pytest

from resnets.errors import ConfigError, UnknownNameError, UsageError
from resnets.train.config import load_config_file, resolve


def test_recipe_then_file_then_flags(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("recipe: paper-cifar\nbatch-size: 64\nweight_decay: 1e-4\nlr: 0.05\n")
    cfg = resolve({"lr": "0.02"}, f)
    assert cfg.steps == 64000 and cfg.milestones == (32000, 48000)  # from the recipe
    assert cfg.batch_size == 64 and cfg.weight_decay == 1e-4  # the file, YAML's 1e-4 as a number
    assert cfg.lr == 0.02  # the flag


def test_toml_config(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('model = "resnet32"\nepochs = 3\nmilestones = [1, 2]\namp = "bf16"\n')
    cfg = resolve({}, f)
    assert (cfg.model, cfg.epochs, cfg.milestones, cfg.amp) == ("resnet32", 3, (1, 2), "bf16")


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("epoch: 3\n", UnknownNameError, "unknown option in .*'epoch'; did you mean epochs"),
        ("epochs: three\n", ConfigError, "epochs in .* must be an integer, got 'three'"),
        ("amp: fp8\n", ConfigError, "amp in .* must be one of 'none', 'bf16', 'fp16'"),
        ("nesterov: maybe\n", ConfigError, "nesterov in .* must be true or false"),
        ("- a\n- b\n", ConfigError, "must hold a mapping"),
        ("epochs: [\n", ConfigError, "cannot parse"),
    ],
)
def test_bad_config_files_name_the_key(tmp_path, text, error, message):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(error, match=message):
        load_config_file(f)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"batch_size": -1}, "batch_size must be positive"),
        ({"epochs": 0}, "epochs must be positive"),
        ({"lr": 0}, "lr must be positive"),
        ({"weight_decay": -1e-4}, "weight_decay must not be negative"),
        ({"val_split": 0.0, "early_stop": 3}, "early_stop needs a validation set"),
        ({"milestones": "30,10"}, "milestones must increase"),
        ({"recipe": "papr-cifar"}, "did you mean paper-cifar"),
    ],
)
def test_impossible_values_are_usage_errors(flags, message):
    with pytest.raises(UsageError, match=message):
        resolve(flags)


def test_paper_cifar_warms_up_only_the_deep_nets():
    assert resolve({"recipe": "paper-cifar", "model": "resnet56"}).warmup_steps is None
    deep = resolve({"recipe": "paper-cifar", "model": "resnet110"})
    assert (deep.warmup_steps, deep.warmup_style, deep.warmup_factor) == (400, "constant", 0.1)
    own = resolve({"recipe": "paper-cifar", "model": "resnet110", "warmup_steps": 100})
    assert own.warmup_steps == 100


def test_missing_config_file():
    with pytest.raises(UsageError, match="does not exist"):
        resolve({}, "nope.yaml")
