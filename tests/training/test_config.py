import pytest

from resnets.errors import ConfigError, UnknownNameError, UsageError
from resnets.training.config import load_config_file
from resnets.training.resolve import resolve


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
        ({"batch_size": -1}, r"batch_size must be in \[1, inf\), got -1"),
        ({"epochs": 0}, r"epochs must be in \[1, inf\)"),
        ({"lr": 0}, r"lr must be in \(0, inf\)"),
        ({"weight_decay": -1e-4}, r"weight_decay must be in \[0, inf\)"),
        ({"clip_grad": -1}, r"clip_grad must be in \(0, inf\), got -1"),  # gradient ascent
        ({"momentum": 2}, r"momentum must be in \[0, 1\), got 2"),
        ({"label_smoothing": 1.5}, r"label_smoothing must be in \[0, 1\)"),
        ({"min_lr": 0.5}, r"min_lr \(0.5\) must be below the peak lr \(0.1\)"),
        ({"min_lr": 0.05, "lr": 0.1, "lr_scaling": "linear", "batch_size": 64}, "peak lr"),
        ({"drop_rate": 1.0}, r"drop_rate must be in \[0, 1\)"),
        ({"lr_gamma": 2}, r"lr_gamma must be in \(0, 1\]"),
        ({"milestones": "0,10"}, r"milestones must be in \[1, inf\), got 0"),
        ({"epochs": 2, "steps": 100}, "epochs and steps are both set in arguments"),
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


def test_every_numeric_option_declares_its_range():
    import typing

    from resnets.training.config import FIELDS, HINTS

    for name, f in FIELDS.items():
        numbers = {int, float} & {HINTS[name], *typing.get_args(HINTS[name])}
        if (numbers and name != "lr_backbone") or name == "milestones":
            assert "bounds" in f.metadata, f"{name} declares no range"


def test_an_explicit_length_wins_over_the_recipes():
    cfg = resolve({"recipe": "paper-cifar", "epochs": 2})  # 6,400 epochs before the fix
    assert (cfg.epochs, cfg.steps) == (2, None)
    cfg = resolve({"recipe": "paper-cifar", "model": "resnet110", "warmup_epochs": 1})
    assert (cfg.warmup_epochs, cfg.warmup_steps) == (1, None)


def test_flags_beat_the_file_for_the_run_length(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("steps: 500\n")
    assert resolve({}, f).steps == 500
    cfg = resolve({"epochs": 3}, f)
    assert (cfg.epochs, cfg.steps) == (3, None)
    f.write_text("steps: 500\nepochs: 3\n")
    with pytest.raises(UsageError, match=r"epochs and steps are both set in .*run\.yaml"):
        resolve({}, f)


def test_paper_recipe_with_explicit_epochs_trains_that_many(tmp_path):
    from resnets import train

    s = train(
        recipe="paper-cifar", epochs=1, out=str(tmp_path / "r"), progress=False, tensorboard=False
    )
    assert (s["epochs"], s["steps"]) == (1, 10)  # digits: 10 steps per epoch at batch 128
    assert any("never happen" in note for note in s["notes"])  # the 32k/48k lr drops
