import pytest
import torch
import torch.nn.functional as F

from resnets.data.datasets import make_shapes
from resnets.models.segmentation import create_multitask_model, create_segmentation_model


@pytest.mark.parametrize(
    ("name", "size"), [("resnet18", 64), ("resnet20", 32), ("preact_resnet18", 48)]
)
def test_masks_come_out_at_the_input_size(name, size):
    model = create_segmentation_model(name, num_classes=4).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 4, size, size)


def test_multitask_model_learns_both_heads_on_single_channel_shapes():
    torch.manual_seed(0)
    data = make_shapes(32, 48)
    x = (data.images.float() / 255 - 0.4) / 0.2
    masks = data.labels
    kind = (masks.flatten(1).max(1).values == 2).long()  # 0: circle, 1: square
    model = create_multitask_model("resnet18", num_classes=2, seg_classes=3, in_chans=1)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = last = None
    for _ in range(25):
        cls, seg = model(x)
        loss_cls, loss_seg = F.cross_entropy(cls, kind), F.cross_entropy(seg, masks)
        opt.zero_grad()
        (loss_cls + loss_seg).backward()
        opt.step()
        first = first or (loss_cls.item(), loss_seg.item())
        last = (loss_cls.item(), loss_seg.item())
    assert cls.shape == (32, 2) and seg.shape == (32, 3, 48, 48)
    assert last[0] < 0.5 * first[0] and last[1] < 0.5 * first[1]
