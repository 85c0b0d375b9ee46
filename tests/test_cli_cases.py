"""`gliseg-nb cases DIR`: the table, the JSON list and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gliseg_nb.cli import main
from layout_fixtures import write_layout


def test_cases_prints_a_table(tmp_path, capsys):
    write_layout(tmp_path, "brats2020-kaggle", n_cases=2)

    code = main(["cases", str(tmp_path)])

    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["case_id", "layout", "grade", "seg"]
    assert lines[2].split() == ["BraTS20_Training_001", "brats2020-kaggle", "HGG", "yes"]
    assert lines[3].split() == ["BraTS20_Training_355", "brats2020-kaggle", "LGG", "yes"]
    assert lines[-1] == "2 cases (brats2020-kaggle: 2), 2 with segmentation"


def test_cases_json_lists_objects(tmp_path, capsys):
    dataset = write_layout(tmp_path, "msd", n_cases=2)

    code = main(["cases", str(tmp_path), "--json"])

    records = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [r["case_id"] for r in records] == ["BRATS_001", "BRATS_002"]
    first = records[0]
    assert {"case_id", "layout", "modalities", "seg", "grade", "channels"} <= set(first)
    assert first["layout"] == "msd"
    assert first["modalities"]["flair"] == str(dataset / "imagesTr" / "BRATS_001.nii.gz")
    assert first["channels"] == {"flair": 0, "t1": 1, "t1ce": 2, "t2": 3}
    assert first["seg"] == str(dataset / "labelsTr" / "BRATS_001.nii.gz")


def test_empty_folder_is_one_line_saying_how_to_get_data(tmp_path, capsys):
    code = main(["cases", str(tmp_path)])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("gliseg-nb cases: error: ")
    assert "gliseg-nb synth" in captured.err


def test_missing_modality_is_one_line_naming_the_folder(tmp_path, capsys):
    dataset = write_layout(tmp_path, "brats2019", n_cases=2)
    next(dataset.rglob("*_t2.nii.gz")).unlink()

    code = main(["cases", str(tmp_path)])

    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "missing the t2 modality" in err
    assert "BraTS19_" in err


@pytest.mark.slow
def test_installed_command_runs(tmp_path):
    write_layout(tmp_path, "brats2023-gli", n_cases=2, with_seg=False)
    command = Path(sys.executable).with_name("gliseg-nb")

    result = subprocess.run([str(command), "cases", str(tmp_path), "--json"],
                            capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [r["case_id"] for r in records] == ["BraTS-GLI-00001-000", "BraTS-GLI-00002-000"]
    assert all(r["seg"] is None and r["layout"] == "brats2023-gli" for r in records)


@pytest.mark.slow
def test_installed_command_error_has_no_traceback(tmp_path):
    command = Path(sys.executable).with_name("gliseg-nb")

    result = subprocess.run([str(command), "cases", str(tmp_path / "absent")],
                            capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "absent: folder does not exist" in result.stderr


def test_incomplete_copy_is_one_warning_line(tmp_path, capsys):
    dataset = write_layout(tmp_path, "brats2021", n_cases=2)
    (dataset / "BraTS2021_00001" / "BraTS2021_00001_seg.nii.gz").unlink()

    code = main(["cases", str(tmp_path), "--json"])

    captured = capsys.readouterr()
    assert code == 0
    assert [r["seg"] is None for r in json.loads(captured.out)] == [True, False]
    assert captured.err.startswith("gliseg-nb cases: warning: ")
    assert "1 of 2 cases have no segmentation (BraTS2021_00001)" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
