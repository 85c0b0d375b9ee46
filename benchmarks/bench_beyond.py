"""Beyond the report: region outputs, 2.5-D input and test-time flips, each against the
report's 2-D softmax network, on the same data, split, seed and budget.

Usage::

    .venv/bin/python benchmarks/bench_beyond.py                          # embedded data, seed 42
    .venv/bin/python benchmarks/bench_beyond.py --seeds 42 7 --out gliseg_nb/measured/beyond-quick.json
    .venv/bin/python benchmarks/bench_beyond.py --real DIR               # also score real cases

For each seed (the split by patient and the weight initialisation), the ``quick`` preset is
trained as notebook 04 trains it (`gliseg_nb.train.fit`: the slice cache, augmentation,
the same epochs and early stopping) three times, changing one setting each time:

1. ``2-D softmax``: the quick preset, the report's kind of network (one softmax over the
   four classes, one slice in);
2. ``region outputs``: ``outputs="regions"``, three sigmoid outputs WT/TC/ET trained with
   binary cross-entropy plus their soft Dice (`gliseg_nb.losses.RegionLoss`, same class
   weights), decoded the BraTS way (`gliseg_nb.labels.regions_to_labels`);
3. ``2.5-D input``: ``context_slices=1``, the slice above and below as extra channels.

Test-time flips need no training: the 2-D softmax model is also scored with
``tta_flips="lr"`` (averaged with its left-right mirror) and ``tta_flips="all"`` (the four
in-plane flips). Every model is scored the BraTS way on the test patients (whole volumes
on their original grid, Dice per region, `gliseg_nb.metrics.evaluate_case`); the trained
variants also on the validation patients (which picked the best epoch, so slightly
flattered); with
``--real DIR`` also on every case found in DIR (transfer from synthetic to real scans).

Training time is wall-clock and CPU time of this process (`resource.getrusage`); the load
average is recorded before and after each training, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: The trained variants: name -> Config overrides of the quick preset.
VARIANTS = {
    "2-D softmax": {},
    "region outputs": {"outputs": "regions"},
    "2.5-D input": {"context_slices": 1},
}
#: Test-time flips scored on the 2-D softmax model: name -> predict_case's tta_flips.
FLIPS = {"+ left-right flip": "lr", "+ four flips": "all"}
REGIONS = ("WT", "TC", "ET")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="data folder (default: the embedded synthetic dataset)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="seeds (split + weights); default: 42")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="variants to train (default: all)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the quick preset's)")
    parser.add_argument("--real", type=Path, default=None, help="also score every case of this folder")
    parser.add_argument("--work", type=Path, default=None,
                        help="run folders go here (default: <GLISEG_NB_CACHE>/bench-beyond); removed first")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the run folders of an earlier run with the same seeds and score them again "
                             "(e.g. with --real); their training times are then the earlier ones")
    parser.add_argument("--out", type=Path, default=HERE.parent / "gliseg_nb" / "measured" / "beyond-quick.json",
                        help="JSON results (default: gliseg_nb/measured/beyond-quick.json, the copy notebook 07 reads)")
    return parser.parse_args(argv)


def machine_info():
    import keras
    import tensorflow as tf

    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "devices": [d.name for d in tf.config.list_physical_devices()]}


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def score(model, config, cases, tta_flips=False):
    """Dice per region of each case (whole volume, original grid), and the prediction time."""
    from gliseg_nb.data import load_case
    from gliseg_nb.metrics import evaluate_case
    from gliseg_nb.predict import predict_case

    rows, seconds = {}, 0.0
    for case in cases:
        data = load_case(case, modalities=list(config.modalities))
        started = time.perf_counter()
        # No component clean-up (predict_case's default erases pieces under 1 mL): the
        # variants compare networks and flips, not post-processing.
        labels = predict_case(model, data, config, tta_flips=tta_flips, min_component_voxels=0)
        seconds += time.perf_counter() - started
        scores = evaluate_case(labels, data.labels, data.zooms)
        rows[case.case_id] = {region: float(scores[region]["dice"]) for region in REGIONS}
    means = {region: float(np.mean([row[region] for row in rows.values()])) for region in REGIONS}
    return {"mean": means, "per_case": rows, "predict_seconds": seconds}


def train(config, train_cases, val_cases, run_dir, split):
    from gliseg_nb import load_model
    from gliseg_nb.runs import RunFolder
    from gliseg_nb.train import fit

    if RunFolder(run_dir).is_complete(config.epochs):  # --reuse: score the earlier run again
        timing_file = run_dir / "timing.json"  # written by this script after training
        times = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
        return load_model(run_dir / "best.keras", compile=False), {**times, "reused": True}

    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), cpu_seconds()
    # The slice cache is the default one ($GLISEG_NB_CACHE/slices), reused between runs.
    _, history = fit(config, train_cases, val_cases, run_dir, verbose=2, split=split)
    timing = {"wall_seconds": time.perf_counter() - wall, "cpu_seconds": cpu_seconds() - cpu,
              "epochs": len(history["epoch"]), "load_before": load_before, "load_after": os.getloadavg()}
    (run_dir / "timing.json").write_text(json.dumps(timing) + "\n")
    return load_model(run_dir / "best.keras", compile=False), timing


def print_table(title, rows):
    print(f"\n{title}")
    print(f"{'':28s} {'WT':>6s} {'TC':>6s} {'ET':>6s} {'train s':>8s} {'predict s':>9s}")
    for name, row in rows.items():
        trained = f"{row['train']['wall_seconds']:8.0f}" if "wall_seconds" in row.get("train", {}) else f"{'-':>8s}"
        print(f"{name:28s} " + " ".join(f"{row['test']['mean'][r]:6.3f}" for r in REGIONS)
              + f" {trained} {row['test']['predict_seconds']:9.1f}")


def main(argv=None):
    args = parse_args(argv)
    from gliseg_nb.course import quiet_tensorflow

    quiet_tensorflow()
    from gliseg_nb import Config
    from gliseg_nb._io import cache_root
    from gliseg_nb.data import find_cases, get_data_dir
    from gliseg_nb.split import select_cases, split_cases

    data_dir = get_data_dir(args.data)
    cases = [case for case in find_cases(data_dir) if case.seg is not None]
    real_cases = [case for case in find_cases(args.real) if case.seg is not None] if args.real else []
    work = args.work or cache_root() / "bench-beyond"
    if not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        "data_dir": str(data_dir),
        "n_cases": len(cases),
        "real_cases": [case.case_id for case in real_cases],
        "variants": {name: VARIANTS[name] for name in args.variants},
        "flips": FLIPS,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seeds": {},
    }
    for seed in args.seeds:
        quick = Config.preset("quick", seed=seed, **({"epochs": args.epochs} if args.epochs else {}))
        split = split_cases(cases, quick)
        train_cases, val_cases, test_cases = (select_cases(cases, split[s]) for s in ("train", "val", "test"))
        print(f"seed {seed}: {len(train_cases)} train, {len(val_cases)} validation, {len(test_cases)} test "
              f"cases of {data_dir}; {quick.epochs} epochs at most; load {os.getloadavg()[0]:.1f}", flush=True)
        rows = {}
        for name in args.variants:
            config = quick.replace(**VARIANTS[name])
            run_dir = work / f"seed{seed}-{name.replace(' ', '_').replace('.', '')}"
            model, timing = train(config, train_cases, val_cases, run_dir, split)
            variants = {name: False}
            if name == "2-D softmax":
                variants.update({flip_name: flip for flip_name, flip in FLIPS.items()})
            for label, flips in variants.items():
                row = {"config": VARIANTS[name], "tta_flips": flips,
                       "test": score(model, config, test_cases, flips)}
                if flips is False:  # validation: the trained variants only (prediction is slow on 2 cores)
                    row["val"] = score(model, config, val_cases, flips)
                    row["train"] = timing
                if real_cases:
                    row["real"] = score(model, config, real_cases, flips)
                rows[label] = row
                print(f"  {label:26s} test " + " ".join(f"{r} {row['test']['mean'][r]:.3f}" for r in REGIONS)
                      + (f"; trained in {timing['wall_seconds']:.0f} s ({timing['epochs']} epochs, CPU "
                         f"{timing['cpu_seconds']:.0f} s, load {timing['load_before'][0]:.1f})" if flips is False and "wall_seconds" in timing else ""),
                      flush=True)
        results["seeds"][str(seed)] = {"split": {k: list(v) for k, v in split.items()}, "rows": rows}
        print_table(f"seed {seed}: mean Dice over the {len(test_cases)} test patients", rows)
        if real_cases:
            print(f"\nseed {seed}, real cases ({len(real_cases)}): "
                  + "; ".join(f"{n} " + " ".join(f"{row['real']['mean'][r]:.3f}" for r in REGIONS)
                              for n, row in rows.items()))
        # Written after every seed: an interrupted run keeps what it measured.
        results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")

    if len(args.seeds) > 1:
        names = list(results["seeds"][str(args.seeds[0])]["rows"])
        summary = {}
        for name in names:
            per_seed = [results["seeds"][str(s)]["rows"][name]["test"]["mean"] for s in args.seeds]
            summary[name] = {r: float(np.mean([m[r] for m in per_seed])) for r in REGIONS}
        results["mean_over_seeds"] = summary
        print(f"\nmean over seeds {args.seeds} (test patients):")
        for name, means in summary.items():
            print(f"  {name:26s} " + " ".join(f"{r} {means[r]:.3f}" for r in REGIONS))
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
