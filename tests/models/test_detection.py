"""The FPN backbone inside torchvision's detectors."""

import pytest
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, RetinaNet
from torchvision.ops.misc import FrozenBatchNorm2d

from resnets.models.detection import resnet_fpn_backbone


def scenes(n: int, size: int = 128, channels: int = 3, seed: int = 0):
    """Bright rectangles on dark noise, with their boxes and labels (1 or 2 by aspect)."""
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(n):
        img = torch.rand(channels, size, size, generator=g) * 0.2
        boxes, labels = [], []
        for _ in range(2):
            w, h = torch.randint(16, 48, (2,), generator=g).tolist()
            x0, y0 = torch.randint(0, size - 48, (2,), generator=g).tolist()
            img[:, y0 : y0 + h, x0 : x0 + w] = 0.9
            boxes.append([x0, y0, x0 + w, y0 + h])
            labels.append(1 if w >= h else 2)
        images.append(img)
        targets.append(
            {"boxes": torch.tensor(boxes, dtype=torch.float), "labels": torch.tensor(labels)}
        )
    return images, targets


def test_faster_rcnn_trains_on_the_backbone_and_predicts():
    torch.manual_seed(0)
    backbone = resnet_fpn_backbone("resnet18", trainable_stages=5)
    model = FasterRCNN(backbone, num_classes=3, min_size=128, max_size=128)
    images, targets = scenes(2)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    losses = []
    model.train()
    for _ in range(6):
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert min(losses[-2:]) < losses[0]
    model.eval()
    with torch.no_grad():
        out = model(images[:2])
    assert len(out) == 2 and set(out[0]) == {"boxes", "labels", "scores"}


def test_frozen_bn_trainable_stages_and_feature_maps():
    backbone = resnet_fpn_backbone("resnet50", trainable_stages=2)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in backbone.modules())
    trainable = [n for n, p in backbone.backbone.named_parameters() if p.requires_grad]
    assert all(n.startswith(("stages.2", "stages.3")) for n in trainable)
    feats = backbone(torch.randn(1, 3, 128, 128))
    assert list(feats) == ["0", "1", "2", "3", "pool"]
    assert [f.shape[-1] for f in feats.values()] == [32, 16, 8, 4, 2]
    assert all(f.shape[1] == 256 for f in feats.values())


def test_single_channel_backbone_in_retinanet():
    backbone = resnet_fpn_backbone(
        "resnet18d", in_chans=1, returned_stages=(2, 3, 4), extra_levels="p6p7"
    )
    model = RetinaNet(
        backbone, num_classes=2, min_size=96, max_size=96, image_mean=[0.5], image_std=[0.25]
    )
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(1, 96, 96)])
    assert "boxes" in out[0]


def test_bad_backbone_options():
    with pytest.raises(ValueError, match=r"trainable_stages must be within 0\.\.5"):
        resnet_fpn_backbone("resnet18", trainable_stages=9)
    with pytest.raises(ValueError, match=r"returned_stages must be within 1\.\.3"):
        resnet_fpn_backbone("resnet20", returned_stages=(1, 4))
