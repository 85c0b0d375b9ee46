"""gliseg_nb.measured: the benchmark results the notebooks quote travel inside the package."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gliseg_nb import measured
from gliseg_nb.measured import MeasuredError

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "gliseg_nb" / "measured"


def test_available_lists_every_json_file_of_the_folder():
    on_disk = sorted(path.stem for path in FOLDER.glob("*.json"))
    assert on_disk  # notebook 4 reads at least the corrections
    assert measured.available() == on_disk


def test_load_returns_the_file_as_written_with_or_without_suffix():
    expected = json.loads((FOLDER / "corrections-v4-quick.json").read_text())
    assert measured.load("corrections-v4-quick") == expected
    assert measured.load("corrections-v4-quick.json") == expected
    assert {"machine", "steps", "seeds"} <= set(expected)


@pytest.mark.parametrize("name", ["no-such-result", "", "../pyproject", "sub/name"])
def test_load_names_an_unknown_result(name):
    with pytest.raises(MeasuredError, match="no stored result named .*available: .*corrections-v4-quick"):
        measured.load(name)


def test_load_names_a_broken_file(tmp_path, monkeypatch):
    (tmp_path / "broken.json").write_text("{not json")
    monkeypatch.setattr(measured, "_folder", lambda: tmp_path)
    with pytest.raises(MeasuredError, match=r"broken\.json: not valid JSON"):
        measured.load("broken")
    assert issubclass(MeasuredError, ValueError)


@pytest.mark.slow
def test_a_built_wheel_contains_the_results(tmp_path):
    # Built from a copy, so that setuptools' build/ and egg-info stay out of the checkout.
    source = tmp_path / "source"
    shutil.copytree(ROOT / "gliseg_nb", source / "gliseg_nb",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                             "--no-build-isolation", "-w", str(tmp_path / "wheels")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = (tmp_path / "wheels").glob("gliseg_nb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for stem in measured.available():
        assert f"gliseg_nb/measured/{stem}.json" in names
