"""One vocabulary for the public API: `weights` for "a run folder or a weights file" in every
command, `model` for a model's name in every builder, and the old names still working for one
release, each with a warning that names the new one."""

import inspect
import warnings

import pytest

import resnets
from resnets.models import create_segmentation_model

RUN_OR_WEIGHTS = ("evaluate", "explain", "export", "predict", "convert")
MODEL_NAME = ("create_model", "get_config", "register")


@pytest.mark.parametrize("command", RUN_OR_WEIGHTS)
def test_every_command_takes_the_run_or_weights_as_weights(command):
    first = next(iter(inspect.signature(getattr(resnets, command)).parameters))
    assert first == "weights"


@pytest.mark.parametrize("builder", [*MODEL_NAME, "ImageClassifier"])
def test_every_builder_takes_the_models_name_as_model(builder):
    parameters = [p for p in inspect.signature(getattr(resnets, builder)).parameters if p != "self"]
    assert parameters[0] == "model"
    assert next(iter(inspect.signature(create_segmentation_model).parameters)) == "model"


def test_export_and_convert_are_at_the_top_level():
    assert {"export", "convert"} <= set(resnets.__all__) and {"export", "convert"} <= set(
        dir(resnets)
    )


def test_an_old_argument_name_still_works_and_warns_with_the_new_one():
    with pytest.warns(DeprecationWarning, match=r"create_model\(name=...\) is now .*model="):
        old = resnets.create_model(name="resnet20", num_classes=3)
    assert old.name == "resnet20" and old.config == resnets.get_config("resnet20").replace(
        num_classes=3
    )
    with pytest.warns(DeprecationWarning, match=r"get_config\(name="):
        assert resnets.get_config(name="resnet20") == resnets.get_config(model="resnet20")
    with pytest.raises(TypeError, match="name= and model="):
        resnets.create_model(name="resnet20", model="resnet32")


def test_the_new_names_warn_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resnets.create_model(model="resnet20")
        resnets.create_model("resnet20")


def test_evaluate_still_takes_source_and_says_it_is_weights(tmp_path):
    missing = tmp_path / "no-run"
    warned = pytest.warns(DeprecationWarning, match=r"evaluate\(source=...\) is now")
    refused = pytest.raises(resnets.ResnetsError, match="no-run")  # it reached `weights`
    with warned, refused:
        resnets.evaluate(source=missing)


def test_the_classifier_takes_model_and_keeps_the_tutorials_variant():
    assert resnets.ImageClassifier("resnet20", num_classes=3).variant == "resnet20"
    assert resnets.ImageClassifier(model="resnet20", num_classes=3).model.name == "resnet20"
    assert resnets.ImageClassifier(variant="resnet20", num_classes=3).model.name == "resnet20"
    with pytest.raises(resnets.ResnetsError, match="name two models"):
        resnets.ImageClassifier(model="resnet20", variant="resnet32")
