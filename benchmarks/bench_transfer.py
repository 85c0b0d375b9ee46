"""Transfer to real scans: train on the embedded synthetic data, score on real BraTS cases.

Usage::

    .venv/bin/python benchmarks/bench_transfer.py --real DIR
    .venv/bin/python benchmarks/bench_transfer.py --real DIR --real-baseline --json out.json
    .venv/bin/python benchmarks/bench_transfer.py --real DIR --ablate deform --set epochs=6
    .venv/bin/python benchmarks/bench_transfer.py --real DIR --reuse --tta none --min-component-voxels 0

What it does, in order:

1. generates the embedded synthetic dataset exactly as the notebooks get it
   (`gliseg_nb.data.get_data_dir`, into ``<cache-dir>/synthetic-v<version>-...``), timed;
   with ``--ablate PART`` (``--add PART``) a dataset with one part of the simulation
   switched off (on) is written beside it instead (``<cache-dir>/ablation-...``); the parts
   are the keys of ``gliseg_nb.data.synthetic._SIMULATION``: ``anatomy``, ``tumour``,
   ``appearance``, ``resolution``, ``skull_edge``, ``lesions``, ``low_grade``;
2. trains the ``quick`` preset on it as notebook 04 does (`gliseg_nb.course.load_or_train`,
   the 68/20/12 split by patient), timed, and scores the synthetic validation and test
   cases (`gliseg_nb.train.region_dice`);
3. predicts the synthetic validation and test cases, then every case of ``--real DIR``
   (`gliseg_nb.predict.predict_case`, whole volumes on their own grid, with its defaults
   unless ``--tta``, ``--min-component-voxels`` or ``--min-et-voxels`` say otherwise) and
   scores each (`gliseg_nb.metrics.evaluate_case`): per-case tables of WT/TC/ET Dice,
   predicted and true volumes, and the means (with ``--reuse``, an inference option is
   measured on the cached model without training again);
4. with ``--real-baseline``: the same preset and the same number of optimizer steps,
   trained on real cases of DIR instead (k-fold by case; with 5 cases and ``--folds 5``,
   leave-one-out), each fold's held-out cases scored the same way. One training case of
   each fold is the validation case that picks the best epoch, as the split does for the
   synthetic run.

The machine, its load (``os.getloadavg`` before and after) and every timing are printed and
written to the JSON (default: ``benchmarks/results/transfer-<label>.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def machine_info():
    import keras
    import numpy as np
    import tensorflow as tf

    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "devices": [d.name for d in tf.config.list_physical_devices()],
    }


def load_average():
    return [round(x, 2) for x in os.getloadavg()]


def score_cases(model, config, cases, options=None):
    """Predict and score each case (whole volumes, `predict_case` with `options`); one row per case."""
    from gliseg_nb.data import load_case
    from gliseg_nb.metrics import evaluate_case
    from gliseg_nb.predict import predict_case

    rows = []
    for case in cases:
        start = time.perf_counter()
        data = load_case(case, modalities=list(config.modalities))
        labels = predict_case(model, data, config, **(options or {}))
        scores = evaluate_case(labels, data.labels, spacing=data.zooms)
        rows.append({
            "case_id": case.case_id,
            "seconds": round(time.perf_counter() - start, 2),
            **{region: round(scores[region]["dice"], 4) for region in ("WT", "TC", "ET")},
            **{f"{region}_ml_pred": round(scores[region]["volume_pred_ml"], 1) for region in ("WT", "TC", "ET")},
            **{f"{region}_ml_true": round(scores[region]["volume_truth_ml"], 1) for region in ("WT", "TC", "ET")},
        })
    return rows


def means(rows):
    import numpy as np

    return {region: round(float(np.mean([row[region] for row in rows])), 4) for region in ("WT", "TC", "ET")}


def print_table(title, rows):
    print(f"\n{title}")
    print(f"{'case':28s} {'WT':>6s} {'TC':>6s} {'ET':>6s}   {'WT mL pred/true':>16s} {'TC mL':>12s} {'ET mL':>12s}")
    for row in rows:
        print(f"{row['case_id']:28s} {row['WT']:6.3f} {row['TC']:6.3f} {row['ET']:6.3f}   "
              f"{row['WT_ml_pred']:7.1f}/{row['WT_ml_true']:<7.1f}  {row['TC_ml_pred']:5.1f}/{row['TC_ml_true']:<5.1f}"
              f"  {row['ET_ml_pred']:5.1f}/{row['ET_ml_true']:<5.1f}")
    mean = means(rows)
    print(f"{'mean':28s} {mean['WT']:6.3f} {mean['TC']:6.3f} {mean['ET']:6.3f}")
    return mean


def synthetic_data(args):
    """The dataset folder to train on and how long it took to make."""
    from gliseg_nb.data import get_data_dir, synthetic

    start, cpu_start = time.perf_counter(), time.process_time()
    if not args.ablate and not args.add:
        target = Path(args.cache_dir) / (
            f"synthetic-v{synthetic.GENERATOR_VERSION}-seed{args.data_seed}-n{args.n_cases}")
        reused = (target / ".complete").is_file()
        data_dir = get_data_dir(n_cases=args.n_cases, seed=args.data_seed, progress=False)
    else:
        for parts, value, option in ((args.ablate, False, "--ablate"), (args.add, True, "--add")):
            for part in parts:
                if part not in synthetic._SIMULATION:
                    raise SystemExit(f"{option}: unknown part {part!r}; known: {', '.join(synthetic._SIMULATION)}")
                synthetic._SIMULATION[part] = value
        name = "-".join([f"no-{part}" for part in sorted(args.ablate)] + [f"with-{part}" for part in sorted(args.add)])
        data_dir = Path(args.cache_dir) / (
            f"ablation-v{synthetic.GENERATOR_VERSION}-{name}-seed{args.data_seed}-n{args.n_cases}")
        reused = (data_dir / ".complete").is_file()
        if not reused:
            synthetic.synthesize(data_dir, n_cases=args.n_cases, seed=args.data_seed, progress=False)
            (data_dir / ".complete").write_text("ablation\n")
    return data_dir, round(time.perf_counter() - start, 2), round(time.process_time() - cpu_start, 2), reused


def inference_options(args):
    """The `predict_case` keywords given on the command line; the rest keep its defaults."""
    options = {}
    if args.tta is not None:
        options["tta_flips"] = args.tta
    if args.min_component_voxels is not None:
        options["min_component_voxels"] = args.min_component_voxels
    if args.min_et_voxels is not None:
        options["min_et_voxels"] = args.min_et_voxels
    return options


def train_synthetic(args, data_dir, overrides):
    from gliseg_nb.course import load_or_train
    from gliseg_nb.train import region_dice

    start, cpu_start = time.perf_counter(), time.process_time()
    run = load_or_train(data_dir, "quick", retrain=not args.reuse, verbose=0, **overrides)
    seconds = round(time.perf_counter() - start, 2)
    cpu_seconds = round(time.process_time() - cpu_start, 2)
    history = run.history
    steps_per_epoch = run.config.steps_per_epoch or -(-len(run.split["train"]) * len(run.config.slice_indices)
                                                      // run.config.batch_size)
    synthetic_scores = {}
    for subset in ("val", "test"):
        scores = region_dice(run.model, run.cases_of(subset), run.config)
        synthetic_scores[subset] = {region: round(scores[region], 4) for region in ("WT", "TC", "ET")}
    return run, {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "reused": run.reused,
        "epochs_run": len(history.get("epoch", [])),
        "steps_per_epoch": int(steps_per_epoch),
        "train_cases": len(run.split["train"]),
        "synthetic_scores": synthetic_scores,
        "run_dir": str(run.run_dir),
    }


def real_baseline(args, real_cases, config, steps_per_epoch, out_root):
    """k-fold (by case) training on real cases with the same preset and optimizer steps."""
    import numpy as np

    from gliseg_nb.predict import load_trained
    from gliseg_nb.train import fit

    n_folds = min(args.folds, len(real_cases))
    if n_folds < 2 or len(real_cases) - -(-len(real_cases) // n_folds) < 2:
        raise SystemExit("--real-baseline needs at least 2 folds and 2 training cases per fold")
    order = np.random.default_rng(args.seed).permutation(len(real_cases))
    folds = [sorted(order[k::n_folds]) for k in range(n_folds)]
    config = config.replace(steps_per_epoch=steps_per_epoch)
    rows, seconds = [], []
    for k, held_out in enumerate(folds):
        rest = [real_cases[i] for i in range(len(real_cases)) if i not in held_out]
        val, train = rest[:1], rest[1:]
        run_dir = out_root / f"real-fold{k}"
        start = time.perf_counter()
        fit(config, train, val, run_dir, verbose=0)
        seconds.append(round(time.perf_counter() - start, 2))
        model, _ = load_trained(run_dir)
        rows += score_cases(model, config, [real_cases[i] for i in held_out])
        print(f"  real fold {k}: trained on {[c.case_id for c in train]} (val {val[0].case_id}) "
              f"in {seconds[-1]} s", flush=True)
    rows.sort(key=lambda row: row["case_id"])
    return rows, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", required=True, type=Path, help="folder of real BraTS cases with segmentations")
    parser.add_argument("--cache-dir", default=os.environ.get("GLISEG_NB_CACHE"),
                        help="GLISEG_NB_CACHE for this run (dataset, runs, slices); default: $GLISEG_NB_CACHE")
    parser.add_argument("--seed", type=int, default=42, help="Config seed (split, weights, shuffling); default 42")
    parser.add_argument("--data-seed", type=int, default=0, help="synthetic dataset seed; default 0 (the notebooks')")
    parser.add_argument("--n-cases", type=int, default=24, help="synthetic cases; default 24 (the notebooks')")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a quick-preset setting (repeatable)")
    parser.add_argument("--ablate", action="append", default=[], metavar="PART",
                        help="switch off one part of the simulation (repeatable)")
    parser.add_argument("--add", action="append", default=[], metavar="PART",
                        help="switch on one part of the simulation that is off by default (repeatable)")
    parser.add_argument("--reuse", action="store_true", help="reuse a finished cached run instead of retraining")
    parser.add_argument("--tta", choices=("none", "lr", "all"), default=None,
                        help="predict_case's tta_flips for every prediction (default: predict_case's default)")
    parser.add_argument("--min-component-voxels", type=int, default=None, metavar="N",
                        help="predict_case's min_component_voxels (default: predict_case's default)")
    parser.add_argument("--min-et-voxels", type=int, default=None, metavar="N",
                        help="predict_case's min_et_voxels (default: predict_case's default)")
    parser.add_argument("--real-baseline", action="store_true", help="also train on real cases (k-fold)")
    parser.add_argument("--folds", type=int, default=5, help="folds of --real-baseline; default 5")
    parser.add_argument("--label", default=None, help="name of this run in the JSON file name")
    parser.add_argument("--json", type=Path, default=None, help="write results here (default benchmarks/results/transfer-<label>.json)")
    args = parser.parse_args(argv)
    if not args.cache_dir:
        raise SystemExit("give --cache-dir or set GLISEG_NB_CACHE (the benchmark retrains into it)")
    os.environ["GLISEG_NB_CACHE"] = str(Path(args.cache_dir).expanduser())
    os.environ.pop("GLISEG_NB_DATA", None)  # train on the synthetic set whatever the shell says

    from gliseg_nb.course import quiet_tensorflow

    quiet_tensorflow()
    from gliseg_nb.data import find_cases, synthetic
    from gliseg_nb.train import parse_overrides

    overrides = {"seed": args.seed, **parse_overrides(args.set)}
    real_cases = [case for case in find_cases(args.real) if case.seg is not None]
    if not real_cases:
        raise SystemExit(f"{args.real}: no case with a segmentation found")
    label = args.label or "-".join(["baseline"] + [f"no-{p}" for p in args.ablate] + [f"with-{p}" for p in args.add])
    result = {"label": label, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "generator_version": synthetic.GENERATOR_VERSION, "machine": machine_info(),
              "load_before": load_average(), "overrides": {k: list(v) if isinstance(v, tuple) else v
                                                           for k, v in overrides.items()},
              "ablate": args.ablate, "add": args.add, "data_seed": args.data_seed, "n_cases": args.n_cases}
    print(f"machine: {result['machine']['platform']}, {result['machine']['cpus']} CPUs, "
          f"load {result['load_before']}", flush=True)

    data_dir, generation_seconds, generation_cpu, reused = synthetic_data(args)
    result["dataset"] = {"dir": str(data_dir), "seconds": generation_seconds, "cpu_seconds": generation_cpu,
                         "reused": reused}
    print(f"dataset: {data_dir} ({'reused' if reused else f'generated in {generation_seconds} s, '}"
          f"{'' if reused else f'{generation_cpu} CPU s'})", flush=True)

    run, training = train_synthetic(args, data_dir, overrides)
    result["training"] = training
    print(f"training: {training['seconds']} s, {training['cpu_seconds']} CPU s ({training['epochs_run']} epochs x {training['steps_per_epoch']} "
          f"steps{', reused' if training['reused'] else ''}); synthetic val {training['synthetic_scores']['val']}, "
          f"test {training['synthetic_scores']['test']}", flush=True)

    options = inference_options(args)
    result["inference_options"] = options
    # The synthetic validation and test cases as whole volumes, predicted and scored exactly
    # like the real ones: the synthetic check of an inference option.
    synthetic_rows = score_cases(run.model, run.config, run.cases_of("val") + run.cases_of("test"), options)
    result["synthetic_whole"] = {"rows": synthetic_rows,
                                 "mean": print_table("synthetic validation + test cases, whole volumes",
                                                     synthetic_rows)}
    rows = score_cases(run.model, run.config, real_cases, options)
    result["real"] = {"rows": rows, "mean": print_table("synthetic-trained, real cases", rows)}

    if args.real_baseline:
        out_root = Path(args.cache_dir) / "transfer-real-baseline"
        base_rows, seconds = real_baseline(args, real_cases, run.config.replace(seed=args.seed),
                                           training["steps_per_epoch"], out_root)
        result["real_baseline"] = {"rows": base_rows, "train_seconds": seconds, "folds": args.folds,
                                   "mean": print_table("real-trained (k-fold), same budget", base_rows)}
    result["load_after"] = load_average()
    print(f"\nload average after: {result['load_after']}")
    path = args.json or HERE / "results" / f"transfer-{label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
