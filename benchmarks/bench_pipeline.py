"""How fast can each input pipeline feed the report's U-Net? Slices per second and memory.

Usage::

    .venv/bin/python benchmarks/bench_pipeline.py --cases 10
    .venv/bin/python benchmarks/bench_pipeline.py --cases 40

Measured on the same synthetic cases (BraTS 2020 layout, 240 x 240 x 155, generated once
into ``data/bench`` and reused) with the ``report`` preset (FLAIR + T1ce, slices 22-121,
128 px, 100 slices per batch):

report      the report's generator, rebuilt here as the baseline: for every batch it
            reloads whole volumes with ``nib.load(...).get_fdata()``, resizes every slice
            (bilinear, as cv2.resize), one-hot encodes the full-size labels, resizes the
            one-hot masks and divides by one shared maximum.
sequence    `gliseg_nb.sequence.SliceSequence` (one pass over its batches).
fast-first  `make_dataset` with an empty cache: building the cache plus the first epoch.
fast-later  `make_dataset` once the cache exists: the mean of two further epochs.
train-step  the report's U-Net (`gliseg_nb.model.build_unet`) training on in-memory
            arrays (``train_on_batch``, 100 slices per step): what the data must keep up with.

Each method runs in a fresh Python process, so that its peak memory (``ru_maxrss``) is its
own. ``peak MB`` is the process's peak resident memory; ``above import MB`` subtracts what
the process held right after importing TensorFlow and gliseg_nb, which is what the
pipeline itself adds. ``with workers MB`` samples (every 50 ms) the process plus any child
processes (the cache builder used worker processes until it moved to threads; with
threads the two memory columns agree).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "data" / "bench"
METHODS = ("report", "sequence", "fast-first", "fast-later", "train-step")


def peak_rss_mb():
    # Linux reports ru_maxrss in kilobytes.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class FootprintSampler(threading.Thread):
    """Samples this process's resident memory plus that of its live child processes (the
    cache builder's workers) every 50 ms; ``peak_mb`` is the largest sum seen."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_mb = 0.0
        self.stop_event = threading.Event()

    def run(self):
        import psutil

        me = psutil.Process()
        while not self.stop_event.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self.stop_event.wait(0.05)

    def stop(self):
        self.stop_event.set()
        self.join()
        return self.peak_mb


# ---------------------------------------------------------------------------------------
# The report's generator, rebuilt as the baseline
# ---------------------------------------------------------------------------------------
def report_batches(cases, config):
    """Yield (X, Y) one patient at a time, as the report's ``DataGenerator`` does."""
    import nibabel as nib
    import numpy as np
    import tensorflow as tf

    size, start, count = config.image_size, config.slice_start, config.n_slices
    for case in cases:
        x = np.zeros((count, size, size, 2))
        # Whole volumes, as float64, every time the batch is requested.
        flair = nib.load(case.modalities["flair"]).get_fdata()
        t1ce = nib.load(case.modalities["t1ce"]).get_fdata()
        seg = nib.load(case.seg).get_fdata()
        for channel, volume in enumerate((flair, t1ce)):
            # cv2.resize of each slice; one tf.image.resize call on the stack costs the same.
            stack = np.moveaxis(volume[:, :, start : start + count], -1, 0)[..., None]
            x[..., channel] = tf.image.resize(stack, (size, size), method="bilinear").numpy()[..., 0]
        y = np.moveaxis(seg[:, :, start : start + count], -1, 0)
        y[y == 4] = 3
        mask = tf.one_hot(y, 4)
        y_resized = tf.image.resize(mask, (size, size))
        yield x / np.max(x), y_resized


# ---------------------------------------------------------------------------------------
# One method, in its own process
# ---------------------------------------------------------------------------------------
def run_method(method, data_dir, n_cases, cache_dir, train_steps):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf  # noqa: F401

    from gliseg_nb import Config
    from gliseg_nb.data import find_cases
    from gliseg_nb.dataset import make_dataset
    from gliseg_nb.preprocessing import load_arrays
    from gliseg_nb.sequence import SliceSequence

    config = Config.preset("report")
    cases = find_cases(data_dir)[:n_cases]
    if len(cases) < n_cases:
        raise SystemExit(f"only {len(cases)} cases in {data_dir}, asked for {n_cases}")
    import_mb = peak_rss_mb()
    sampler = FootprintSampler()
    sampler.start()
    cpu_start = cpu_seconds()
    slices, seconds, extra = 0, 0.0, {}

    if method == "report":
        start = time.perf_counter()
        for x, y in report_batches(cases, config):
            slices += len(x)
        seconds = time.perf_counter() - start
    elif method == "sequence":
        sequence = SliceSequence(cases, config, shuffle=True)
        start = time.perf_counter()
        for index in range(len(sequence)):
            x, y = sequence[index]
            slices += len(x)
        seconds = time.perf_counter() - start
    elif method == "fast-first":
        start = time.perf_counter()
        dataset = make_dataset(cases, config, training=True, cache_dir=cache_dir, progress=False)
        built = time.perf_counter()
        for x, y in dataset:
            slices += int(x.shape[0])
        seconds = time.perf_counter() - start
        extra["cache build s"] = round(built - start, 1)
    elif method == "fast-later":
        dataset = make_dataset(cases, config, training=True, cache_dir=cache_dir, progress=False)
        for _ in dataset.take(1):  # build the graph once, as Keras does before epoch 1
            pass
        epochs = 2
        cpu_start = cpu_seconds()
        start = time.perf_counter()
        for _ in range(epochs):
            for x, y in dataset:
                slices += int(x.shape[0])
        seconds = time.perf_counter() - start
    elif method == "train-step":
        from gliseg_nb.model import build_unet

        import keras

        x, y = load_arrays(cases[:1], config)  # one patient: a report batch of 100 slices
        model = build_unet(config)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="categorical_crossentropy")
        model.train_on_batch(x, y)  # compile and warm up
        cpu_start = cpu_seconds()
        start = time.perf_counter()
        for _ in range(train_steps):
            model.train_on_batch(x, y)
            slices += len(x)
        seconds = time.perf_counter() - start
        extra["parameters"] = model.count_params()
    else:
        raise SystemExit(f"unknown method {method!r}")

    cpu = cpu_seconds() - cpu_start
    return {
        "method": method,
        # CPU time of the process (all threads) and of its finished worker processes: unlike
        # wall time, it barely depends on what else the machine runs.
        "cpu_s": round(cpu, 1),
        "slices_per_cpu_s": round(slices / cpu, 1) if cpu else None,
        "cases": n_cases,
        "slices": slices,
        "seconds": round(seconds, 2),
        "slices_per_s": round(slices / seconds, 1) if seconds else None,
        "peak_mb": round(peak_rss_mb()),
        "import_mb": round(import_mb),
        # With the cache builder's worker processes, sampled: the whole footprint.
        "total_peak_mb": round(max(sampler.stop(), peak_rss_mb())),
        **extra,
    }


# ---------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------
def ensure_data(data_dir, n_cases):
    from gliseg_nb.data import find_cases, synthesize

    try:
        found = len(find_cases(data_dir))
    except ValueError:
        found = 0
    if found < n_cases:
        print(f"generating {n_cases} synthetic cases into {data_dir} (once; reused later)", flush=True)
        synthesize(data_dir, n_cases=n_cases, seed=0, progress=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10, help="number of cases (default: 10)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"dataset folder (default: {DEFAULT_DATA})")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--train-steps", type=int, default=2, help="timed training steps (default: 2)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = run_method(args.worker, args.data, args.cases, args.cache_dir, args.train_steps)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    ensure_data(args.data, args.cases)
    results = []
    with tempfile.TemporaryDirectory(prefix="gliseg-bench-cache-") as cache_dir:
        for method in args.methods:
            command = [
                sys.executable, __file__, "--worker", method, "--cases", str(args.cases),
                "--data", str(args.data), "--cache-dir", cache_dir, "--train-steps", str(args.train_steps),
            ]
            print(f"running {method} ...", flush=True)
            completed = subprocess.run(command, capture_output=True, text=True)
            lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
            if completed.returncode != 0 or not lines:
                print(completed.stdout[-2000:], completed.stderr[-4000:], sep="\n")
                raise SystemExit(f"{method} failed")
            results.append(json.loads(lines[-1][len("RESULT "):]))
            print("   ", results[-1], flush=True)

    baseline = next((r["slices_per_s"] for r in results if r["method"] == "report"), None)
    print()
    print(f"cases: {args.cases}; machine: {platform.machine()}, {os.cpu_count()} CPU cores; "
          f"python {platform.python_version()}")
    cpu_baseline = next((r["slices_per_cpu_s"] for r in results if r["method"] == "report"), None)
    print("| method | cases | slices | wall s | slices/s | vs report | CPU s | slices/CPU s | vs report (CPU) "
          "| peak MB | above import MB | with workers MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        speedup = f"{r['slices_per_s'] / baseline:.1f}x" if baseline and r["slices_per_s"] else ""
        cpu_speedup = f"{r['slices_per_cpu_s'] / cpu_baseline:.1f}x" if cpu_baseline and r["slices_per_cpu_s"] else ""
        print(f"| {r['method']} | {r['cases']} | {r['slices']} | {r['seconds']} | {r['slices_per_s']} | "
              f"{speedup} | {r['cpu_s']} | {r['slices_per_cpu_s']} | {cpu_speedup} | {r['peak_mb']} | "
              f"{r['peak_mb'] - r['import_mb']} | {r['total_peak_mb']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
