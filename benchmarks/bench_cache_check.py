"""What validating a slice cache entry costs: the CRC-32 of its files and the label range.

Usage::

    .venv/bin/python benchmarks/bench_cache_check.py                # a report-preset entry
    .venv/bin/python benchmarks/bench_cache_check.py --slices 100 --size 128 --channels 2

Writes one entry of the given size (the ``report`` preset's by default: 100 slices of
128 x 128 pixels, 2 channels: x.npy 6.6 MB, y.npy 1.6 MB) with `gliseg_nb._cache.write_entry`,
then times `gliseg_nb._cache.check_entry` opening it with the full check (sizes, CRC-32,
labels 0-3; the first look of a process) and without it (``verify=False``: what the check
adds is the difference), and a second look of the same process (memoised). The files are
in the page cache (just written), so the times are those of the CPU work, not of the disk.
The content is random: only the size matters.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def best_of(function, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)

    import numpy as np

    from gliseg_nb import _cache

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.slices, args.size, args.size, args.channels)).astype(np.float16)
    y = rng.integers(0, 4, size=(args.slices, args.size, args.size)).astype(np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "settings" / "case-0123456789abcdef"
        write_seconds = best_of(lambda: _cache.write_entry(path, x, y, {"source": None}), 3)

        def full_check():
            _cache._VERIFIED.clear()  # as a fresh process sees it
            assert _cache.read_entry(path) is not None

        full = best_of(full_check, args.repeat)
        quick = best_of(lambda: _cache.read_entry(path, verify=False), args.repeat)
        memoised = best_of(lambda: _cache.read_entry(path), args.repeat)
        megabytes = sum((path / name).stat().st_size for name in ("x.npy", "y.npy")) / 1e6
    print(json.dumps({
        "entry_MB": round(megabytes, 2),
        "write_entry_ms": round(write_seconds * 1e3, 1),
        "open_with_check_ms": round(full * 1e3, 2),
        "open_without_check_ms": round(quick * 1e3, 2),
        "check_ms": round((full - quick) * 1e3, 2),
        "check_GB_per_s": round(megabytes / 1e3 / max(full - quick, 1e-9), 2),
        "second_open_same_process_ms": round(memoised * 1e3, 2),
    }, indent=1))


if __name__ == "__main__":
    main()
