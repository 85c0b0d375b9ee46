"""Per-label intensity statistics and tumour volumes: synthetic cases next to real ones.

Usage::

    .venv/bin/python benchmarks/compare_intensities.py --real DIR --synthetic DIR [--n 8]

For every case with a segmentation, each contrast is z-scored over the brain (voxels non-zero
in any contrast), as the training pipeline does, and summarised per label: healthy brain
(label 0 inside the brain), necrotic / non-enhancing core (1), edema (2), enhancing (3).
Printed per set: the mean over cases of each label's 10th, 50th and 90th percentile z-score
per contrast; tumour volumes (WT, TC, ET in mL; ET and TC as a fraction of WT); and two
difficulty proxies:

* the area under the ROC curve (AUC) of one contrast for telling two labels apart
  (FLAIR: whole tumour vs healthy brain; T1ce: enhancing vs the rest of the tumour;
  T1ce: core (1+3) vs edema). Closer to 0.5 is harder; real enhancing tissue is less
  separable than a crisp synthetic rim;
* the ratio of the mean absolute difference between neighbouring voxels along z to that
  along x, inside the brain (about 1 for isotropic scans, below 1 for thick slices
  upsampled to 1 mm);
* the best single global threshold on z-scored FLAIR and the whole-tumour Dice it gets
  (`gliseg_nb.data.synthetic.threshold_baseline`).

Only summary numbers are printed (and written with ``--json``); no voxel leaves this script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

LABELS = {0: "brain", 1: "core1", 2: "edema", 3: "enh"}
CONTRASTS = ("flair", "t1", "t1ce", "t2")


def _auc(positive, negative, rng, n=20000):
    """ROC AUC of a score for positives vs negatives (subsampled; ties count half)."""
    if positive.size < 20 or negative.size < 20:
        return None
    positive = rng.choice(positive, min(n, positive.size), replace=False)
    negative = rng.choice(negative, min(n, negative.size), replace=False)
    values = np.concatenate([positive, negative])
    ranks = np.empty(values.size)
    order = np.argsort(values, kind="mergesort")
    ranks[order] = np.arange(1, values.size + 1)
    # average ranks of ties
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]
    u = ranks[: positive.size].sum() - positive.size * (positive.size + 1) / 2.0
    return float(u / (positive.size * negative.size))


def case_statistics(data, rng):
    labels = data.labels
    brain = np.any([data.images[m] != 0 for m in CONTRASTS], axis=0)
    stats = {"volumes_ml": {
        "WT": np.count_nonzero(labels > 0) / 1000.0,
        "TC": np.count_nonzero((labels == 1) | (labels == 3)) / 1000.0,
        "ET": np.count_nonzero(labels == 3) / 1000.0,
    }, "quantiles": {}, "auc": {}, "dz_over_dx": {}}
    z = {}
    for m in CONTRASTS:
        v = data.images[m].astype(np.float64)
        inside = v[brain]
        z[m] = (v - inside.mean()) / (inside.std() + 1e-8)
        stats["quantiles"][m] = {}
        for k, name in LABELS.items():
            sel = (labels == k) & brain
            if np.count_nonzero(sel) < 50:
                continue
            stats["quantiles"][m][name] = [float(q) for q in np.percentile(z[m][sel], [10, 50, 90])]
        both_z = brain[:, :, 1:] & brain[:, :, :-1]
        both_x = brain[1:] & brain[:-1]
        dz = np.abs(np.diff(v, axis=2))[both_z].mean()
        dx = np.abs(np.diff(v, axis=0))[both_x].mean()
        stats["dz_over_dx"][m] = float(dz / (dx + 1e-8))
    tumour = labels > 0
    stats["auc"]["flair WT vs brain"] = _auc(z["flair"][tumour], z["flair"][brain & ~tumour], rng)
    stats["auc"]["t1ce ET vs tumour"] = _auc(z["t1ce"][labels == 3], z["t1ce"][tumour & (labels != 3)], rng)
    stats["auc"]["t1ce TC vs edema"] = _auc(z["t1ce"][(labels == 1) | (labels == 3)], z["t1ce"][labels == 2], rng)
    stats["auc"]["flair core1 vs edema"] = _auc(z["flair"][labels == 1], z["flair"][labels == 2], rng)
    return stats


def summarise(name, per_case):
    print(f"\n== {name}: {len(per_case)} cases")
    vol = {r: np.array([c["volumes_ml"][r] for c in per_case.values()]) for r in ("WT", "TC", "ET")}
    wt = np.maximum(vol["WT"], 1e-6)
    print("volumes mL  WT mean %.0f [%.0f-%.0f]  TC %.0f [%.0f-%.0f]  ET %.1f [%.1f-%.1f]  "
          "TC/WT %.2f  ET/WT %.2f" % (vol["WT"].mean(), vol["WT"].min(), vol["WT"].max(),
                                        vol["TC"].mean(), vol["TC"].min(), vol["TC"].max(),
                                        vol["ET"].mean(), vol["ET"].min(), vol["ET"].max(),
                                        (vol["TC"] / wt).mean(), (vol["ET"] / wt).mean()))
    summary = {"n_cases": len(per_case), "volumes_ml_mean": {r: float(v.mean()) for r, v in vol.items()},
               "quantiles_mean": {}, "auc_mean": {}, "dz_over_dx_mean": {}}
    print(f"{'contrast':8s} " + " ".join(f"{n:>20s}" for n in LABELS.values()) + "   dz/dx")
    for m in CONTRASTS:
        cells = []
        summary["quantiles_mean"][m] = {}
        for label in LABELS.values():
            qs = [c["quantiles"][m][label] for c in per_case.values() if label in c["quantiles"][m]]
            if not qs:
                cells.append(f"{'-':>20s}")
                continue
            q = np.mean(qs, axis=0)
            summary["quantiles_mean"][m][label] = [round(float(x), 3) for x in q]
            cells.append(f"{q[1]:+6.2f} [{q[0]:+5.1f},{q[2]:+5.1f}]")
        ratio = float(np.mean([c["dz_over_dx"][m] for c in per_case.values()]))
        summary["dz_over_dx_mean"][m] = round(ratio, 3)
        print(f"{m:8s} " + " ".join(cells) + f"   {ratio:.2f}")
    for key in next(iter(per_case.values()))["auc"]:
        values = [c["auc"][key] for c in per_case.values() if c["auc"][key] is not None]
        summary["auc_mean"][key] = round(float(np.mean(values)), 3) if values else None
        print(f"AUC {key:22s} mean {np.mean(values) if values else float('nan'):.3f}  "
              f"per case " + " ".join(f"{v:.2f}" for v in values))
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", type=Path, required=True, help="folder of real BraTS cases with segmentations")
    parser.add_argument("--synthetic", type=Path, action="append", default=[],
                        help="folder of synthetic cases (repeatable)")
    parser.add_argument("--n", type=int, default=8, help="synthetic cases read per folder; default 8")
    parser.add_argument("--per-case", action="store_true", help="also print each case's volumes")
    parser.add_argument("--json", type=Path, default=None, help="write the summaries here")
    args = parser.parse_args(argv)

    from gliseg_nb.data import find_cases, load_case
    from gliseg_nb.data.synthetic import threshold_baseline

    rng = np.random.default_rng(0)
    out = {}
    for name, folder, limit in [("real", args.real, None)] + [(str(s), s, args.n) for s in args.synthetic]:
        cases = [c for c in find_cases(folder) if c.seg is not None][:limit]
        if not cases:
            raise SystemExit(f"{folder}: no case with a segmentation found")
        per_case = {}
        for case in cases:
            per_case[case.case_id] = case_statistics(load_case(case), rng)
            if args.per_case:
                v = per_case[case.case_id]["volumes_ml"]
                q = per_case[case.case_id]["quantiles"]
                medians = "  ".join(
                    f"{m} " + "/".join(f"{q[m][label][1]:+.1f}" if label in q[m] else "-"
                                       for label in LABELS.values()) for m in CONTRASTS)
                print(f"  {case.case_id:26s} WT {v['WT']:6.1f} TC {v['TC']:6.1f} ET {v['ET']:5.1f}  "
                      f"medians brain/core1/edema/enh: {medians}")
        out[name] = summarise(name, per_case)
        # The oracle FLAIR threshold: how far intensity alone gets on the whole tumour.
        baseline = threshold_baseline(cases)
        out[name]["flair_threshold"] = {"threshold": baseline["threshold"],
                                        "mean_dice": round(baseline["mean_dice"], 3)}
        print(f"best global FLAIR threshold {baseline['threshold']:.2f} (z): "
              f"mean WT Dice {baseline['mean_dice']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
