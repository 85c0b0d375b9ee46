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
#   the same masks.

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

import keras
import matplotlib.pyplot as plt
import numpy as np

from gliseg_nb.course import load_or_train
from gliseg_nb.data import load_case
from gliseg_nb.labels import REGIONS
from gliseg_nb.metrics import (
    background_everywhere_scores,
    dice_score,
    evaluate_case,
    hd95,
    keras_meaniou_as_fed,
    report_metrics,
    summarize_scores,
)
from gliseg_nb.metrics.evaluation import format_case_table, format_summary_table
from gliseg_nb.pipeline import preprocess_case
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
# The library's metrics average over the three tumour classes only.
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
# four classes with background, so its 0.62 cannot be turned into an IoU this way either.
#
# ## The soft Dice a network trains on
#
# A network outputs probabilities, not a mask, and a loss must be differentiable, so
# training uses a **soft Dice**: the same formula with probabilities $p$ in place of the
# predicted mask, $\text{soft Dice} = \dfrac{2 \sum p\,t}{\sum p + \sum t}$. The report's
# figure 5.2 works the numerator out on a 4 x 4 example: the probabilities times the target,
# summed, give $|A \cap B| = 7.41$. From scratch, with the numbers of that figure:

# %% tags=["nbval-check-output"]
probabilities = np.array([  # the "prediction" matrix of the report's figure 5.2
    [0.01, 0.03, 0.02, 0.02],
    [0.05, 0.12, 0.09, 0.07],
    [0.89, 0.85, 0.88, 0.91],
    [0.99, 0.97, 0.95, 0.97],
])
target = np.array([[0] * 4, [0] * 4, [1] * 4, [1] * 4], dtype=float)


def soft_dice(p, t, smooth=0.0):
    intersection = np.sum(p * t)  # element-wise multiply, then sum: figure 5.2
    return (2 * intersection + smooth) / (np.sum(p) + np.sum(t) + smooth)


print(f"|A n B| = {np.sum(probabilities * target):.2f}, |A| = {probabilities.sum():.2f}, |B| = {target.sum():.0f}")
print(f"soft Dice from scratch:     {soft_dice(probabilities, target):.4f}")
print(f"soft Dice loss = 1 - Dice:  {1 - soft_dice(probabilities, target):.4f}")

# %% [markdown]
# The library's loss (`gliseg_nb.losses`, what `PRESET`'s training uses) computes the same
# quantity per class on one-hot tensors; as two classes (background, tumour) of one image,
# with no smoothing term it gives the same number. By default it adds `smooth = 1` to the
# numerator and the denominator, so that a class absent from both masks scores 1 instead
# of 0/0: a small shift here, a large one for a tiny class.

# %% tags=["nbval-check-output"]
from gliseg_nb.losses import DICE_SMOOTH, soft_dice_per_class

one_hot_target = np.stack([1 - target, target], axis=-1)[None].astype("float32")  # (1, 4, 4, 2)
one_hot_probabilities = np.stack([1 - probabilities, probabilities], axis=-1)[None].astype("float32")
library = keras.ops.convert_to_numpy(soft_dice_per_class(one_hot_target, one_hot_probabilities, smooth=0.0))
print(f"library, tumour class, smooth=0:  {library[1]:.4f}")
print(f"library, tumour class, smooth={DICE_SMOOTH:g}:  "
      f"{keras.ops.convert_to_numpy(soft_dice_per_class(one_hot_target, one_hot_probabilities))[1]:.4f}"
      f"  (from scratch: {soft_dice(probabilities, target, smooth=DICE_SMOOTH):.4f})")
assert abs(library[1] - soft_dice(probabilities, target)) < 1e-6

# %% [markdown]
# So the report's "Dice 0.62" and "IoU 0.9" cannot describe the same masks: a Dice of 0.62
# means an IoU of 0.45, and an IoU of 0.9 would need a Dice of 0.947. Both numbers came out
# of Keras metrics, so one of them does not measure what its name says. We come back to
# this with real numbers below.
#
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
# The library's `hd95` is the same computation, restricted to the box around the two
# masks (distance transforms cost time in proportion to the volume) and with the BraTS
# conventions for empty masks. On two small examples on a 1 mm grid, both agree:

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
# ## Lesion by lesion: the BraTS 2023 scores
#
# A whole-volume Dice is dominated by the largest lesion. A model that outlines one big
# tumour well, misses a small second one and adds a false one elsewhere still scores well,
# because the small lesions hold few voxels. From 2023 the BraTS challenges also score
# **lesion-wise**: the ground truth is cut into lesions (connected components; lesions
# closer than a few voxels count as one), each lesion gets its own Dice and HD95 against
# the predicted components that reach it, a missed lesion and every predicted component
# that reaches no lesion (a false positive) score Dice 0 and HD95 374 mm (the 2023
# evaluation code rounds the 373.13 mm diagonal up to a round number), lesions of at
# most 50 mm³ are left out, and the case's score is the mean over lesions and false
# positives. Every lesion counts the same, whatever its size:

# %% tags=["nbval-check-output"]
from gliseg_nb.metrics import lesion_wise_scores


def ball(shape, centre, radius):
    grid = np.indices(shape)
    return ((grid - np.reshape(centre, (-1, 1, 1, 1))) ** 2).sum(axis=0) <= radius**2


shape = (60, 60, 40)
big = ball(shape, (18, 18, 20), 9)  # found: about 3 mL
small = ball(shape, (46, 46, 20), 4)  # missed: about 0.3 mL
false_one = ball(shape, (15, 46, 20), 3)  # predicted where there is nothing
truth, prediction = big | small, big | false_one
lesions = lesion_wise_scores(prediction, truth)
print(f"whole-volume Dice {dice_score(prediction, truth):.3f}, HD95 {hd95(prediction, truth):.2f} mm")
print(f"lesion-wise  Dice {lesions['lesion_dice']:.3f}, HD95 {lesions['lesion_hd95']:.2f} mm "
      f"({lesions['lesions']} lesions, {lesions['lesions_missed']} missed, "
      f"{lesions['false_positive_lesions']} false positive)")

# %% [markdown]
# The whole-volume Dice barely notices the missed lesion and the false one (HD95 does
# notice the false one, far from everything); the lesion-wise Dice is (1 + 0 + 0) / 3. `evaluate_case(..., lesion_wise=True)` adds these scores to every
# region, and `gliseg-nb evaluate --lesion-wise` prints them.
#
# ## Scores of a trained model on the test patients
#
# Now the real thing. `load_or_train` returns the model notebook 4 trained (or trains it,
# about a minute with the `quick` preset, if this notebook runs first; with the `report`
# preset on real data, run notebook 4 first, on a GPU), with the split: the test patients
# were never used for training nor for choosing the best epoch. `predict_case` segments each
# whole volume on its original 240 x 240 x 155 grid (notebook 6 shows how) and
# `evaluate_case` scores it by region.

# %%
run = load_or_train(DATA_DIR, PRESET)
test_cases = run.cases_of("test")
print(f"model from {run.run_dir.name} ({'cached' if run.reused else 'trained now'}); "
      f"{len(test_cases)} test patients: {', '.join(case.case_id for case in test_cases)}")

# %%
rows, report_rows, background_rows = [], [], []
for case in test_cases:
    case_data = load_case(case, modalities=list(run.config.modalities))
    labels = predict_case(run.model, case_data, run.config)  # the whole volume, 240 x 240 x 155
    scores = evaluate_case(labels, case_data.labels, case_data.zooms, lesion_wise=True)
    rows.append({"case_id": case.case_id, "scores": scores})
    # The report's numbers were computed on the 2-D training slices: do the same (see below).
    x_slices, y_slices = preprocess_case(case_data, run.config)
    probabilities = run.model.predict(x_slices, verbose=0)
    report_rows.append(report_metrics(np.argmax(probabilities, axis=-1), y_slices, probabilities))
    background_rows.append(background_everywhere_scores(y_slices))
print(format_case_table(rows))

# %% [markdown]
# The specificity columns read 0.998 or more whatever the Dice next to them, as predicted
# above. Dice and HD95 are the columns to read. The mean, median and spread over the test
# patients:

# %%
print(format_summary_table(summarize_scores(rows)))

# %% [markdown]
# And lesion by lesion: the whole-volume Dice beside the lesion-wise one, with the number
# of lesions missed and of false-positive components in each case (`LesDice` is the
# lesion-wise Dice, `FP` the false positives):

# %%
print(format_case_table(rows, metrics=("dice", "lesion_dice", "lesions_missed", "false_positive_lesions")))

# %% [markdown]
# Where the `FP` column is not 0, the model predicted small stray components away from the
# tumour: invisible in the whole-volume Dice, but each one a false lesion in the
# lesion-wise score. On this synthetic data the larger ones mostly sit on the simulated
# white-matter spots that are bright on FLAIR like edema (the look-alikes of notebook 1;
# `docs/benchmarks.md` checks this against the generator's maps). Two usual remedies: discard predicted components
# below a size (`gliseg-nb predict --min-component-voxels`, or by hand in exercise 7), or
# average the predictions over flipped inputs (`--tta`); `docs/benchmarks.md` measures
# both. A size threshold is a trade: real gliomas can have small satellite lesions too.

# %% [markdown]
# ## The report's numbers, on the same model
#
# The source notebook got its numbers from Keras metrics during `model.evaluate`, on the
# 2-D slices the model works with (slices 22 to 121, resized), not on whole volumes. The
# loop above did the same for each test patient: `report_metrics` computes, honestly,
# what the source notebook reported: accuracy over every pixel, its Dice averaged over
# the four classes with background, and Keras' `MeanIoU` fed the way the source notebook
# fed it. `background_everywhere_scores` gives the same numbers for a "model" that
# answers *background* for every pixel: no tumour found at all.

# %%
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

# %% [markdown]
# Read the table column by column:
#
# * **Accuracy.** Predicting background everywhere is right on every background pixel,
#   which is almost all of them: the "model" that finds nothing scores well above 95 %
#   accuracy, close to the trained model. The report's 99.2 % therefore says almost
#   nothing about its tumours.
# * **Dice with background.** The source notebook's Dice averages four classes, background
#   included. Background Dice is about 1 for any model, and with the notebook's smoothing
#   term a class absent from both masks counts as perfect too, so the useless model is
#   already far above 0. The report's 0.62 mixes a near-perfect background with tumour
#   classes that must be much lower.
# * **"IoU 0.9".** Keras' `MeanIoU(num_classes=4)` expects class *indices* (0, 1, 2, 3) by
#   default. The source notebook gave it one-hot targets and softmax probabilities instead.
#   Keras then reads every entry of those arrays as a class index: it truncates the
#   probabilities to integers (nearly all become 0) and compares "0" with "1" entries of
#   the one-hot targets, which are mostly 0 as well. The result depends on how many
#   entries are zero, not on the tumour: in the table it is higher for the "model" that
#   finds nothing than for the trained one. The true mean IoU (argmax first) is lower than
#   the Dice, as it must be.
#
# The small demonstration below feeds Keras' real `MeanIoU` the way the source notebook
# did, with a prediction that gets *every* pixel wrong:

# %% tags=["nbval-check-output"]
true_classes = np.array([[0, 0, 1], [2, 3, 0]])
wrong_classes = (true_classes + 1) % 4  # every pixel wrong
y_true = np.eye(4, dtype="float32")[true_classes]
y_pred = np.full(true_classes.shape + (4,), 0.05, dtype="float32")  # softmax-like outputs
y_pred[np.arange(2)[:, None], np.arange(3)[None, :], wrong_classes] = 0.85
as_fed = keras.metrics.MeanIoU(num_classes=4)
as_fed.update_state(y_true, y_pred)
print(f"Keras MeanIoU fed one-hot and softmax: {float(as_fed.result()):.3f}")
print(f"the same, re-implemented in NumPy:     {keras_meaniou_as_fed(y_true, y_pred):.3f}")
right_way = keras.metrics.MeanIoU(num_classes=4)
right_way.update_state(true_classes, np.argmax(y_pred, axis=-1))
print(f"MeanIoU of the class indices (argmax): {float(right_way.result()):.3f}")

# %% [markdown]
# A prediction that is wrong everywhere gets a "mean IoU" of 0.375 when fed the
# report's way, and 0 when fed class indices. During training, the course's
# `ArgmaxMeanIoU` metric takes the argmax of both sides for this reason.
#
# What to report instead: Dice and HD95 per region (WT, TC, ET), per case, with their mean
# and spread over the test patients, as above. For reference, the winner of BraTS 2020
# (nnU-Net) reached a test Dice of about 0.89 (WT), 0.85 (TC) and 0.82 (ET).
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
#   masks; it came from Keras' `MeanIoU` fed one-hot targets and probabilities.
# * BraTS scores regions (WT, TC, ET) with Dice and HD95 per case; empty masks have fixed
#   conventions (Dice 1 / HD95 0 if both are empty, Dice 0 / HD95 373.13 mm if one is).
# * Since 2023 BraTS also scores lesion by lesion: each lesion and each false-positive
#   component counts the same, so small missed lesions and stray predictions show.
#
# ## Exercises
#
# 1. Shift the predicted mask of the 6 x 8 example by two pixels instead of one. Compute
#    Dice and IoU by hand and check $J = D/(2-D)$.
# 2. Write `specificity` for the 60 x 80 image as a function of the image size. How large
#    must the image be for the specificity to exceed 0.999?
# 3. Look at `background_rows[0]["dice_per_class"]`: the Dice of each class for the
#    background-only prediction. Which classes score 1, and why? What is their mean?
# 4. Find the smallest far blob that changes HD95 in the example above. Then move a 4 x 4 x 4
#    blob closer to the cube: how does HD95 follow the distance?
# 5. Find in the case table the test patient with the lowest ET Dice. Is its enhancing
#    tumour small? What does that say about averaging Dice over patients?
# 6. In the lesion example, make the false positive smaller and smaller (radius 2, 1).
#    When does the whole-volume HD95 stop seeing it? Does the lesion-wise Dice ever stop?
# 7. Remove from the test predictions every connected component of the whole tumour smaller
#    than 100 voxels (`scipy.ndimage.label` numbers the components, `np.bincount` counts
#    their voxels). How do the whole-volume and the lesion-wise Dice change? Compare with
#    `gliseg_nb.predict.remove_small_components`.

# %% [markdown]
# ## References
#
# * The report this course follows: *Segmentation of Gliomas in Pre-Operative MRI Scans using U-Net Architecture*. Its code comes from R. Kopál's Kaggle notebook *3D MRI brain tumor segmentation U-Net* (<https://www.kaggle.com/code/rastislav/3d-mri-brain-tumor-segmentation-u-net>), called "the source notebook" in this course.
# * L. Maier-Hein, A. Reinke et al., "Metrics reloaded: recommendations for image analysis validation", *Nature Methods* 21, 195-212, 2024.
# * A. A. Taha, A. Hanbury, "Metrics for evaluating 3D medical image segmentation: analysis, selection, and tool", *BMC Medical Imaging* 15, 29, 2015.
# * B. H. Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", *IEEE Transactions on Medical Imaging* 34(10), 1993-2024, 2015.
# * S. Bakas et al., "Identifying the best machine learning algorithms for brain tumor segmentation, progression assessment, and overall survival prediction in the BRATS challenge", arXiv:1811.02629, 2018.
# * F. Isensee, P. F. Jaeger, S. A. A. Kohl, J. Petersen, K. H. Maier-Hein, "nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation", *Nature Methods* 18, 203-211, 2021.
