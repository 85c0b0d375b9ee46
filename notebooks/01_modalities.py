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
# # 1. The data: BraTS and the four MRI contrasts
#
# After this notebook you will be able to:
#
# * describe a BraTS case: four co-registered MRI volumes and one label volume;
# * say what T1, T1ce, T2 and FLAIR each show, and which tumour part is bright in which;
# * open a NIfTI file with nibabel, read its header and only the voxels you need;
# * say what the course's synthetic cases simulate, and what they do not;
# * draw a case with nilearn and with the course's interactive viewer;
# * explain, from intensity histograms, why images must be normalised before training.

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
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
from nilearn import plotting

from gliseg_nb.course import demo_case
from gliseg_nb.data import find_cases, format_case_table, get_data_dir, load_case
from gliseg_nb.labels import label_colormap
from gliseg_nb.orientation import axial_display
from gliseg_nb.plotting import mark_sides, plot_case_gallery
from gliseg_nb.viewers import CaseViewer

data_dir = get_data_dir(DATA_DIR)
cases = find_cases(data_dir)

# %% [markdown]
# ## BraTS
#
# BraTS (*Brain Tumor Segmentation*) is a yearly challenge, run since 2012, that publishes
# pre-operative MRI of glioma patients collected in many hospitals, together with expert
# outlines of the tumour. It is the standard benchmark of the field. Every case holds:
#
# * four MRI volumes of the same head (T1, T1ce, T2, FLAIR), resampled to 1 mm voxels,
#   aligned to each other and to a common brain template (*co-registered*), with skull and
#   scalp removed (*skull-stripped*), on a grid of 240 x 240 x 155 voxels;
# * for training cases, one label volume on the same grid, drawn by one to four raters
#   following one protocol and approved by experienced neuroradiologists.
#
# Files are NIfTI (`.nii` or `.nii.gz`), the usual format of neuroimaging. The releases
# name and arrange their files differently; `find_cases` recognises every layout, so the
# same code reads the synthetic data, the Kaggle copy of BraTS 2020 the report uses, or
# BraTS 2023.

# %% tags=["nbval-check-output"]
print(f"{len(cases)} cases, layout {cases[0].layout}")
print(format_case_table(cases[:3]))

# %% [markdown]
# ## The four contrasts, and what each one shows
#
# An MRI scanner measures how hydrogen nuclei (mostly in water and fat) return to rest
# after a radio pulse. Two time constants describe that return, **T1** and **T2**, and they
# differ between tissues. A *sequence* is a recipe of pulses and timings that makes the
# image brightness depend mostly on one of them: that is what "T1-weighted" means.
#
# | contrast | how it is made | bright | dark | the tumour |
# |---|---|---|---|---|
# | **T1** | T1-weighted | white matter (fatty myelin) | cerebrospinal fluid (CSF) | often slightly dark; shows anatomy |
# | **T1ce** (T1Gd) | T1 after injecting gadolinium | where contrast leaks out of vessels | CSF, necrosis | **enhancing tumour** bright, typically a rim around a dark necrotic core |
# | **T2** | T2-weighted | water: CSF **and** edema | white matter | edema and tumour bright, but so are the ventricles |
# | **FLAIR** | T2-weighted, with the signal of free water (CSF) suppressed | edema, infiltrated tissue | CSF | **edema** stands out next to dark ventricles |
#
# Gadolinium normally stays inside blood vessels because the **blood-brain barrier** keeps
# it there. Aggressive tumour tissue breaks that barrier, so contrast seeps in and makes
# it bright on T1ce. Contrast also shows in normal structures: vessels, because the blood
# inside them carries the gadolinium, and the choroid plexus inside the ventricles, which
# has no barrier; so "bright on T1ce" is not the same as "tumour". Likewise, small bright
# spots on FLAIR in older patients' white matter are often not tumour. The synthetic data
# include such look-alikes on purpose.
#
# This is why BraTS gives four contrasts: no single one separates all three tumour parts.
# The report's source notebook (and our `report` preset) feeds the network two of them,
# FLAIR and T1ce, which between them show the edema and the enhancing tumour. The `quick`
# preset reads all four: T1 and T2 help to tell the necrotic core from the edema, and on
# real scans a model trained on the synthetic data found the tumour core clearly better
# with four contrasts than with two (measured on five real BraTS cases; the numbers are in
# the course's repository, `docs/benchmarks.md`, section *Transfer to real scans*).

# %% [markdown]
# ## The embedded cases: what is simulated, and what is not
#
# Unless you set `DATA_DIR`, every case in this course is synthetic: written by
# `gliseg_nb.data.synthesize` on your machine, in the BraTS 2020 layout, with no patient
# behind it. The generator records how it drew each case in `synthetic_parameters.json`
# beside the cases. Per case: the grade it imitates, the tumour volumes (WT, TC and ET, the
# regions of notebook 2), the number of tumour foci, the thickness of the axial slices it
# simulated (a dash: 1 mm, sharp), whether the skull-strip edge is ragged, and the brain's
# size relative to the template.

# %%
import json


def whole_tumour_ml(parameters):
    volumes = parameters["volumes_ml"]
    return volumes["necrotic_core"] + volumes["edema"] + volumes["enhancing"]


parameters_file = data_dir / "synthetic_parameters.json"
simulated = json.loads(parameters_file.read_text())["cases"] if parameters_file.is_file() else []
if simulated:
    print(f"{'case':22s} grade  WT mL  TC mL  ET mL  foci  thick slices  ragged edge  brain size")
    for parameters in simulated:
        volumes = parameters["volumes_ml"]
        thick = [scan["slice_thickness_mm"] for scan in parameters["scanner"].values()
                 if scan["slice_thickness_mm"]]
        print(f"{parameters['case_id']:22s} {parameters['grade']:5s} {whole_tumour_ml(parameters):6.0f} "
              f"{volumes['necrotic_core'] + volumes['enhancing']:6.0f} {volumes['enhancing']:6.0f} "
              f"{parameters['lesions']:5d}  {f'{max(thick):.1f} mm' if thick else '-':>12s}  "
              f"{'yes' if parameters['skull_strip_edge'] else 'no':>11s}  "
              f"{100 * np.mean(parameters['anatomy_scale']):8.0f} %")
else:
    print(f"{data_dir}: no synthetic_parameters.json, so these are not the synthetic cases")

# %% [markdown]
# Six of them, from the smallest whole tumour to the largest and one of them low-grade-like
# (LGG), each cut through the axial slice with the most tumour, FLAIR above and T1ce
# below, the ground-truth labels outlined in the course's colours (red necrotic or
# non-enhancing core, green edema, yellow enhancing tumour), the patient's right on the left
# (R and L at the edges). With your own data, the first six cases that have labels.

# %%
by_id = {case.case_id: case for case in cases}
if simulated:
    by_size = sorted(simulated, key=whole_tumour_ml)
    picked = [by_size[round(i * (len(by_size) - 1) / 5)] for i in range(6)]
    low_grade = [parameters for parameters in by_size if parameters["grade"] == "LGG"]
    if low_grade and all(parameters["grade"] != "LGG" for parameters in picked):
        # Show a low-grade-like case too: the middle-sized one replaces the pick closest in size.
        middle = low_grade[len(low_grade) // 2]
        closest = min(range(1, 5), key=lambda i: abs(whole_tumour_ml(picked[i]) - whole_tumour_ml(middle)))
        picked[closest] = middle
        picked.sort(key=whole_tumour_ml)
    gallery_cases = [by_id[parameters["case_id"]] for parameters in picked]
    titles = [f"{p['case_id'].rsplit('_', 1)[-1]}: {p['grade']}, WT {whole_tumour_ml(p):.0f} mL" for p in picked]
else:  # your own data: the first six cases with a segmentation
    gallery_cases, titles = [case for case in cases if case.seg is not None][:6], None
plot_case_gallery(gallery_cases, modalities=("flair", "t1ce"), titles=titles)
plt.show()

# %% [markdown]
# **What is simulated.** Every case starts from the same brain, the MNI152 template that
# ships with nilearn (an average of 152 adult brains), warped per case: a brain of its own
# size (the table's last column), a smooth random deformation of a few millimetres, larger
# or smaller ventricles, and anatomy pushed aside by the tumour (mass effect). The tumours follow
# rules meant to give real gliomas' sizes (whole tumour from a few tens to a few hundred mL,
# see the table; the core about half of it) and shapes: in high-grade-like cases (HGG in the table) an uneven, partly incomplete
# enhancing rim around an off-centre necrosis; in low-grade-like cases (LGG) a large
# non-enhancing core with little or no enhancement; edema that spreads along the white
# matter and stops at the cortex; now and then a second focus. Then what fools a model on
# real scans: enhancing vessels and choroid plexus on T1ce, FLAIR-bright white-matter spots
# that are not tumour, and in some cases a ragged skull-strip edge. Last, the scanner:
# intensities of each tissue from one fixed table (varied by a few per cent per case), a
# global scale, a slow bias field, noise, blur, and in many cases (the table's *thick
# slices* column) thick axial slices of 2.5-6.5 mm resampled back to 1 mm, which blurs the
# images along the head's axis, as in many older BraTS scans.
#
# **What is not.** One template, warped, is not a population: every brain has the same
# folds, no atrophy, no other disease, no surgical cavity. No tumour grew: shapes and
# textures come from a few random rules, and intensities from one table, while real
# scanners and sequences differ far more. There is no motion, no ghosting, no
# misregistration between the contrasts. And the labels are perfect, since the generator
# knows the truth; real labels are drawn by raters who disagree (notebook 0). A score
# measured on these cases therefore says how well a model fits the simulator. What it is
# worth on real scans has to be measured on real scans: notebook 4 (section *Synthetic
# scores are not real-scan scores*) quotes that measurement.

# %% [markdown]
# ## Reading a NIfTI file with nibabel
#
# `gliseg_nb.data.load_case` does the reading for the rest of the course. Do it once by
# hand to see what happens, on the case the course shows first: the high-grade case with
# the most enhancing tumour (`demo_case` reads the generator's record; with your own data,
# the first high-grade case). `nib.load` reads only the **header**; the voxels stay on disk
# behind `img.dataobj`, an array *proxy*.

# %% tags=["nbval-check-output"]
demo = demo_case(cases, data_dir)
print("case:", demo.case_id)
flair_img = nib.load(demo.modalities["flair"])
print("voxels not read yet:", type(flair_img.dataobj).__name__)
print("shape:", flair_img.shape)
print("stored as:", flair_img.header.get_data_dtype())
print("voxel size (mm):", tuple(float(size) for size in flair_img.header.get_zooms()))
print("axes point towards:", nib.aff2axcodes(flair_img.affine))

# %% [markdown]
# The **affine** maps voxel indices to millimetres in the scanner's world, and
# `aff2axcodes` says where each array axis points. BraTS files run their first two axes
# towards the patient's Left and Posterior (and the third towards Superior): the first row
# of the array is the patient's right side. Plotting an array with `plt.imshow` ignores
# all that, which is why raw-array pictures of BraTS often come out rotated or mirrored.
# nilearn, the course's viewer and its figures use the affine (the figures through
# `gliseg_nb.orientation.axial_display`, as below).
#
# Slicing the proxy reads only what you ask for. `get_fdata()`, which the report uses,
# reads *everything* and converts it to 64-bit floats:

# %%
middle = flair_img.shape[2] // 2
one_slice = np.asanyarray(flair_img.dataobj[:, :, middle])  # one axial slice, stored type
whole_volume = flair_img.get_fdata()  # every voxel, as float64, cached inside flair_img
print(f"one slice: {one_slice.shape}, {one_slice.dtype}, {one_slice.nbytes / 1e6:.2f} MB")
print(f"get_fdata(): {whole_volume.shape}, {whole_volume.dtype}, {whole_volume.nbytes / 1e6:.0f} MB")
flair_img.uncache()  # give the memory back
del whole_volume

# %% [markdown]
# That slice drawn both ways: `plt.imshow` of the stored array puts the array's first axis
# (right to left) down the screen; `axial_display` reads the affine and turns the slice so
# that anterior is at the top and the patient's right on the left, as radiologists read it.

# %%
figure, (raw_axis, display_axis) = plt.subplots(1, 2, figsize=(8, 4), layout="constrained")
raw_axis.imshow(one_slice, cmap="gray")
raw_axis.set_title("plt.imshow(stored array)")
# Where the patient's sides end up: the first array axis runs from right to left, down.
raw_axis.text(0.5, 0.98, "R", transform=raw_axis.transAxes, color="white", ha="center", va="top")
raw_axis.text(0.5, 0.02, "L", transform=raw_axis.transAxes, color="white", ha="center", va="bottom")
display_axis.imshow(axial_display(one_slice, flair_img.affine), cmap="gray")
display_axis.set_title("axial_display: anterior up, R on the left")
mark_sides(display_axis)  # radiological: R at the left edge, L at the right
for axis in (raw_axis, display_axis):
    axis.set_xticks([])
    axis.set_yticks([])
plt.show()

# %% [markdown]
# `get_fdata()` is not wrong, but on a full BraTS set (369 training cases x 5 files) its
# float64 copies cost several times the memory of the stored data (four times for 16-bit
# integers, as here), and it decodes slices the report then throws away. Two good habits:
#
# * `np.asanyarray(img.dataobj)` returns the voxels in their stored type when the header
#   has no scale factor, as BraTS files do (with one, nibabel applies it and returns
#   floats, as `get_fdata` would), and `img.dataobj[..., a:b]` reads only slices
#   `a` to `b - 1`. With uncompressed `.nii` files (the Kaggle copy) only those bytes are
#   read; with `.nii.gz` the file must still be decompressed up to them.
# * For labels, never compare floats to integers: read them as integers.
#
# (The old `img.get_data()`, still seen in tutorials, was removed from nibabel in 5.0.)
#
# `load_case` does exactly this for all files of a case, checks that they agree (same grid,
# same affine, no missing or corrupt file, no NaN) and converts the labels to the course's
# classes 0-3. It returns float32 images, which is what a network wants:

# %% tags=["nbval-check-output"]
case_data = load_case(demo)
for name, volume in case_data.images.items():
    print(f"{name:6s} {volume.shape} {volume.dtype}")
print(f"labels {case_data.labels.shape} {case_data.labels.dtype}, classes {np.unique(case_data.labels).tolist()}")

# %% [markdown]
# ## Drawing a case with nilearn
#
# nilearn's plotting functions take nibabel images (not arrays), so they know the affine:
# slices are cut in millimetre coordinates, in the *neurological* convention (the
# patient's left on the left of the picture, marked L and R): the other way round from the
# gallery and the `axial_display` picture above. We cut through the centre of
# the tumour, found from the labels.

# %%
tumour_voxels = np.argwhere(case_data.labels > 0)
centre_voxel = (tumour_voxels.min(axis=0) + tumour_voxels.max(axis=0)) / 2
centre_mm = nib.affines.apply_affine(case_data.affine, centre_voxel)
print("tumour centre, voxel:", centre_voxel.round(1), " world (mm):", centre_mm.round(1))

figure, axes = plt.subplots(4, 1, figsize=(8, 10))
for ax, modality in zip(axes, ["t1", "t1ce", "t2", "flair"]):
    image = nib.load(demo.modalities[modality])
    plotting.plot_anat(image, cut_coords=centre_mm, axes=ax, title=modality.upper(),
                       dim=-0.5, draw_cross=False)
plt.show()

# %% [markdown]
# Compare the four rows with the table above: the rim that lights up on T1ce, the edema
# that is bright on both T2 and FLAIR, and the ventricles that are bright on T2 but dark
# on FLAIR.
#
# The ground-truth labels go on top with `plot_roi`. On disk BraTS stores the enhancing
# tumour as 4; we build an image of the course's classes 0-3 (same affine) so that the
# colours are those of the report: red necrotic core, green edema, yellow enhancing
# tumour.

# %%
labels_img = nib.Nifti1Image(case_data.labels, case_data.affine)
t1ce_img = nib.load(demo.modalities["t1ce"])
label_cmap, _ = label_colormap()
plotting.plot_roi(labels_img, bg_img=t1ce_img, cut_coords=centre_mm, cmap=label_cmap,
                  vmin=0, vmax=3, alpha=0.6, dim=-0.5, draw_cross=False, colorbar=False,
                  title="labels over T1ce")
plt.show()

# %% [markdown]
# ## Intensities have no units
#
# A CT scanner measures in Hounsfield units: water is 0 in every hospital. MRI brightness
# has no such unit. It depends on the scanner, the coil, the settings and even the position
# in the head (a slow brightness drift called the *bias field*). The same tissue can be 300
# in one case and 900 in another.
#
# Look at the histograms of brain voxels (non-zero voxels, since the background is 0 after
# skull stripping) for two cases: the case above, and the one whose scanner scales (the
# generator records one per contrast) differ most from its own; with your own data, the
# next case. The top row is raw; the bottom row is *z-scored*: for each
# case and each contrast, subtract the mean of the brain voxels and divide by their
# standard deviation.

# %%
if simulated:  # the case whose recorded scanner scales differ most from the demo case's, in every contrast
    contrasts = ("t1", "t1ce", "t2", "flair")
    log_scale = {parameters["case_id"]: np.log([parameters["scanner"][m]["scale"] for m in contrasts])
                 for parameters in simulated}
    second_id = max((case_id for case_id in log_scale if case_id != demo.case_id),
                    key=lambda case_id: np.abs(log_scale[case_id] - log_scale[demo.case_id]).min())
else:  # your own data: the next case
    second_id = next(case.case_id for case in cases if case.case_id != demo.case_id)
second_case = load_case(by_id[second_id])
figure, axes = plt.subplots(2, 4, figsize=(14, 5.5), layout="constrained")
medians = {}
for column, modality in enumerate(["t1", "t1ce", "t2", "flair"]):
    for data, colour in ((case_data, "tab:blue"), (second_case, "tab:orange")):
        volume = data.images[modality]
        brain = volume[volume != 0]
        zscored = (brain - brain.mean()) / brain.std()
        label = data.case.case_id
        medians[label, modality] = (np.median(brain), np.median(zscored))
        axes[0, column].hist(brain, bins=100, histtype="step", color=colour, label=label)
        axes[1, column].hist(zscored, bins=100, range=(-4, 6), histtype="step",
                             color=colour, label=label)
    axes[0, column].set_title(f"{modality.upper()}: raw")
    axes[1, column].set_title(f"{modality.upper()}: z-scored")
    axes[1, column].set_xlabel("intensity")
axes[0, 0].legend(fontsize=8)
plt.show()
print("median brain intensity, raw -> z-scored:")
for data in (case_data, second_case):
    label = data.case.case_id
    print(f"  {label:22s} " + "   ".join(f"{m.upper()} {medians[label, m][0]:5.0f} -> {medians[label, m][1]:5.2f}"
                                       for m in ("t1", "t1ce", "t2", "flair")))

# %% [markdown]
# Raw, the two cases do not line up: in each contrast the bulk of brain (the tall hump of
# each curve) sits at a different value in the two cases, and not even in the same
# direction for every contrast (compare the raw medians printed under the figure). Each
# contrast of each scan has a scale of its own; real scanners and sequences differ still
# more than the simulated ones. Z-scored, the main humps of the two cases sit on top of
# each other near 0, and the medians agree to a fraction of a standard deviation. A
# network trained on raw intensities would have to learn every scanner's scale; after
# normalisation it can learn tissue contrast instead. Notebook 3 builds normalisation into
# the data pipeline and compares it with the report's way of scaling.

# %% [markdown]
# ## The interactive viewer
#
# `CaseViewer` shows a case as neuroimaging viewers do (ITK-SNAP, NiiVue): three linked
# planes, axial, coronal and sagittal, all through one point marked by a crosshair. Click
# a picture to move that point; with the mouse over a picture, the arrow keys (or j/k)
# step through its slices. The slider moves through the plane chosen above it (framed);
# the line under the pictures gives the voxel's intensity in each contrast and its label.
# You can also choose the contrast, and whether the labels are drawn and how opaquely.
# If your Jupyter shows widgets (JupyterLab, Notebook, Colab, Binder), try it below.
#
# The viewer draws like nilearn, in the neurological convention (patient's left on the
# left). Radiologists read scans the other way round, as if facing the patient:
# `viewer.state.convention = "radiological"` swaps the sides (the letters L and R follow).

# %%
viewer = CaseViewer(case_data)
viewer

# %% [markdown]
# Everything the viewer shows lives in `viewer.state`, a plain object you can also drive
# from code. The viewer starts at the centre of the tumour; switching planes keeps the same
# point in view. Below, the coronal plane through that point with T1ce underneath, drawn
# as a static figure: that is what this page shows where widgets cannot run.
#
# For a 3-D look, `gliseg_nb.viewers.view_3d(case_data)` opens the case in NiiVue, a WebGL
# viewer, once its optional package is installed (`pip install "gliseg-nb[3d]"`).

# %%
viewer.state.set_plane("coronal")
viewer.state.modality = "t1ce"
viewer.state.opacity = 0.35
viewer.redraw()  # update the interactive view too
viewer.static_figure()

# %% [markdown]
# ## Summary
#
# * A BraTS case is four co-registered, skull-stripped 1 mm MRI volumes (T1, T1ce, T2,
#   FLAIR) of 240 x 240 x 155 voxels, plus a label volume for training cases.
# * T1ce shows the enhancing tumour (and some normal structures); FLAIR shows the edema
#   next to dark CSF; T2 shows water, CSF included; T1 shows anatomy.
# * nibabel reads the header first; `img.dataobj[...]` reads only the voxels you need, in
#   their stored type, while `get_fdata()` reads all of them as float64.
# * The affine tells which way the axes point; nilearn and the course's viewer use it.
# * MRI intensities have no fixed scale, so each case and contrast must be normalised.
# * The embedded cases are one template brain, warped, with simulated tumours, confounders
#   and scanner effects (`synthetic_parameters.json` says how each was drawn); their scores
#   say how well a model fits the simulator, not how it does on real scans.
#
# ## Exercises
#
# 1. In the viewer, find a slice where something is bright on T1ce but is not labelled as
#    tumour. What could it be, and what would you look at, in the other contrasts or in the
#    neighbouring slices, to tell it from enhancing tumour? (Without widgets: draw a few
#    slices with `viewer.state.slice_index = k` and `viewer.static_figure()`, or with
#    nilearn's `plot_anat(..., display_mode="z", cut_coords=[...])` on T1ce.)
# 2. Z-scoring lines up the histograms of two cases. Would it also remove a bias field,
#    a brightness that drifts slowly across the head (brighter at the front than at the
#    back, say)? Why, or why not, and what could you do about it?
# 3. Look at the gallery and the table of synthetic cases. Name two things real scans have
#    that these cases lack. For each, guess whether a model trained only on the synthetic
#    cases would over- or under-segment the tumour on a real scan because of it.
# 4. Why must the labels file of a case have the same affine as its FLAIR file? What would
#    go wrong, silently, if it were shifted by a few voxels?
# 5. A surgeon says the tumour of a case is in the patient's left hemisphere. On which side
#    of the picture is it in nilearn's figures, in the viewer as it starts, and in the
#    `axial_display` picture above? Why does the course not use one convention everywhere?

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 1.** On the synthetic cases: the vessels along the cortex and the choroid
# plexus inside the lateral ventricles (both simulated on purpose); on real scans also the
# dura, the venous sinuses and the pituitary. Three clues: enhancing tumour sits inside a
# region that is bright on FLAIR (edema and tumour), while a vessel or the choroid plexus has
# normal tissue or CSF around it; across neighbouring slices a vessel runs on as a tube,
# where a tumour rim closes into a shell around its necrosis (notebook 0, Solution 2);
# the choroid plexus lies inside the ventricles, usually on both sides alike. The course's
# 2-D network has the first and the last clue within its slice (with the `quick` preset,
# in all four contrasts), but not the second.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 2.** No. The z-score subtracts one number and divides by one number for the
# whole volume: it fixes the scanner's overall scale, not a brightness that changes from
# place to place. After z-scoring, white matter at the front of a biased scan is still
# brighter than white matter at the back, and a network may read that as edema. Remedies:
# estimate and divide out the slow field before normalising (N4 bias-field correction, in
# SimpleITK or ANTs, is the standard tool), and train on data with random bias fields so
# the network learns to ignore them (every synthetic case has one, see *What is simulated*
# above).

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 3.** Some of what the simulator leaves out (the paragraph under the gallery
# lists it), with the likely effect; good answers argue from what the model learnt:
#
# * *Other contrasts and scanners*: the synthetic intensities come from one table. A real
#   scan whose edema is less bright on FLAIR than the model expects is under-segmented.
# * *Brains that are not the template*: atrophy beyond the simulated range of ventricle
#   sizes (a shrunken cortex with wide furrows), old strokes or surgical cavities. The
#   model has never seen them, so it can call them tumour (over-segment) or,
#   next to them, miss tumour it does not recognise.
# * *Low-grade tumours as they really look*: a large core that is darker on FLAIR than its
#   edema. Notebook 4 (*Synthetic scores are not real-scan scores*) will show the measured
#   effect: of five real cases, the low-grade one is where the synthetic-trained model is
#   weakest, finding only about half of its tumour (under-segmenting).
# * *Imperfect raters*: two experts' outlines agree only to a Dice of about 0.74-0.85
#   (notebook 0), so even a perfect model cannot score 1 on real labels.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 4.** A label volume says "this voxel is edema" by position only: voxel
# (i, j, k) of the labels describes voxel (i, j, k) of every image. The affine is the
# promise that these are the same place in the head. If the labels were shifted by three
# voxels, every image would still load, every shape would match, and the network would
# learn to draw the tumour 3 mm off, scoring lower for no visible reason. Two different
# faults hide here. *A mismatched affine* (the labels file says its voxels sit elsewhere
# in the head) is visible in the headers: `load_case` compares the grids and affines of
# all files of a case and refuses a mismatch. *A label array shifted under the same
# affine* (drawn on a shifted copy, then saved with the images' header) is not: the
# headers agree, `load_case` reads it without complaint, and only looking at the labels
# over the images (or a score that is oddly low) reveals it.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 5.** nilearn: on the left of the picture (neurological convention, marked L).
# The viewer and its `static_figure`: on the left too, as they start in the neurological
# convention (`viewer.state.convention = "radiological"` moves it to the right), and so are
# pictures cut with `ViewerState`, as in notebook 2's overlays. `axial_display` and the
# figures of `gliseg_nb.plotting` (the gallery above, notebook 4's predictions): on the
# right (radiological convention, as if facing the patient; the R at the left edge marks
# the patient's right). Each part of the course matches the tool a learner compares it
# with: nilearn and research viewers show neurological, radiologists and the report's
# figures radiological. What matters is that every picture says which side is which: look
# for the letters before you read left and right.

# %% [markdown]
# ## References
#
# * The report this course follows: *Segmentation of Gliomas in Pre-Operative MRI Scans using U-Net Architecture*. Its code comes from R. Kopál's Kaggle notebook *3D MRI brain tumor segmentation U-Net* (<https://www.kaggle.com/code/rastislav/3d-mri-brain-tumor-segmentation-u-net>), called "the source notebook" in this course.
# * B. H. Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", *IEEE Transactions on Medical Imaging* 34(10), 1993-2024, 2015.
# * S. Bakas et al., "Advancing The Cancer Genome Atlas glioma MRI collections with expert segmentation labels and radiomic features", *Scientific Data* 4, 170117, 2017.
# * nibabel (<https://nipy.org/nibabel>) and nilearn (<https://nilearn.github.io>): reading NIfTI files and drawing brains; the MNI152 template the synthetic data are built on ships with nilearn.
# * B. Billot et al., "SynthSeg: Segmentation of brain MRI scans of any contrast and resolution without retraining", *Medical Image Analysis* 86, 102789, 2023 (the idea behind the synthetic data's randomisation).
# * Data: BraTS 2020 on Kaggle (<https://www.kaggle.com/datasets/awsaf49/brats20-dataset-training-validation>), BraTS 2019 on Kaggle (<https://www.kaggle.com/datasets/aryashah2k/brain-tumor-segmentation-brats-2019>), the BraTS challenges (<https://www.synapse.org/brats>), the Medical Segmentation Decathlon (<http://medicaldecathlon.com>). BraTS data use requires citing Menze et al. 2015 and Bakas et al. 2017/2018.
