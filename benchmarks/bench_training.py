"""Training speed: slices per second and peak memory, in-memory arrays versus the pipeline.

Usage::

    .venv/bin/python benchmarks/bench_training.py                 # report + quick presets
    .venv/bin/python benchmarks/bench_training.py --presets quick --steps 20

For each preset it trains the U-Net `gliseg_nb.model.build_unet` describes, compiled as
`gliseg_nb.train.fit` compiles it (Adam, the preset's loss, the epoch-accumulated metrics):

memory      plain ``model.fit`` on NumPy arrays already in memory (`preprocessing.load_arrays`):
            the speed of the model alone, what the data pipeline must keep up with.
pipeline    ``model.fit`` on `gliseg_nb.dataset.make_dataset` (on-disk slice cache built
            beforehand, shuffling, augmentation as the preset says, one-hot, prefetch).

On a GPU each preset is also run with mixed precision and XLA compilation on and off
(the ``mp``/``xla`` columns); on a CPU those rows are skipped (float16 is slow on CPUs).

Each row runs in a fresh Python process so that its peak memory is its own: ``peak MB`` is
the process's peak resident memory (``ru_maxrss``), ``GPU peak MB`` TensorFlow's peak GPU
allocation, ``CPU ms/slice`` the process's CPU time (all threads) per training slice, which
other processes' load disturbs much less than wall time. Speed is measured over ``--steps`` batches after ``--warmup`` batches (graph
tracing and the first, slower steps excluded). The data is the embedded synthetic dataset
(`gliseg_nb.data.get_data_dir`, generated once and reused) unless ``--data`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def peak_rss_mb():
    # Linux reports ru_maxrss in kilobytes.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(preset, mode, mixed_precision, xla, steps, warmup, data, cache_dir):
    """Train `warmup + steps` batches in this process and return the measurements."""
    import keras
    import numpy as np
    import tensorflow as tf

    from gliseg_nb import Config
    from gliseg_nb.data import find_cases, get_data_dir
    from gliseg_nb.model import build_unet
    from gliseg_nb.dataset import make_dataset
    from gliseg_nb.preprocessing import load_arrays
    from gliseg_nb.train import _compile

    gpu = bool(tf.config.list_physical_devices("GPU"))
    config = Config.preset(preset, mixed_precision=mixed_precision, jit_compile=xla)
    cases = [case for case in find_cases(get_data_dir(data, progress=False)) if case.seg is not None]
    total_batches = steps + warmup
    slices_per_case = len(config.slice_indices)
    n_cases = min(len(cases), -(-total_batches * config.batch_size // slices_per_case))
    cases = cases[:n_cases]

    keras.utils.set_random_seed(config.seed)
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    model = _compile(build_unet(config), config)

    if mode == "memory":
        x, y = load_arrays(cases, config)
        batches_available = len(x) // config.batch_size
        fit_args = dict(x=x, y=y, batch_size=config.batch_size, shuffle=True)
    else:
        dataset = make_dataset(cases, config, training=True, cache_dir=cache_dir, progress=False)
        fit_args = dict(x=dataset.repeat())
        batches_available = total_batches

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_end(self, batch, logs=None):
            self.times.append((time.perf_counter(), time.process_time()))

    timer = Timer()
    epochs = max(1, -(-total_batches // batches_available))
    steps_per_epoch = min(total_batches, batches_available)
    model.fit(**fit_args, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=[timer], verbose=0)
    times = np.array(timer.times[warmup - 1:])  # from the end of the last warm-up batch
    seconds = float(times[-1, 0] - times[0, 0])
    # CPU time of the process (every thread, data pipeline included) does not depend on
    # other processes' load the way wall time does.
    cpu_seconds = float(times[-1, 1] - times[0, 1])
    timed_batches = len(times) - 1
    gpu_peak = None
    if gpu:
        gpu_peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    return dict(
        preset=preset, mode=mode, mixed_precision=mixed_precision, xla=xla,
        device="GPU" if gpu else "CPU",
        slices_per_second=timed_batches * config.batch_size / seconds,
        seconds_per_batch=seconds / timed_batches, batch_size=config.batch_size,
        cpu_ms_per_slice=1000 * cpu_seconds / (timed_batches * config.batch_size),
        image_size=config.image_size, params=model.count_params(),
        peak_mb=peak_rss_mb(), gpu_peak_mb=gpu_peak,
    )


def table(rows):
    lines = [
        "| preset | input | mp | xla | device | batch | slices/s | s/batch | CPU ms/slice | peak MB | GPU peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        gpu = f"{row['gpu_peak_mb']:.0f}" if row.get("gpu_peak_mb") else "-"
        lines.append(
            f"| {row['preset']} | {row['mode']} | {'on' if row['mixed_precision'] else 'off'} | "
            f"{'on' if row['xla'] else 'off'} | {row['device']} | {row['batch_size']} | "
            f"{row['slices_per_second']:.1f} | {row['seconds_per_batch']:.2f} | {row['cpu_ms_per_slice']:.0f} | "
            f"{row['peak_mb']:.0f} | {gpu} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["report", "quick"], help="default: report quick")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed batches per row (default: 4 for report, 20 for quick)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches first (default: 2)")
    parser.add_argument("--data", type=Path, default=None, help="BraTS folder (default: synthetic)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="slice cache (default: the pipeline's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--one", nargs=4, metavar=("PRESET", "MODE", "MP", "XLA"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:  # a child process: one measurement, printed as JSON
        preset, mode, mixed_precision, xla = args.one
        result = run_one(preset, mode, mixed_precision == "1", xla == "1", args.steps, args.warmup,
                         args.data, args.cache_dir)
        print("RESULT " + json.dumps(result))
        return 0

    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    # Build the slice caches once, outside the timed children.
    from gliseg_nb import Config
    from gliseg_nb.data import find_cases, get_data_dir
    from gliseg_nb.dataset import build_cache

    cases = [case for case in find_cases(get_data_dir(args.data)) if case.seg is not None]
    rows = []
    for preset in args.presets:
        build_cache(cases, Config.preset(preset), cache_dir=args.cache_dir, progress=True)
        steps = args.steps or (4 if preset == "report" else 20)
        variants = [("memory", False, False), ("pipeline", False, False)]
        if gpu:
            variants += [("pipeline", True, False), ("pipeline", False, True), ("pipeline", True, True),
                         ("memory", True, True)]
        for mode, mixed_precision, xla in variants:
            command = [sys.executable, __file__, "--one", preset, mode, str(int(mixed_precision)), str(int(xla)),
                       "--steps", str(steps), "--warmup", str(args.warmup)]
            if args.data:
                command += ["--data", str(args.data)]
            if args.cache_dir:
                command += ["--cache-dir", str(args.cache_dir)]
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
            completed = subprocess.run(command, capture_output=True, text=True, env=env)
            results = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
            if completed.returncode or not results:
                print(completed.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{preset} {mode} failed")
            row = json.loads(results[-1][len("RESULT "):])
            rows.append(row)
            print(f"{preset:7s} {mode:8s} mp={int(mixed_precision)} xla={int(xla)}: "
                  f"{row['slices_per_second']:.1f} slices/s, peak {row['peak_mb']:.0f} MB", flush=True)

    print()
    print(f"TensorFlow {tf.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPU(s) visible, GPU: {'yes' if gpu else 'no'}")
    print(table(rows))
    for preset in args.presets:
        memory = [r for r in rows if r["preset"] == preset and r["mode"] == "memory" and not r["mixed_precision"]]
        pipeline = [r for r in rows if r["preset"] == preset and r["mode"] == "pipeline"
                    and not r["mixed_precision"] and not r["xla"]]
        if memory and pipeline:
            ratio = pipeline[0]["slices_per_second"] / memory[0]["slices_per_second"]
            print(f"{preset}: pipeline at {100 * ratio:.0f}% of in-memory speed")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
