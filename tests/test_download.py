"""The MSD download, against archives served from the test itself (no internet here)."""

import functools
import hashlib
import http.server
import io
import tarfile
import threading

import numpy as np
import pytest

from gliseg_nb.data import MSD_MD5, MSD_URL, DataError, download_msd, find_cases, load_case
from layout_fixtures import fixture_labels, write_layout


@pytest.fixture
def serve(tmp_path, monkeypatch):
    """Serve files from a folder over HTTP on 127.0.0.1; yields ``url_of(name)``."""
    # A proxy set in the environment must not intercept the loopback address.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    folder = tmp_path / "served"
    folder.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    host, port = server.server_address

    def url_of(name):
        return f"http://{host}:{port}/{name}"

    url_of.folder = folder
    yield url_of
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def _msd_archive(tmp_path, served_folder, name="Task01_BrainTumour.tar"):
    """A small tar of the MSD layout, with the macOS junk files the real one carries."""
    source = tmp_path / "source"
    dataset = write_layout(source, "msd", n_cases=2)
    archive = served_folder / name
    with tarfile.open(archive, "w") as tar:
        tar.add(dataset, arcname="Task01_BrainTumour")
        # The real archive has AppleDouble entries for folders too.
        _add_bytes(tar, "._Task01_BrainTumour", b"\x00\x05\x16\x07junk")
    return archive


def _add_bytes(tar, name, content, **attributes):
    info = tarfile.TarInfo(name)
    info.size = len(content)
    for key, value in attributes.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(content))


def _leftovers(dest):
    return sorted(p.name for p in dest.iterdir()) if dest.exists() else []


def test_constants_match_the_handbook():
    assert MSD_URL == "https://msd-for-monai.s3-us-west-2.amazonaws.com/Task01_BrainTumour.tar"
    assert MSD_MD5 == "240a19d752f0d9e9101544901065d872"


def test_download_unpacks_a_folder_find_cases_reads(tmp_path, serve):
    archive = _msd_archive(tmp_path, serve.folder)
    dest = tmp_path / "data"

    folder = download_msd(dest, url=serve("Task01_BrainTumour.tar"), md5=_md5(archive),
                          progress=False)

    assert folder == dest / "Task01_BrainTumour"
    cases = find_cases(folder)
    assert [case.case_id for case in cases] == ["BRATS_001", "BRATS_002"]
    np.testing.assert_array_equal(load_case(cases[1]).labels, fixture_labels((24, 24, 16), 1))
    # No AppleDouble junk unpacked, no staging folder, and the archive is gone.
    assert not list(dest.rglob("._*"))
    assert _leftovers(dest) == ["Task01_BrainTumour"]


def test_download_can_keep_the_archive(tmp_path, serve):
    archive = _msd_archive(tmp_path, serve.folder)
    dest = tmp_path / "data"

    # With the progress bars on, as a learner would run it.
    download_msd(dest, url=serve("Task01_BrainTumour.tar"), md5=_md5(archive), progress=True,
                 keep_archive=True)

    assert _leftovers(dest) == ["Task01_BrainTumour", "Task01_BrainTumour.tar"]
    assert _md5(dest / "Task01_BrainTumour.tar") == _md5(archive)


def test_second_call_downloads_nothing(tmp_path, serve):
    archive = _msd_archive(tmp_path, serve.folder)
    dest = tmp_path / "data"
    first = download_msd(dest, url=serve("Task01_BrainTumour.tar"), md5=_md5(archive),
                         progress=False)
    archive.unlink()  # the server no longer has it: a second download would fail

    second = download_msd(dest, url=serve("Task01_BrainTumour.tar"), md5="0" * 32,
                          progress=False)

    assert second == first
    assert len(find_cases(second)) == 2


def test_wrong_checksum_keeps_nothing(tmp_path, serve):
    _msd_archive(tmp_path, serve.folder)
    dest = tmp_path / "data"

    with pytest.raises(DataError, match=r"Task01_BrainTumour\.tar.*checksum"):
        download_msd(dest, url=serve("Task01_BrainTumour.tar"), md5="0" * 32, progress=False)

    assert _leftovers(dest) == []


def test_missing_file_on_the_server_is_an_error(tmp_path, serve):
    dest = tmp_path / "data"

    with pytest.raises(DataError, match=r"Task01_BrainTumour\.tar.*download failed.*404"):
        download_msd(dest, url=serve("Task01_BrainTumour.tar"), md5="0" * 32, progress=False)

    assert not (dest / "Task01_BrainTumour").exists()


@pytest.mark.parametrize(
    "member, attributes",
    [
        ("../evil.txt", {}),
        ("Task01_BrainTumour/../../evil.txt", {}),
        ("/tmp/evil.txt", {}),
        ("Task01_BrainTumour/evil_link", {"type": tarfile.SYMTYPE, "linkname": "../../evil.txt"}),
        ("Task01_BrainTumour/evil_link", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}),
        ("Task01_BrainTumour/evil_hard", {"type": tarfile.LNKTYPE, "linkname": "../evil.txt"}),
        # Links that stay inside are refused too: Task01 holds none, and a link's target read
        # as text says nothing about links unpacked before it.
        ("Task01_BrainTumour/imagesTr/evil_alias",
         {"type": tarfile.SYMTYPE, "linkname": "BRATS_001.nii.gz"}),
        ("Task01_BrainTumour/evil_copy",
         {"type": tarfile.LNKTYPE, "linkname": "Task01_BrainTumour/dataset.json"}),
        ("Task01_BrainTumour/evil_fifo", {"type": tarfile.FIFOTYPE}),
        ("Task01_BrainTumour/evil_device", {"type": tarfile.CHRTYPE, "devmajor": 1,
                                            "devminor": 3}),
    ],
    ids=["parent", "nested-parent", "absolute", "symlink-up", "symlink-absolute", "hardlink",
         "symlink-inside", "hardlink-inside", "fifo", "device"],
)
def test_hostile_member_is_refused_and_nothing_is_unpacked(tmp_path, serve, member, attributes):
    archive = _msd_archive(tmp_path, serve.folder)
    with tarfile.open(archive, "a") as tar:
        content = b"" if attributes else b"owned"
        _add_bytes(tar, member, content, **attributes)
    dest = tmp_path / "data"

    with pytest.raises(DataError, match=rf"refusing to unpack .*{member.split('/')[-1]}"):
        download_msd(dest, url=serve("Task01_BrainTumour.tar"), md5=_md5(archive),
                     progress=False)

    assert not list(tmp_path.rglob("evil*"))
    assert _leftovers(dest) == []  # no data, no staging folder, no hostile archive


def test_archive_without_the_task_folder_is_refused(tmp_path, serve):
    archive = serve.folder / "other.tar"
    with tarfile.open(archive, "w") as tar:
        _add_bytes(tar, "something_else/readme.txt", b"hello")
    dest = tmp_path / "data"

    with pytest.raises(DataError, match=r"other\.tar.*no Task01_BrainTumour folder"):
        download_msd(dest, url=serve("other.tar"), md5=_md5(archive), progress=False)

    assert not (dest / "Task01_BrainTumour").exists()
    assert not list(dest.glob(".msd-unpack*"))


def test_incomplete_existing_folder_is_reported(tmp_path):
    (tmp_path / "Task01_BrainTumour" / "imagesTr").mkdir(parents=True)

    with pytest.raises(DataError, match=r"Task01_BrainTumour.*not a complete"):
        download_msd(tmp_path, url="http://127.0.0.1:9/never-contacted.tar", progress=False)


def _add_link_chain_escape(tar, dest, outside_name, content):
    """The CVE-2025-4517 pattern: a chain of symlinks through long folder names, so that
    ``os.path.realpath`` gives up (PATH_MAX) and Python's ``data`` filter (before 3.11.13)
    sees the link as inside; a hard link through it, then a regular file written into the
    hard link, overwrites `outside_name` two folders above the unpacking folder."""
    # The unpacking folder is dest/.msd-unpack-XXXXXXXX: size the names so that the deepest
    # folder still fits in PATH_MAX but its resolved path plus one more name does not.
    prefix = len(str(dest)) + len("/.msd-unpack-xxxxxxxx/")
    steps = "abcdefghijklmnop"
    component = "d" * min(254, (4096 - prefix - 100) // len(steps) - 1)
    path = ""
    for step in steps:
        folder = tarfile.TarInfo(f"{path}{component}")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        link = tarfile.TarInfo(f"{path}{step}")
        link.type = tarfile.SYMTYPE
        link.linkname = component
        tar.addfile(link)
        path += component + "/"
    long_link = "/".join(steps) + "/" + "l" * 254
    link = tarfile.TarInfo(long_link)
    link.type = tarfile.SYMTYPE
    link.linkname = "../" * len(steps)
    tar.addfile(link)
    escape = tarfile.TarInfo("escape")
    escape.type = tarfile.SYMTYPE
    escape.linkname = long_link + "/../.."  # as text: inside; on disk: two folders up
    tar.addfile(escape)
    hard = tarfile.TarInfo("flaglink")
    hard.type = tarfile.LNKTYPE
    hard.linkname = f"escape/{outside_name}"
    tar.addfile(hard)
    _add_bytes(tar, "flaglink", content)


def test_symlink_chain_with_a_hard_link_cannot_write_outside(tmp_path, serve):
    # Task01 holds no link at all: every link member is refused before anything is unpacked.
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"original")
    dest = tmp_path / "data"
    archive = _msd_archive(tmp_path, serve.folder)
    with tarfile.open(archive, "a") as tar:
        _add_link_chain_escape(tar, dest, "outside.txt", b"overwritten")

    with pytest.raises(DataError, match=r"Task01_BrainTumour\.tar: refusing to unpack .*link"):
        download_msd(dest, url=serve("Task01_BrainTumour.tar"), md5=_md5(archive),
                     progress=False)

    assert outside.read_bytes() == b"original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "outside.txt", "served",
                                                           "source"]
    assert _leftovers(dest) == []  # no data, no staging folder, no hostile archive
