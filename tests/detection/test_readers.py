"""Box files in the forms they ship: each reader, on files the test writes for the same boxes,
gives identical targets; each bad-box case gives its note or its refusal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.detection.readers import read_boxes
from resnets.errors import DataError, UsageError

# Two images with boxes (x1, y1, x2, y2 in pixels, continuous) and one with none.
IMAGES = {
    "a": ((64, 48), [((4, 6, 30, 40), "cat"), ((33, 2, 60, 20), "dog")]),
    "b": ((50, 70), [((10, 10, 20, 30), "dog")]),
    "c": ((40, 40), []),
}
CLASSES = ["cat", "dog"]


def write_images(folder: Path, grey: bool = False, ext: str = ".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, ((w, h), _) in IMAGES.items():
        shape = (h, w) if grey else (h, w, 3)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(folder / f"{name}{ext}")


def voc_xml(name: str, ext: str = ".png", boxes=None) -> str:
    (w, h), listed = IMAGES[name]
    objects = "".join(
        f"<object><name>{label}</name><difficult>0</difficult><bndbox><xmin>{x1 + 1:g}</xmin>"
        f"<ymin>{y1 + 1:g}</ymin><xmax>{x2:g}</xmax><ymax>{y2:g}</ymax></bndbox></object>"
        for (x1, y1, x2, y2), label in (boxes if boxes is not None else listed)
    )
    return (
        f"<annotation><filename>{name}{ext}</filename><size><width>{w}</width>"
        f"<height>{h}</height><depth>3</depth></size>{objects}</annotation>"
    )


def write_voc(root: Path, layout: str = "voc") -> Path:
    notes, images = {"voc": ("Annotations", "JPEGImages"), "plain": ("annotations", "images")}.get(
        layout, ("", "")
    )
    write_images(root / images)
    (root / notes).mkdir(parents=True, exist_ok=True)
    for name in IMAGES:
        (root / notes / f"{name}.xml").write_text(voc_xml(name))
    return root


def write_coco(root: Path) -> Path:
    write_images(root / "images")
    cats = [{"id": 7, "name": "cat"}, {"id": 9, "name": "dog"}]
    images, anns = [], []
    for i, (name, ((w, h), boxes)) in enumerate(IMAGES.items()):
        images.append({"id": i, "file_name": f"{name}.png", "width": w, "height": h})
        for (x1, y1, x2, y2), label in boxes:
            cat = 7 if label == "cat" else 9
            bbox = [x1, y1, x2 - x1, y2 - y1]
            anns.append({"id": len(anns), "image_id": i, "category_id": cat, "bbox": bbox})
    file = root / "instances.json"
    file.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return file


def write_yolo(root: Path) -> Path:
    write_images(root / "images")
    (root / "labels").mkdir()
    for name, ((w, h), boxes) in IMAGES.items():
        lines = [
            f"{CLASSES.index(label)} {(x1 + x2) / 2 / w} {(y1 + y2) / 2 / h} {(x2 - x1) / w} "
            f"{(y2 - y1) / h}"
            for (x1, y1, x2, y2), label in boxes
        ]
        if lines or name != "c":
            (root / "labels" / f"{name}.txt").write_text("\n".join(lines))
    (root / "data.yaml").write_text("names:\n  0: cat\n  1: dog\n")
    return root


def write_csv(root: Path, order=("label", "y2", "path", "x1", "x2", "y1")) -> Path:
    write_images(root / "img")
    rows = [",".join(order)]
    for name, (_, boxes) in IMAGES.items():
        for (x1, y1, x2, y2), label in boxes:
            value = {"label": label, "path": f"img/{name}.png", "x1": x1, "y1": y1}
            value |= {"x2": x2, "y2": y2}
            rows.append(",".join(str(value[k]) for k in order))
        if not boxes:
            rows.append(",".join(f"img/{name}.png" if k == "path" else "" for k in order))
    file = root / "boxes.csv"
    file.write_text("\n".join(rows) + "\n")
    return file


def targets(spec: str):
    boxes = read_boxes(spec)
    by_name = {im.path.stem: im for im in boxes.images}
    return boxes, {
        name: (by_name[name].boxes.tolist(), [boxes.classes[i] for i in by_name[name].labels])
        for name in IMAGES
    }


def expected():
    return {
        n: ([list(map(float, b)) for b, _ in bx], [lab for _, lab in bx])
        for n, (_, bx) in IMAGES.items()
    }


@pytest.mark.parametrize("form", ["voc", "voc-plain", "voc-beside", "coco", "yolo", "csv"])
def test_every_reader_gives_the_same_targets(tmp_path, form):
    if form.startswith("voc"):
        layout = form.partition("-")[2] or "voc"
        spec = f"voc:{write_voc(tmp_path / 'set', layout)}"
    else:
        writer = {"coco": write_coco, "yolo": write_yolo, "csv": write_csv}[form]
        spec = f"{form}:{writer(tmp_path)}"
    boxes, found = targets(spec)
    assert boxes.classes == CLASSES
    want = expected()
    for name in IMAGES:
        assert found[name][1] == want[name][1]
        np.testing.assert_allclose(found[name][0], want[name][0], atol=1e-4)
    assert any("1 image(s) with no boxes kept as negatives" in n for n in boxes.notes)
    ids = {"coco": [7, 9], "yolo": [0, 1]}.get(form, [1, 2])
    assert boxes.category_ids == ids  # the user's own ids, never shifted by a background


def test_voc_ships_its_splits_and_one_based_pixels(tmp_path):
    root = write_voc(tmp_path / "VOC")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nc\n")
    (root / "ImageSets" / "Main" / "test.txt").write_text("b\n")
    boxes = read_boxes(f"voc:{tmp_path}")  # the layout one folder down, as BCCD ships
    names = [im.path.stem for im in boxes.images]
    assert {s: [names[i] for i in v] for s, v in boxes.splits.items()} == {
        "train": ["a", "c"],
        "test": ["b"],
    }
    assert any("count from 1" in n for n in boxes.notes)


def test_headerless_csv_and_numeric_labels_keep_their_ids(tmp_path):
    write_images(tmp_path / "img")
    (tmp_path / "t.csv").write_text("img/a.png,1,2,10,12,3\nimg/b.png,5,5,9,9,1\nimg/c.png,,,,,\n")
    boxes = read_boxes(f"csv:{tmp_path / 't.csv'}")
    assert boxes.classes == ["1", "3"]
    assert boxes.category_ids == [1, 3]
    assert any("no header" in n for n in boxes.notes)


def bad_voc(tmp_path, boxes, name="a"):
    write_images(tmp_path / "JPEGImages")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / f"{name}.xml").write_text(voc_xml(name, boxes=boxes))
    return f"voc:{tmp_path}"


@pytest.mark.parametrize(
    ("box", "note"),
    [
        ((9, 10, 10, 20), "dropped 1 zero-area"),  # in the VOC file: xmin = xmax
        ((30, 10, 20, 20), "dropped 1 inverted"),
        ((-5, 10, 20, 50), "clipped 1 box"),
    ],
)
def test_each_bad_box_is_noted_with_its_file(tmp_path, box, note):
    good = [((2, 2, 12, 12), "cat"), ((20, 20, 40, 40), "dog"), ((5, 25, 15, 40), "cat")]
    spec = bad_voc(tmp_path, [*good, (box, "cat")])
    boxes = read_boxes(spec)
    hits = [n for n in boxes.notes if n.startswith(note)]
    assert len(hits) == 1 and "a.xml" in hits[0]
    assert len(boxes.images[0].labels) == (4 if note.startswith("clipped") else 3)
    assert float(boxes.images[0].boxes.min()) >= 0
    with pytest.raises(DataError, match="--strict"):
        read_boxes(spec, strict=True)


def test_duplicates_dropped_and_points_are_no_boxes(tmp_path):
    twice = [((2, 2, 12, 12), "cat")] * 2 + [((19, 19, 20, 20), "dog")]  # a VOC point
    boxes = read_boxes(bad_voc(tmp_path, twice))
    assert len(boxes.images[0].labels) == 1
    assert any(n.startswith("dropped 1 duplicate") for n in boxes.notes)
    assert any(n.startswith("dropped 1 zero-area") for n in boxes.notes)


def test_boxes_in_another_frame_are_refused_with_the_guess(tmp_path):
    spec = bad_voc(tmp_path, [((100, 80, 200, 160), "cat"), ((120, 90, 220, 170), "dog")])
    with pytest.raises(DataError, match=r"drawn on a 64x48 image|another coordinate frame"):
        read_boxes(spec)
    write_images(tmp_path / "n")
    (tmp_path / "n.csv").write_text("path,x1,y1,x2,y2,label\nn/a.png,0.1,0.1,0.5,0.5,cat\n")
    with pytest.raises(DataError, match=r"normalised to 0\.\.1"):
        read_boxes(f"csv:{tmp_path / 'n.csv'}")
    (tmp_path / "w.csv").write_text(
        "path,x1,y1,x2,y2,label\nn/a.png,30,20,10,10,cat\nn/a.png,40,30,5,5,dog\n"
    )
    with pytest.raises(DataError, match="x, y, width, height"):
        read_boxes(f"csv:{tmp_path / 'w.csv'}")


def test_exif_orientation_and_grey_are_read_upright(tmp_path):
    write_images(tmp_path / "img", grey=True, ext=".jpg")
    im = Image.open(tmp_path / "img" / "a.jpg")
    exif = im.getexif()
    exif[0x0112] = 6  # stored sideways: shown turned by 90 degrees
    im.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "img" / "a.jpg", exif=exif)
    (tmp_path / "t.csv").write_text("image,xmin,ymin,xmax,ymax,class\nimg/a.jpg,4,6,30,40,cat\n")
    boxes = read_boxes(f"csv:{tmp_path / 't.csv'}")
    assert boxes.grey
    assert boxes.images[0].size == (64, 48)
    assert any("EXIF orientation" in n for n in boxes.notes)


def test_a_csv_saved_by_excel_or_not_a_csv(tmp_path):
    write_images(tmp_path / "img")
    text = (
        "\ufeffImage,XMin,YMin,XMax,YMax,Class\nimg/a.png,4,6,30,40,cat\n\nimg/b.png,1,x,3,4,cat\n"
    )
    (tmp_path / "bom.csv").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match="row 4: box coordinates"):  # counted as in the file
        read_boxes(f"csv:{tmp_path / 'bom.csv'}")
    (tmp_path / "bom.csv").write_text(text.split("\n\n")[0] + "\n", encoding="utf-8")
    assert read_boxes(f"csv:{tmp_path / 'bom.csv'}").box_count == 1
    (tmp_path / "img.csv").write_bytes((tmp_path / "img" / "a.png").read_bytes())
    with pytest.raises(DataError, match="not a UTF-8 CSV"):
        read_boxes(f"csv:{tmp_path / 'img.csv'}")


def test_columns_named_by_the_user(tmp_path):
    write_images(tmp_path / "img")
    (tmp_path / "t.csv").write_text("picture,x1,y1,x2,y2,kind\nimg/a.png,4,6,30,40,cat\n")
    columns = {"path": "picture", "label": "kind"}
    boxes = read_boxes(f"csv:{tmp_path / 't.csv'}", columns=columns)
    assert boxes.classes == ["cat"] and boxes.box_count == 1
    with pytest.raises(DataError, match="no column 'Kind'"):
        read_boxes(f"csv:{tmp_path / 't.csv'}", columns={"label": "Kind"})
    with pytest.raises(UsageError, match="columns of a csv: table"):
        read_boxes("shapes-boxes", columns=columns)


def test_unknown_class_and_missing_columns_are_one_line_errors(tmp_path):
    write_yolo(tmp_path)
    (tmp_path / "labels" / "b.txt").write_text("5 0.5 0.5 0.2 0.2\n")
    with pytest.raises(UsageError, match="class '5'"):
        read_boxes(f"yolo:{tmp_path}")
    (tmp_path / "x.csv").write_text("file,left,top,w,h,label\n")
    with pytest.raises(UsageError, match="no x2 column"):
        read_boxes(f"csv:{tmp_path / 'x.csv'}")


def test_bundled_set_is_the_same_every_time():
    a, b = (
        read_boxes("shapes-boxes", synthetic_samples=128),
        read_boxes("shapes-boxes", synthetic_samples=128),
    )
    assert a.classes == ["circle", "square", "triangle"]
    assert all(torch.equal(x.boxes, y.boxes) for x, y in zip(a.images, b.images, strict=True))
    assert any(len(im.labels) == 0 for im in a.images)


def test_a_folder_in_another_format_is_named_as_such(tmp_path):
    write_voc(tmp_path / "set")
    with pytest.raises(UsageError, match="no YOLO label files"):
        read_boxes(f"yolo:{tmp_path / 'set'}")
