import csv

import pytest

from resnets.analysis.experiments import degradation, gradient_flow
from resnets.cli import main
from resnets.errors import UnknownNameError, UsageError


def test_degradation_trains_both_families_and_writes_figure_and_table(tmp_path):
    result = degradation(depths=(20,), epochs=2, out=tmp_path / "deg")
    assert set(result.final) == {"plain20", "resnet20"}
    with open(result.table) as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["plain20", "plain20", "resnet20", "resnet20"]
    assert all(0 <= float(r["train_error"]) <= 100 for r in rows)
    assert result.figure.stat().st_size > 10_000
    with pytest.raises(UsageError, match="already exists"):
        degradation(depths=(20,), epochs=1, out=tmp_path / "deg")


def test_plain_nets_gradients_grow_toward_the_input_residual_ones_stay_level(tmp_path):
    result = gradient_flow(depths=(20, 56), steps=2, out=tmp_path / "grad")
    ratio = {name: row["first/last"] for name, row in result.final.items()}
    assert ratio["plain56"] > 10 * ratio["resnet56"]
    assert ratio["plain56"] > ratio["plain20"]
    assert result.figure.is_file() and result.table.is_file()


def test_a_depth_the_paper_lacks_is_named(tmp_path, capsys):
    with pytest.raises(UnknownNameError, match="unknown model 'plain1202'"):
        gradient_flow(depths=(1202,), out=tmp_path / "g")
    assert main(["experiment", "degradation", "--depths", "21", "--out", str(tmp_path / "d")]) == 2
    assert "unknown model 'plain21'" in capsys.readouterr().err
