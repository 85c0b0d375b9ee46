"""What each correction of the report's source notebook changes, measured on the same data.

Usage::

    .venv/bin/python benchmarks/bench_corrections.py                      # embedded data
    .venv/bin/python benchmarks/bench_corrections.py --seeds 0 1 2 --out gliseg_nb/measured/corrections-v4-quick.json

The report's code (R. Kopál's Kaggle notebook, "the source notebook") makes four choices
that the course corrects. This script trains the same small U-Net (the ``quick`` preset's
network and budget) once per step, each step changing one thing, on the same cases:

1. ``source notebook``: inputs divided by one shared maximum, one-hot masks resized
   bilinearly (blended targets at every boundary), categorical cross-entropy;
2. ``+ z-score``: each case and modality normalised over its brain voxels;
3. ``+ nearest labels``: labels resized by nearest neighbour, then one-hot (true targets);
4. ``+ region Dice loss``: the quick preset's loss (cross-entropy + soft Dice of WT/TC/ET,
   class weights): what the course trains.

Augmentation is off in every step, so that the steps differ only in the listed choice.
Each model is scored the BraTS way (whole volumes on their original grid, Dice per region,
`gliseg_nb.metrics.evaluate_case`) on the validation and test patients, which none of them
trained on. For the source notebook's model it also reproduces the report's "IoU 0.9":
Keras' ``MeanIoU`` fed one-hot targets and softmax outputs (no argmax) reads every entry as
a class index and truncates it, so only outputs exactly 1.0 in float32 count as class 1;
the script prints the share of such outputs and the value that results, next to the true
mean IoU. Finally the last step is repeated with other split seeds (``--seeds``): the
source notebook never seeds its split, so its scores move by that much from run to run.

Everything printed comes from this run; the JSON file (``--out``) keeps the numbers, the
seeds and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="data folder (default: the embedded synthetic dataset)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per model (default: the quick preset's)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4],
                        help="split seeds for the spread of the corrected model (default: 0 1 2 3 4)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here; notebook 4 reads "
                             "gliseg_nb/measured/corrections-v4-quick.json (gliseg_nb.measured.load)")
    return parser.parse_args(argv)


STEPS = (
    ("source notebook", dict(normalization="max", loss="categorical_crossentropy", class_weights=None), "onehot-bilinear"),
    ("+ z-score", dict(normalization="zscore", loss="categorical_crossentropy", class_weights=None), "onehot-bilinear"),
    ("+ nearest labels", dict(normalization="zscore", loss="categorical_crossentropy", class_weights=None), "nearest"),
    ("+ region Dice loss", dict(), "nearest"),
)


def arrays(cases, config, targets):
    """Training slices of `cases`: inputs as `preprocess_case` makes them, and one-hot targets.

    ``targets="nearest"``: the course's labels (nearest neighbour), one-hot encoded.
    ``targets="onehot-bilinear"``: the source notebook's: the full-size labels one-hot
    encoded, then resized bilinearly (soft, blended targets).
    """
    from gliseg_nb._preprocess import selection_slab
    from gliseg_nb.data import load_case
    from gliseg_nb.pipeline import preprocess_case, resize_onehot_bilinear

    xs, ys = [], []
    for case in cases:
        x, labels = preprocess_case(case, config)
        if targets == "nearest":
            y = np.eye(config.n_classes, dtype=np.float32)[labels]
        else:
            start, stop = selection_slab(config)
            full = load_case(case, modalities=[config.modalities[0]], slices=(start, stop)).labels
            kept = np.asarray(config.slice_indices) - start
            y = resize_onehot_bilinear(full[:, :, kept], config.image_size, config.n_classes)
        xs.append(x)
        ys.append(y.astype(np.float32))
    return np.concatenate(xs), np.concatenate(ys)


def train(config, train_cases, val_cases, targets, epochs):
    import keras

    from gliseg_nb.model import build_unet
    from gliseg_nb.train import _compile

    keras.utils.set_random_seed(config.seed)
    x_train, y_train = arrays(train_cases, config, targets)
    x_val, y_val = arrays(val_cases, config, targets)
    model = _compile(build_unet(config), config)
    started = time.perf_counter()
    model.fit(x_train, y_train, batch_size=config.batch_size, epochs=epochs, validation_data=(x_val, y_val),
              shuffle=True, verbose=0)
    return model, time.perf_counter() - started


def score(model, config, cases):
    """Mean Dice per BraTS region over whole volumes of `cases`, and the per-case rows."""
    from gliseg_nb.data import load_case
    from gliseg_nb.labels import REGIONS
    from gliseg_nb.metrics import evaluate_case
    from gliseg_nb.predict import predict_case

    rows = {}
    for case in cases:
        case_data = load_case(case, modalities=list(config.modalities))
        labels = predict_case(model, case_data, config)
        scores = evaluate_case(labels, case_data.labels, case_data.zooms)
        rows[case.case_id] = {region: scores[region]["dice"] for region in REGIONS}
    means = {region: float(np.mean([row[region] for row in rows.values()])) for region in REGIONS}
    return means, rows


def iou_as_the_source_notebook_fed_it(model, config, cases):
    """The report's "IoU 0.9" mechanism on a trained model's softmax outputs."""
    import keras

    x, y = arrays(cases, config, "nearest")
    probabilities = model.predict(x, batch_size=64, verbose=0).astype(np.float32)
    as_fed = keras.metrics.MeanIoU(num_classes=config.n_classes)
    as_fed.update_state(y, probabilities)
    true_iou = keras.metrics.MeanIoU(num_classes=config.n_classes)
    true_iou.update_state(np.argmax(y, axis=-1), np.argmax(probabilities, axis=-1))
    return {
        "share_of_outputs_exactly_1": float(np.mean(probabilities == 1.0)),
        "share_of_outputs_exactly_0": float(np.mean(probabilities == 0.0)),
        "meaniou_as_fed": float(as_fed.result()),
        "meaniou_argmax": float(true_iou.result()),
    }


def main(argv=None):
    args = parse_args(argv)
    from gliseg_nb.course import quiet_tensorflow

    quiet_tensorflow()
    import keras
    import tensorflow as tf

    from gliseg_nb import Config
    from gliseg_nb.data import find_cases, get_data_dir
    from gliseg_nb.pipeline import select_cases, split_cases

    quick = Config.preset("quick", augment=False)
    epochs = args.epochs or quick.epochs
    data_dir = get_data_dir(args.data)
    cases = [case for case in find_cases(data_dir) if case.seg is not None]
    split = split_cases(cases, quick)
    train_cases, val_cases = select_cases(cases, split["train"]), select_cases(cases, split["val"])
    scored_cases = val_cases + select_cases(cases, split["test"])
    print(f"{len(cases)} cases in {data_dir}; split seed {quick.seed}: {len(train_cases)} train, "
          f"{len(scored_cases)} scored (validation + test); {epochs} epochs per model, no augmentation")

    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "load_average": os.getloadavg(), "python": sys.version.split()[0],
                           "tensorflow": tf.__version__, "keras": keras.__version__},
               "data_dir": str(data_dir), "epochs": epochs, "steps": [], "seeds": []}
    print(f"\n{'step':22s} {'WT':>6s} {'TC':>6s} {'ET':>6s} {'train s':>8s}")
    source_model = None
    for name, changes, targets in STEPS:
        config = quick.replace(**changes)
        model, seconds = train(config, train_cases, val_cases, targets, epochs)
        means, rows = score(model, config, scored_cases)
        print(f"{name:22s} {means['WT']:6.3f} {means['TC']:6.3f} {means['ET']:6.3f} {seconds:8.1f}")
        results["steps"].append({"step": name, "targets": targets, "config": changes, "dice": means,
                                 "per_case": rows, "train_seconds": seconds})
        if source_model is None:
            source_model, source_config = model, config

    iou = iou_as_the_source_notebook_fed_it(source_model, source_config, scored_cases)
    results["iou_as_fed"] = iou
    print(f"\nThe report's 'IoU 0.9', on the source notebook's model ({len(scored_cases)} patients' slices):")
    print(f"  softmax outputs exactly 1.0 in float32: {iou['share_of_outputs_exactly_1']:.2%} "
          f"(exactly 0.0: {iou['share_of_outputs_exactly_0']:.2%})")
    print(f"  Keras MeanIoU fed one-hot targets and softmax outputs: {iou['meaniou_as_fed']:.3f}")
    print(f"  the real mean IoU (argmax of both, background included): {iou['meaniou_argmax']:.3f}")

    if args.seeds:
        print("\nThe corrected model with other split seeds (the source notebook never seeds its split):")
        print(f"{'split seed':>10s} {'WT':>6s} {'TC':>6s} {'ET':>6s}")
        for seed in args.seeds:
            config = quick.replace(seed=seed)
            seed_split = split_cases(cases, config)
            model, _ = train(config, select_cases(cases, seed_split["train"]), select_cases(cases, seed_split["val"]),
                             "nearest", epochs)
            means, _ = score(model, config, select_cases(cases, seed_split["val"]) + select_cases(cases, seed_split["test"]))
            print(f"{seed:10d} {means['WT']:6.3f} {means['TC']:6.3f} {means['ET']:6.3f}")
            results["seeds"].append({"seed": seed, "dice": means})
        for region in ("WT", "TC", "ET"):
            values = [row["dice"][region] for row in results["seeds"]]
            print(f"  {region}: mean {np.mean(values):.3f}, sd {np.std(values, ddof=1) if len(values) > 1 else 0:.3f}, "
                  f"range {min(values):.3f}-{max(values):.3f}")

    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
