"""predict and export for 3D runs: new volumes and clips read as the training data was."""

import json

import numpy as np
import pytest

from resnets import predict, train
from resnets.errors import UsageError
from resnets.infer.export import export
from resnets.models.meta import WeightsMeta
from resnets.models.weights import read_weights

from ..data.volumes.test_folder import _nifti, _volume
from ..helpers import QUIET

nibabel = pytest.importorskip("nibabel")


@pytest.fixture(scope="module")
def volume_run(tmp_path_factory):
    """A resnet10_3d trained on NIfTI volumes (bright cube: lesion; dark: normal), and new
    volumes of each class it never saw."""
    root = tmp_path_factory.mktemp("volumes")
    rng = np.random.default_rng(3)
    for label, bright in (("lesion", True), ("normal", False)):
        (root / "data" / label).mkdir(parents=True)
        for k in range(16):
            _nifti(root / "data" / label / f"{k}.nii.gz", _volume(bright, rng))
    (root / "new").mkdir()
    for k in range(3):
        _nifti(root / "new" / f"lesion{k}.nii", _volume(True, rng))
        np.save(root / "new" / f"normal{k}.npy", _volume(False, rng).T)  # (z, y, x)
    train(
        model="resnet10_3d",
        data=f"volumes:{root / 'data'}",
        image_size=12,
        epochs=4,
        batch_size=4,
        lr=0.02,
        out=str(root / "run"),
        **QUIET,
        window="100,400",
    )
    return root


def test_3d_weights_carry_how_their_inputs_were_read(volume_run):
    _, meta = read_weights(volume_run / "run" / "best.safetensors")
    assert (meta.inputs, meta.input_depth, meta.intensity) == ("volumes", 12, "window 100,400")
    assert meta.spacing is None  # no --spacing: each volume stretched to the cube
    assert meta.input_size == 12 and meta.config.spatial_dims == 3


def test_2d_weights_metadata_leaves_the_3d_fields_out(digits_run):
    _, meta = read_weights(digits_run / "best.safetensors")
    stored = json.loads(meta.to_json())
    assert not {"inputs", "input_depth", "intensity"} & set(stored)  # older readers keep working
    assert WeightsMeta.from_json(meta.to_json()) == meta


def test_predict_reads_new_volumes_as_training_did_and_names_each(volume_run):
    result = predict(volume_run / "run", volume_run / "new", topk=1)
    assert len(result.predictions) == 6 and not result.failed
    for p in result.predictions:
        expected = "lesion" if "lesion" in p.path else "normal"
        assert p.top[0][0] == expected, (p.path, p.top)


def test_predict_reports_a_broken_volume_and_goes_on(volume_run, tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a volume")
    result = predict(volume_run / "run", [volume_run / "new" / "lesion0.nii", bad])
    assert len(result.predictions) == 1 and "is not a readable volume" in result.failed[str(bad)]


def test_predict_on_a_3d_run_refuses_an_empty_folder(volume_run, tmp_path):
    with pytest.raises(UsageError, match="no volumes"):
        predict(volume_run / "run", tmp_path)


def test_an_onnx_export_of_a_3d_run_passes_parity_and_predicts_the_same(volume_run):
    pytest.importorskip("onnxruntime")
    report = export(volume_run / "run", "onnx")
    assert report.passed and report.images > 0 and "test-split" in report.inputs
    onnx = predict(report.path, volume_run / "new", topk=1)
    eager = predict(volume_run / "run", volume_run / "new", topk=1)
    assert [p.top[0][0] for p in onnx.predictions] == [p.top[0][0] for p in eager.predictions]
    stored = json.loads((volume_run / "run" / "export" / "model.onnx.json").read_text())
    assert stored["inputs"] == "volumes" and "NCDHW" in stored["input"]


def test_clips_predict_with_the_frames_they_were_trained_on(tmp_path):
    av = pytest.importorskip("av")  # noqa: F841
    from ..data.volumes.test_video import moving_square, write_clip

    rng = np.random.default_rng(4)
    for label in ("down", "up"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for k in range(6):
            write_clip(tmp_path / "data" / label / f"{k}.mp4", moving_square(label == "down", rng))
    train(
        model="resnet10_3d",
        data=f"video:{tmp_path / 'data'}",
        frames=4,
        image_size=16,
        epochs=1,
        batch_size=4,
        lr=0.01,
        out=str(tmp_path / "run"),
        **QUIET,
    )
    _, meta = read_weights(tmp_path / "run" / "best.safetensors")
    assert (meta.inputs, meta.input_depth, meta.intensity) == ("clips", 4, None)
    new = write_clip(tmp_path / "new.mp4", moving_square(True, rng))
    result = predict(tmp_path / "run", [new, tmp_path / "data"], topk=2)
    assert len(result.predictions) == 13 and not result.failed
    assert {c for c, _ in result.predictions[0].top} == {"down", "up"}


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam", "integrated-gradients"])
def test_explain_maps_a_volume_at_its_input_shape_and_draws_slices(volume_run, tmp_path, method):
    from resnets import explain

    new = volume_run / "new" / "lesion0.nii"
    result = explain(volume_run / "run", new, method=method, out=tmp_path / "maps")
    (e,) = result.explanations
    assert e.map.shape == (12, 12, 12) and e.map.min() >= 0 and e.map.max() == pytest.approx(1)
    assert e.png.endswith("lesion0.nii.png") and (tmp_path / "maps" / "lesion0.nii.png").is_file()


def test_a_montage_shows_slices_spread_over_the_depth():
    from resnets.infer.montage import slice_indices

    assert slice_indices(16) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert slice_indices(3) == [0, 1, 2]  # fewer slices than panels: each once
