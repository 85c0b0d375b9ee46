"""How long does the synthetic generator take per case? And how hard is its data?

Usage::

    .venv/bin/python benchmarks/bench_synthetic.py --cases 6
    .venv/bin/python benchmarks/bench_synthetic.py --cases 24 --out data/synthetic-bench

Reports, for `gliseg_nb.data.synthesize`:

templates     loading the MNI152 maps from nilearn (once per process)
generate      `synthesize_case` per case: anatomy warp, tumour, confounders, four contrasts
write         writing the five .nii.gz files of a case
total         both, per case

Times are wall-clock seconds and CPU seconds of this process (CPU time is the fairer figure on
a shared machine: other processes inflate wall-clock time, not CPU time). It then prints the
FLAIR threshold baseline (`threshold_baseline`): the best single global threshold on z-scored
FLAIR and its mean per-case whole-tumour Dice, which the generator is calibrated to keep
between about 0.6 and 0.8.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def _clock():
    return time.perf_counter(), time.process_time()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6, help="cases to generate (default: 6)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the cases here (default: a temporary folder, removed)")
    args = parser.parse_args(argv)

    from gliseg_nb.data import synthetic

    wall, cpu = _clock()
    synthetic._templates()
    wall_t, cpu_t = _clock()
    print(f"templates: {wall_t - wall:.2f} s wall, {cpu_t - cpu:.2f} s CPU (once per process)")

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        rows = []
        for index in range(args.cases):
            start_wall, start_cpu = _clock()
            images, seg, parameters = synthetic.synthesize_case(args.seed, index)
            mid_wall, mid_cpu = _clock()
            case_id = f"BraTS20_Training_{index + 1:03d}"
            out.mkdir(parents=True, exist_ok=True)
            synthetic._write_case(out, case_id, images, seg)
            end_wall, end_cpu = _clock()
            rows.append((mid_wall - start_wall, mid_cpu - start_cpu,
                         end_wall - mid_wall, end_cpu - mid_cpu))
            print(f"{case_id} {parameters['grade']} {parameters['tumour_kind']:9s} "
                  f"generate {rows[-1][0]:5.2f} s ({rows[-1][1]:5.2f} CPU)  "
                  f"write {rows[-1][2]:5.2f} s ({rows[-1][3]:5.2f} CPU)  "
                  f"volumes mL {parameters['volumes_ml']}")

        def mean(column):
            return statistics.mean(row[column] for row in rows)

        print(f"\nper case (mean of {len(rows)}): generate {mean(0):.2f} s wall / {mean(1):.2f} s CPU, "
              f"write {mean(2):.2f} s wall / {mean(3):.2f} s CPU, "
              f"total {mean(0) + mean(2):.2f} s wall / {mean(1) + mean(3):.2f} s CPU")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")

        result = synthetic.threshold_baseline(out)
        per_case = ", ".join(f"{v:.2f}" for v in result["per_case_dice"].values())
        print(f"FLAIR threshold baseline: threshold {result['threshold']:.2f} (z-score), "
              f"mean whole-tumour Dice {result['mean_dice']:.3f}; per case: {per_case}")


if __name__ == "__main__":
    main()
