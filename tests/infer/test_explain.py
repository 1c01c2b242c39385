"""explain: the maps point at what decides the class (a model trained here on images whose
class is a small patch), carry back through the resize and crop onto the image as given, and
every method runs on every kind of network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from resnets import create_model, load_model, save_weights, train
from resnets.data.imagefolder import eval_transform
from resnets.errors import UsageError
from resnets.infer.explain import explain, resized_size, to_original
from resnets.infer.saliency import cam_layer
from resnets.models.meta import WeightsMeta
from resnets.options import EXPLAIN_METHODS as METHODS

SIZE, PATCH, GREY = 32, 6, 128
MARGIN = 2  # pixels around the patch that still count as a hit (the last stage is 8x8)


def patch_images(n: int, seed: int, classes: int = 3):
    """Grey 32x32 images with faint noise; class 0: a 6x6 patch of horizontal stripes at a
    random place, class 1: vertical stripes, class 2: no patch. The third class makes the
    model find both patterns (with two, "no vertical stripes" would be enough for class 0,
    and a map of that absence has nothing to point at). Returns (x, y, top-left corners)."""
    rng = np.random.default_rng(seed)
    x = np.clip(GREY + rng.normal(0, 8, (n, SIZE, SIZE)), 0, 255)
    y = rng.integers(0, classes, n)
    corners = rng.integers(0, SIZE - PATCH + 1, (n, 2))
    stripes = np.tile(np.array([220.0, 36.0])[:, None], (PATCH // 2, PATCH))
    for image, label, (r, c) in zip(x, y, corners, strict=True):
        if label < 2:
            image[r : r + PATCH, c : c + PATCH] = stripes if label == 0 else stripes.T
    return torch.from_numpy(x.astype(np.uint8))[:, None], torch.from_numpy(y), corners


@pytest.fixture(scope="module")
def patch_run(tmp_path_factory):
    """resnet20 trained on patch images: 95-100 % held-out accuracy in about 9 s on two
    cores (100 % on the images `held_out` makes, over training seeds 0-3)."""
    x, y, _ = patch_images(1200, seed=0)
    run = tmp_path_factory.mktemp("explain") / "patch"
    train(data=(x, y), model="resnet20", epochs=5, out=str(run), progress=False, tensorboard=False)
    return run


def held_out(n: int = 60):
    """Held-out images (another seed), each with a patch (classes 0 and 1 only)."""
    return patch_images(n, seed=1, classes=2)


def hit_rate(maps, corners, scale: int = 1, offset=(0, 0)) -> float:
    hits = []
    for m, (r, c) in zip(maps, corners, strict=True):
        i, j = np.unravel_index(np.argmax(m), m.shape)
        top, left = (r + offset[0]) * scale - MARGIN, (c + offset[1]) * scale - MARGIN
        hits.append(top <= i < top + (PATCH + 2 * MARGIN) * scale)
        hits[-1] &= left <= j < left + (PATCH + 2 * MARGIN) * scale
    return float(np.mean(hits))


def deletion_auc(model, image: torch.Tensor, order: np.ndarray, target: int) -> float:
    """The target's probability as the pixels in `order` are set to the background, 2 % at a
    time up to a quarter of the image, averaged (the area under that curve)."""
    meta = model.weights_meta
    steps = np.linspace(0, 0.25, 13)
    batch = []
    for f in steps:
        im = image.float().flatten().clone()
        im[order[: round(f * im.numel())]] = GREY
        batch.append(im.view(1, SIZE, SIZE))
    x = (torch.stack(batch) / 255 - meta.mean[0]) / meta.std[0]
    with torch.no_grad():
        return float(model(x).softmax(1)[:, target].mean())


@pytest.mark.parametrize("method", METHODS)
def test_maps_point_at_the_patch_and_deleting_it_first_removes_the_class(patch_run, method):
    x, y, corners = held_out()
    result = explain(patch_run, list(x), method=method, device="cpu")
    targets = [int(e.target) for e in result.explanations]  # the top-1 class
    assert np.mean(np.equal(targets, y.numpy())) >= 0.95  # the model learned the task
    maps = [e.map for e in result.explanations]
    assert hit_rate(maps, corners) >= 0.9  # measured: 1.0 for each (0.98-1.0 with no margin)
    model = load_model(patch_run / "best.safetensors").eval()
    rng = np.random.default_rng(0)
    salient, random = [], []
    for image, m, label in zip(x, maps, targets, strict=True):
        salient.append(deletion_auc(model, image, np.argsort(-m.flatten(), kind="stable"), label))
        random.append(deletion_auc(model, image, rng.permutation(m.size), label))
    # measured: 0.14-0.18 against 1.00; gradcam's maps transposed: 0.79, a random map 0.99
    assert np.mean(salient) < 0.5 * np.mean(random)


def test_the_map_follows_the_centre_crop_back_onto_the_image(patch_run, tmp_path):
    """The same images inside a larger frame, twice their size: the weights now say "shorter
    side to 36, centre crop 32", so the model sees the original images, and the maps must
    land on the patches in the frame's own coordinates."""
    model = load_model(patch_run / "best.safetensors")
    meta = model.weights_meta
    meta.resize_size = 36
    weights = save_weights(model, tmp_path / "cropped.safetensors", meta)
    x, _, corners = held_out(30)
    framed = torch.full((len(x), 1, 36, 44), GREY, dtype=torch.uint8)
    framed[:, :, 2:34, 6:38] = x  # resized (36, 44) -> crop at row 2, column 6
    big = framed.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    result = explain(weights, list(big), device="cpu")
    maps = [e.map for e in result.explanations]
    assert all(m.shape == (72, 88) for m in maps)
    assert hit_rate(maps, corners, scale=2, offset=(2, 6)) >= 0.9
    assert all(m[:, :10].max() == 0 and m[:, -10:].max() == 0 for m in maps)  # never seen


@pytest.mark.parametrize("size", [(100, 50), (37, 91), (64, 64), (33, 40)])
def test_the_geometry_is_torchvisions_resize_and_centre_crop(size):
    """Each input pixel's centre, pushed through the preprocessing as an image of row (and
    column) coordinates, lands where `to_original` puts it."""
    h, w = size
    rows = (torch.arange(h, dtype=torch.float32) + 0.5)[:, None].expand(h, w)
    cols = (torch.arange(w, dtype=torch.float32) + 0.5)[None, :].expand(h, w)
    seen = eval_transform(32, 36)(torch.stack([rows, cols]))
    rh, rw = resized_size(h, w, 36)
    top, left = round((rh - 32) / 2), round((rw - 32) / 2)
    want_rows = (top + torch.arange(32) + 0.5) * h / rh
    want_cols = (left + torch.arange(32) + 0.5) * w / rw
    inner = slice(4, 28)  # away from the edges, where the resize's filter is cut off
    # within a quarter of a resized pixel (the antialiasing filter is not exactly symmetric);
    # a crop or resize one pixel off is four times that
    assert torch.allclose(seen[0, inner, 0], want_rows[inner], atol=0.25 * h / rh)
    assert torch.allclose(seen[1, 0, inner], want_cols[inner], atol=0.25 * w / rw)


def test_a_map_covers_the_crop_and_is_zero_outside():
    meta = WeightsMeta("resnet20", create_model("resnet20").config, input_size=32, resize_size=36)
    m = to_original(torch.ones(32, 32), (100, 50), meta)  # resized (72, 36), crop at (20, 2)
    assert m.shape == (100, 50) and m.dtype == np.float32
    assert m[30:70, 5:45].min() == 1  # rows 27.8-72.2, columns 2.8-47.2 of the image
    assert m[:26].max() == 0 and m[75:].max() == 0 and m[:, :2].max() == 0
    meta.resize_size = None  # straight to 32 x 32: the map stretches over the whole image
    assert to_original(torch.ones(32, 32), (100, 50), meta).min() == 1


# ---- every kind of network, random weights ------------------------------------------------

SMALL = {"widths": (16, 32, 64, 128)}  # the family's structure, at a test's cost
KINDS = {
    "resnet20": ("resnet20", {}, 3, 32, None),
    "resnet18 grey": ("resnet18", SMALL | {"in_chans": 1}, 1, 64, 72),
    "preact": ("preact_resnet18", SMALL, 3, 64, None),
    "preact bottleneck": ("preact_resnet164", {"layers": (2, 2, 2)}, 3, 32, 36),
    "resnext": ("resnext50_32x4d", SMALL | {"layers": (1, 1, 1, 1)}, 3, 64, 72),
    "plain": ("plain20", {}, 3, 32, None),
}


def write_weights(path, kind: str, **meta_fields):
    name, overrides, chans, size, resize = KINDS[kind]
    model = create_model(name, num_classes=4, **overrides)
    meta = WeightsMeta(
        name,
        model.config,
        classes=["ant", "bee", "cat", "dog"],
        input_size=size,
        resize_size=resize,
        mean=[0.5] * chans,
        std=[0.25] * chans,
        **meta_fields,
    )
    return save_weights(model, path / f"{name}.safetensors", meta)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_method_on_every_kind_of_network(tmp_path, kind, method):
    from PIL import Image

    weights = write_weights(tmp_path, kind)
    chans = KINDS[kind][2]
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    array = rng.integers(0, 256, (81, 52, chans), dtype=np.uint8)
    result = explain(weights, [tmp_path / "a.png", array], method=method, out=tmp_path / "out")
    assert [e.map.shape for e in result.explanations] == [(45, 70), (81, 52)]
    for e in result.explanations:
        assert e.map.dtype == np.float32 and np.isfinite(e.map).all()
        assert e.map.min() >= 0 and e.map.max() in (0, 1)
        assert len(e.top) == 3 and e.target == e.top[0][0]
        assert Path(e.png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png.png", "image_1.png"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_mapped_layer_is_what_the_classifier_pools(kind):
    """Pre-activation nets: the final BN-ReLU's output, not the last block's raw sum."""
    name, overrides, chans, size, _ = KINDS[kind]
    model = create_model(name, num_classes=4, **overrides).eval()
    seen = []
    cam_layer(model).register_forward_hook(lambda m, i, o: seen.append(o.clone()))
    x = torch.randn(2, chans, size, size)
    with torch.no_grad():
        logits = model(x)
        assert torch.allclose(model.forward_head(seen[0]), logits, atol=1e-5)


def test_float_items_are_read_back_through_item_normalize(tmp_path):
    undo = [[0.4, 0.5, 0.6], [0.2, 0.3, 0.25]]
    weights = write_weights(tmp_path, "plain", item_normalize=undo)
    image = torch.randint(0, 256, (3, 40, 30), dtype=torch.uint8)
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in undo)
    normalized = (image.float() / 255 - mean) / std  # as a torchvision Normalize leaves it
    a, b = explain(weights, [image, normalized], method="gradcam++").explanations
    assert [c for c, _ in a.top] == [c for c, _ in b.top]
    assert np.allclose(a.map, b.map, atol=1e-3)


def test_a_target_by_name_or_index(tmp_path):
    weights = write_weights(tmp_path, "resnet20")
    image = np.zeros((32, 32, 3), np.uint8)
    assert explain(weights, image, target="cat").explanations[0].target == "cat"
    assert explain(weights, image, target=1).explanations[0].target == "bee"
    assert explain(weights, image, target="3").explanations[0].target == "dog"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"method": "gradcam+"}, "gradcam, gradcam++, scorecam, integrated-gradients"),
        ({"target": "cow"}, "ant, bee, cat, dog, or an index 0-3"),
        ({"target": 4}, "ant, bee, cat, dog, or an index 0-3"),
        ({"topk": 0}, "at least 1"),
    ],
)
def test_bad_input_is_one_line_that_names_the_choices(tmp_path, options, named):
    weights = write_weights(tmp_path, "resnet20")
    with pytest.raises(UsageError) as e:
        explain(weights, np.zeros((32, 32, 3), np.uint8), **options)
    assert named in str(e.value) and "\n" not in str(e.value)


def test_unreadable_files_are_reported_not_fatal(tmp_path):
    weights = write_weights(tmp_path, "resnet20")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = explain(weights, [tmp_path / "broken.png", np.zeros((32, 32, 3), np.uint8)])
    assert [e.path for e in result.explanations] == ["image 1"]
    assert list(result.failed) == [str(tmp_path / "broken.png")]
    assert "unreadable" in result.table() and result.to_dict()["failed"] == result.failed


def test_segmentation_weights_are_refused(tmp_path):
    from resnets.models import create_segmentation_model

    model = create_segmentation_model("resnet20", num_classes=3)
    meta = WeightsMeta(
        "resnet20",
        model.backbone.config,
        classes=["a", "b", "c"],
        input_size=32,
        mean=[0.5] * 3,
        std=[0.25] * 3,
        task="segmentation",
    )
    weights = save_weights(model, tmp_path / "seg.safetensors", meta)
    with pytest.raises(UsageError, match="segmentation model; explain is for classifiers"):
        explain(weights, np.zeros((32, 32, 3), np.uint8))


def test_evaluate_explains_the_most_confidently_wrong_images(digits_run, tmp_path):
    from resnets import evaluate
    from resnets.data import DataOptions, load_splits

    report = evaluate(digits_run, explain=3, out=tmp_path)
    model = load_model(digits_run / "best.safetensors").eval()
    test = load_splits(DataOptions(), seed=0).test
    meta = model.weights_meta
    with torch.no_grad():
        probs = model((test.images.float() / 255 - meta.mean[0]) / meta.std[0]).softmax(1)
    conf, pred = probs.max(1)
    wrong = (pred != test.labels).nonzero().flatten()
    expected = wrong[conf[wrong].argsort(descending=True)][:3].tolist()
    assert [m["index"] for m in report.mistakes] == expected
    for m in report.mistakes:
        assert m["predicted"] != m["true"] == meta.classes[int(test.labels[m["index"]])]
        assert m["confidence"] == pytest.approx(float(conf[m["index"]]), abs=1e-5)
        assert Path(m["png"]).stat().st_size > 5000
    assert report.files["most confident mistakes"] == str(tmp_path / "mistakes-test")


def test_the_explain_command(digits_run, tmp_path, capsys):
    from PIL import Image

    from resnets.cli import main

    image = tmp_path / "digit.png"
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(image)
    assert (
        main(
            [
                "explain",
                str(digits_run),
                str(image),
                "--out",
                str(tmp_path / "maps"),
                "--target",
                "3",
            ]
        )
        == 0
    )
    assert "gradcam of 3" in capsys.readouterr().out
    assert (tmp_path / "maps" / "digit.png.png").is_file()
    assert main(["explain", str(digits_run), str(image), "--method", "lime"]) == 2
    assert main(["explain", str(digits_run), str(image), "--target", "eleven"]) == 2
    assert "not a class of these weights" in capsys.readouterr().err


def test_the_explain_command_prints_json(digits_run, tmp_path, capsys):
    import json

    from PIL import Image

    from resnets.cli import main

    image = tmp_path / "digit.png"
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(image)
    assert main(["explain", str(digits_run), str(image), "--out", str(tmp_path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["method"] == "gradcam" and len(shown["explanations"]) == 1
