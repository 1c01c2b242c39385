"""The FPN backbone inside torchvision's detectors."""

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN, RetinaNet
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone as tv_fpn_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

from resnets import get_config, list_models
from resnets.errors import UsageError
from resnets.models.detection import resnet_fpn_backbone

from ..helpers import randomize_bn


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
    model = FasterRCNN(
        backbone,
        num_classes=3,
        min_size=128,
        max_size=128,
        rpn_pre_nms_top_n_train=500,
        rpn_post_nms_top_n_train=250,
        box_batch_size_per_image=128,  # of 512: RoIAlign's backward is most of the time on CPU
    )
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
    with pytest.raises(ValueError, match=r"trainable_stages must be within 0\.\.4"):
        resnet_fpn_backbone("resnet20", trainable_stages=5)
    with pytest.raises(ValueError, match=r"returned_stages must be within 1\.\.3"):
        resnet_fpn_backbone("resnet20", returned_stages=(1, 4))
    with pytest.raises(ValueError, match=r"within 1\.\.3 \(wrn16_8 has 3 stages\), got \(4,\)"):
        resnet_fpn_backbone("wrn16_8", returned_stages=(4,), extra_levels="p6p7")
    with pytest.raises(ValueError, match=r"increasing stage numbers, got \(3, 2\)"):
        resnet_fpn_backbone("resnet18", returned_stages=(3, 2))
    with pytest.raises(ValueError, match=r"extra_levels must be 'pool' or 'p6p7'"):
        resnet_fpn_backbone("resnet18", extra_levels="p6")


def test_imagenet_path_equals_torchvisions_resnet_fpn_backbone(tmp_path):
    tv = tv_fpn_backbone(backbone_name="resnet50", weights=None).eval()
    classifier = randomize_bn(torchvision.models.resnet50())
    torch.save(classifier.state_dict(), tmp_path / "r50.pth")
    tv.body.load_state_dict(classifier.state_dict(), strict=False)  # all but fc
    ours = resnet_fpn_backbone("resnet50", pretrained=tmp_path / "r50.pth").eval()
    ours.fpn.load_state_dict(tv.fpn.state_dict())

    def trainable(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters() if p.requires_grad)

    assert trainable(ours.backbone) == trainable(tv.body) and ours.out_channels == tv.out_channels
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = ours(x), tv(x)
    assert list(a) == list(b) == ["0", "1", "2", "3", "pool"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-4)


# Depth changes no stage's width or stride, so these build with one block per stage: at full
# depth they take seconds each, and hundreds of residual sums through untrained frozen BN overflow.
HEAVY = {
    "resnet1202",
    "preact_resnet1001",
    "resnet101",
    "resnet101d",
    "resnet152",
    "preact_resnet50",
    "preact_resnet101",
    "preact_resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
}


@pytest.mark.parametrize("name", [n for n in list_models() if get_config(n).spatial_dims == 2])
def test_every_registered_model_gives_a_pyramid_of_all_its_stages(name):
    cfg = get_config(name)
    n, size = len(cfg.layers), 32 if cfg.stem == "cifar" else 64
    shallow = {"layers": (1,) * n} if name in HEAVY else {}
    backbone = resnet_fpn_backbone(name, out_channels=32, **shallow).eval()
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, size, size))
    strides = [cfg.stem_stride * 2**i for i in range(n + 1)]  # the stages', then "pool"
    assert list(feats) == [*map(str, range(n)), "pool"]
    assert list(backbone.strides) == strides
    for f, stride in zip(feats.values(), strides, strict=True):
        assert f.shape == (1, 32, -(-size // stride), -(-size // stride))
        assert torch.isfinite(f).all()
    channels = [block[0].in_channels for block in backbone.fpn.inner_blocks]
    assert channels == [cfg.out_width(i) for i in range(n)]
    trained = {k.split(".")[1] for k, p in backbone.backbone.named_parameters() if p.requires_grad}
    assert trained == {str(i) for i in range(1, n)}  # the stem and the first stage stay frozen


def test_retinanet_levels_on_four_and_three_stage_nets():
    with torch.device("meta"):
        four = resnet_fpn_backbone("resnet50", extra_levels="p6p7")
    assert four.returned == (2, 3, 4) and four.strides == (8, 16, 32, 64, 128)
    backbone = resnet_fpn_backbone("resnet20", out_channels=64, extra_levels="p6p7")
    assert backbone.returned == (1, 2, 3) and backbone.strides == (1, 2, 4, 8, 16)
    model = RetinaNet(
        backbone,
        num_classes=2,
        min_size=32,
        max_size=32,
        anchor_generator=backbone.anchor_generator(size_per_stride=4),
    ).eval()
    with torch.no_grad():
        feats = backbone(torch.rand(1, 3, 32, 32))
        out = model([torch.rand(3, 32, 32)])
    assert list(feats) == ["0", "1", "2", "p6", "p7"]
    assert [f.shape[-1] for f in feats.values()] == [32, 16, 8, 4, 2]
    assert "boxes" in out[0]


def test_faster_rcnn_training_step_on_a_cifar_stem_backbone():
    backbone = resnet_fpn_backbone("resnet20")
    model = FasterRCNN(
        backbone,
        num_classes=2,
        min_size=64,
        max_size=64,
        rpn_anchor_generator=backbone.anchor_generator(),
        rpn_pre_nms_top_n_train=200,
        rpn_post_nms_top_n_train=100,
        box_batch_size_per_image=64,
    ).train()
    image = torch.rand(3, 64, 64) * 0.2
    image[:, 16:40, 20:48] = 0.9
    target = {"boxes": torch.tensor([[20.0, 16.0, 48.0, 40.0]]), "labels": torch.tensor([1])}
    losses = model([image], [target])
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    last, stem = backbone.backbone.stages[-1], backbone.backbone.stem
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in last.parameters())
    assert all(p.grad is None for p in stem.parameters())


def test_3d_models_are_refused_as_detection_backbones():
    with pytest.raises(UsageError, match="r3d_18 is a 3D model"):
        resnet_fpn_backbone("r3d_18")
