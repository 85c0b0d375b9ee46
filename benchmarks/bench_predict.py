"""How long do whole-volume prediction and evaluation take per case on this machine?

Usage::

    .venv/bin/python benchmarks/bench_predict.py --cases 3
    .venv/bin/python benchmarks/bench_predict.py --cases 3 --tta --json

Runs on synthetic BraTS 2020-layout cases (240 x 240 x 155, generated once into
``data/bench`` and reused, as ``bench_pipeline.py`` does) with the report's network
(``build_unet(Config.preset("report"))``: 128 px, FLAIR + T1ce, 7,759,908 parameters).
Untrained weights cost the same time as trained ones. Timed per case:

predict         `predict_case`: read the two modalities (.nii.gz), normalise, resize every
                brain slice, run the U-Net, resize the probabilities back, argmax.
write           `write_prediction`: the NIfTI file in BraTS labels (gzip).
predict+write   what ``gliseg-nb predict`` spends per case (the sum).
evaluate        `evaluate_folder` per case: read both files, check geometry, score WT/TC/ET
                (Dice, HD95, sensitivity, specificity, volumes).
evaluate_case   the scoring alone, on arrays already in memory.

Evaluation is timed on realistic predictions (the ground truth shifted by 3 voxels and
with the enhancing part eroded): an untrained network's output is not a tumour, and the
surface-distance cost depends on the masks. The first case of each run also pays for
building the Keras predict function; it is reported apart and left out of the means.

Wall-clock times depend on what else runs on the machine, so the CPU time of the process
(all threads; about twice the wall time when two free cores are both busy) is recorded
too, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "data" / "bench"


def _dataset(data_dir, n_cases):
    from gliseg_nb.data import find_cases, synthesize

    data_dir = Path(data_dir)
    cases = find_cases(data_dir) if data_dir.is_dir() else []
    if len(cases) < n_cases:
        print(f"Generating {n_cases} synthetic case(s) into {data_dir} (once)...", file=sys.stderr)
        synthesize(data_dir, n_cases=n_cases, seed=0, progress=False)
        cases = find_cases(data_dir)
    return cases[:n_cases]


def _realistic_prediction(truth):
    """The ground truth moved by 3 voxels, its enhancing part thinned: a plausible output."""
    import numpy as np
    from scipy import ndimage

    pred = np.roll(truth, 3, axis=0)
    enhancing = pred == 3
    pred[enhancing & ~ndimage.binary_erosion(enhancing)] = 1
    return pred


def run(n_cases, data_dir, tta, batch_size):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import nibabel as nib
    import numpy as np
    import tensorflow as tf

    from gliseg_nb import Config
    from gliseg_nb.data import load_case
    from gliseg_nb.labels import from_internal
    from gliseg_nb.metrics.evaluation import evaluate_case, evaluate_folder
    from gliseg_nb.model import build_unet
    from gliseg_nb.predict import predict_case, write_prediction

    cases = _dataset(data_dir, n_cases)
    # Other processes on the machine inflate wall-clock times; the CPU time of this process
    # (all its threads) does not depend on them, so both are recorded.
    load_before = os.getloadavg()
    config = Config.preset("report")
    keras.utils.set_random_seed(0)
    model = build_unet(config)
    timings = {"predict": [], "write": [], "evaluate": [], "evaluate_case": []}
    cpu_timings = {"predict": [], "write": [], "evaluate": [], "evaluate_case": []}
    brain_slices = []
    with tempfile.TemporaryDirectory() as tmp:
        out_model = Path(tmp) / "model_output"
        out_realistic = Path(tmp) / "realistic"
        out_realistic.mkdir()
        for case in cases:
            start, cpu_start = time.perf_counter(), time.process_time()
            labels = predict_case(model, case, config, batch_size=batch_size, tta_flips=tta)
            timings["predict"].append(time.perf_counter() - start)
            cpu_timings["predict"].append(time.process_time() - cpu_start)
            start, cpu_start = time.perf_counter(), time.process_time()
            write_prediction(labels, case, out_model)
            timings["write"].append(time.perf_counter() - start)
            cpu_timings["write"].append(time.process_time() - cpu_start)
            data = load_case(case, modalities=["flair"])
            brain_slices.append(int(np.count_nonzero(data.images["flair"].any(axis=(0, 1)))))
            realistic = _realistic_prediction(data.labels)
            nib.save(
                nib.Nifti1Image(from_internal(realistic, case.layout), data.affine, data.header),
                str(out_realistic / f"{case.case_id}.nii.gz"),
            )
            start, cpu_start = time.perf_counter(), time.process_time()
            evaluate_case(realistic, data.labels, data.zooms)
            timings["evaluate_case"].append(time.perf_counter() - start)
            cpu_timings["evaluate_case"].append(time.process_time() - cpu_start)
        start, cpu_start = time.perf_counter(), time.process_time()
        evaluate_folder(out_realistic, data_dir, case_ids=[case.case_id for case in cases])
        timings["evaluate"] = [(time.perf_counter() - start) / len(cases)] * len(cases)
        cpu_timings["evaluate"] = [(time.process_time() - cpu_start) / len(cases)] * len(cases)

    def summary(step, skip_first):
        def kept(values):
            return values[1:] if skip_first and len(values) > 1 else values

        if step == "predict+write":
            wall = [p + w for p, w in zip(timings["predict"], timings["write"])]
            cpu = [p + w for p, w in zip(cpu_timings["predict"], cpu_timings["write"])]
        else:
            wall, cpu = timings[step], cpu_timings[step]
        wall, cpu = kept(wall), kept(cpu)
        return {"mean_s": statistics.mean(wall), "min_s": min(wall), "max_s": max(wall),
                "cpu_mean_s": statistics.mean(cpu)}

    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s)",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cases": len(cases),
        "brain_slices_per_case": brain_slices,
        "tta_flips": tta,
        "batch_size": batch_size,
        "first_case_predict_s": timings["predict"][0],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "predict": summary("predict", skip_first=True),
        "write": summary("write", skip_first=False),
        "predict+write": summary("predict+write", skip_first=True),
        "evaluate": summary("evaluate", skip_first=False),
        "evaluate_case": summary("evaluate_case", skip_first=False),
    }
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=3, help="number of cases (default: 3)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="BraTS folder (default: data/bench, synthesised if missing)")
    parser.add_argument("--tta", action="store_true", help="time with the four flips averaged")
    parser.add_argument("--batch-size", type=int, default=32, help="slices per forward pass (default: 32)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.cases < 2:
        parser.error("--cases must be at least 2 (the first case warms up the predict function)")
    results = run(args.cases, args.data, args.tta, args.batch_size)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{results['machine']}, TensorFlow {results['tensorflow']}, Keras {results['keras']}; "
          f"{results['cases']} case(s), brain slices {results['brain_slices_per_case']}, "
          f"TTA {'on' if args.tta else 'off'}, batch {args.batch_size}")
    print("load average before / after: "
          + " / ".join(", ".join(f"{v:.1f}" for v in results[k]) for k in ("load_average_before", "load_average_after")))
    print(f"first case predict (warm-up included): {results['first_case_predict_s']:.2f} s")
    print(f"{'step':<14} {'wall s/case':>11} {'min':>7} {'max':>7} {'CPU s/case':>11}")
    for step in ("predict", "write", "predict+write", "evaluate", "evaluate_case"):
        row = results[step]
        print(f"{step:<14} {row['mean_s']:>11.2f} {row['min_s']:>7.2f} {row['max_s']:>7.2f} {row['cpu_mean_s']:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
