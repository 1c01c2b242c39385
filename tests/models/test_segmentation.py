import pytest
import torch

from resnets.models import create_segmentation_model


@pytest.mark.parametrize(
    ("name", "size"), [("resnet18", 64), ("resnet20", 32), ("preact_resnet18", 48)]
)
def test_masks_come_out_at_the_input_size(name, size):
    model = create_segmentation_model(name, num_classes=4).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 4, size, size)


def test_weights_saved_when_the_backbone_was_called_encoder_still_load(tmp_path):
    from safetensors.torch import load_file, save_file

    from resnets.models import get_config, load_model
    from resnets.models.meta import WeightsMeta
    from resnets.models.weights import save_weights

    model = create_segmentation_model("resnet20", num_classes=3).eval()
    meta = WeightsMeta(
        "resnet20",
        get_config("resnet20").replace(num_classes=0),
        classes=["a", "b", "c"],
        task="segmentation",
    )
    path = save_weights(model, tmp_path / "seg.safetensors", meta)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        header = f.metadata()
    old = {k.replace("backbone.", "encoder.", 1): v for k, v in load_file(path).items()}
    save_file(old, str(path), metadata=header)
    again = load_model(path).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
