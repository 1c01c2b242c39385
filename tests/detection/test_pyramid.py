"""The feature pyramid's width: twice a narrow backbone's widest stage, at most torchvision's
256; a detector saved before the width was kept in its spec is rebuilt 256 wide."""

from __future__ import annotations

import pytest

from resnets.detection.models import build_detector
from resnets.detection.setup import fpn_channels

SPEC = {
    "model": "resnet20",
    "head": "fasterrcnn",
    "num_classes": 3,
    "in_chans": 3,
    "mean": [0.5] * 3,
    "std": [0.25] * 3,
    "anchor": 16,
    "size": 64,
    "trainable_stages": 4,
    "frozen_bn": False,
    "score_threshold": 0.05,
    "rois_per_image": 32,
}


@pytest.mark.parametrize(
    ("model", "width"),
    [("resnet20", 128), ("resnet110", 128), ("resnet18", 256), ("resnet50", 256)],
)
def test_the_pyramid_is_twice_the_widest_stage_at_most_256(model, width):
    assert fpn_channels(model) == width


@pytest.mark.parametrize("head", ["fasterrcnn", "retinanet", "fcos"])
def test_the_spec_sets_the_width_and_old_specs_keep_256(head):
    narrow = build_detector(SPEC | {"head": head, "fpn_channels": 128})
    old = build_detector(SPEC | {"head": head})
    assert narrow.backbone.out_channels == 128
    assert old.backbone.out_channels == 256
    assert {
        m.out_channels
        for m in narrow.backbone.fpn.layer_blocks.modules()
        if hasattr(m, "out_channels")
    } == {128}
