"""fetch_example_case, against small files the test serves itself (no internet here)."""

import functools
import hashlib
import http.server
import threading

import nibabel as nib
import numpy as np
import pytest

from gliseg_nb.data import DataError, ExampleDownloadError, fetch_example_case, find_cases, load_case
from gliseg_nb.data import example


@pytest.fixture
def served(tmp_path, monkeypatch, rng):
    """Five small NIfTI files named like the example case, served on 127.0.0.1, and hashes
    that match them (patched in for the real ones)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    folder = tmp_path / "served"
    folder.mkdir()
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    hashes = {}
    for key in example.EXAMPLE_SHA256:
        if key == "seg":
            data = np.zeros((8, 8, 4), dtype=np.uint8)
            data[2:5, 2:5, 1:3] = 2
            data[3, 3, 2] = 4
        else:
            data = rng.integers(1, 500, size=(8, 8, 4)).astype(np.int16)
        path = folder / f"{example.EXAMPLE_CASE_ID}_{key}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), path)
        hashes[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(example, "EXAMPLE_SHA256", hashes)

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address
    yield f"http://{host}:{port}", hashes
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_right_hashes_give_a_case_find_cases_reads(served, tmp_path):
    base_url, _ = served
    dest = fetch_example_case(tmp_path / "data", base_url=base_url)
    cases = find_cases(dest)
    assert [c.case_id for c in cases] == [example.EXAMPLE_CASE_ID]
    data = load_case(cases[0])
    assert data.labels.shape == (8, 8, 4)
    assert set(np.unique(data.labels)) == {0, 2, 3}  # BraTS 4 read as internal 3
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]  # no partial left


def test_second_call_downloads_nothing(served, tmp_path):
    base_url, _ = served
    dest = fetch_example_case(tmp_path / "data", base_url=base_url)
    # The server's address no longer works: a complete case is returned without it.
    assert fetch_example_case(dest, base_url="http://127.0.0.1:9/nothing") == dest


def test_wrong_hash_fails_clearly_and_leaves_nothing(served, tmp_path, monkeypatch):
    base_url, hashes = served
    monkeypatch.setattr(example, "EXAMPLE_SHA256", {**hashes, "t1ce": "0" * 64})
    dest = tmp_path / "data"
    with pytest.raises(ExampleDownloadError, match=r"_t1ce\.nii\.gz: the file does not match its SHA-256"):
        fetch_example_case(dest, base_url=base_url)
    assert list(dest.iterdir()) == []
    assert issubclass(ExampleDownloadError, DataError)


def test_offline_fails_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # Port 9 (discard) on the loopback address: nothing listens, the connection is refused.
    with pytest.raises(ExampleDownloadError, match="download failed .*are you online") as info:
        fetch_example_case(tmp_path / "data", base_url="http://127.0.0.1:9")
    assert "\n" not in str(info.value)
    assert list((tmp_path / "data").iterdir()) == []


def test_the_real_addresses_are_pinned():
    assert "5d4f3810f1c776050b6937b6db5b7afa17527efd" in example.EXAMPLE_BASE_URL
    assert example.EXAMPLE_BASE_URL.endswith("/sample_volume/brats/Brats18_TCIA01_201_1")
    assert sorted(example.EXAMPLE_SHA256) == ["flair", "seg", "t1", "t1ce", "t2"]
    assert all(len(h) == 64 for h in example.EXAMPLE_SHA256.values())
