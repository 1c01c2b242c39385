"""Detectors: torchvision's Faster R-CNN, RetinaNet and FCOS (their heads, losses, anchor
matching, box coding and NMS) on a resnets FPN, for any 2D model in the registry, and the
seed's own single-map Faster R-CNN (`fasterrcnn-c5`: the RPN and RoI pooling on the last stage
alone, no pyramid).

Images reach the detector at the size detection/dataset.py made them (the longer side the
input size): torchvision's own resize to 800 px is switched off, and its normalisation uses the
training data's mean and std (ImageNet's with --pretrained). Labels are class index + 1: 0 is
the background."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign

from ..errors import unknown_name
from ..models.detection import LastStage, ResNetFPN, detection_resnet
from ..models.registry import get_config
from ..models.resnet import ResNet
from ..options import DETECTION_HEADS


class KeepSize(GeneralizedRCNNTransform):
    """torchvision's transform (normalise, batch with padding to a multiple of 32) without its
    resize: the images come at the size chosen for them."""

    def resize(self, image, target=None):
        return image, target


def anchor_base(box_sides: torch.Tensor) -> int:
    """The smallest anchor: the 10th percentile of the training boxes' sides (square root of
    their area, at the input size) as a power of two, within 8..64; torchvision's 32 at 800 px."""
    if box_sides.numel() == 0:
        return 32
    p10 = float(torch.quantile(box_sides.float(), 0.1))
    return int(min(64, max(8, 2 ** round(math.log2(max(p10, 1.0))))))


def default_trainable_stages(model: str, pretrained: bool) -> int:
    """torchvision's choice: the last 3 stages train from pretrained weights, else every
    stage and the stem (the net's stages + 1)."""
    return 3 if pretrained else len(get_config(model).layers) + 1


RATIOS = (0.5, 1.0, 2.0)  # anchor aspect ratios, torchvision's


def build_detector(spec: dict[str, Any], pretrained: str | None = None) -> nn.Module:
    """A detector from its spec (what WeightsMeta.detector keeps): model, head, num_classes
    (the user's classes; the background is added), in_chans, mean, std, anchor, size,
    trainable_stages, frozen_bn, score_threshold, rois_per_image, fpn_channels (256 where a
    spec from before it was kept lacks it)."""
    head = spec["head"]
    if head not in DETECTION_HEADS:
        raise unknown_name("head", head, DETECTION_HEADS)
    resnet = detection_resnet(
        spec["model"],
        pretrained,
        spec["trainable_stages"],
        spec["frozen_bn"],
        in_chans=spec["in_chans"],
    )
    common = {
        "num_classes": spec["num_classes"] + 1,
        "min_size": spec["size"],
        "max_size": spec["size"],
        "image_mean": spec["mean"],
        "image_std": spec["std"],
    }
    model = HEADS[head](resnet, spec, common)
    model.transform = KeepSize(spec["size"], spec["size"], spec["mean"], spec["std"])
    return model


TEST_PROPOSALS = 300  # the Faster R-CNN paper's (torchvision keeps 1000: 3x the box head)


def two_stage(backbone: nn.Module, anchors: AnchorGenerator, maps: list[str], spec, common):
    """torchvision's Faster R-CNN, its RoIs pooled from `maps`; at test time the box head reads
    the RPN's best 300 proposals per image, as the paper's evaluation does."""
    return FasterRCNN(
        backbone,
        rpn_anchor_generator=anchors,
        rpn_post_nms_top_n_test=TEST_PROPOSALS,
        box_roi_pool=MultiScaleRoIAlign(maps, 7, 2),
        box_score_thresh=spec["score_threshold"],
        box_batch_size_per_image=spec.get("rois_per_image", 512),
        **common,
    )


def fasterrcnn(resnet: ResNet, spec: dict[str, Any], common: dict[str, Any]) -> nn.Module:
    """On the FPN: one anchor size per map, doubling from the smallest."""
    backbone = ResNetFPN(resnet, None, spec.get("fpn_channels", 256), "pool")
    n, base = len(backbone.strides), spec["anchor"]
    anchors = AnchorGenerator(tuple((base * 2**k,) for k in range(n)), (RATIOS,) * n)
    names = [str(k) for k in range(n - 1)]  # the pyramid's maps, not the extra pool
    return two_stage(backbone, anchors, names, spec, common)


def fasterrcnn_c5(resnet: ResNet, spec: dict[str, Any], common: dict[str, Any]) -> nn.Module:
    """The seed's design: the last stage alone, all five anchor sizes on it."""
    sizes = tuple(spec["anchor"] * 2**k for k in range(5))
    anchors = AnchorGenerator((sizes,), (RATIOS,))
    return two_stage(LastStage(resnet), anchors, ["0"], spec, common)


def retinanet(resnet: ResNet, spec: dict[str, Any], common: dict[str, Any]) -> nn.Module:
    """On the FPN with P6 and P7: three scales per octave on each map, as torchvision's."""
    backbone = ResNetFPN(resnet, None, spec.get("fpn_channels", 256), "p6p7")
    octave = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
    n, base = len(backbone.strides), spec["anchor"]
    sizes = tuple(tuple(round(base * 2**k * o) for o in octave) for k in range(n))
    anchors = AnchorGenerator(sizes, (RATIOS,) * n)
    return RetinaNet(
        backbone, anchor_generator=anchors, score_thresh=spec["score_threshold"], **common
    )


def fcos(resnet: ResNet, spec: dict[str, Any], common: dict[str, Any]) -> nn.Module:
    """On the FPN with P6 and P7: one location per pixel, sized by its stride (torchvision's)."""
    backbone = ResNetFPN(resnet, None, spec.get("fpn_channels", 256), "p6p7")
    sizes = tuple((s,) for s in backbone.strides)
    anchors = AnchorGenerator(sizes, ((1.0,),) * len(sizes))
    return FCOS(backbone, anchor_generator=anchors, score_thresh=spec["score_threshold"], **common)


HEADS = {
    "fasterrcnn": fasterrcnn,
    "retinanet": retinanet,
    "fcos": fcos,
    "fasterrcnn-c5": fasterrcnn_c5,
}
assert tuple(HEADS) == DETECTION_HEADS, "options.py names the heads"


def backbone_of(model: nn.Module) -> nn.Module:
    """The ResNet inside a detector."""
    return model.backbone.backbone
