"""What checking the gzip CRC of every ``.nii.gz`` costs `load_case`, per case.

Usage::

    .venv/bin/python benchmarks/bench_nifti_crc.py --real DIR [--repeats 5]

`gliseg_nb.data._nifti.read_voxels` reads a ``.nii.gz`` stream to its end after the slices
asked for, so that gzip checks its CRC-32. This script times `load_case` on each case of
DIR with that reader ("checked") and with nibabel's plain slice read that stops after the
last slice asked for ("unchecked", the reader before the check), in two settings:

report-slab   FLAIR + T1ce + seg, axial slices 22-121 (what the slice cache reads, the
              ``report`` preset);
whole-case    all four modalities + seg, the whole volume (what prediction and
              evaluation read).

The two readers alternate, ``--repeats`` times each per case; the median is reported. The
files are read once before timing, so both readers see the same warm page cache.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

import gliseg_nb.data.loading as loading
from gliseg_nb.data import find_cases, load_case

SETTINGS = {
    "report-slab": {"modalities": ["flair", "t1ce"], "slices": (22, 122)},
    "whole-case": {"modalities": None, "slices": None},
}


def _unchecked(path, image, index=None):
    # The reader before the CRC check: nibabel decodes up to the last byte asked for.
    return np.asanyarray(image.dataobj[() if index is None else index])


def _time(case, setting, reader):
    """(wall, CPU) seconds of one load_case: CPU time is steadier on a shared machine."""
    loading.read_voxels = reader
    wall, cpu = time.perf_counter(), time.process_time()
    load_case(case, **setting)
    return time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", required=True, help="a folder of BraTS cases")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()

    checked = loading.read_voxels
    cases = find_cases(args.real)
    results = {"machine": platform.platform(), "python": platform.python_version(),
               "cases": len(cases), "repeats": args.repeats, "settings": {}}
    for name, setting in SETTINGS.items():
        rows = []
        for case in cases:
            _time(case, setting, checked)  # warm the page cache
            times = {"checked": [], "unchecked": []}
            for _ in range(args.repeats):
                times["unchecked"].append(_time(case, setting, _unchecked))
                times["checked"].append(_time(case, setting, checked))
            row = {"case_id": case.case_id}
            for key, values in times.items():
                row[f"{key}_wall_ms"] = statistics.median(v[0] for v in values) * 1000
                row[f"{key}_cpu_ms"] = statistics.median(v[1] for v in values) * 1000
            for clock in ("wall", "cpu"):
                row[f"extra_{clock}_ms"] = row[f"checked_{clock}_ms"] - row[f"unchecked_{clock}_ms"]
            rows.append(row)
            print(f"{name:12s} {case.case_id:24s} CPU unchecked {row['unchecked_cpu_ms']:7.1f} ms "
                  f"checked {row['checked_cpu_ms']:7.1f} ms extra {row['extra_cpu_ms']:+6.1f} ms"
                  f" | wall extra {row['extra_wall_ms']:+6.1f} ms")
        summary = {key: statistics.mean(row[key] for row in rows)
                   for key in rows[0] if key != "case_id"}
        for clock in ("wall", "cpu"):
            summary[f"extra_{clock}_percent"] = (100 * summary[f"extra_{clock}_ms"]
                                                 / summary[f"unchecked_{clock}_ms"])
        results["settings"][name] = {"per_case": rows, "mean": summary}
        print(f"{name:12s} mean over {len(rows)} cases: CPU unchecked "
              f"{summary['unchecked_cpu_ms']:.1f} ms, checked {summary['checked_cpu_ms']:.1f} ms,"
              f" extra {summary['extra_cpu_ms']:+.1f} ms ({summary['extra_cpu_percent']:+.1f} %);"
              f" wall extra {summary['extra_wall_ms']:+.1f} ms "
              f"({summary['extra_wall_percent']:+.1f} %)")
    loading.read_voxels = checked
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
