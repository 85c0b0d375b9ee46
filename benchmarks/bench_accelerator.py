"""The report's U-Net on an accelerator, and whether the slice cache can keep it fed.

Usage (on a GPU machine; any Keras 3 backend, selected with ``KERAS_BACKEND``)::

    KERAS_BACKEND=jax python benchmarks/bench_accelerator.py --cases 16 --json out.json

Written for the GPU machines this project is sometimes lent, which carry JAX and PyTorch
but not TensorFlow (its wheels are too large to bring along). The model, its losses and
metrics are written with ``keras.ops`` and run on any backend; the ``tf.data`` half of
the fast path needs TensorFlow, so here the cache is measured through its TensorFlow-free
parts, which do the work (`gliseg_nb._cache`: building with worker threads, and the
reader that ``make_dataset`` calls for every batch).

Measures, on synthetic cases generated on the spot (in parallel processes):

cache build   `gliseg_nb._cache.build_entries` with 1, 2, 4, ... worker threads: cases
              per second, i.e. how the threaded cache builder scales with cores.
cache read    `gliseg_nb._cache.SliceReader` reading shuffled 100-slice batches across
              patients (what each ``make_dataset`` batch costs, before augmentation), on
              1 and on several threads: slices per second.
train step    the report's U-Net (7.76 M parameters), compiled as `gliseg_nb.train`
              compiles it (Adam, the preset's loss, the epoch-accumulated metrics), trained
              with ``model.fit`` on in-memory arrays: slices per second in float32, with
              ``mixed_bfloat16`` and ``mixed_float16``, for the report's batch of 100 and
              for 32. The first batches (compilation) are not timed.
predict       ``model.predict`` on the same slices, batch 100.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _write_synthetic_case(out_dir, index):
    from gliseg_nb.data import synthetic

    images, seg, _ = synthetic.synthesize_case(0, index)
    case_id = f"BraTS20_Training_{index + 1:03d}"
    synthetic._write_case(Path(out_dir), case_id, images, seg)
    return case_id


def make_cases(out_dir, n_cases, processes):
    """Generate `n_cases` synthetic cases (seed 0) with a pool of processes."""
    import multiprocessing

    start = time.perf_counter()
    # Spawned, not forked: forking a process that holds a GPU runtime is unsafe.
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_write_synthetic_case, [out_dir] * n_cases, range(n_cases)))
    return time.perf_counter() - start


def bench_cache(cases, config, thread_counts, work_dir, report):
    from gliseg_nb import _cache

    for workers in thread_counts:
        cache_dir = Path(work_dir) / f"cache-{workers}"
        start = time.perf_counter()
        paths = _cache.build_entries(cases, config, cache_dir=cache_dir, workers=workers, progress=False)
        seconds = time.perf_counter() - start
        report({"what": "cache build", "threads": workers, "cases": len(cases), "seconds": round(seconds, 2),
                "cases_per_s": round(len(cases) / seconds, 1),
                "slices_per_s": round(len(cases) * len(config.slice_indices) / seconds)})
    return paths


def bench_read(paths, batch_size, batches, thread_counts, report):
    import numpy as np

    from gliseg_nb import _cache

    first = _cache.read_entry(paths[0])
    reader = _cache.SliceReader(paths, first[0].shape[1:])
    counts = [len(_cache.read_entry(path)[0]) for path in paths]
    index = np.array([(c, s) for c, n in enumerate(counts) for s in range(n)])
    def one_batch(seed):
        rng = np.random.default_rng(seed)  # one generator per batch: threads share nothing
        chosen = index[rng.choice(len(index), size=batch_size, replace=False)]
        x, y = reader(chosen[:, 0], chosen[:, 1])
        return len(x)

    for threads in thread_counts:
        one_batch(0)
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            slices = sum(pool.map(one_batch, range(batches * threads)))
        seconds = time.perf_counter() - start
        report({"what": "cache read", "threads": threads, "batch": batch_size, "slices_per_s": round(slices / seconds)})


def bench_model(x, y, config_name, runs, steps, warmup, report):
    import keras
    import numpy as np

    from gliseg_nb import Config
    from gliseg_nb.model import build_unet
    from gliseg_nb.train import _compile

    for number, (policy, batch_size) in enumerate(runs):
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(0)
        config = Config.preset(config_name, batch_size=batch_size)
        model = _compile(build_unet(config), config)
        n = steps + warmup
        reps = -(-n * batch_size // len(x))
        xs, ys = np.concatenate([x] * reps)[: n * batch_size], np.concatenate([y] * reps)[: n * batch_size]

        class Timer(keras.callbacks.Callback):
            times = []

            def on_train_batch_end(self, batch, logs=None):
                if batch == warmup - 1 or batch == n - 1:
                    # Wait for the device: a step's result is only known once its loss is.
                    float(np.asarray(logs["loss"]))
                    Timer.times.append(time.perf_counter())

        Timer.times = []
        start = time.perf_counter()
        model.fit(xs, ys, batch_size=batch_size, epochs=1, shuffle=False, callbacks=[Timer()], verbose=0)
        first = Timer.times[0] - start
        seconds = Timer.times[1] - Timer.times[0]
        row = {"what": "train step", "policy": policy, "batch": batch_size,
               "slices_per_s": round(steps * batch_size / seconds), "ms_per_batch": round(1000 * seconds / steps, 1),
               "compile_and_warmup_s": round(first, 1), "params": model.count_params()}
        if number == 0:
            model.predict(x[:100], batch_size=100, verbose=0)
            start = time.perf_counter()
            model.predict(x, batch_size=100, verbose=0)
            row["predict_slices_per_s"] = round(len(x) / (time.perf_counter() - start))
        report(row)
        del model
        keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--steps", type=int, default=20, help="timed training batches per row")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", nargs="+", default=["float32:100", "mixed_bfloat16:100", "mixed_float16:100",
                                                      "float32:32", "mixed_bfloat16:32"],
                        help="dtype policy:batch size pairs, in order (default: %(default)s)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from gliseg_nb import Config
    from gliseg_nb.data import find_cases

    config = Config.preset("report")
    work_dir = Path(tempfile.mkdtemp(prefix="gliseg-accel-"))
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "python": platform.python_version(), "keras": keras.__version__,
                           "backend": keras.backend.backend(), "numpy": np.__version__}}
    results["rows"] = []

    def report(row):
        # Saved after every row: a run cut short by a time limit keeps what it measured.
        results["rows"].append(row)
        print(row, flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1) + "\n")

    try:
        data_dir = work_dir / "data"
        seconds = make_cases(data_dir, args.cases, min(args.cases, os.cpu_count() or 1))
        results["synthesize_s"] = round(seconds, 1)
        print(f"{args.cases} synthetic cases in {seconds:.1f} s", flush=True)
        if keras.backend.backend() == "jax":  # after the worker processes: this starts the GPU runtime
            import jax

            results["machine"]["devices"] = [str(d) for d in jax.devices()]
            results["machine"]["jax"] = jax.__version__
        print(json.dumps(results["machine"]), flush=True)
        cases = find_cases(data_dir)
        threads = [t for t in args.threads if t <= (os.cpu_count() or 1)]
        paths = bench_cache(cases, config, threads, work_dir, report)
        bench_read(paths, config.batch_size, 20, sorted({1, max(threads)}), report)
        if args.runs:
            from gliseg_nb import _cache

            xs, ys = [], []
            for path in paths[:4]:
                x, y, _ = _cache.read_entry(path)
                xs.append(np.asarray(x, dtype=np.float32))
                ys.append(np.asarray(y))
            x = np.concatenate(xs)
            y = np.eye(config.n_classes, dtype=np.float32)[np.concatenate(ys)]
            runs = [(policy, int(batch)) for policy, batch in (run.split(":") for run in args.runs)]
            bench_model(x, y, "report", runs, args.steps, args.warmup, report)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
