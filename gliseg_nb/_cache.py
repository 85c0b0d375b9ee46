"""The on-disk slice cache behind `gliseg_nb.dataset.make_dataset`.

Layout::

    <cache_dir>/<settings key>/
        readers.lock                     shared-locked by every process reading entries here
        <case id>-<source key>/
            x.npy          float16 (n, size, size, C)
            y.npy          uint8   (n, size, size), internal labels 0-3
            meta.json      written last: what the entry holds, where it came from, and the
                           size and CRC-32 of x.npy and y.npy

An entry is built in a temporary folder next to its final place (every file fsynced) and
moved there with one ``os.replace`` once all three files are complete, so a crash, a power
loss or an interrupted write leaves at most a hidden ``.tmp-`` folder that no reader looks
at (and that the next build removes once its process is gone). The settings key changes
when a setting that shapes the arrays changes; the source key is a digest of the source
files' full paths, sizes and modification times. So a copy of a dataset elsewhere gets
entries of its own, side by side with the original's (a training reading one is never
disturbed by a build of the other), and a changed source file means a new folder: a stale
entry is never read.

**Validation.** An entry is read only if its metadata matches the source and the format,
its files have the sizes the metadata records, their CRC-32 checksums match (flipped bytes,
a file cut short or emptied by a power loss) and its labels are within 0-3. Otherwise it is
rebuilt, with a warning when it was damaged rather than missing or out of date. The check
is made once per entry and process when the cache is built or opened, never per batch.

**Clean-up.** Entries of the same source files with an older size or time are provably
stale and are deleted when their replacement is written, unless a process is reading from
the cache at that moment (it holds ``readers.lock`` shared); they are then left for a later
build. Entries of other source files (a copy of the dataset) are never deleted.

Entries are built by `build_entries` (worker threads, a case each) and read a batch of
slices at a time by `SliceReader`. Nothing here needs TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sys
import threading
import uuid
import warnings
import zlib
from pathlib import Path

import numpy as np

from ._io import TEMPORARY_MARK, cache_root, fsync_dir, user_path
from ._locking import FileLock, LockHeld, remove_stale_temporaries
from ._threads import map_in_threads
from .errors import DataError, RunError

#: Bump when the cache's content or layout changes; older entries are then ignored.
#: 3: meta.json records each array file's size and CRC-32; sources keyed by full path.
CACHE_FORMAT = 3

#: Internal labels are 0 .. N_LABELS - 1 (`gliseg_nb.labels`); anything else is corruption.
N_LABELS = 4

#: The shared lock readers hold on a settings folder while they read entries from it.
READERS_LOCK = "readers.lock"

#: Config fields that change what is cached (the model and training fields do not).
CACHED_SETTINGS = (
    "modalities",
    "slice_start",
    "n_slices",
    "slice_step",
    "brain_slices_only",
    "image_size",
    "normalization",
    "context_slices",  # in the key only when set (`Config.key_dict`): older entries stay valid
)

_ARRAY_FILES = ("x.npy", "y.npy")
# Entries verified by this process: key (folder, stat of its files) -> True. Verification
# reads every byte once; the cache builder and make_dataset both open each entry, so the
# second look is free. A file rewritten since has another stat, hence another key.
_VERIFIED = {}
_VERIFIED_GUARD = threading.Lock()
# Temporary entry folders carry a tag of the machine, so that a build on another machine
# sharing the cache folder is never taken for a dead process of this one.
_HOST_TAG = "h" + hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def default_cache_dir():
    """``slices/`` under the cache root (`gliseg_nb._io.cache_root`: ``$GLISEG_NB_CACHE`` or the OS cache)."""
    return cache_root() / "slices"


def _digest(payload):
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def settings_key(config):
    """Key of the settings that shape the cached arrays."""
    settings = {name: value for name, value in config.key_dict().items() if name in CACHED_SETTINGS}
    return _digest({"format": CACHE_FORMAT, "settings": settings})


def source_files(case, config):
    """The files of `case` that the cache entry depends on (modalities used, and seg)."""
    files = [Path(case.modalities[m]) for m in config.modalities]
    if case.seg is not None:
        files.append(Path(case.seg))
    unique = []
    for path in files:  # MSD: every modality is the same 4-D file
        if path not in unique:
            unique.append(path)
    return unique


def source_identity(case, config):
    """Path, size and modification time (ns) of each source file, plus how to read it."""
    identity = []
    for path in source_files(case, config):
        try:
            stat = os.stat(path)
        except OSError as error:
            raise DataError(f"{path}: cannot read source file of case {case.case_id} ({error.strerror or error})") from error
        identity.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    return {
        "case_id": case.case_id,
        "layout": case.layout,
        "channels": case.channels,
        "files": identity,
    }


def entry_dir(cache_dir, case, config):
    """The folder a case's entry lives in for these settings and these source files."""
    identity = source_identity(case, config)
    safe_id = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in case.case_id)
    return Path(cache_dir) / settings_key(config) / f"{safe_id}-{_digest(identity)}", identity


def _file_crc32(path, chunk_bytes=1 << 22):
    """CRC-32 of a file's bytes (zlib's, hardware-accelerated: about 1.4 GB/s here)."""
    crc = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_bytes)
            if not chunk:
                return crc
            crc = zlib.crc32(chunk, crc)


def _stat_key(path):
    try:
        return tuple((name, os.stat(path / name).st_size, os.stat(path / name).st_mtime_ns)
                     for name in ("meta.json", *_ARRAY_FILES))
    except OSError:
        return None


def check_entry(path, identity=None, verify=True):
    """Open an entry, or say why it cannot be used.

    Parameters
    ----------
    path : pathlib.Path
        The entry folder.
    identity : dict, optional
        The source identity it must have been built from (`source_identity`); default=None
        accepts any source.
    verify : bool, default=True
        Check the recorded sizes and CRC-32 checksums and the label range (once per entry
        and process; later calls reuse the result while the files are unchanged).

    Returns
    -------
    entry : tuple (x, y, meta) or None
        ``x`` and ``y`` are read-only memory maps.
    problem : str or None
        None when the entry is valid; ``"missing"`` or ``"stale"`` when it is absent or out
        of date (rebuilt silently); else a description of the damage.
    """
    path = Path(path)
    known = None
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        return None, "missing"
    except (OSError, ValueError) as error:
        return None, f"meta.json unreadable ({error})"
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT or meta.get("complete") is not True:
        return None, "stale"
    if identity is not None and meta.get("source") != json.loads(json.dumps(identity)):
        return None, "stale"
    recorded = meta.get("files", {})
    for name in _ARRAY_FILES:
        try:
            size = os.stat(path / name).st_size
        except OSError:
            return None, f"{name} is missing"
        if name not in recorded or size != recorded[name].get("bytes"):
            return None, f"{name} holds {size} bytes, its metadata says {recorded.get(name, {}).get('bytes')}"
    if verify:
        key = (str(path), _stat_key(path))
        with _VERIFIED_GUARD:
            known = _VERIFIED.get(key)
        if known is None:
            for name in _ARRAY_FILES:
                try:
                    crc = _file_crc32(path / name)
                except OSError as error:
                    return None, f"{name} unreadable ({error})"
                if crc != recorded[name].get("crc32"):
                    return None, f"{name} fails its CRC-32 check (flipped or lost bytes)"
    try:
        x = np.load(path / "x.npy", mmap_mode="r")
        y = np.load(path / "y.npy", mmap_mode="r")
    except (OSError, ValueError, EOFError) as error:
        return None, f"arrays unreadable ({error})"
    if list(x.shape) != meta.get("x_shape") or list(y.shape) != meta.get("y_shape"):
        return None, "array shapes differ from the metadata"
    if x.dtype != np.float16 or y.dtype != np.uint8:
        return None, f"unexpected array types ({x.dtype}, {y.dtype})"
    if verify and known is None:
        if y.size and int(y.max()) >= N_LABELS:
            return None, f"y.npy holds label {int(y.max())}, outside 0-{N_LABELS - 1}"
        with _VERIFIED_GUARD:
            _VERIFIED[key] = True
    return (x, y, meta), None


def read_entry(path, identity=None, verify=True):
    """Open a complete, valid entry with memory-mapped arrays, or return None (see `check_entry`).

    Returns
    -------
    tuple (x, y, meta) or None
        ``x`` and ``y`` are read-only memory maps.
    """
    return check_entry(path, identity, verify=verify)[0]


def _save_synced(path, array):
    with open(path, "wb") as handle:
        np.save(handle, array)
        handle.flush()
        os.fsync(handle.fileno())
    return {"bytes": os.stat(path).st_size, "crc32": _file_crc32(path)}


def write_entry(path, x, y, meta):
    """Write an entry atomically: a temporary folder (files fsynced), then one ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TEMPORARY_MARK}{os.getpid()}-{_HOST_TAG}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        x = np.asarray(x, dtype=np.float16)
        y = np.asarray(y, dtype=np.uint8)
        files = {"x.npy": _save_synced(tmp / "x.npy", x), "y.npy": _save_synced(tmp / "y.npy", y)}
        full_meta = {
            **meta,
            "format": CACHE_FORMAT,
            "x_shape": list(np.shape(x)),
            "y_shape": list(np.shape(y)),
            "files": files,
            "complete": True,
        }
        # The metadata goes last: a folder without it is never considered valid.
        with open(tmp / "meta.json", "w", encoding="utf-8") as handle:
            handle.write(json.dumps(full_meta, indent=1, default=str))
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(tmp)
        try:
            os.replace(tmp, path)
        except OSError:
            if read_entry(path) is not None:
                # Another process finished the same entry first; its content is
                # equivalent, so keep it.
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                # A broken folder sits in the way (its metadata lost, say): replace it.
                shutil.rmtree(path, ignore_errors=True)
                os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale_entries(path, meta.get("source"))
    return path


def _source_paths(source):
    return sorted(str(item[0]) for item in (source or {}).get("files", []))


def _remove_stale_entries(path, source):
    """Delete provably stale entries of the same case, and temporary folders of dead builds.

    Provably stale: built from the very same source files (same full paths) at another size
    or time, or without readable metadata. Entries of other paths (a copy of the dataset)
    are kept. Nothing is deleted while another process reads from this settings folder.
    """
    folder = path.parent
    remove_stale_temporaries(folder, same_host_tag=_HOST_TAG)
    if sys.platform == "win32":
        return  # msvcrt has no shared locks: whether anyone reads cannot be told, so keep them
    readers = FileLock(folder / READERS_LOCK)
    try:
        readers.acquire()  # exclusive, without waiting: fails while anyone reads here
    except (LockHeld, OSError):
        return
    try:
        stem = path.name.rsplit("-", 1)[0]
        ours = _source_paths(source)
        for sibling in folder.iterdir():
            name = sibling.name
            if sibling == path or TEMPORARY_MARK in name or not sibling.is_dir() or name.rsplit("-", 1)[0] != stem:
                continue
            try:
                theirs = json.loads((sibling / "meta.json").read_text()).get("source")
            except (OSError, ValueError, AttributeError):
                theirs = None  # no readable metadata: never valid, nobody can be reading it
            if theirs is None or _source_paths(theirs) == ours:
                shutil.rmtree(sibling, ignore_errors=True)
    finally:
        readers.release()


def build_entry(case, config, cache_dir):
    """Preprocess one case and write its entry, unless a valid one exists. Returns its folder.

    Runs in the cache builder's worker threads, several cases at once: it shares no
    mutable state (every entry is written to its own temporary folder).
    """
    from ._preprocess import load_selection, preprocess_arrays

    path, identity = entry_dir(cache_dir, case, config)
    entry, problem = check_entry(path, identity)
    if entry is not None:
        return path
    if problem not in ("missing", "stale"):
        warnings.warn(f"{path}: slice cache entry of case {case.case_id} is damaged ({problem}); rebuilding it",
                      stacklevel=2)
    x, y, slices, has_brain = preprocess_arrays(load_selection(case, config), config, copy=False)
    if y is None:
        raise DataError(f"case {case.case_id} has no segmentation; it cannot be used for training")
    if config.brain_slices_only:
        x, y, slices = x[has_brain], y[has_brain], slices[has_brain]
    meta = {"case_id": case.case_id, "slices": [int(s) for s in slices], "source": identity}
    return write_entry(path, x, y, meta)


def build_entries(cases, config, cache_dir=None, workers=None, progress=True):
    """Build the missing entries of `cases` (see `gliseg_nb.dataset.build_cache`)."""
    from ._progress_bar import progress_bar

    cache_dir = user_path(cache_dir) if cache_dir is not None else default_cache_dir()
    cases = list(cases)
    if workers is None:
        # Measured on 16 cores: 1.9x the one-thread speed with 2 threads, 3.4x with 4,
        # 4.9x with 8 and 5.5x with 16 (docs/benchmarks.md); beyond 8 little is gained.
        workers = min(8, os.cpu_count() or 1)

    def valid_entry(case):
        path, identity = entry_dir(cache_dir, case, config)
        return path if read_entry(path, identity) is not None else None

    # Checking an entry reads all of it (CRC-32, in zlib, which releases the GIL): threads.
    paths = map_in_threads(valid_entry, cases, max(1, min(workers, len(cases))), name="gliseg-cache-check")
    missing = [index for index, path in enumerate(paths) if path is None]
    workers = max(1, min(workers, len(missing)))
    with progress_bar(total=len(cases), initial=len(cases) - len(missing), desc="caching slices",
                      unit="case", disable=not progress) as bar:
        built = map_in_threads(lambda index: build_entry(cases[index], config, cache_dir), missing, workers,
                               bar=bar, name="gliseg-cache")
    for index, path in zip(missing, built):
        paths[index] = path
    return paths


def _npy_data_offset(path, expected_dtype):
    """Byte offset of the array data in a C-ordered ``.npy`` file (checked against its header)."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
        if fortran_order or dtype != np.dtype(expected_dtype):
            raise RunError(f"{path}: unexpected cache file layout ({dtype}, fortran={fortran_order}); delete this cache entry")
        return handle.tell()


class SliceReader:
    """Reads batches of slices from cache entries, one positioned read per slice.

    Each slice of a C-ordered ``.npy`` file is one contiguous run of bytes, so a seek and a
    read into the batch array fetch it with no copy in between. Files are opened per batch
    and closed after: nothing stays mapped or open, so memory follows the batch, not the
    number of cases (pages touched through long-lived memory maps count as the process's
    resident memory), and no file handles pile up on large datasets.

    While it exists, the reader holds ``readers.lock`` of each settings folder it reads
    from (shared), so that no build in another process deletes an entry under it; `close`
    (or garbage collection, or the end of the process) releases it.
    """

    def __init__(self, paths, slice_shape):
        paths = [Path(path) for path in paths]
        self._locks = []
        for folder in dict.fromkeys(path.parent for path in paths):
            lock = FileLock(folder / READERS_LOCK, shared=True)
            try:
                # Held exclusively only for the moment a build deletes stale entries.
                lock.acquire(blocking=True)
            except OSError:  # a read-only cache: no build can delete anything in it either
                continue
            self._locks.append(lock)
        self.slice_shape = tuple(int(n) for n in slice_shape)
        self.x_slice_bytes = int(np.prod(self.slice_shape)) * np.dtype(np.float16).itemsize
        self.y_slice_bytes = int(np.prod(self.slice_shape[:2]))
        self.files = [
            (
                folder / "x.npy",
                _npy_data_offset(folder / "x.npy", np.float16),
                folder / "y.npy",
                _npy_data_offset(folder / "y.npy", np.uint8),
            )
            for folder in paths
        ]

    @staticmethod
    def _read_rows(path, offset, slice_bytes, slice_indices, destination, rows):
        with open(path, "rb", buffering=0) as handle:
            for row, slice_index in zip(rows, slice_indices):
                handle.seek(offset + int(slice_index) * slice_bytes)
                # Rows of a C-ordered batch array are contiguous: read straight into them.
                view = memoryview(destination[row]).cast("B")
                if handle.readinto(view) != slice_bytes:
                    raise RunError(f"{path}: cache file is shorter than its header says (changed while training?); delete this cache entry")

    def close(self):
        """Release the readers' locks (the reader can still be called afterwards)."""
        for lock in self._locks:
            lock.release()
        self._locks = []

    def __del__(self):
        # Also runs at interpreter shutdown, when module globals (contextlib) may be gone.
        try:
            self.close()
        except Exception:
            pass

    def __call__(self, case_indices, slice_indices):
        x = np.empty((len(case_indices), *self.slice_shape), dtype=np.float16)
        y = np.empty((len(case_indices), *self.slice_shape[:2]), dtype=np.uint8)
        for case_index in np.unique(case_indices):
            rows = np.flatnonzero(case_indices == case_index)
            x_path, x_offset, y_path, y_offset = self.files[case_index]
            self._read_rows(x_path, x_offset, self.x_slice_bytes, slice_indices[rows], x, rows)
            self._read_rows(y_path, y_offset, self.y_slice_bytes, slice_indices[rows], y, rows)
        return x, y
