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
