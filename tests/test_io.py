"""The file-system helpers every module shares: user paths, the cache root, atomic writes."""

import os
from pathlib import Path

import pytest

from gliseg_nb import _io
from gliseg_nb.errors import ConfigError, DataError, GlisegError, RunError


def test_user_path_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _io.user_path("~/runs/a") == tmp_path / "runs" / "a"
    assert _io.user_path(Path("rel/x")) == Path("rel/x")


def test_cache_root_expands_home_in_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(_io.CACHE_ENV_VAR, "~/cache")
    assert _io.cache_root() == tmp_path / "cache"


def test_every_cache_lives_under_the_one_root(monkeypatch, tmp_path):
    from gliseg_nb import _cache, course

    monkeypatch.setenv(_io.CACHE_ENV_VAR, str(tmp_path))
    assert _cache.default_cache_dir().parent == tmp_path
    assert course.runs_dir().parent == tmp_path


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    with _io.atomic_write(target) as handle:
        handle.write("first")
    with _io.atomic_write(target) as handle:
        handle.write("second")
    assert target.read_text() == "second"
    assert os.listdir(target.parent) == ["a.txt"]


def test_atomic_write_leaves_target_and_no_temporary_on_error(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with _io.atomic_write(target) as handle:
            handle.write("half of the new")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_atomic_write_path_mode_keeps_suffix_for_writers_that_need_it(tmp_path):
    target = tmp_path / "m.keras"
    with _io.atomic_write(target, mode=None, suffix=".keras") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".keras")
        assert _io.TEMPORARY_MARK in tmp.name
        tmp.write_bytes(b"zip")
    assert target.read_bytes() == b"zip"
    assert os.listdir(tmp_path) == ["m.keras"]


def test_error_hierarchy_keeps_valueerror_for_bad_input():
    assert issubclass(DataError, ValueError) and issubclass(ConfigError, ValueError)
    assert all(issubclass(e, GlisegError) for e in (DataError, ConfigError, RunError))
    assert not issubclass(RunError, ValueError)
    from gliseg_nb.data import DataError as reexported

    assert reexported is DataError



def test_output_folder_is_created_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _io.output_folder("~/a/b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []  # probe removed
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="file: the run folder is a file, not a folder"):
        _io.output_folder(tmp_path / "file", what="run folder")
    with pytest.raises(RunError, match="cannot create the output folder: a path above it is a file"):
        _io.output_folder(tmp_path / "file" / "below")
    assert (tmp_path / "file").read_text() == "x"


def test_output_file_refuses_a_folder(tmp_path):
    assert _io.output_file(tmp_path / "new" / "s.csv", what="CSV file") == tmp_path / "new" / "s.csv"
    assert (tmp_path / "new").is_dir() and not (tmp_path / "new" / "s.csv").exists()
    with pytest.raises(RunError, match="new: the CSV file is a folder"):
        _io.output_file(tmp_path / "new", what="CSV file")
