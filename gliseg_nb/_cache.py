"""The on-disk slice cache behind `gliseg_nb.pipeline.make_dataset`.

Layout::

    <cache_dir>/<settings key>/<case id>-<source key>/
        x.npy          float16 (n, size, size, C)
        y.npy          uint8   (n, size, size)
        meta.json      written last: what the entry holds and where it came from

An entry is built in a temporary folder next to its final place and moved there with one
``os.replace`` once all three files are complete, so a crash or an interrupted write leaves
at most a ``.tmp-*`` folder that no reader ever looks at. The settings key changes when a
setting that shapes the arrays changes; the source key changes when any source file's path,
size or modification time changes. Either change means a different folder: a stale entry
is never read, and is deleted when its replacement is written.

Entries are built by `build_entries` (worker threads, a case each) and read a batch of
slices at a time by `SliceReader`. Nothing here needs TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from ._io import cache_root
from ._threads import map_in_threads

#: Bump when the cache's content or layout changes; older entries are then ignored.
CACHE_FORMAT = 2

#: Config fields that change what is cached (the model and training fields do not).
CACHED_SETTINGS = (
    "modalities",
    "slice_start",
    "n_slices",
    "slice_step",
    "brain_slices_only",
    "image_size",
    "normalization",
)

# Temporary folders older than this are left-overs of a killed process and are removed.
_STALE_TMP_SECONDS = 3600


def default_cache_dir():
    """``slices/`` under the cache root (`gliseg_nb._io.cache_root`: ``$GLISEG_NB_CACHE`` or the OS cache)."""
    return cache_root() / "slices"


def _digest(payload):
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def settings_key(config):
    """Key of the settings that shape the cached arrays."""
    settings = {name: getattr(config, name) for name in CACHED_SETTINGS}
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
            raise ValueError(f"{path}: cannot read source file of case {case.case_id} ({error})") from None
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


def read_entry(path, identity=None):
    """Open a complete entry with memory-mapped arrays, or return None if it is not valid.

    Returns
    -------
    tuple (x, y, meta) or None
        ``x`` and ``y`` are read-only memory maps.
    """
    path = Path(path)
    meta_path = path / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != CACHE_FORMAT or meta.get("complete") is not True:
        return None
    if identity is not None and meta.get("source") != json.loads(json.dumps(identity)):
        return None
    try:
        x = np.load(path / "x.npy", mmap_mode="r")
        y = np.load(path / "y.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    if list(x.shape) != meta["x_shape"] or list(y.shape) != meta["y_shape"]:
        return None
    return x, y, meta


def write_entry(path, x, y, meta):
    """Write an entry atomically: a temporary folder, then one ``os.replace`` into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        np.save(tmp / "x.npy", np.asarray(x, dtype=np.float16))
        np.save(tmp / "y.npy", np.asarray(y, dtype=np.uint8))
        full_meta = {
            **meta,
            "format": CACHE_FORMAT,
            "x_shape": list(np.shape(x)),
            "y_shape": list(np.shape(y)),
            "complete": True,
        }
        # The metadata goes last: a folder without it is never considered valid.
        (tmp / "meta.json").write_text(json.dumps(full_meta, indent=1, default=str))
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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale_entries(path)
    return path


def _remove_stale_entries(path):
    """Delete older entries of the same case (other source keys) and abandoned temp folders."""
    stem = path.name.rsplit("-", 1)[0]
    now = time.time()
    for sibling in path.parent.iterdir():
        if sibling == path:
            continue
        name = sibling.name
        if ".tmp-" in name:
            try:
                if now - sibling.stat().st_mtime > _STALE_TMP_SECONDS:
                    shutil.rmtree(sibling, ignore_errors=True)
            except OSError:
                pass
        elif name.rsplit("-", 1)[0] == stem:
            shutil.rmtree(sibling, ignore_errors=True)


def build_entry(case, config, cache_dir):
    """Preprocess one case and write its entry, unless a valid one exists. Returns its folder.

    Runs in the cache builder's worker threads, several cases at once: it shares no
    mutable state (every entry is written to its own temporary folder).
    """
    from ._preprocess import load_selection, preprocess_arrays

    path, identity = entry_dir(cache_dir, case, config)
    if read_entry(path, identity) is not None:
        return path
    x, y, slices, has_brain = preprocess_arrays(load_selection(case, config), config, copy=False)
    if y is None:
        raise ValueError(f"case {case.case_id} has no segmentation; it cannot be used for training")
    if config.brain_slices_only:
        x, y, slices = x[has_brain], y[has_brain], slices[has_brain]
    meta = {"case_id": case.case_id, "slices": [int(s) for s in slices], "source": identity}
    return write_entry(path, x, y, meta)


def build_entries(cases, config, cache_dir=None, workers=None, progress=True):
    """Build the missing entries of `cases` (see `gliseg_nb.pipeline.build_cache`)."""
    from tqdm.auto import tqdm

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cases = list(cases)
    paths = [None] * len(cases)
    missing = []
    for index, case in enumerate(cases):
        path, identity = entry_dir(cache_dir, case, config)
        if read_entry(path, identity) is not None:
            paths[index] = path
        else:
            missing.append(index)
    if workers is None:
        # Measured on 16 cores: 1.9x the one-thread speed with 2 threads, 3.4x with 4,
        # 4.9x with 8 and 5.5x with 16 (docs/benchmarks.md); beyond 8 little is gained.
        workers = min(8, os.cpu_count() or 1)
    workers = max(1, min(workers, len(missing)))
    with tqdm(total=len(cases), initial=len(cases) - len(missing), desc="caching slices", unit="case",
              disable=not progress) as bar:
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
            raise ValueError(f"{path}: unexpected cache file layout ({dtype}, fortran={fortran_order})")
        return handle.tell()


class SliceReader:
    """Reads batches of slices from cache entries, one positioned read per slice.

    Each slice of a C-ordered ``.npy`` file is one contiguous run of bytes, so a seek and a
    read into the batch array fetch it with no copy in between. Files are opened per batch
    and closed after: nothing stays mapped or open, so memory follows the batch, not the
    number of cases (pages touched through long-lived memory maps count as the process's
    resident memory), and no file handles pile up on large datasets.
    """

    def __init__(self, paths, slice_shape):
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
                    raise ValueError(f"{path}: cache file is shorter than its header says")

    def __call__(self, case_indices, slice_indices):
        x = np.empty((len(case_indices), *self.slice_shape), dtype=np.float16)
        y = np.empty((len(case_indices), *self.slice_shape[:2]), dtype=np.uint8)
        for case_index in np.unique(case_indices):
            rows = np.flatnonzero(case_indices == case_index)
            x_path, x_offset, y_path, y_offset = self.files[case_index]
            self._read_rows(x_path, x_offset, self.x_slice_bytes, slice_indices[rows], x, rows)
            self._read_rows(y_path, y_offset, self.y_slice_bytes, slice_indices[rows], y, rows)
        return x, y
