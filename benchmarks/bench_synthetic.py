"""How long does the synthetic generator take per case? And how hard is its data?

Usage::

    .venv/bin/python benchmarks/bench_synthetic.py --cases 6
    .venv/bin/python benchmarks/bench_synthetic.py --cases 24 --out data/synthetic-bench
    .venv/bin/python benchmarks/bench_synthetic.py --dataset      # the default 24-case dataset

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

``--dataset`` instead times `synthesize` as `get_data_dir` runs it (worker threads, the
templates loaded inside), for the default 24 cases: wall-clock seconds, and CPU seconds of
the process (user + system, all threads; ``resource.getrusage``), with the load average
before and after. Python's start and the imports are not included (about 2-3 s): time the
whole command with ``/usr/bin/time`` for those. The dataset target is under a minute on two
idle cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import platform
import statistics
import tempfile
import time
from pathlib import Path


def _clock():
    return time.perf_counter(), time.process_time()


def _process_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def _time_dataset(args):
    from gliseg_nb.data import synthetic

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "synthetic"
        wall, cpu = time.perf_counter(), _process_cpu()
        synthetic.synthesize(out, n_cases=args.cases, seed=args.seed, progress=False,
                             workers=args.workers)
        wall, cpu = time.perf_counter() - wall, _process_cpu() - cpu
    print(f"synthesize: {args.cases} cases, seed {args.seed}, workers "
          f"{args.workers or 'default'}: {wall:.1f} s wall, {cpu:.1f} s CPU (user + system, "
          f"all threads; templates included)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=None,
                        help="cases to generate (default: 6; 24 with --dataset)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the cases here (default: a temporary folder, removed)")
    parser.add_argument("--dataset", action="store_true",
                        help="time the whole `synthesize` (threads, writing) instead; --cases "
                             "defaults to 24 then")
    parser.add_argument("--workers", type=int, default=None,
                        help="threads for --dataset (default: synthesize's default)")
    args = parser.parse_args(argv)
    if args.cases is None:
        args.cases = 24 if args.dataset else 6
    if args.dataset:
        return _time_dataset(args)

    from gliseg_nb.data import synthetic

    wall, cpu = _clock()
    synthetic._templates()
    wall_t, cpu_t = _clock()
    print(f"templates: {wall_t - wall:.2f} s wall, {cpu_t - cpu:.2f} s CPU (once per process)")

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        rows = []
        for index in range(args.cases):
            start_wall, start_cpu = _clock()  # process_time: every thread of the process
            images, seg, parameters = synthetic.synthesize_case(args.seed, index)
            mid_wall, mid_cpu = _clock()
            case_id = f"{synthetic._CASE_PREFIX}{index + 1:03d}"
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
