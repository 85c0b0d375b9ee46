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
# * score every test patient by region and summarise the scores;
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

import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
from nilearn import plotting

from gliseg_nb.course import load_or_train
from gliseg_nb.data import load_case
from gliseg_nb.labels import CLASS_NAMES, from_internal
from gliseg_nb.metrics import evaluate_case, summarize_scores
from gliseg_nb.metrics.evaluation import format_case_table, format_summary_table
from gliseg_nb.predict import predict_case, write_prediction
from gliseg_nb.viewers import ComparisonViewer

# %% [markdown]
# The trained model and its split come from `load_or_train`: the model of notebook 4,
# reused from the cache (or trained now, about a minute with the `quick` preset, if this
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
# 2. normalises them exactly as in training: the z-score statistics come from the same
#    training slices, and every other slice gets the same scale;
# 3. resizes each slice that holds brain to `image_size` and predicts its class
#    probabilities (slices without brain are background, and skipped);
# 4. resizes the **probabilities** back to 240 x 240 (bilinear) and only then takes the
#    argmax, so the borders fall between the original pixels instead of in steps of the
#    small image (resizing the labels instead would give blocky outlines);
# 5. sets everything outside the brain to background.

# %%
case = test_cases[0]
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
# coronal view shows something the axial one cannot: the model works slice by slice, so
# its outlines can jump from one axial slice to the next.

# %%
viewer.state.set_plane("axial")
viewer.static_figure()

# %%
viewer.state.set_plane("coronal")
viewer.state.modality = "t1ce" if "t1ce" in viewer.state.images else viewer.state.modality
viewer.redraw()  # update the interactive view too
viewer.static_figure()

# %% [markdown]
# ## Scores of every test patient
#
# Each test patient, segmented and scored by region (WT = 1+2+3, TC = 1+3, ET = 3) with
# Dice, HD95 in millimetres, sensitivity and specificity, then summarised over patients:

# %%
rows = []
for test_case in test_cases:
    test_data = case_data if test_case == case else load_case(test_case, modalities=list(config.modalities))
    test_prediction = prediction if test_case == case else predict_case(run.model, test_data, config)
    rows.append({"case_id": test_case.case_id,
                 "scores": evaluate_case(test_prediction, test_data.labels, test_data.zooms)})
print(format_case_table(rows, metrics=("dice", "hd95")))

# %%
print(format_summary_table(summarize_scores(rows)))

# %% [markdown]
# With three test patients the mean is a rough guide; on BraTS 2020's 369 training cases
# the same split gives 45 test patients. Report the median and the spread too: one case
# whose small enhancing tumour was missed costs Dice 0 and HD95 373 mm and pulls the mean
# down on its own.
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
plotting.plot_roi(written, bg_img=background_image, cut_coords=centre_mm, cmap="autumn", alpha=0.5,
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
# labels; `--tta` averages the predictions over flipped copies (four times slower), and
# `--min-et-voxels N` relabels a total enhancing tumour smaller than N voxels as necrosis
# (the trick of the BraTS 2020 winner, since a false enhancing tumour in a case without one
# costs Dice 0 and HD95 373 mm). `evaluate` scores a folder of predictions against the
# ground truth of every case that has one (each needs a prediction), prints the per-case
# table and the summary you saw above, and can write them as CSV or JSON. On BraTS
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
# (`docs/benchmarks.md`, "Transfer to real scans"), the quick preset reached a mean Dice of
# about 0.7 (WT), 0.6 (TC) and 0.55 (ET): better than its start (0.62 / 0.17 / 0.21) and
# about what the same budget spent on a few real cases gives, far from a real training.

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
# 1. Predict the test case with `tta_flips=True`. How long does it take, and does the Dice
#    of each region change?
# 2. Write the prediction with `label_convention="internal"` and read it back. Which value
#    does the enhancing tumour have now? Why would the BraTS evaluation score this file badly?
# 3. In the coronal view, find a place where the prediction changes abruptly from one axial
#    slice to the next. What kind of network would avoid it?
# 4. Set `min_et_voxels=500` in `predict_case`. For which test patient does it change the
#    ET scores, and in which direction?
# 5. Run the `gliseg-nb predict` command printed above in a terminal, then `gliseg-nb
#    evaluate` on its output folder. Why does `evaluate` complain, and how do you make it
#    score only the test patients?

# %% [markdown]
# ## References
#
# * The report this course follows: *Segmentation of Gliomas in Pre-Operative MRI Scans using U-Net Architecture*. Its code comes from R. Kopál's Kaggle notebook *3D MRI brain tumor segmentation U-Net* (<https://www.kaggle.com/code/rastislav/3d-mri-brain-tumor-segmentation-u-net>), called "the source notebook" in this course.
# * nibabel (<https://nipy.org/nibabel>) and nilearn (<https://nilearn.github.io>): reading NIfTI files and drawing brains; the MNI152 template the synthetic data are built on ships with nilearn.
# * B. H. Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", *IEEE Transactions on Medical Imaging* 34(10), 1993-2024, 2015.
# * F. Isensee, P. F. Jaeger, S. A. A. Kohl, J. Petersen, K. H. Maier-Hein, "nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation", *Nature Methods* 18, 203-211, 2021.
# * Data: BraTS 2020 on Kaggle (<https://www.kaggle.com/datasets/awsaf49/brats20-dataset-training-validation>), BraTS 2019 on Kaggle (<https://www.kaggle.com/datasets/aryashah2k/brain-tumor-segmentation-brats-2019>), the BraTS challenges (<https://www.synapse.org/brats>), the Medical Segmentation Decathlon (<http://medicaldecathlon.com>). BraTS data use requires citing Menze et al. 2015 and Bakas et al. 2017/2018.
