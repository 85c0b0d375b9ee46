"""The slice cache keeps entries of dataset copies apart and never reads a damaged entry."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from gliseg_nb import Config
from gliseg_nb import _cache
from gliseg_nb.data import find_cases

from layout_fixtures import write_layout

SETTINGS = dict(image_size=16, slice_start=2, n_slices=8, slice_step=1, modalities=("flair", "t1ce"))


def _config():
    return Config.preset("quick", **SETTINGS)


def _build(cases, cache_dir):
    return _cache.build_entries(cases, _config(), cache_dir=cache_dir, workers=1, progress=False)


def _as_a_new_process_sees_it():
    getattr(_cache, "_VERIFIED", {}).clear()  # verification is remembered per process


@pytest.fixture
def dataset(tmp_path):
    return write_layout(tmp_path / "data", "brats2020", n_cases=2, shape=(24, 24, 12))


def test_a_copy_of_the_dataset_does_not_delete_the_entries_a_training_reads(dataset, tmp_path):
    cache = tmp_path / "cache"
    cases = find_cases(dataset)
    paths = _build(cases, cache)
    # A training streams from these entries...
    reader = _cache.SliceReader(paths, _cache.read_entry(paths[0])[0].shape[1:])
    expected = reader(np.array([0, 1]), np.array([3, 3]))
    # ... while the cache is built for a copy of the same dataset (same case ids).
    copy = shutil.copytree(dataset, tmp_path / "copy")
    copy_paths = _build(find_cases(copy), cache)
    assert set(copy_paths).isdisjoint(paths)
    assert all(_cache.read_entry(path) is not None for path in paths + copy_paths)
    again = reader(np.array([0, 1]), np.array([3, 3]))
    np.testing.assert_array_equal(again[0], expected[0])
    np.testing.assert_array_equal(again[1], expected[1])
    reader.close()
    # Even with nobody reading, the original's entries are not stale: they stay.
    _build(find_cases(copy), tmp_path / "other-cache")
    os.utime(copy / next(copy.rglob("*_seg.nii.gz")).relative_to(copy))  # the copy changes
    _build(find_cases(copy), cache)
    assert all(path.is_dir() for path in paths)


def test_a_stale_entry_is_kept_while_someone_reads_and_removed_after(dataset, tmp_path):
    cache = tmp_path / "cache"
    cases = find_cases(dataset)[:1]
    (old,) = _build(cases, cache)
    reader = _cache.SliceReader([old], _cache.read_entry(old)[0].shape[1:])
    seg = cases[0].seg
    stat = seg.stat()
    os.utime(seg, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the source file changed
    (new,) = _build(cases, cache)
    assert new != old and old.is_dir()  # in use: not deleted under the reader
    reader(np.array([0]), np.array([0]))
    reader.close()
    os.utime(seg, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    (newest,) = _build(cases, cache)
    assert not old.exists() and not new.exists() and newest.is_dir()  # provably stale: same files


@pytest.mark.parametrize("name", ["x.npy", "y.npy", "meta.json"])
def test_a_zero_byte_cache_file_is_rebuilt(dataset, tmp_path, name):
    cache = tmp_path / "cache"
    cases = find_cases(dataset)[:1]
    (path,) = _build(cases, cache)
    expected = np.load(path / "x.npy")
    (path / name).write_bytes(b"")  # what a power loss before the data reached the disk leaves
    _as_a_new_process_sees_it()
    assert _cache.read_entry(path) is None
    with pytest.warns(UserWarning, match="damaged"):
        (rebuilt,) = _build(cases, cache)
    x, _, _ = _cache.read_entry(rebuilt)
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("name", ["x.npy", "y.npy"])
def test_flipped_bytes_in_a_cache_file_are_detected_and_rebuilt(dataset, tmp_path, name):
    cache = tmp_path / "cache"
    cases = find_cases(dataset)[:1]
    (path,) = _build(cases, cache)
    expected = np.load(path / name)
    target = path / name
    stat = target.stat()
    data = bytearray(target.read_bytes())
    data[-5] ^= 0x01  # one flipped bit in the array data; size and header intact
    target.write_bytes(bytes(data))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # bit rot keeps the time too
    _as_a_new_process_sees_it()
    entry, problem = _cache.check_entry(path)
    assert entry is None and name in problem and "CRC-32" in problem
    with pytest.warns(UserWarning, match=f"{name} fails its CRC-32 check"):
        (rebuilt,) = _build(cases, cache)
    np.testing.assert_array_equal(np.load(rebuilt / name), expected)


def test_labels_out_of_range_are_not_read_as_valid(tmp_path):
    x = np.zeros((2, 8, 8, 2), np.float16)
    y = np.zeros((2, 8, 8), np.uint8)
    y[1, 3, 3] = 7  # no BraTS class: corruption (or a writer that skipped the conversion)
    path = _cache.write_entry(tmp_path / "settings" / "a-0", x, y, {"source": None})
    entry, problem = _cache.check_entry(path)
    assert entry is None and "label 7" in problem
    y[1, 3, 3] = 3
    path = _cache.write_entry(tmp_path / "settings" / "b-0", x, y, {"source": None})
    entry, problem = _cache.check_entry(path)
    assert problem is None and int(entry[1].max()) == 3


def test_entries_record_sizes_and_checksums(dataset, tmp_path):
    (path,) = _build(find_cases(dataset)[:1], tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["format"] == _cache.CACHE_FORMAT == 3
    for name in ("x.npy", "y.npy"):
        assert meta["files"][name]["bytes"] == (path / name).stat().st_size
        assert meta["files"][name]["crc32"] == _cache._file_crc32(path / name)


def test_temporary_folders_of_dead_builds_are_removed(dataset, tmp_path):
    cases = find_cases(dataset)
    (first, _) = _build(cases, tmp_path)
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    folder = first.parent
    here_dead = folder / f".{first.name}.tmp-{dead}-{_cache._HOST_TAG}-00000000"
    elsewhere = folder / f".{first.name}.tmp-{dead}-h00000000-00000000"  # another machine's build
    old = folder / f".{first.name}.tmp-{os.getppid()}-{_cache._HOST_TAG}-11111111"
    for leftover in (here_dead, elsewhere, old):
        leftover.mkdir()
        (leftover / "x.npy").write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    cases[0].seg.touch()  # so that the next build writes an entry (and cleans up)
    _build(cases, tmp_path)
    assert not here_dead.exists() and not old.exists()
    assert elsewhere.exists()  # maybe alive on its machine: left until it is an hour old
