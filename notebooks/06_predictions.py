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
# # 6. Predictions: whole volumes, back in BraTS format
#
# The report ends with pictures of predicted slices (its chapter 8). A segmentation that a
# radiologist's viewer, a surgical planning system or the BraTS evaluation can use is a
# label volume on the patient's own 240 x 240 x 155 grid, in a NIfTI file that lines up
# with the scans. This notebook goes from the trained network to such files.
#
# After this notebook you will be able to:
#
# * segment a whole case with a 2-D network, slice by slice, and put the result back on the
#   original grid;
# * compare a prediction with the ground truth in an interactive viewer, in any plane;
# * score the prediction by region, as notebook 5 does for every held-out patient;
# * write a BraTS-format prediction (`<case_id>.nii.gz`, the release's labels, the scan's
#   affine), read it back with nibabel and check it;
# * do the same from the command line, on real data.

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
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
from matplotlib.colors import ListedColormap
from nilearn import plotting as nilearn_plotting  # not gliseg_nb.plotting

from gliseg_nb.course import demo_case, load_or_train
from gliseg_nb.data import DataError, load_case
from gliseg_nb.labels import CLASS_COLORS, CLASS_NAMES, REGIONS, from_internal
from gliseg_nb.metrics import dice_score, evaluate_case
from gliseg_nb.metrics.evaluation import evaluate_folder, format_case_table
from gliseg_nb.predict import predict_case, write_prediction
from gliseg_nb.viewers import ComparisonViewer

# %% [markdown]
# The trained model and its split come from `load_or_train`: the model of notebook 4,
# reused from the cache (or trained now, a minute or two with the `quick` preset, if this
# notebook runs first; with the `report` preset, train it in notebook 4 on a GPU first).

# %%
run = load_or_train(DATA_DIR, PRESET)
config = run.config
test_cases = run.cases_of("test")
print(f"model {run.run_dir.name} ({'cached' if run.reused else 'trained now'}), "
      f"{config.image_size} px, inputs {list(config.modalities)}")
print("test patients:", ", ".join(case.case_id for case in test_cases))

# %% [markdown]
# ## From slices to a volume
#
# The network takes one 2-D slice at a time, at `image_size` pixels, normalised. To segment
# a whole case, `predict_case`:
#
# 1. reads the case's modalities, **every** axial slice (the report predicts only the 100
#    slices it trains on);
# 2. normalises them exactly as in training: the z-score statistics come from this case's
#    own slices in the training range (`config.slice_start` to the last training slice:
#    22 to 120 with the `quick` preset, 22 to 121 with the report's), and every other
#    slice gets the same scale;
# 3. resizes each slice that holds brain to `image_size` and predicts its class
#    probabilities (slices without brain are background, and skipped), by default four
#    times: the slice and its three in-plane flips, each answer flipped back and the four
#    averaged (`tta_flips="all"`; exercise 1);
# 4. resizes the **probabilities** back to 240 x 240 (bilinear) and only then takes the
#    argmax, so the borders fall between the original pixels instead of in steps of the
#    small image (resizing the labels instead would give blocky outlines);
# 5. sets everything outside the brain to background and, by default, erases predicted
#    tumour components smaller than 1000 voxels (1 mL) except the largest
#    (`min_component_voxels`): stray specks away from the tumour.
#
# The two defaults of steps 3 and 5 raised the whole-tumour Dice of the quick model on the
# synthetic test cases and on real scans (the project's docs/benchmarks.md); pass
# `tta_flips="none", min_component_voxels=0` to see the network's raw answer.

# The example is the test patient with the most enhancing tumour (`demo_case`: for the
# synthetic data it reads each case's volumes from the generator's record; for your own
# data it takes the first high-grade case), so that all three tumour classes show.

# %%
case = demo_case(test_cases, run.data_dir)
case_data = load_case(case, modalities=list(config.modalities))
started = time.perf_counter()
prediction = predict_case(run.model, case_data, config)
print(f"{case.case_id}: predicted in {time.perf_counter() - started:.1f} s")

# %% tags=["nbval-check-output"]
print(f"ground truth: {case_data.labels.shape} {case_data.labels.dtype}")
print(f"prediction:   {prediction.shape} {prediction.dtype}, on the same grid: "
      f"{prediction.shape == case_data.labels.shape}")
print("nothing predicted outside the brain:",
      not prediction[np.all([image == 0 for image in case_data.images.values()], axis=0)].any())

# %% [markdown]
# How much of each class, in millilitres (one voxel is 1 mm³, so 1000 voxels make 1 mL)?

# %%
voxel_ml = float(np.prod(case_data.zooms)) / 1000
print(f"{'class':32s} {'truth mL':>9s} {'predicted mL':>13s}")
for class_id in (1, 2, 3):
    truth_ml = np.count_nonzero(case_data.labels == class_id) * voxel_ml
    predicted_ml = np.count_nonzero(prediction == class_id) * voxel_ml
    print(f"{CLASS_NAMES[class_id]:32s} {truth_ml:9.1f} {predicted_ml:13.1f}")

# %% [markdown]
# ## Truth and prediction side by side
#
# `ComparisonViewer` shows the expert's labels and the model's next to each other, on
# the same slice, with the same controls as the viewer of notebook 1: plane, slice,
# modality, label overlay and its opacity. Both pictures move together: click either to
# move the cursor, step through slices with the arrow keys over it, and read both labels
# of the voxel under the cursor below the pictures. If your Jupyter shows widgets,
# explore the case: where does the model disagree with the expert, at the borders or in
# whole regions? In which plane is it easiest to see?

# %%
viewer = ComparisonViewer(case_data, prediction)
viewer

# %% [markdown]
# The same view as a static figure (what this page shows where widgets cannot run), here
# in the axial plane through the centre of the tumour, then in the coronal plane. The
# coronal view cuts across the axial slices the model predicted one at a time: compare
# how the outlines continue from one row of pixels (one axial slice) to the next in the
# truth and in the prediction, and which classes the prediction misses or adds (compare
# with the volumes printed above). Like the viewer, these figures and nilearn's below
# show the patient's left on the left of the picture (the neurological convention, marked
# L and R), the other way round from the radiological slice figures of notebooks 4 and 7.

# %%
viewer.state.set_plane("axial")
viewer.static_figure()

# %%
viewer.state.set_plane("coronal")
viewer.state.modality = "t1ce" if "t1ce" in viewer.state.images else viewer.state.modality
viewer.redraw()  # update the interactive view too
viewer.static_figure()

# %% [markdown]
# ## Scores of this prediction
#
# The whole-volume prediction lives on the ground truth's grid, so it is scored voxel by
# voxel, by region (WT = 1+2+3, TC = 1+3, ET = 3), with the Dice and HD95 of notebook 5:

# %%
scores = evaluate_case(prediction, case_data.labels, case_data.zooms)
print(format_case_table([{"case_id": case.case_id, "scores": scores}], metrics=("dice", "hd95", "volume_truth_ml")))

# %% [markdown]
# One patient's scores say little about the model: notebook 5 scores every held-out
# patient this way and reports the means with confidence intervals, a box plot and a
# baseline. Those are the numbers to quote.
#
# ## Writing BraTS-format NIfTI
#
# A prediction is only useful if other software can read it. `write_prediction` writes
# `<case_id>.nii.gz`, the file name the BraTS evaluation expects, with:
#
# * the **affine and header of the case's own scans**, so it overlays them in any viewer
#   (ITK-SNAP, 3D Slicer, nilearn) without resampling;
# * unsigned 8-bit labels (a label volume needs no more);
# * the **labels of the case's release**: the course works with 0-3 inside, but BraTS 2019,
#   2020 and 2021 store the enhancing tumour as **4** (and 2023 as 3 again; the Decathlon
#   uses another order), so the classes are converted back on the way out.

# %%
out_dir = Path(tempfile.mkdtemp()) / "predictions"
path = write_prediction(prediction, case, out_dir)
print(path.name)

# %% tags=["nbval-check-output"]
written = nib.load(path)
on_disk = np.asanyarray(written.dataobj)
enhancing_on_disk = int(from_internal(np.array([3]), case.layout)[0])
print(f"file {path.name}: shape {written.shape}, stored as {written.get_data_dtype()}")
print("same affine as the scans:", np.allclose(written.affine, case_data.affine))
print("axes point towards:", nib.aff2axcodes(written.affine))
print(f"layout {case.layout}: internal class 3 (enhancing) is written as {enhancing_on_disk}")
print("enhancing on disk == enhancing predicted:", np.array_equal(on_disk == enhancing_on_disk, prediction == 3))
print("labels that can appear:", sorted(int(v) for v in from_internal(np.arange(4), case.layout)))

# %%
print("labels present in this file:", np.unique(on_disk).tolist())

# %% [markdown]
# The file reads back on the same grid, with the same orientation and the release's
# labels. nilearn draws it over the scan directly, since both carry the same affine:

# %%
centre = np.argwhere(prediction > 0).mean(axis=0) if prediction.any() else np.array(prediction.shape) / 2
centre_mm = nib.affines.apply_affine(written.affine, centre)
first_modality = config.modalities[0]
background_image = nib.Nifti1Image(case_data.images[first_modality], case_data.affine)
# The course's class colours, indexed by the labels on disk (1, 2 and 4 for BraTS 2020):
# colour k - 1 of the map is drawn for label k, between vmin = 0.5 and vmax = top + 0.5.
on_disk_label = [int(v) for v in from_internal(np.arange(4), case.layout)]
top = max(on_disk_label)
colors = [CLASS_COLORS[0]] * top  # labels that cannot occur keep a placeholder colour
for class_id in (1, 2, 3):
    colors[on_disk_label[class_id] - 1] = CLASS_COLORS[class_id]
nilearn_plotting.plot_roi(written, bg_img=background_image, cut_coords=centre_mm,
                          cmap=ListedColormap(colors), vmin=0.5, vmax=top + 0.5, alpha=0.5,
                          dim=-0.5, draw_cross=False, colorbar=False,
                          title=f"{case.case_id}: prediction file over {first_modality.upper()}")
plt.show()

# %% [markdown]
# ## The same from the command line, on real data
#
# Everything above is also a command, for whole folders of cases. On a real BraTS download
# (any layout; validation folders without segmentations work too), after training with
# the `report` preset on a GPU:
#
# ```bash
# gliseg-nb train /data/BraTS2020_TrainingData --preset report --out runs/report
# gliseg-nb predict runs/report /data/BraTS2020_ValidationData --out predictions/
# gliseg-nb predict runs/report /data/BraTS2020_TrainingData --out predictions-train/ \
#     --case BraTS20_Training_001 --case BraTS20_Training_002
# gliseg-nb evaluate predictions-train/ /data/BraTS2020_TrainingData --csv scores.csv
# ```
#
# `predict` takes a run folder (it finds the best model and the settings it was trained
# with) or a `.keras` file, and writes one `<case_id>.nii.gz` per case in the release's
# labels, with `predict_case`'s defaults (each slice averaged over its four in-plane flips:
# four forward passes, 1.3 to 4 times the time of one, depending on the network's size;
# components under 1 mL erased); `--tta lr` averages over the left-right mirror only (two
# passes), `--no-tta` predicts each slice once, `--min-component-voxels 0` keeps every
# component, and
# `--min-et-voxels N` relabels a total enhancing tumour smaller than N voxels as necrosis
# (the trick of the BraTS 2020 winner, since a false enhancing tumour in a case without one
# costs Dice 0 and HD95 373 mm). `evaluate` scores a folder of predictions against the
# ground truth of every case that has one (each needs a prediction), prints the per-case
# table and the summary of notebook 5, and can write them as CSV or JSON. On BraTS
# validation data, whose labels are not public, upload the predictions to the challenge's
# evaluation platform instead.
#
# The same run on the data of this notebook, for the test patients (each command starts
# TensorFlow, so it takes a little while):
#
# ```bash
# gliseg-nb predict RUN_FOLDER DATA_FOLDER --out predictions/ --case ID
# ```
#
# with the folders printed here:

# %%
print(f"gliseg-nb predict {run.run_dir} {run.data_dir} --out predictions/ "
      + " ".join(f"--case {test_case.case_id}" for test_case in test_cases))

# %% [markdown]
# ## A real scan, with the model you just trained
#
# Everything so far ran on synthetic brains. If this machine is online, one real BraTS 2018
# case (a high-grade glioma, about 10 MB, from the public DeepBrainSeg repository, each file
# checked against its SHA-256 hash) can be downloaded and segmented by the same model:
# set `TRY_A_REAL_SCAN = True` and run the next two cells. Offline, the download fails with
# one line saying so and nothing is left behind; the rest of the notebook does not depend
# on it. How well do synthetic-trained models do on real scans? Measured on five real cases
# (in the project's docs/benchmarks.md), the quick preset reached a mean Dice of about 0.80
# (WT), 0.66 (TC) and 0.63 (ET) over two training seeds with `predict_case`'s defaults
# (0.77, 0.64 and 0.57 in one pass without clean-up): at least as good as the same
# budget spent on three real cases, and better on TC and ET (notebook 4's table, "Synthetic
# scores are not real-scan scores"), but far from a real training.

# %%
TRY_A_REAL_SCAN = False  # True: download one real case (about 10 MB) and segment it

# %%
if TRY_A_REAL_SCAN:
    from gliseg_nb.data import DataError, fetch_example_case, find_cases

    try:
        (real_case,) = find_cases(fetch_example_case(Path(tempfile.gettempdir()) / "gliseg-nb-example"))
    except DataError as error:  # offline, or a file that does not match its hash
        print(f"no real case: {error}")
    else:
        real_data = load_case(real_case, modalities=list(config.modalities))
        real_prediction = predict_case(run.model, real_data, config)
        real_scores = evaluate_case(real_prediction, real_data.labels, real_data.zooms)
        print(f"{real_case.case_id}: Dice WT {real_scores['WT']['dice']:.2f}, "
              f"TC {real_scores['TC']['dice']:.2f}, ET {real_scores['ET']['dice']:.2f}")
        display(ComparisonViewer(real_data, real_prediction))
else:
    print("skipped: set TRY_A_REAL_SCAN = True above (needs the internet)")

# %% [markdown]
# ## Summary
#
# * A 2-D network segments a volume slice by slice: normalise every slice as in training,
#   predict the slices with brain, resize the probabilities (not the labels) back to the
#   original size, take the argmax, clear everything outside the brain.
# * The result lives on the case's own 240 x 240 x 155 grid, so it can be compared voxel by
#   voxel with the ground truth, in a viewer or by region scores (Dice, HD95).
# * A BraTS-format prediction is `<case_id>.nii.gz` with the scan's affine and header and
#   the release's labels (4 = enhancing for BraTS 2019-2021).
# * `gliseg-nb predict` and `gliseg-nb evaluate` do the same for whole folders, on real
#   data.
#
# ## Exercises
#
# 1. Before running it: should averaging the predictions over flipped inputs change the
#    prediction more at the border of the tumour or inside it, and why? The prediction
#    above used both of `predict_case`'s defaults (four flips, clean-up under 1 mL).
#    Predict the case again as the network's raw answer (`tta_flips="none",
#    min_component_voxels=0`) and with the four flips but no clean-up
#    (`min_component_voxels=0`): how long do the flips take, and how does each default
#    move the region scores? (Notebook 7 builds the left-right flip by hand and compares
#    it with one pass.)
# 2. Wrap the written labels in a NIfTI image with an identity affine
#    (`nib.Nifti1Image(on_disk, np.eye(4))`) and draw it over the scan with nilearn as
#    above. What goes wrong, and why? Would `evaluate_case` notice?
# 3. Write the prediction with `label_convention="internal"`. The BraTS evaluation of
#    2019-2021 reads 4 as enhancing tumour and has no label 3. Which of the three region
#    scores would it get wrong on this file, and which would survive? Check by scoring the
#    file's labels with the 2019-2021 regions (WT = 1, 2, 4; TC = 1, 4; ET = 4).
# 4. Write the predictions of all the test patients into one folder with
#    `write_prediction` and score the folder with `evaluate_folder` (what `gliseg-nb
#    evaluate` runs; `case_ids` limits it to the test split). Do the scores match those
#    computed in memory? Then overwrite one file with the identity-affine image of
#    exercise 2 and score the folder again: what happens, and why is that better than
#    what `evaluate_case` does?
# 5. In the coronal view, the outlines are built from axial slices predicted one by one.
#    What would you change in the network's input or architecture so that neighbouring
#    slices agree, and what would it cost?

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 1.** Inside the tumour and far outside it the network is sure whichever way
# the slice is flipped, so the average changes nothing there; at the border the
# probabilities of the flipped copies differ, and averaging them moves the border and
# removes isolated voxels that only one copy predicted. The four flips cost four forward
# passes instead of one, but less than four times the time: with a small 64 px network,
# normalising, resizing and the argmax, done once, take a good part of it; with the
# report's network the forward passes dominate, and the cost approaches 4 times. The
# clean-up only erases small components, so it changes few voxels and the whole-volume
# Dice little; where it lowers a score, some of what it erased was true tumour. Its gain
# is in the stray components away from the tumour, which notebook 5's lesion-wise scores
# count. On this case, timed back to back in CPU seconds, which other programs on the
# machine disturb less than the clock (the default prediction above also set TensorFlow
# up, so it is not timed again; its scores are the last row); the first row is the
# network's raw answer, notebook 7's "no flip":

# %% tags=["solution"] jupyter={"source_hidden": true}
timings, variant_labels = {}, {}
for title, options in (("no flip, no clean-up", {"tta_flips": "none", "min_component_voxels": 0}),
                       ("four flips, no clean-up", {"min_component_voxels": 0})):
    started = time.process_time()  # CPU time of this process, all its threads
    variant_labels[title] = predict_case(run.model, case_data, config, **options)
    timings[title] = time.process_time() - started
print(f"CPU s: no flip {timings['no flip, no clean-up']:.1f}, four flips {timings['four flips, no clean-up']:.1f} "
      f"({os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f})")
variant_labels["four flips and clean-up (default)"] = prediction
for title, labels in variant_labels.items():
    variant_scores = evaluate_case(labels, case_data.labels, case_data.zooms)
    print(f"{title:34s} " + ", ".join(f"{region} {variant_scores[region]['dice']:.3f}" for region in REGIONS)
          + f"; voxels whose class differs from the default's: {np.count_nonzero(labels != prediction)}")

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 2.** The labels are the same array, but the identity affine says voxel
# (i, j, k) lies at (i, j, k) mm, with the axes pointing right, anterior and superior
# (RAS), while the scans' affine points the first two axes the other way (L, P, S) from
# another origin. nilearn, and every viewer, places an image by its affine. Two reversed
# axes are a turn by 180 degrees in the axial plane, not a mirror (the two affines'
# determinants have the same sign), so the prediction lands rotated and shifted against
# the scan: an error that shows at once. The dangerous one reverses a single axis, a
# silent left-right flip: a mirror image, with the tumour in the other hemisphere, on
# brain, looking plausible. `evaluate_case` compares arrays voxel by voxel and would
# notice neither: the mistake only shows in world coordinates, in viewers and in any
# software that resamples (`evaluate_folder` checks the affine, exercise 4). Where the
# centre of the predicted tumour lands:

# %% tags=["solution"] jupyter={"source_hidden": true}
wrong_affine = nib.Nifti1Image(on_disk, np.eye(4))
wrong_centre_mm = nib.affines.apply_affine(wrong_affine.affine, centre)
print("axes with the scan's affine:", nib.aff2axcodes(written.affine), "with the identity:", nib.aff2axcodes(wrong_affine.affine))
print(f"determinants: {np.linalg.det(written.affine[:3, :3]):+.0f} (scan), {np.linalg.det(wrong_affine.affine[:3, :3]):+.0f} "
      "(identity): same sign, a rotation; a left-right flip would change the sign")
print(f"tumour centre in scanner coordinates: {np.round(centre_mm, 1)} mm with the scan's affine, "
      f"{np.round(wrong_centre_mm, 1)} mm with the identity: {np.linalg.norm(wrong_centre_mm - centre_mm):.0f} mm apart")

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 3.** The file stores the enhancing tumour as 3. An evaluation that expects
# 0, 1, 2 and 4 finds no enhancing voxel: ET scores Dice 0 wherever the truth has
# enhancing tumour (and HD95 373 mm), TC loses the enhancing part and drops. WT survives
# only if the evaluation defines it as every label above 0; one that defines it as the
# labels 1, 2 and 4 loses the label-3 voxels there too. (An evaluation that rejects
# unknown labels would refuse the file, the better outcome.)

# %% tags=["solution"] jupyter={"source_hidden": true}
internal_path = write_prediction(prediction, case, out_dir / "internal", label_convention="internal")
print("labels in the internal-convention file:", np.unique(np.asanyarray(nib.load(internal_path).dataobj)).tolist())
print("classes 0-3 are written as", list(range(4)), "(internal) instead of",
      [int(v) for v in from_internal(np.arange(4), case.layout)], f"({case.layout})")
internal_labels = np.asanyarray(nib.load(internal_path).dataobj)
truth_on_disk = from_internal(case_data.labels, case.layout)
regions_2020 = {"WT": (1, 2, 4), "TC": (1, 4), "ET": (4,)}
print(f"{'Dice as a 2019-2021 evaluation reads the file':46s} {'release labels':>14s} {'internal labels':>16s}")
for region, region_labels in regions_2020.items():
    truth_mask = np.isin(truth_on_disk, region_labels)
    print(f"  {region} = labels {', '.join(map(str, region_labels)):30s} "
          f"{dice_score(np.isin(on_disk, region_labels), truth_mask):14.3f} "
          f"{dice_score(np.isin(internal_labels, region_labels), truth_mask):16.3f}")
print(f"  {'WT = every label above 0':42s} {dice_score(on_disk > 0, truth_on_disk > 0):14.3f} "
      f"{dice_score(internal_labels > 0, truth_on_disk > 0):16.3f}")

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 4.** The scores from the files match those computed in memory: the files
# hold the same labels, on the same grid, in the release's labels, which `evaluate_folder`
# converts back. It warns once that the folder has no manifest (`gliseg-nb predict` writes
# one naming the model, so that predictions of two models are never scored as a mix). A
# file with the wrong affine it refuses, with one line naming the file: it checks that
# each prediction lines up with its scans in space, which `evaluate_case`, given two
# arrays, cannot do.

# %% tags=["solution"] jupyter={"source_hidden": true}
folder = out_dir / "test-split"
in_memory = {}
for test_case in test_cases:
    if test_case == case:  # segmented and scored above
        write_prediction(prediction, case, folder)
        in_memory[case.case_id] = scores
        continue
    test_data = load_case(test_case, modalities=list(config.modalities))
    test_labels = predict_case(run.model, test_data, config)
    write_prediction(test_labels, test_case, folder)
    in_memory[test_case.case_id] = evaluate_case(test_labels, test_data.labels, test_data.zooms)
test_ids = [test_case.case_id for test_case in test_cases]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from_files = evaluate_folder(folder, run.data_dir, case_ids=test_ids)
for message in caught:
    print("warning:", message.message)
for row in from_files:
    same = all(np.isclose(row["scores"][region]["dice"], in_memory[row["case_id"]][region]["dice"]) for region in REGIONS)
    print(f"{row['case_id']}: Dice from the file = Dice in memory, every region: {same}")
nib.save(wrong_affine, folder / path.name)  # exercise 2's identity affine, same labels
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluate_folder(folder, run.data_dir, case_ids=test_ids)
except DataError as error:
    print("refused:", error)

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 5.** Give the network its neighbours: a 2.5-D input stacks the slices above
# and below as extra channels (a few more input channels, almost no extra cost; notebook 7
# builds it and measures it against the 2-D network), or a 3-D U-Net convolves across
# slices too (far more memory and compute per case, and fewer training samples per
# patient). Averaging the predictions of networks trained on axial,
# coronal and sagittal slices (a triplanar ensemble) is another way, at three times the
# cost of prediction.

# %% [markdown]
# ## References
#
# * The report this course follows: *Segmentation of Gliomas in Pre-Operative MRI Scans using U-Net Architecture*. Its code comes from R. Kopál's Kaggle notebook *3D MRI brain tumor segmentation U-Net* (<https://www.kaggle.com/code/rastislav/3d-mri-brain-tumor-segmentation-u-net>), called "the source notebook" in this course.
# * nibabel (<https://nipy.org/nibabel>) and nilearn (<https://nilearn.github.io>): reading NIfTI files and drawing brains; the MNI152 template the synthetic data are built on ships with nilearn.
# * B. H. Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", *IEEE Transactions on Medical Imaging* 34(10), 1993-2024, 2015.
# * F. Isensee, P. F. Jaeger, S. A. A. Kohl, J. Petersen, K. H. Maier-Hein, "nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation", *Nature Methods* 18, 203-211, 2021.
# * Data: BraTS 2020 on Kaggle (<https://www.kaggle.com/datasets/awsaf49/brats20-dataset-training-validation>), BraTS 2019 on Kaggle (<https://www.kaggle.com/datasets/aryashah2k/brain-tumor-segmentation-brats-2019>), the BraTS challenges (<https://www.synapse.org/brats>), the Medical Segmentation Decathlon (<http://medicaldecathlon.com>). BraTS data use requires citing Menze et al. 2015 and Bakas et al. 2017/2018.
