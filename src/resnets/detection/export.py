"""`export --format onnx` for detectors: the whole detector, its normalisation, padding,
box decoding and NMS inside, through the TorchScript-based ONNX exporter (torch.export does not
take torchvision's detectors), for one CHW image whose height and width may vary.

After writing, the export runs in ONNX Runtime on real images (the run's test split, or
--images) and its detections are compared with the eager detector's, image by image: the
same number of boxes, the same labels, and boxes and scores within the tolerance. The file
and its sidecars are published only when that holds, as infer/export.py does for classifiers.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ResnetsError, UsageError
from ..files import atomic_write_json, publish_with_sidecars, staging
from ..infer.backends import with_metadata
from ..models.meta import WeightsMeta
from .dataset import BoxDataset
from .infer import image_paths, load_detector, own_split, read_file

INPUT = "image"


class DetectorExportError(ResnetsError):
    """The exported detector does not find what the detector finds."""


@dataclass
class DetectorParity:
    format: str
    path: str
    inputs: str  # what the check ran on
    images: int
    detections: int  # boxes the detector found on them, at its score threshold
    same_counts: bool  # every image: as many boxes, with the same labels
    max_box_diff: float  # pixels, worst coordinate of a matched box
    max_score_diff: float
    tolerance: float  # on the box difference relative to the input size, and on scores
    passed: bool
    preprocessing: str  # the sidecar JSON

    def text(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        counts = "the same boxes and labels" if self.same_counts else "OTHER boxes or labels"
        return (
            f"exported {self.format} detector to {self.path}\n"
            f"parity on {self.images} {self.inputs} ({self.detections} detections): {counts}, "
            f"max |box difference| {self.max_box_diff:.2e} px, max |score difference| "
            f"{self.max_score_diff:.2e} (tolerance {self.tolerance:g}): {verdict}\n"
            f"preprocessing: {self.preprocessing}"
        )

    def problem(self) -> str:
        if not self.same_counts:
            return "the ONNX detector finds other boxes or labels than the detector"
        return (
            f"the ONNX detector's boxes differ by up to {self.max_box_diff:.2e} px and its "
            f"scores by {self.max_score_diff:.2e}, beyond the tolerance {self.tolerance:g}"
        )


def export_detector(
    weights: str | Path, fmt: str, target: Path, images: list | None, tolerance: float
) -> DetectorParity:
    """The detector in `weights` written to `target` (checked by the caller) as ONNX, and
    checked against the eager detector; published only if the check passes."""
    if fmt != "onnx":
        raise UsageError(
            f"a detector exports to ONNX only (--format onnx), not {fmt}: its NMS and box "
            "decoding do not trace to TorchScript, and its weights are best.safetensors already"
        )
    model, meta, _, run = load_detector(weights, torch.device("cpu"))
    samples, inputs = sample_images(meta, run, images)
    with torch.no_grad():  # the detector's output order: boxes, labels, scores (Faster R-CNN)
        keys = list(model([samples[0]])[0])
    pre = preprocessing(meta, keys)
    sidecar = target.with_name(target.name + ".json")
    failed = target.with_name(target.name + ".parity-failed.json")
    with staging(target) as stage:
        staged = stage / target.name
        write_onnx(model, samples[0], keys, pre, staged)
        report = parity(model, staged, samples, keys, meta.detector["size"], tolerance)
        report.path, report.inputs, report.preprocessing = str(target), inputs, str(sidecar)
        if report.passed:
            publish_with_sidecars(stage, target, dataclasses.asdict(report), pre)
            failed.unlink(missing_ok=True)
            return report
    atomic_write_json(failed, dataclasses.asdict(report))
    kept = f"; the earlier {target.name} is untouched" if target.exists() else ""
    raise DetectorExportError(f"{report.problem()}; not written{kept}; report in {failed}")


def sample_images(
    meta: WeightsMeta, run: Path | None, images: list | None
) -> tuple[list[torch.Tensor], str]:
    """Up to 8 images as the detector takes them: the given files, else the run's test split,
    else random ones at the input size."""
    spec = meta.detector
    if images:
        read = []
        for path in image_paths(images)[:8]:
            try:
                read.append(read_file(path, spec)[1])
            except (OSError, ValueError) as e:
                raise UsageError(f"{path} could not be read: {str(e).splitlines()[0]}") from None
        return read, "given images"
    if run is not None:
        splits, indices, _ = own_split(run, spec, "test")
        data = BoxDataset(splits, indices[:8], False, False, 0.0, 0)
        return [data[i][0] for i in range(len(data))], f"test-split images of {run}"
    size = spec["size"]
    generator = torch.Generator().manual_seed(0)
    shapes = [(size, size), (size * 3 // 4, size)]  # a square and a landscape input
    random = [torch.rand(spec["in_chans"], h, w, generator=generator) for h, w in shapes * 2]
    return random, "random images (no images given)"


def preprocessing(meta: WeightsMeta, keys: list[str]) -> dict[str, Any]:
    spec = meta.detector
    return {
        "model": meta.model,
        "task": "detection",
        "head": spec["head"],
        "classes": meta.classes,
        "in_chans": spec["in_chans"],
        "input_size": spec["size"],
        "mean": spec["mean"],
        "std": spec["std"],
        "score_threshold": spec["score_threshold"],
        "input": (
            f"one float32 image [{spec['in_chans']}, H, W] with values in [0, 1] (RGB, or grey), "
            f"resized so that its longer side is {spec['size']} px, aspect kept; the graph "
            "normalizes it with mean and std and pads it itself"
        ),
        "outputs": {
            "boxes": "[N, 4] x1, y1, x2, y2 in the input's pixels (divide by the resize factor "
            "for the original image's)",
            "labels": "[N] class index + 1 (0 is the background): classes[label - 1]",
            "scores": "[N] in (score_threshold, 1], highest first",
            "order": keys,
        },
    }


def write_onnx(
    model: nn.Module, example: torch.Tensor, keys: list[str], pre: dict, target: Path
) -> None:
    buf = io.BytesIO()
    varying = {INPUT: {1: "height", 2: "width"}} | {k: {0: "detections"} for k in keys}
    with warnings.catch_warnings():  # the tracer's notes on torchvision's Python control flow
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            ([example],),
            buf,
            opset_version=17,
            dynamo=False,
            input_names=[INPUT],
            output_names=keys,
            dynamic_axes=varying,
        )
    try:
        target.write_bytes(with_metadata(buf.getvalue(), pre))
    except OSError as e:
        raise DetectorExportError(f"could not write the ONNX export: {e.strerror or e}") from None


def parity(
    model: nn.Module,
    path: Path,
    images: list[torch.Tensor],
    keys: list[str],
    size: int,
    tolerance: float,
) -> DetectorParity:
    """The export's detections against the eager detector's on each image."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    same, box_diff, score_diff, found = True, 0.0, 0.0, 0
    for image in images:
        with torch.no_grad():
            ref = model([image])[0]
        got = dict(zip(keys, session.run(None, {INPUT: image.numpy()}), strict=True))
        got = {k: torch.from_numpy(v) for k, v in got.items()}
        found += len(ref["boxes"])
        if len(got["boxes"]) != len(ref["boxes"]) or not torch.equal(
            got["labels"].long().sort().values, ref["labels"].long().sort().values
        ):
            same = False
            continue
        boxes, scores = matched(ref, got)
        box_diff = max(box_diff, boxes)
        score_diff = max(score_diff, scores)
    return DetectorParity(
        format="onnx",
        path="",
        inputs="",
        images=len(images),
        detections=found,
        same_counts=same,
        max_box_diff=box_diff,
        max_score_diff=score_diff,
        tolerance=tolerance,
        passed=same and box_diff / size <= tolerance and score_diff <= tolerance,
        preprocessing="",
    )


def matched(ref: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> tuple[float, float]:
    """The worst box and score difference, each of the export's boxes paired with the nearest
    of the detector's with its label (two near-equal scores may come in either order)."""
    if len(ref["boxes"]) == 0:
        return 0.0, 0.0
    distance = torch.cdist(got["boxes"].float(), ref["boxes"].float(), p=float("inf"))
    distance[got["labels"].long()[:, None] != ref["labels"].long()[None, :]] = float("inf")
    nearest = distance.argmin(1)
    boxes = float(distance.min(1).values.max())
    scores = float((got["scores"] - ref["scores"][nearest]).abs().max())
    return boxes, scores
