"""Labels in a table: `--data csv:labels.csv`."""

import pytest
from PIL import Image

from resnets.data import DataOptions, load_splits
from resnets.errors import DataError

from ..helpers import QUIET, write_image_folder


def write_table(tmp_path, header="filename,diagnosis", split=False, extra_rows=()):
    root = write_image_folder(tmp_path / "imgs", per_class=12, size=16)
    lines = [header + (",split" if split else "")]
    for i, f in enumerate(sorted(root.rglob("*.*"))):
        where = ("," + ("test" if i % 4 == 0 else "train")) if split else ""
        lines.append(f"imgs/{f.parent.name}/{f.name},{f.parent.name}{where}")
    lines += list(extra_rows)
    table = tmp_path / "labels.csv"
    table.write_text("\n".join(lines) + "\n")
    return table


def load(table, **kw):
    return load_splits(DataOptions(data=f"csv:{table}", image_size=16, num_workers=0, **kw), 0)


def test_columns_are_found_by_their_usual_names_and_rows_become_splits(tmp_path):
    s = load(write_table(tmp_path))
    assert s.classes == ["circle", "square"]
    assert len(s.train) + len(s.val) + len(s.test) == 24
    assert any("column 'filename'" in n and "'diagnosis'" in n for n in s.notes)
    assert s.tensors("train").images.shape[1:] == (3, 16, 16)


def test_a_split_column_assigns_the_test_rows(tmp_path):
    s = load(write_table(tmp_path, split=True))
    assert len(s.test) == 6 and all(f.name for f in s.test.files)


def test_a_row_whose_file_is_missing_is_skipped_and_counted_or_refused(tmp_path):
    table = write_table(tmp_path, extra_rows=["imgs/circle/nope.png,circle"])
    s = load(table)
    assert any(
        "1 row skipped, e.g. row 26: file imgs/circle/nope.png does not exist" in n for n in s.notes
    )
    with pytest.raises(DataError, match=r"labels\.csv row 26: file imgs/circle/nope\.png"):
        load(table, strict=True)


def test_a_table_without_a_label_column_says_which_columns_it_has(tmp_path):
    with pytest.raises(DataError, match=r"has no label column \(columns: filename, what\)"):
        load(write_table(tmp_path, header="filename,what"))


def test_a_file_that_is_not_a_text_table_is_refused_in_one_line(tmp_path):
    png = tmp_path / "x.png"
    Image.new("L", (8, 8)).save(png)
    with pytest.raises(DataError, match=r"x\.png is not a UTF-8 CSV text file"):
        load(png)


def test_a_csv_run_trains_and_evaluates_on_its_own_split(tmp_path):
    from resnets import evaluate, train

    table = write_table(tmp_path)
    s = train(
        data=f"csv:{table}",
        model="resnet20",
        batch_size=8,
        epochs=1,
        num_workers=0,
        out=str(tmp_path / "run"),
        **QUIET,
    )
    report = evaluate(tmp_path / "run", out=tmp_path / "eval")
    assert report.count == s["test_images"] == 4 and report.acc1 == pytest.approx(s["test_acc1"])


def test_absolute_paths_outside_the_tables_folder_are_read_and_recorded(tmp_path):
    from resnets.data.provenance import record

    table = write_table(tmp_path)
    rows = table.read_text().splitlines()
    absolute = [rows[0]] + [f"{tmp_path / r.split(',')[0]},{r.split(',')[1]}" for r in rows[1:]]
    (tmp_path / "tables").mkdir()
    moved = tmp_path / "tables" / "labels.csv"
    moved.write_text("\n".join(absolute) + "\n")
    s = load(moved)
    assert len(s.train) + len(s.val) + len(s.test) == 24
    names = [n for files in record(s)["files"].values() for n in files]
    assert all(n.startswith(str(tmp_path / "imgs")) for n in names)


def test_each_spec_names_its_own_kind_of_path(tmp_path):
    table = write_table(tmp_path)
    with pytest.raises(DataError, match=r"label table .*nope\.csv does not exist"):
        load(tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"label table .*imgs does not exist or is not a file"):
        load(tmp_path / "imgs")
    with pytest.raises(DataError, match=r"image folder .*labels\.csv .*is not a folder"):
        load_splits(DataOptions(data=f"imagefolder:{table}"), 0)
