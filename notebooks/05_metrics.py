# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Measuring a segmentation honestly
#
# The report sums up its model in four numbers: accuracy 99.2 %, loss 0.024, Dice 0.62 and
# "IoU score 0.9". This notebook computes such numbers by hand, then on a trained model, and
# shows which of them carry information and which would look almost as good for a model
# that finds no tumour at all.
#
# After this notebook you will be able to:
#
# * compute Dice, IoU, precision, sensitivity and specificity from the four counts TP, FP,
#   FN and TN, by hand and with NumPy;
# * explain why background pixels inflate accuracy, specificity and averaged precision;
# * score a segmentation the way BraTS does: by region (WT, TC, ET), with Dice and the 95th
#   percentile Hausdorff distance (HD95) in millimetres;
# * tell, from the numbers alone, that the report's "IoU 0.9" and "Dice 0.62" cannot describe
#   the same masks, and show on a trained model what Keras' `MeanIoU` counted instead;
# * report a mean score over patients with a bootstrap confidence interval, a box plot and
#   a baseline scored on the same patients, and say what the empty-mask convention does to it.

# %%
# In Colab, install the course; anywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    # %pip install --quiet "gliseg-nb @ git+https://github.com/gliseg-nb/gliseg-nb"
    from google.colab import output

    output.enable_custom_widget_manager()  # Colab draws the course's widgets only with this

# %%
DATA_DIR = None  # or a BraTS folder in any layout; env GLISEG_NB_DATA also works
PRESET = "quick"  # or "report": the report's settings (real data, a GPU, hours of training)

# %%
# %matplotlib inline
from gliseg_nb.course import quiet_tensorflow

quiet_tensorflow()

import os
import time

import keras
import matplotlib.pyplot as plt
import numpy as np

from gliseg_nb.course import load_or_train
from gliseg_nb.data import DATA_ENV_VAR, find_cases, get_data_dir, load_case
from gliseg_nb.data.synthetic import threshold_baseline
from gliseg_nb.labels import REGION_COLORS, REGIONS
from gliseg_nb.metrics import (
    background_everywhere_scores,
    bootstrap_ci,
    dice_score,
    empty_convention_effect,
    evaluate_case,
    hd95,
    keras_meaniou_as_fed,
    lesion_wise_scores,
    region_confidence_intervals,
    report_metrics,
    summarize_scores,
)
from gliseg_nb.metrics.evaluation import format_case_table, format_summary_table
from gliseg_nb.pipeline import preprocess_case
from gliseg_nb.plotting import plot_region_scores
from gliseg_nb.predict import predict_case

np.set_printoptions(linewidth=100)

# %% [markdown]
# ## Four counts
#
# Take one class, say "tumour", and compare a predicted mask with the expert's mask pixel
# by pixel. Each pixel falls in one of four boxes:
#
# | | expert: tumour | expert: not tumour |
# |---|---|---|
# | **model: tumour** | true positive (TP) | false positive (FP) |
# | **model: not tumour** | false negative (FN) | true negative (TN) |
#
# Every metric in this notebook is a ratio of these counts. A small example, 6 x 8 pixels:

# %% tags=["nbval-check-output"]
truth = np.array([
    [0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 1, 1, 1, 0, 0, 0],
    [0, 1, 1, 1, 1, 1, 0, 0],
    [0, 1, 1, 1, 1, 1, 0, 0],
    [0, 0, 1, 1, 1, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0],
], dtype=bool)
prediction = np.array([
    [0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 1, 1, 1, 0, 0],
    [0, 0, 1, 1, 1, 1, 1, 0],
    [0, 0, 1, 1, 1, 1, 1, 0],
    [0, 0, 0, 1, 1, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0],
], dtype=bool)
tp = np.count_nonzero(prediction & truth)
fp = np.count_nonzero(prediction & ~truth)
fn = np.count_nonzero(~prediction & truth)
tn = np.count_nonzero(~prediction & ~truth)
print(f"TP={tp} FP={fp} FN={fn} TN={tn} (total {truth.size} pixels)")

# %% [markdown]
# The prediction is the expert's mask shifted one pixel to the right. From the counts:
#
# * **Dice** $= \dfrac{2\,TP}{2\,TP + FP + FN} = \dfrac{2|P \cap T|}{|P| + |T|}$: overlap
#   relative to the average size of the two masks (the report's formula in section 5.1);
# * **IoU** (intersection over union, Jaccard) $= \dfrac{TP}{TP + FP + FN} = \dfrac{|P \cap T|}{|P \cup T|}$;
# * **precision** $= \dfrac{TP}{TP + FP}$: of what the model called tumour, how much is;
# * **sensitivity** (also called **recall**) $= \dfrac{TP}{TP + FN}$: of the tumour, how much
#   the model found;
# * **specificity** $= \dfrac{TN}{TN + FP}$: of the healthy pixels, how many the model left alone;
# * **accuracy** $= \dfrac{TP + TN}{TP + FP + FN + TN}$: pixels right, of all pixels.

# %% tags=["nbval-check-output"]
def scores_from_counts(tp, fp, fn, tn):
    return {
        "dice": 2 * tp / (2 * tp + fp + fn),
        "iou": tp / (tp + fp + fn),
        "precision": tp / (tp + fp),
        "sensitivity": tp / (tp + fn),
        "specificity": tn / (tn + fp),
        "accuracy": (tp + tn) / (tp + fp + fn + tn),
    }


by_hand = scores_from_counts(tp, fp, fn, tn)
for name, value in by_hand.items():
    print(f"{name:12s} {value:.4f}")
print(f"library dice_score: {dice_score(prediction, truth):.4f}")

# %% [markdown]
# **A mistake in the report.** Its section "5.4 Recall" defines *specificity*, the true
# negative rate, under the heading "Recall". Recall is another name for sensitivity (its
# section 5.3, where the report says so itself). Specificity is a different quantity, and,
# as the next cell shows, a nearly useless one for tumour segmentation.
#
# ## What the background does to the scores
#
# Put the same 6 x 8 example in the corner of a 60 x 80 image, the rest of which is
# correctly predicted background (in a BraTS volume about 98 % of the voxels are
# background). Same tumour, same mistakes:

# %% tags=["nbval-check-output"]
big_truth = np.zeros((60, 80), dtype=bool)
big_prediction = np.zeros((60, 80), dtype=bool)
big_truth[:6, :8], big_prediction[:6, :8] = truth, prediction
big_counts = [np.count_nonzero(a & b) for a, b in (
    (big_prediction, big_truth), (big_prediction, ~big_truth),
    (~big_prediction, big_truth), (~big_prediction, ~big_truth))]
in_big_image = scores_from_counts(*big_counts)
print(f"{'':12s} {'6 x 8':>8s} {'60 x 80':>8s}")
for name in by_hand:
    print(f"{name:12s} {by_hand[name]:8.4f} {in_big_image[name]:8.4f}")

# %% [markdown]
# Dice, IoU, precision and sensitivity do not change: they never count true negatives.
# Accuracy and specificity jump towards 1 because the easy background pixels swamp the
# errors. In a brain volume they are always close to 1, whatever the model does to the
# tumour.
#
# Precision is safe for one class, but the report's source notebook averages precision
# (and sensitivity, specificity and Dice) over **all four classes, background
# included**. Background precision is close to 1 for any model, so it lifts the average.
# The library's region scores (WT, TC, ET, below) never count background, and its
# training metrics for Dice, precision, sensitivity and specificity average over the three
# tumour classes only. The exception is `ArgmaxMeanIoU`, which, like Keras' `MeanIoU`,
# includes background by default (`class_ids=(1, 2, 3)` leaves it out).
#
# ## Dice and IoU are tied together
#
# Dice and IoU are not independent measures: with $D$ the Dice and $J$ the IoU of the
# same two masks, $J = D / (2 - D)$ and $D = 2J / (1 + J)$. Since $2 - D \geq 1$, **IoU is
# never larger than Dice**:

# %% tags=["nbval-check-output"]
for dice in (0.62, 0.80, 0.90, 0.947, 1.0):
    print(f"Dice {dice:.3f} <-> IoU {dice / (2 - dice):.3f}")
print(f"check on the example: {by_hand['dice'] / (2 - by_hand['dice']):.4f} = {by_hand['iou']:.4f}")

# %% [markdown]
# This identity holds for two *hard* masks (every pixel 0 or 1). The report's Dice is
# something else: a *soft* Dice computed on probabilities, averaged over batches and over
# four classes with background (next section), so its 0.62 cannot be turned into an IoU
# this way. What the identity does say: no pair of hard masks has IoU 0.9 and Dice 0.62
# (an IoU of 0.9 needs a Dice of 0.947). Both numbers came out of Keras metrics, so at
# least one of them does not measure what its name says; we come back to this with real
# numbers below.
#
# ## The soft Dice a network trains on
#
# A network outputs probabilities, not a mask, and a loss must be differentiable, so
# training uses a **soft Dice**: the same formula with probabilities $p$ in place of the
# predicted mask, $\text{soft Dice} = \dfrac{2 \sum p\,t}{\sum p + \sum t}$. The report's
# figure 5.2 works the numerator out on a 4 x 4 example: the probabilities times the target,
# summed, give $|A \cap B| = 7.41$. From scratch, with the numbers of that figure:

# %% tags=["nbval-check-output"]
figure_probabilities = np.array([  # the "prediction" matrix of the report's figure 5.2
    [0.01, 0.03, 0.02, 0.02],
    [0.05, 0.12, 0.09, 0.07],
    [0.89, 0.85, 0.88, 0.91],
    [0.99, 0.97, 0.95, 0.97],
])
target = np.array([[0] * 4, [0] * 4, [1] * 4, [1] * 4], dtype=float)


def soft_dice(p, t, smooth=0.0):
    intersection = np.sum(p * t)  # element-wise multiply, then sum: figure 5.2
    return (2 * intersection + smooth) / (np.sum(p) + np.sum(t) + smooth)


print(f"|A n B| = {np.sum(figure_probabilities * target):.2f}, |A| = {figure_probabilities.sum():.2f}, |B| = {target.sum():.0f}")
print(f"soft Dice from scratch:     {soft_dice(figure_probabilities, target):.4f}")
print(f"soft Dice loss = 1 - Dice:  {1 - soft_dice(figure_probabilities, target):.4f}")

# %% [markdown]
# The library's loss (`gliseg_nb.losses`, what `PRESET`'s training uses) computes the same
# quantity per class on one-hot tensors; as two classes (background, tumour) of one image,
# with no smoothing term it gives the same number. By default it adds `smooth = 1` to the
# numerator and the denominator, so that a class absent from both masks scores 1 instead
# of 0/0: a small shift here, a large one for a tiny class.

# %% tags=["nbval-check-output"]
from gliseg_nb.losses import DICE_SMOOTH, soft_dice_per_class

one_hot_target = np.stack([1 - target, target], axis=-1)[None].astype("float32")  # (1, 4, 4, 2)
one_hot_probabilities = np.stack([1 - figure_probabilities, figure_probabilities], axis=-1)[None].astype("float32")
library = keras.ops.convert_to_numpy(soft_dice_per_class(one_hot_target, one_hot_probabilities, smooth=0.0))
print(f"library, tumour class, smooth=0:  {library[1]:.4f}")
print(f"library, tumour class, smooth={DICE_SMOOTH:g}:  "
      f"{keras.ops.convert_to_numpy(soft_dice_per_class(one_hot_target, one_hot_probabilities))[1]:.4f}"
      f"  (from scratch: {soft_dice(figure_probabilities, target, smooth=DICE_SMOOTH):.4f})")
assert abs(library[1] - soft_dice(figure_probabilities, target)) < 1e-6

# %% [markdown]
# ## Region scores, the BraTS way
#
# BraTS does not score the four classes separately. It scores three nested **regions**,
# each as a binary mask: the whole tumour (WT = classes 1+2+3), the tumour core (TC = 1+3:
# the necrotic core *and* the enhancing tumour, which the report's description of the core
# leaves out) and the enhancing tumour (ET = 3). For each region and each case it reports
# Dice, sensitivity, specificity and the **95th percentile Hausdorff distance** (HD95).
#
# Dice counts pixels; it cannot tell a small slip at the border from a false tumour far
# away. HD95 measures distance: for every point on the border of one mask, the distance to
# the nearest border point of the other mask, in both directions; HD95 is the 95th
# percentile of those distances, in millimetres (using the voxel size), so that a few
# outlying voxels do not dominate as they would with the maximum.
#
# A distance transform does the work: `scipy.ndimage.distance_transform_edt` gives every
# voxel its distance (in mm, with `sampling` = the voxel size) to the nearest voxel of a
# set. Computed to the *border* of one mask and read on the border of the other, it gives
# all the border-to-border distances at once. From scratch:

# %%
from scipy import ndimage


def border(mask):
    """Voxels of the mask with at least one face neighbour outside it."""
    return mask & ~ndimage.binary_erosion(mask)


def hd95_from_scratch(pred, truth, spacing=(1.0, 1.0, 1.0)):
    pred_border, truth_border = border(pred), border(truth)
    # distance of every voxel to the nearest border voxel of the other mask
    to_truth = ndimage.distance_transform_edt(~truth_border, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_border, sampling=spacing)
    distances = np.concatenate([to_truth[pred_border], to_pred[truth_border]])
    return np.percentile(distances, 95)

# %% [markdown]
# The library's `hd95` gives the same distances, computed faster from the border voxels
# alone, and adds the BraTS conventions for empty masks. On two small examples on a 1 mm
# grid, both agree:

# %% tags=["nbval-check-output"]
cube = np.zeros((40, 40, 40), dtype=bool)
cube[10:20, 10:20, 10:20] = True  # a 1 cm cube of "tumour"
shifted = np.roll(cube, 3, axis=0)  # the same cube, 3 mm further along x
print(f"cube shifted 3 mm:          Dice {dice_score(shifted, cube):.3f}, HD95 {hd95(shifted, cube):5.2f} mm")
assert np.isclose(hd95_from_scratch(shifted, cube), hd95(shifted, cube))
for size in (2, 4):
    with_blob = cube.copy()
    with_blob[30 : 30 + size, 30 : 30 + size, 30 : 30 + size] = True  # a false tumour far away
    print(f"cube + far {size}x{size}x{size} blob:    Dice {dice_score(with_blob, cube):.3f}, "
          f"HD95 {hd95(with_blob, cube):5.2f} mm")
    assert np.isclose(hd95_from_scratch(with_blob, cube), hd95(with_blob, cube))
empty = np.zeros_like(cube)
print(f"both empty:                 Dice {dice_score(empty, empty):.3f}, HD95 {hd95(empty, empty):5.2f} mm")
print(f"one empty:                  Dice {dice_score(empty, cube):.3f}, HD95 {hd95(empty, cube):5.2f} mm")

# %% [markdown]
# A false tumour far away costs little Dice (a few voxels out of a thousand) but is a
# clinically different answer, and HD95 notices it once it is more than a speck: the
# 4 x 4 x 4 blob adds border points about 20 mm away. The 2 x 2 x 2 blob is ignored because
# its border points are fewer than 5 % of all border points: that is the "95" in HD95, a
# deliberate tolerance for isolated stray voxels. BraTS reports both Dice and HD95 for
# this reason. The last two lines are the BraTS conventions for empty masks: a case
# without enhancing tumour scores Dice 1 and HD95 0 if the model predicts none, but Dice 0
# and HD95 373.13 mm (the diagonal of the 240 x 240 x 155 mm volume,
# $\sqrt{240^2 + 240^2 + 155^2}$) if it predicts even one voxel of it.
#
# ## Scores of a trained model on held-out patients
#
# Now the real thing. `load_or_train` returns the model notebook 4 trained (or trains it,
# a minute or two with the `quick` preset, if this notebook runs first; with the `report`
# preset on real data, run notebook 4 first, on a GPU), with the split: the test patients
# were never used for training nor for choosing the best epoch.

# %%
run = load_or_train(DATA_DIR, PRESET)
test_cases = run.cases_of("test")
print(f"model from {run.run_dir.name} ({'cached' if run.reused else 'trained now'}); "
      f"{len(test_cases)} test patients: {', '.join(case.case_id for case in test_cases)}")

# %% [markdown]
# A handful of test patients is too few for statistics: with three, one case more or less
# moves a mean Dice by several points. On BraTS 2020's 369 training cases the same split
# holds out 45 test patients. On the course's synthetic data more patients cost only
# time: the generator draws new, independent brains from the same distribution when given
# another seed (seed 0 made the training set). The next cell adds `N_MORE` of them,
# generated once into the cache like the training set and never seen in training. Each
# costs a few seconds (generating it the first time, then segmenting and scoring it), so
# six keep this notebook short; raise `N_MORE` for narrower intervals below. They are named `seed1/...`, since
# their file names repeat those of seed 0.

# %%
N_MORE, MORE_SEED = 6, 1  # extra synthetic patients, and their seed
held_out = [(case.case_id, case) for case in test_cases]
if DATA_DIR is None and not os.environ.get(DATA_ENV_VAR):  # the course's synthetic data
    more_dir = get_data_dir(n_cases=N_MORE, seed=MORE_SEED, progress=False)
    held_out += [(f"seed{MORE_SEED}/{case.case_id}", case) for case in find_cases(more_dir)]
print(f"{len(held_out)} held-out patients: {len(test_cases)} from the split's test set, "
      f"{len(held_out) - len(test_cases)} more drawn with seed {MORE_SEED}")

# %% [markdown]
# Each patient is segmented as a whole volume on its original 240 x 240 x 155 grid by
# `predict_case` (notebook 6 explains its five steps): it normalises every axial slice as
# in training, predicts the class probabilities of each slice that holds brain at the
# network's size, resizes them back to 240 x 240 and takes the argmax, with background
# outside the brain. Here it runs without its two default clean-ups (averaging each slice
# over its four in-plane flips, erasing tumour components under 1 mL; notebook 6), so that
# the metrics below see what the network itself predicts, stray components included.
# Each prediction is then scored by region with `evaluate_case`. The
# same loop scores a **baseline**, to tell how much the network adds: one global threshold
# on the z-scored FLAIR image (`threshold_baseline`: every brain voxel brighter than the
# threshold is "tumour"), the threshold chosen as the best one on training patients, as
# the network's weights were. For the sections further down, the loop also keeps the
# split's test patients' predictions and their 2-D slices.

# %%
started = time.perf_counter()
baseline = threshold_baseline(run.cases_of("train")[:8])  # reads only FLAIR and labels
rows, baseline_wt_dice, kept, et_voxels = [], [], {}, {}
for name, case in held_out:
    case_data = load_case(case, modalities=list(run.config.modalities))
    # The whole volume, 240 x 240 x 155; the network's own output (no flips, no clean-up).
    labels = predict_case(run.model, case_data, run.config, tta_flips="none", min_component_voxels=0)
    rows.append({"case_id": name, "scores": evaluate_case(labels, case_data.labels, case_data.zooms)})
    et_voxels[name] = {"truth": np.count_nonzero(case_data.labels == 3), "predicted": np.count_nonzero(labels == 3)}
    if 0 < et_voxels[name]["truth"] <= 50:  # a few voxels: also its lesion-wise ET score (optional section)
        et_voxels[name]["lesion_wise"] = lesion_wise_scores(labels == 3, case_data.labels == 3, case_data.zooms)
    at_threshold = threshold_baseline([case_data], thresholds=[baseline["threshold"]])
    baseline_wt_dice.append(at_threshold["mean_dice"])
    if case in test_cases:
        kept[name] = {"labels": labels, "truth": case_data.labels, "zooms": case_data.zooms,
                      "slices": preprocess_case(case_data, run.config)}
print(f"{len(rows)} patients segmented and scored in {time.perf_counter() - started:.0f} s; "
      f"baseline threshold {baseline['threshold']:.2f} (z-score units), chosen on 8 training patients")

# %%
print(format_case_table(rows))

# %% [markdown]
# The specificity columns read 0.99 or more whatever the Dice next to them, as predicted
# above. Dice and HD95 are the columns to read.
#
# A case whose truth has no enhancing tumour reads ET Sens 1.000 whatever the model did:
# with nothing to find, nothing was missed (sensitivity 0/0 is scored 1 by convention;
# false enhancing voxels show in its Dice and HD95 instead). The mean, median and spread
# over the held-out patients follow. Cases without enhancing tumour lift the mean ET
# sensitivity, which can then come out higher than WT's without the enhancing tumour
# being found any better: the last line gives the mean over the cases that have enhancing
# tumour, the one to compare with WT.

# %%
print(format_summary_table(summarize_scores(rows)))
et_sensitivity = empty_convention_effect(rows, "ET", "sensitivity")
print(f"ET sensitivity, mean over the {et_sensitivity['n_cases'] - et_sensitivity['n_empty_truth']} "
      f"cases with ET in the truth: {et_sensitivity['mean_without_empty']:.3f}")

# %% [markdown]
# ### An ET Dice of 0 beside an HD95 of 373.13 mm
#
# The volumes in the table are rounded to 0.01 mL, so a region of a few voxels can print
# as 0.00 mL, and some ET rows may read Dice 0 and HD95 373.13 mm, which looks like a bug.
# Such a row has an enhancing tumour in only one of the two masks. The held-out patient
# with the smallest such region (or, if there is none, the smallest true enhancing
# tumour), in voxels beside millilitres (one voxel is 1 mm³ here):

# %%
def smallest_et(name):
    counts = [et_voxels[name]["truth"], et_voxels[name]["predicted"]]
    return min(count for count in counts if count > 0)


et_of = {row["case_id"]: row["scores"]["ET"] for row in rows}
one_empty = [name for name, counts in et_voxels.items() if (counts["truth"] == 0) != (counts["predicted"] == 0)]
with_et = [name for name, counts in et_voxels.items() if counts["truth"] > 0]
chosen = min(one_empty, key=smallest_et) if one_empty else min(with_et, key=lambda name: et_voxels[name]["truth"])
et, counts = et_of[chosen], et_voxels[chosen]
print(f"{len(one_empty)} of {len(rows)} held-out patients have enhancing tumour in only one of the two masks")
print(f"{chosen}: enhancing tumour {counts['truth']} voxels in the truth ({et['volume_truth_ml']:.3f} mL), "
      f"{counts['predicted']} predicted ({et['volume_pred_ml']:.3f} mL)")
print(f"its ET Dice {et['dice']:.3f}, HD95 {et['hd95']:.2f} mm")
if "lesion_wise" in counts:
    lesion = counts["lesion_wise"]
    print(f"lesion-wise ET: {lesion['lesions']} true lesions counted, Dice {lesion['lesion_dice']:.3f}")
pixel = 240 / run.config.image_size
print(f"one pixel of the network's {run.config.image_size} px input stands for {pixel:.2f} x {pixel:.2f} = "
      f"{pixel**2:.0f} voxels of a 240 x 240 slice")

# %% [markdown]
# Such a row is not a bug:
#
# * **Dice 0 is the formula.** With one mask empty and the other not, the overlap is 0
#   and Dice $= 2 \cdot 0 / (n + 0) = 0$, whatever $n$ is. Only two empty masks need a
#   convention (Dice 1, further down).
# * **HD95 373.13 mm is the convention.** An empty mask has no border to measure from, and
#   BraTS scores the distance as the diagonal of the 240 x 240 x 155 mm volume, the worst
#   value possible.
# * **A few voxels are what this network handles worst.** At 64 px (the `quick` preset)
#   one input pixel stands for about 14 voxels of the original slice: a true enhancing
#   tumour of a few voxels is averaged away when the slice is shrunk (the training
#   targets, shrunk the same way, rarely showed such specks either), and a false one of a
#   few hundred voxels is only a few of the network's pixels on a few slices.
# * **The lesion-wise score of BraTS 2023** (optional section below) leaves out true
#   lesions of at most 50 mm³: for that score, a true enhancing tumour that small is no
#   lesion at all, and a prediction with none scores 1.
#
# A patient like this moves the mean ET Dice and HD95 as much as a patient with a large
# tumour, a reason to read the box plot below and not only the means.
#
# ### How sure is a mean over a few patients?
#
# These patients are one sample of the patients the model could meet; another sample of
# the same size would give another mean. The **bootstrap** estimates by how much: draw as
# many patients as there are, *with replacement*, from the held-out ones, recompute the
# mean, repeat ten thousand times, and read where the middle 95 % of those means lie
# (`scipy.stats.bootstrap`, here with its bias-corrected BCa method, which suits skewed
# scores such as Dice values piled up near 1 with a few zeros: it resamples the same way,
# and only shifts which percentiles of the resampled means are read, instead of the 2.5th
# and 97.5th, to correct for their bias and skew). `region_confidence_intervals`
# does this per region; the resampling is seeded, so the intervals are repeatable.

# %%
dice_intervals = region_confidence_intervals(rows, "dice")
hd95_intervals = region_confidence_intervals(rows, "hd95")
print(f"{'region':8s} {'mean Dice':>9s}  {'95 % interval':>15s}    {'mean HD95':>9s}  {'95 % interval':>17s}")
for region in REGIONS:
    d, h = dice_intervals[region], hd95_intervals[region]
    print(f"{region:8s} {d['mean']:9.3f}  [{d['low']:.3f}, {d['high']:.3f}]    "
          f"{h['mean']:6.1f} mm  [{h['low']:5.1f}, {h['high']:5.1f}] mm")
print(f"(over {len(rows)} patients)")

# %% [markdown]
# A box plot shows what the mean hides: the box spans the middle half of the patients,
# the line in it is the median, the diamond the mean, and every dot is one patient. Dots
# at exactly 0 or 1 are usually regions that are empty or nearly so: a tiny enhancing
# tumour missed (or a few false enhancing voxels) scores 0, and a region absent from the
# truth would score 1 if the model predicted none of it (the next section counts both
# kinds). Such dots drag the mean, and widen its interval, much more than they move the
# median.

# %%
plot_region_scores(rows, "dice", title=f"Dice per patient and region ({len(rows)} held-out patients)")
plt.show()

# %% [markdown]
# ### What the empty-mask convention does to the mean
#
# Some patients have no enhancing tumour at all (low-grade-looking tumours, here as in
# BraTS). For them the ET Dice is 0/0, and the BraTS convention decides: 1 if the model
# predicts no enhancing voxel either, 0 if it predicts even one. Those cases score
# exactly 1 or exactly 0, whatever the model does elsewhere, and move the mean. Measured
# on the predictions above, the ET mean with the convention (every case, what BraTS
# reports) and without those cases:

# %%
effect = empty_convention_effect(rows, "ET")
n_with_et = effect["n_cases"] - effect["n_empty_truth"]
print(f"ET mean Dice, every case (BraTS convention): {effect['mean_with_convention']:.3f} ({effect['n_cases']} cases)")
print(f"ET mean Dice, cases with ET in the truth:    {effect['mean_without_empty']:.3f} ({n_with_et} cases)")
print(f"cases without ET: {effect['n_empty_truth']}; the model predicted none in {effect['n_empty_both']} "
      f"(Dice 1) and some in {effect['n_false_alarm']} (Dice 0): {', '.join(effect['empty_truth_cases']) or 'none'}")

# %% [markdown]
# Each case without enhancing tumour (their number is printed above) adds exactly a 1 or
# a 0 to the average: a perfect score for predicting nothing, or a total miss for a few
# stray voxels. With no such case the two means are the same; with some, which way the
# mean moves, and by how much, depends only on how many the test set holds and on a
# handful of voxels in each. Report both numbers, or at least say how many cases had an
# empty region, when comparing ET scores across papers or test sets. Patients whose
# enhancing tumour is only a few voxels are nearly as fragile: their Dice follows from
# the formula (no convention needed, but a few voxels decide it), while their HD95 still
# comes from the convention whenever the prediction is empty (exercise 5 lists the
# patients with a small predicted enhancing tumour).
#
# ### A baseline: one threshold on FLAIR
#
# Is the network any better than the simplest method that could work? Edema and tumour
# are bright on FLAIR, so one threshold on the z-scored FLAIR gives a whole-tumour mask.
# On the same held-out patients, the whole-tumour Dice of both:

# %%
unet_wt_dice = np.array([row["scores"]["WT"]["dice"] for row in rows])
baseline_wt_dice = np.array(baseline_wt_dice)
difference = unet_wt_dice - baseline_wt_dice
for title, values in (("U-Net", unet_wt_dice), ("FLAIR threshold", baseline_wt_dice), ("U-Net - threshold", difference)):
    low, high = bootstrap_ci(values)
    print(f"WT Dice, {title:18s} mean {values.mean():+.3f}  95 % interval [{low:+.3f}, {high:+.3f}]")
print(f"the U-Net is better in {np.count_nonzero(difference > 0)} of {len(rows)} patients")

figure, ax = plt.subplots(figsize=(4.6, 4.2))
ax.scatter(baseline_wt_dice, unet_wt_dice, color=REGION_COLORS["WT"], edgecolor="black", zorder=3)
ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="equal Dice")
ax.set_xlabel("WT Dice, FLAIR threshold")
ax.set_ylabel("WT Dice, U-Net")
ax.set_xlim(0, 1)
ax.set_ylim(0, 1)
ax.set_title("One dot per held-out patient")
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# Dots above the dashed line are patients where the network beats the threshold. The
# third line compares the two methods *patient by patient* (a paired comparison, the
# right one when both are scored on the same patients): where its interval lies above 0,
# the network is better on patients like these, not only on these few. Where it
# includes 0, the data do not show that the network beats the threshold, however many
# patients it wins on. On the course's synthetic patients it does include 0: on the whole
# tumour, these held-out patients do not show that the U-Net beats a single FLAIR
# threshold. What the network adds for certain is elsewhere: a threshold cannot separate
# the tumour's classes at all (no TC, no ET), and it marks every bright FLAIR spot as
# tumour, the white-matter look-alikes of notebook 1 included.
#
# ## The report's numbers, on the same model
#
# The source notebook got its numbers from Keras metrics during `model.evaluate`, on the
# 2-D slices the model works with (slices 22 to 121, resized), not on whole volumes. For
# the split's test patients the loop above kept those slices; `report_metrics` computes,
# honestly, what the source notebook reported: accuracy over every pixel, its Dice
# averaged over the four classes with background, and Keras' `MeanIoU` fed the way the
# source notebook fed it. `background_everywhere_scores` gives the same numbers for a
# "model" that answers *background* for every pixel: no tumour found at all.

# %%
report_rows, background_rows = [], []
for name, item in kept.items():
    x_slices, y_slices = item["slices"]
    item["probabilities"] = run.model.predict(x_slices, verbose=0)  # softmax, (slices, H, W, 4)
    report_rows.append(report_metrics(np.argmax(item["probabilities"], axis=-1), y_slices, item["probabilities"]))
    background_rows.append(background_everywhere_scores(y_slices))


def mean_of(results, key):
    return float(np.mean([result[key] for result in results]))


def region_mean(results, region):
    return float(np.mean([result["region_dice"][region] for result in results]))


lines = [
    ("accuracy (all pixels)", "accuracy"),
    ("Dice, 4 classes with background", "dice_background_inclusive"),
    ("MeanIoU as the source notebook fed it", "mean_iou_as_fed"),
    ("true mean IoU, 4 classes", "mean_iou"),
    ("mean IoU, tumour classes", "mean_iou_tumour_classes"),
]
print(f"{'':40s} {'trained model':>14s} {'background only':>16s}")
for title, key in lines:
    print(f"{title:40s} {mean_of(report_rows, key):14.3f} {mean_of(background_rows, key):16.3f}")
for region in REGIONS:
    print(f"{'Dice ' + region + ' (region, these slices)':40s} {region_mean(report_rows, region):14.3f} {region_mean(background_rows, region):16.3f}")
print(f"share of background pixels in these slices: {mean_of(background_rows, 'background_fraction'):.2%}")
no_et = [name for name, item in kept.items() if not np.any(item["slices"][1] == 3)]
print(f"test patients with no enhancing voxel in these slices: {len(no_et)} of {len(kept)}")

# %% [markdown]
# Read the table row by row (each number is a mean over the split's test patients):
#
# * **Accuracy.** Predicting background everywhere is right on every background pixel,
#   which is almost all of them (last line): the "model" that finds nothing scores well
#   above 95 % accuracy, close to the trained model. The report's 99.2 % therefore says
#   almost nothing about its tumours.
# * **Dice with background.** The source notebook's soft Dice averages four classes,
#   background included. Background Dice is about 1 for any model, and with the notebook's
#   smoothing term a class absent from both masks counts as perfect too, so the useless
#   model is already far above 0. The report's 0.62 mixes a near-perfect background with
#   tumour classes that must be much lower.
# * **MeanIoU as fed.** It ranks the model that finds nothing *above* the trained one,
#   and above the true mean IoU of either. It does not measure overlap; the next cells
#   show what it measures.
# * **True mean IoU, 4 classes.** Keras' `MeanIoU` fed class indices (the argmax), as
#   intended: a real overlap, but background is one of the four classes, with an IoU near
#   1 for any model, and a tumour class absent from both masks is left out of the mean.
#   The model that finds nothing still gets about a quarter from background alone (its
#   IoU near 1, divided by four classes; more when a tumour class is absent from the truth).
# * **Mean IoU, tumour classes.** The same without background: the honest number of this
#   block, and exactly 0 for the model that finds nothing.
# * **Dice WT, TC, ET.** The BraTS regions, scored on all these slices of a patient at
#   once. The model that finds nothing scores 0 wherever the region has a voxel in the
#   truth and 1 where the truth has none either (the empty-mask convention), so its mean
#   is the share of test patients without that region in these slices: its ET value is
#   the printed count of patients with no enhancing voxel divided by the number of test
#   patients (1 of 3 would give 0.333). Not a skill, only a count.
# * **Share of background pixels.** Why the first rows are high for any model.
#
# ### "IoU 0.9": what Keras' MeanIoU counted
#
# `keras.metrics.MeanIoU(num_classes=4)` expects class *indices* (0, 1, 2, 3) by default.
# The source notebook gave it one-hot targets and softmax probabilities instead. Keras
# then reads every *entry* of those arrays as a class index and truncates it to an
# integer: a probability of 0.97 becomes class 0, and only an output that is exactly 1.0
# in float32 (a softmax saturates there when the network is very sure) becomes class 1.
# Classes 2 and 3 never occur. The "mean IoU" is the mean of two IoUs: of the entries
# that are 0 and of the entries that are 1. On the trained model's outputs for the test
# slices, from scratch, then with Keras itself:

# %%
probabilities = np.concatenate([item["probabilities"] for item in kept.values()])
true_classes = np.concatenate([item["slices"][1] for item in kept.values()])
one_hot_truth = np.eye(4, dtype="float32")[true_classes]
exactly_one = probabilities == 1.0
print(f"softmax outputs exactly 1.0 in float32: {exactly_one.mean():.2%} of the entries, "
      f"in {exactly_one.any(axis=-1).mean():.2%} of the pixels")

entries_true = one_hot_truth.reshape(-1).astype(int)  # what Keras' cast does to each entry
entries_pred = probabilities.reshape(-1).astype(int)  # truncation: 1 only where exactly 1.0


def iou_of_entries(value):
    both = np.count_nonzero((entries_true == value) & (entries_pred == value))
    either = np.count_nonzero((entries_true == value) | (entries_pred == value))
    return both / either


print(f"IoU of the entries that are 0: {iou_of_entries(0):.3f}")
print(f"IoU of the entries that are 1: {iou_of_entries(1):.3f}")
print(f"their mean, from scratch:      {(iou_of_entries(0) + iou_of_entries(1)) / 2:.3f}")
as_fed = keras.metrics.MeanIoU(num_classes=4)
as_fed.update_state(one_hot_truth, probabilities)
print(f"Keras MeanIoU fed as the source notebook did: {float(as_fed.result()):.3f} "
      f"(NumPy re-implementation: {keras_meaniou_as_fed(one_hot_truth, probabilities):.3f})")
right_way = keras.metrics.MeanIoU(num_classes=4)
right_way.update_state(true_classes, np.argmax(probabilities, axis=-1))
print(f"true mean IoU (class indices, argmax):        {float(right_way.result()):.3f}")

# %% [markdown]
# The last line is not the table's "true mean IoU, 4 classes": that one is a mean over
# the test patients of one IoU per patient, while this one pools the pixels of all their
# slices into one count before dividing, so patients with larger tumours weigh more, and
# a class is left out only if it is absent from all of them. Both are real overlaps;
# they answer different questions.
#
# The IoU of the 1-entries is close to the share of pixels with an output of exactly 1.0:
# nearly every such output sits on the right class. So the value rises with how *sure*
# the network is, not with how well it outlines the tumour. A network trained longer,
# like the report's (35 epochs at 128 px), saturates its softmax on more pixels. To see
# it without training, make the same network's outputs more confident: raise the
# probabilities to a power and renormalise. The argmax, and so every mask and every true
# score, does not change:

# %%
for power in (1, 2, 4):
    sharper = probabilities.astype(np.float64) ** power
    sharper = (sharper / sharper.sum(axis=-1, keepdims=True)).astype(np.float32)
    if power == 1:
        sharper = probabilities  # the network's own outputs, untouched
    assert np.array_equal(np.argmax(sharper, axis=-1), np.argmax(probabilities, axis=-1))  # same masks
    true_iou = keras.metrics.MeanIoU(num_classes=4)
    true_iou.update_state(true_classes, np.argmax(sharper, axis=-1))
    print(f"probabilities ** {power:2d}: {np.mean(sharper.max(axis=-1) == 1.0):6.2%} of pixels at exactly 1.0, "
          f"MeanIoU as fed {keras_meaniou_as_fed(one_hot_truth, sharper):.3f}, "
          f"true mean IoU {float(true_iou.result()):.3f}")

# %% [markdown]
# The same masks score anything from the first value to above 0.9 when fed the report's
# way: its "IoU 0.9" is a statement about saturated softmax outputs. The smallest
# demonstration feeds Keras' real `MeanIoU` a prediction that gets *every* pixel wrong:

# %% tags=["nbval-check-output"]
tiny_classes = np.array([[0, 0, 1], [2, 3, 0]])
wrong_classes = (tiny_classes + 1) % 4  # every pixel wrong
tiny_truth = np.eye(4, dtype="float32")[tiny_classes]
tiny_pred = np.full(tiny_classes.shape + (4,), 0.05, dtype="float32")  # softmax-like outputs
tiny_pred[np.arange(2)[:, None], np.arange(3)[None, :], wrong_classes] = 0.85
tiny_as_fed = keras.metrics.MeanIoU(num_classes=4)
tiny_as_fed.update_state(tiny_truth, tiny_pred)
print(f"Keras MeanIoU fed one-hot and softmax: {float(tiny_as_fed.result()):.3f}")
print(f"the same, re-implemented in NumPy:     {keras_meaniou_as_fed(tiny_truth, tiny_pred):.3f}")
tiny_right = keras.metrics.MeanIoU(num_classes=4)
tiny_right.update_state(tiny_classes, np.argmax(tiny_pred, axis=-1))
print(f"MeanIoU of the class indices (argmax): {float(tiny_right.result()):.3f}")

# %% [markdown]
# A prediction that is wrong everywhere gets a "mean IoU" of 0.375 when fed the report's
# way (every 0-entry matches, no 1-entry does), and 0 when fed class indices. During
# training, the course's `ArgmaxMeanIoU` metric takes the argmax of both sides for this
# reason. Notebook 4 ("The report's corrections, measured") shows, one correction at a
# time, what fixing the source notebook's other choices changes, and the same mechanism on
# the source notebook's own trained model.
#
# What to report instead: Dice and HD95 per region (WT, TC, ET), per case, with their mean,
# a confidence interval and the spread over enough held-out patients, beside a simple
# baseline, as above. For reference, the winner of BraTS 2020 (nnU-Net) reached a test
# Dice of about 0.89 (WT), 0.85 (TC) and 0.82 (ET).
#
# ## Optional: lesion by lesion, the BraTS 2023 scores
#
# This section can be skipped; nothing later depends on it. A whole-volume Dice is
# dominated by the largest lesion. A model that outlines one big tumour well, misses a
# small second one and adds a false one elsewhere still scores well, because the small
# lesions hold few voxels. From 2023 the BraTS challenges also score **lesion-wise**: the
# ground truth is cut into lesions (connected components: voxels that touch by a face,
# an edge or a corner belong to the same lesion, and lesions that touch once each is grown
# by 3 voxels count as one), each lesion gets its own Dice and HD95 against the predicted
# components that reach it, a missed lesion and every predicted component that reaches no
# lesion (a false positive) score Dice 0 and HD95 374 mm (the value the 2023 evaluation
# code uses; the whole-volume convention above uses the 373.13 mm diagonal), lesions of at
# most 50 mm³ are left out,
# and the case's score is the mean over lesions and false positives. Every lesion counts
# the same, whatever its size:

# %% tags=["nbval-check-output"]
def ball(shape, centre, radius):
    grid = np.indices(shape)
    return ((grid - np.reshape(centre, (-1, 1, 1, 1))) ** 2).sum(axis=0) <= radius**2


shape = (60, 60, 40)
big = ball(shape, (18, 18, 20), 9)  # found: about 3 mL
small = ball(shape, (46, 46, 20), 4)  # missed: about 0.3 mL
false_one = ball(shape, (15, 46, 20), 3)  # predicted where there is nothing
lesion_truth, lesion_prediction = big | small, big | false_one
lesions = lesion_wise_scores(lesion_prediction, lesion_truth)
print(f"whole-volume Dice {dice_score(lesion_prediction, lesion_truth):.3f}, HD95 {hd95(lesion_prediction, lesion_truth):.2f} mm")
print(f"lesion-wise  Dice {lesions['lesion_dice']:.3f}, HD95 {lesions['lesion_hd95']:.2f} mm "
      f"({lesions['lesions']} lesions, {lesions['lesions_missed']} missed, "
      f"{lesions['false_positive_lesions']} false positive)")

# %% [markdown]
# The whole-volume Dice barely notices the missed lesion and the false one (HD95 does
# notice the false one, far from everything); the lesion-wise Dice is (1 + 0 + 0) / 3.
# `evaluate_case(..., lesion_wise=True)` adds these scores to every region, and
# `gliseg-nb evaluate --lesion-wise` prints them. On the split's test patients, the
# whole-volume Dice beside the lesion-wise one, with the number of lesions missed and of
# false-positive components (`LesDice` is the lesion-wise Dice, `FP` the false positives):

# %%
lesion_rows = [{"case_id": name, "scores": evaluate_case(item["labels"], item["truth"], item["zooms"], lesion_wise=True)}
               for name, item in kept.items()]
print(format_case_table(lesion_rows, metrics=("dice", "lesion_dice", "lesions_missed", "false_positive_lesions")))

# %% [markdown]
# Where the `FP` column is not 0, the model predicted small stray components away from the
# tumour: invisible in the whole-volume Dice, but each one a false lesion in the
# lesion-wise score. On this synthetic data the larger ones mostly sit on the simulated
# white-matter spots that are bright on FLAIR like edema (the look-alikes of notebook 1;
# the project's docs/benchmarks.md checks this against the generator's maps). Two usual
# remedies, both on by default in `predict_case` and `gliseg-nb predict` (switched off
# above): discard predicted components below a size (`--min-component-voxels`, 1000
# voxels by default, or by hand in exercise 8), and average the predictions over flipped
# inputs (by default the four in-plane flips of each slice; `--tta lr` for the left-right
# mirror only).
# A size threshold is a trade: real gliomas can have small satellite lesions too.
#
# ## Summary
#
# * TP, FP, FN and TN define every metric. Dice $= 2TP/(2TP+FP+FN)$, IoU
#   $= TP/(TP+FP+FN)$, precision $= TP/(TP+FP)$, sensitivity (= recall) $= TP/(TP+FN)$,
#   specificity $= TN/(TN+FP)$.
# * The report's "5.4 Recall" is specificity; recall is sensitivity.
# * Background is about 98 % of a brain volume: accuracy and specificity are near 1 for any
#   model, and averages over classes that include background flatter the model.
# * IoU $= D/(2-D) \leq$ Dice, so "IoU 0.9" beside "Dice 0.62" is impossible for the same
#   masks. It came from Keras' `MeanIoU` fed one-hot targets and probabilities, which
#   counts softmax outputs that are exactly 1.0: it measures confidence, not overlap.
# * BraTS scores regions (WT, TC, ET) with Dice and HD95 per case; empty masks have fixed
#   conventions (Dice 1 / HD95 0 if both are empty, Dice 0 / HD95 373.13 mm if one is),
#   and the cases they apply to can move a mean by themselves.
# * A mean over patients needs its uncertainty (a bootstrap confidence interval), its
#   spread (a box plot with every patient) and a baseline scored on the same patients.
# * Since 2023 BraTS also scores lesion by lesion: each lesion and each false-positive
#   component counts the same, so small missed lesions and stray predictions show.
#
# ## Exercises
#
# 1. A colleague's model reaches accuracy 0.995 and specificity 0.999 on BraTS volumes.
#    What do these numbers tell you about its tumour outlines? On the 60 x 80 image, build
#    a prediction with specificity 1 and Dice 0, and one that finds every tumour pixel
#    (sensitivity 1) yet has a *lower* accuracy than the first.
# 2. For one case, Dice and IoU always rank two predictions in the same order: why? Over
#    several patients, can the *mean* IoU rank two models differently from the mean Dice?
#    Find per-patient Dice values for two models on two patients where it happens.
# 3. With the 1 cm cube of the HD95 section, build a prediction with Dice above 0.9 and
#    HD95 above 10 mm, and one with Dice below 0.6 and HD95 below 3 mm. What does each
#    metric miss that the other sees?
# 4. The ET interval above is wider than the WT one: give two reasons. About how many
#    held-out patients would halve the width of the WT interval? A student lists every
#    held-out patient twice and gets a narrower interval: what is wrong with that?
# 5. The BraTS 2020 winner relabelled any predicted enhancing tumour smaller than a few
#    hundred voxels as necrosis. Using the empty-mask convention, explain when this raises
#    the mean ET Dice and when it lowers it. Which held-out patients above would the rule
#    touch with a limit of 500 voxels (0.5 mL), and how would their ET Dice change?
# 6. The baseline's threshold was chosen on training patients. Choose it on the held-out
#    patients themselves (`threshold_baseline` of their cases) and compare the two
#    thresholds and mean Dice values. Why can a threshold tuned on the held-out patients
#    never score lower on them than the training-chosen one? By how much did it rise here
#    (perhaps not at all), and why is the tuned baseline still not a fair opponent for the
#    U-Net?
# 7. Predict, without running anything, what Keras' `MeanIoU` fed the source notebook's
#    way returns for (a) softmax outputs that are exactly one-hot and right everywhere and
#    (b) outputs that are exactly one-hot and wrong everywhere. Check. Which scores higher,
#    (b) or the softmax-like wrong prediction of the demonstration above, and what does
#    that say about the metric? Why would the report's longer training push the value up,
#    even with masks no better than ours?
# 8. (Optional section.) Remove from the test predictions every connected component of the
#    whole tumour smaller than 100 voxels (`scipy.ndimage.label` numbers the components,
#    `np.bincount` counts their voxels). How do the whole-volume and the lesion-wise Dice
#    change? Compare with `gliseg_nb.predict.remove_small_components`.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 1.** Accuracy and specificity are dominated by the background: they say the
# model does not paint the healthy brain as tumour, and nothing about the outlines. A
# prediction of nothing at all has specificity 1 and Dice 0; one that covers the tumour
# and a margin around it finds every tumour pixel, yet its false positives cost accuracy,
# so it scores *below* the empty prediction:

# %% tags=["solution"] jupyter={"source_hidden": true}
def scores_of(pred, truth):
    tp, fp = np.count_nonzero(pred & truth), np.count_nonzero(pred & ~truth)
    fn, tn = np.count_nonzero(~pred & truth), np.count_nonzero(~pred & ~truth)
    return (f"Dice {2 * tp / (2 * tp + fp + fn):.3f}, sensitivity {tp / (tp + fn):.3f}, "
            f"specificity {tn / (tn + fp):.4f}, accuracy {(tp + tn) / truth.size:.4f}")


nothing = np.zeros_like(big_truth)
with_margin = ndimage.binary_dilation(big_truth, iterations=2)  # the tumour and 2 pixels around it
print("nothing:               ", scores_of(nothing, big_truth))
print("tumour + 2-px margin:  ", scores_of(with_margin, big_truth))

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 2.** For one case $J = D/(2-D)$ grows with $D$, so a higher Dice always
# means a higher IoU. Over patients the means can disagree, because $D/(2-D)$ is convex:
# averaging it rewards a model whose scores are spread out (very good on some patients,
# bad on others) over a model that is steadily middling. Model A below has the lower mean
# Dice and the higher mean IoU. Choose the metric before looking at the results.

# %% tags=["solution"] jupyter={"source_hidden": true}
model_a, model_b = np.array([1.0, 0.2]), np.array([0.62, 0.62])  # Dice on two patients
for title, dice_values in (("A", model_a), ("B", model_b)):
    print(f"model {title}: mean Dice {dice_values.mean():.3f}, mean IoU {np.mean(dice_values / (2 - dice_values)):.3f}")

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 3.** A far blob barely changes Dice but moves HD95 once its border holds more
# than 5 % of all border points; a prediction that is the cube shrunk on every side loses
# most of its voxels (Dice counts volume) while its border stays under 3 mm from the
# truth's (HD95 counts distance). Dice misses *where* the errors are;
# HD95 misses *how much* is wrong when the errors are all near the border.

# %% tags=["solution"] jupyter={"source_hidden": true}
far_blob = cube.copy()
far_blob[28:34, 28:34, 28:34] = True  # a 6 x 6 x 6 false tumour: 9 mm past the cube per axis, 16 mm corner to corner
shrunk = np.zeros_like(cube)
shrunk[12:18, 12:18, 12:18] = True  # the cube, 2 mm smaller on every side
for title, pred in (("cube + far blob", far_blob), ("cube shrunk by 2 mm", shrunk)):
    print(f"{title:20s} Dice {dice_score(pred, cube):.3f}, HD95 {hd95(pred, cube):5.2f} mm")

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 4.** The width of the interval follows the spread of the per-patient values
# divided by the square root of the number of patients. ET values spread more: the
# enhancing tumour is small, so a few voxels of error are a large share of it, and cases
# without ET score exactly 0 or 1 by the convention. Halving the width takes about four
# times the patients. Listing each patient twice narrows the interval by about
# $\sqrt{2}$, but the copies add no information: the bootstrap assumes independent
# patients, and the copies are not.

# %% tags=["solution"] jupyter={"source_hidden": true}
wt_values = np.array([row["scores"]["WT"]["dice"] for row in rows])
et_values = np.array([row["scores"]["ET"]["dice"] for row in rows])
print(f"spread (std) of the per-patient Dice: WT {wt_values.std():.3f}, ET {et_values.std():.3f}")
for title, values in (("as measured", wt_values), ("every patient listed twice", np.repeat(wt_values, 2))):
    low, high = bootstrap_ci(values)
    print(f"WT, {title:27s} width of the 95 % interval {high - low:.3f}")

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 5.** The rule only touches cases with a small predicted enhancing tumour.
# If the truth has none, the case goes from Dice 0 (a false alarm) to Dice 1: the mean
# rises. If the truth does have a small enhancing tumour, the case goes from its Dice
# (often already low) to 0: the mean falls, or stays put where the Dice was already 0.
# The rule pays off when small predicted ET is more often a false alarm than a true small
# ET, as it was on BraTS 2020's data. On the held-out patients above (a volume printed
# as 0.00 mL is a few voxels, not none):

# %% tags=["solution"] jupyter={"source_hidden": true}
touched = []
for row in rows:
    et = row["scores"]["ET"]
    if 0 < et["volume_pred_ml"] < 0.5:  # 0.5 mL = 500 voxels of 1 mm³
        new_dice = 1.0 if et["volume_truth_ml"] == 0 else 0.0  # no ET predicted any more
        print(f"{row['case_id']:28s} truth ET {et['volume_truth_ml']:5.2f} mL, predicted {et['volume_pred_ml']:5.2f} mL: "
              f"Dice {et['dice']:.3f} -> {new_dice:.3f}")
        touched.append(new_dice - et["dice"])
print(f"{len(touched)} of {len(rows)} patients touched; mean ET Dice changes by {np.sum(touched) / len(rows):+.3f}")

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 6.** `threshold_baseline` tries the same grid of thresholds for any patients
# and keeps the one with the best mean Dice on them. The training patients' threshold is
# one of those candidates, so the threshold tuned on the held-out patients scores at least
# as well on them: it can only rise or stay. When the two choices coincide, as they may
# with these few patients, it does not rise at all (compare the printed thresholds).
# It is still not a fair opponent: it was chosen by looking at the answers of the very
# patients it is scored on, so its score says nothing about new patients. The network's
# weights were fitted on training patients and its epoch chosen on validation patients,
# so only the training-chosen threshold is scored the same way. Nothing else in this
# notebook was tuned on the held-out patients.

# %% tags=["solution"] jupyter={"source_hidden": true}
tuned_on_held_out = threshold_baseline([case for _, case in held_out])
print(f"threshold chosen on 8 training patients: {baseline['threshold']:.2f}, "
      f"mean WT Dice on the held-out patients {baseline_wt_dice.mean():.3f}")
print(f"threshold chosen on the held-out ones:   {tuned_on_held_out['threshold']:.2f}, "
      f"mean WT Dice on the held-out patients {tuned_on_held_out['mean_dice']:.3f}")

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 7.** (a) Every entry is exactly 0 or 1 and equal to the target: both IoUs are
# 1, so 1.0. (b) Of each pixel's four entries, two are 0 on both sides, one is 1 only in
# the target and one is 1 only in the prediction: the IoU of the 0-entries is 2 / 4 = 0.5,
# that of the 1-entries 0, the mean 0.25, whatever the image. The demonstration's wrong
# prediction with outputs of 0.85 scored 0.375, *more* than (b): the metric rewards an
# unsure wrong answer over a sure one, because only exact 1.0s can miss. Longer training
# makes the softmax saturate (exactly 1.0 in float32) on more pixels; where they sit on
# the right class, as nearly all of them do, the value moves towards (a) with masks no
# better, as the `probabilities ** power` cell showed.

# %% tags=["solution"] jupyter={"source_hidden": true}
print(f"(a) exactly one-hot and right: {keras_meaniou_as_fed(one_hot_truth, one_hot_truth):.3f}")
wrong_one_hot = np.roll(one_hot_truth, 1, axis=-1)  # every pixel's 1 moved to another class
print(f"(b) exactly one-hot and wrong: {keras_meaniou_as_fed(one_hot_truth, wrong_one_hot):.3f}")
keras_wrong = keras.metrics.MeanIoU(num_classes=4)
keras_wrong.update_state(one_hot_truth, wrong_one_hot)
print(f"    the same with Keras' MeanIoU: {float(keras_wrong.result()):.3f}")

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 8.** Removing small components leaves the whole-volume Dice almost unchanged
# (they hold few voxels) and raises the lesion-wise Dice wherever they were false
# positives, since each of them counted as a lesion with Dice 0. The library's function
# gives the same result, except that it always keeps the largest component. On the test
# patient with the most false positives, whole tumour:

# %% tags=["solution"] jupyter={"source_hidden": true}
from gliseg_nb.predict import remove_small_components

name = max(lesion_rows, key=lambda row: row["scores"]["WT"]["false_positive_lesions"])["case_id"]
item = kept[name]
components, _ = ndimage.label(item["labels"] > 0, structure=np.ones((3, 3, 3)))
sizes = np.bincount(components.ravel())
small = np.flatnonzero(sizes < 100)
cleaned = np.where(np.isin(components, small[small > 0]), 0, item["labels"])
print("same as the library:", np.array_equal(cleaned, remove_small_components(item["labels"], 100)))
for title, labels in (("as predicted", item["labels"]), ("small parts removed", cleaned)):
    lesion = lesion_wise_scores(labels > 0, item["truth"] > 0, item["zooms"])
    print(f"{name} {title:20s} Dice {dice_score(labels > 0, item['truth'] > 0):.3f}, "
          f"lesion-wise Dice {lesion['lesion_dice']:.3f}, {lesion['false_positive_lesions']} false positives")

# %% [markdown]
# ## References
#
# * The report this course follows: *Segmentation of Gliomas in Pre-Operative MRI Scans using U-Net Architecture*. Its code comes from R. Kopál's Kaggle notebook *3D MRI brain tumor segmentation U-Net* (<https://www.kaggle.com/code/rastislav/3d-mri-brain-tumor-segmentation-u-net>), called "the source notebook" in this course.
# * L. Maier-Hein, A. Reinke et al., "Metrics reloaded: recommendations for image analysis validation", *Nature Methods* 21, 195-212, 2024.
# * B. Efron, "Better bootstrap confidence intervals", *Journal of the American Statistical Association* 82(397), 171-185, 1987 (the BCa interval); B. Efron, R. J. Tibshirani, *An Introduction to the Bootstrap*, Chapman & Hall, 1993.
# * A. A. Taha, A. Hanbury, "Metrics for evaluating 3D medical image segmentation: analysis, selection, and tool", *BMC Medical Imaging* 15, 29, 2015.
# * B. H. Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", *IEEE Transactions on Medical Imaging* 34(10), 1993-2024, 2015.
# * S. Bakas et al., "Identifying the best machine learning algorithms for brain tumor segmentation, progression assessment, and overall survival prediction in the BRATS challenge", arXiv:1811.02629, 2018.
# * F. Isensee, P. F. Jaeger, S. A. A. Kohl, J. Petersen, K. H. Maier-Hein, "nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation", *Nature Methods* 18, 203-211, 2021.
