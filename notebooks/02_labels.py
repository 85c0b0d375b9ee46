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
# # 2. Labels and regions: what the numbers in a segmentation mean
#
# After this notebook you will be able to:
#
# * read a BraTS label file and convert any release's label numbers to the course's
#   classes 0-3;
# * build the three regions BraTS scores, whole tumour (WT), tumour core (TC) and
#   enhancing tumour (ET), and explain why the tumour core *includes* the enhancing part
#   (the report says otherwise);
# * measure tumour volumes in millilitres;
# * draw labels and regions over an MRI in the report's colours.

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

from gliseg_nb import Config
from gliseg_nb.course import demo_case
from gliseg_nb.data import find_cases, get_data_dir, load_case
from gliseg_nb.labels import (CLASS_COLORS, CLASS_NAMES, CONVENTIONS, LAYOUT_CONVENTION,
                              REGION_NAMES, REGIONS, convention_for_layout, label_colormap,
                              legend_handles, region_mask, to_internal)
from gliseg_nb.plotting import mark_sides
from gliseg_nb.viewers import ViewerState

data_dir = get_data_dir(DATA_DIR)
config = Config.preset(PRESET)
cases = find_cases(data_dir)
print(f"{len(cases)} cases, layout {cases[0].layout}")

# %% [markdown]
# ## Four classes
#
# Every voxel of a BraTS segmentation holds one number. The course uses the report's four
# classes, and one colour for each in every figure (the report's figure 2.2):

# %% tags=["nbval-check-output"]
print(f"{'class':6s} {'meaning':32s} colour (RGB)")
for code, name in CLASS_NAMES.items():
    colour = "transparent" if code == 0 else str(CLASS_COLORS[code])
    print(f"{code:<6d} {name:32s} {colour}")

# %% [markdown]
# * **1, necrotic / non-enhancing tumour core**: dead tissue in the middle of the tumour,
#   and solid tumour that does not take up contrast.
# * **2, edema**: swollen tissue around the tumour; bright on FLAIR and T2. It is not only
#   water: tumour cells infiltrate it, invisible on MRI.
# * **3, enhancing tumour**: tumour tissue that lights up on T1ce because its blood-brain
#   barrier leaks.

# %% [markdown]
# ## The same classes, different numbers on disk
#
# The files do not all store these classes with the same numbers. Until 2016 BraTS had a
# separate label 3 for non-enhancing tumour; in 2017 it was merged into label 1, and the
# enhancing tumour kept its number, 4. So BraTS 2017-2021 files (the Kaggle copy of 2020
# included) use 0, 1, 2 and **4**, with 3 unused. BraTS 2023 renumbered the enhancing
# tumour to 3. The Medical Segmentation Decathlon (Task01) uses yet another order, which
# its `dataset.json` spells out: 0 background, 1 edema, 2 non-enhancing tumour (BraTS's
# necrotic and non-enhancing core), 3 enhancing tumour. Edema and core swap numbers.
#
# The report writes that label 3 was "kept unused for future use" and that it uses 3 for
# the enhancing tumour instead of 4. The second half is what we do too: our class 3 is
# the enhancing tumour, which keeps the classes consecutive (0-3) so they index the
# network's four outputs. The first half is not quite the history: 3 became free because
# its old meaning was merged away.
#
# `gliseg_nb.labels` holds one table per convention, and each layout says which one it uses:

# %% tags=["nbval-check-output"]
print(f"{'layout':18s} {'convention':11s} on-disk value of class 0, 1, 2, 3")
for layout, convention in LAYOUT_CONVENTION.items():
    disk_value_of = {internal: disk for disk, internal in CONVENTIONS[convention].items()}
    print(f"{layout:18s} {convention:11s} {[disk_value_of[c] for c in range(4)]}")

# %% [markdown]
# ### Converting, by hand and with the library
#
# Take a high-grade case with plenty of enhancing tumour, the one with the most enhancing
# tumour (`demo_case` reads the volumes the generator recorded; with your own data it takes
# the first high-grade case). Read its label file as it is stored (integers, with
# `dataobj`, not `get_fdata()`), and count its values:

# %% tags=["nbval-check-output"]
demo = demo_case(cases, data_dir)
print(demo.case_id)
raw_labels = np.asanyarray(nib.load(demo.seg).dataobj).astype(np.int64)
values, counts = np.unique(raw_labels, return_counts=True)
print("on disk:", dict(zip(values.tolist(), counts.tolist())))

# %% [markdown]
# A conversion is a lookup table: position *v* of the table holds the class of on-disk value
# *v*. Indexing the table with the whole volume converts every voxel at once. Positions the
# release does not use (3, in BraTS 2020) are filled with 255, a value no class has, as the
# library's own table does: a table of zeros would silently turn a stray 3 on disk into
# background. After converting, no 255 may be left.

# %%
disk_to_class = CONVENTIONS[convention_for_layout(demo.layout)]
lookup = np.full(max(disk_to_class) + 1, 255, dtype=np.uint8)  # 255: "not a value of this release"
for disk_value, internal_class in disk_to_class.items():
    lookup[disk_value] = internal_class
print("lookup table:", lookup.tolist())

labels = lookup[raw_labels]  # a value above the table's end would raise an IndexError
unused = np.count_nonzero(labels == 255)
if unused:
    raise ValueError(f"{demo.seg.name}: {unused} voxels hold values this release does not use")
values, counts = np.unique(labels, return_counts=True)
print("classes:", dict(zip(values.tolist(), counts.tolist())))
assert np.array_equal(labels, to_internal(raw_labels, demo.layout))

# %% [markdown]
# The report's source notebook simply replaces 4 by 3 (`mask[mask == 4] = 3`). On BraTS
# 2020 that gives the same result, but on the Decathlon's files it would silently call
# edema "necrotic core", and a stray 3 in a 2020 file would pass unnoticed. `to_internal` refuses values a release does
# not use, and `load_case` calls it with the case's layout, so the rest of the course only
# ever sees classes 0-3.

# %% [markdown]
# ### One file with an odd name: case 355
#
# In the Kaggle copy of BraTS 2020 the report's source notebook used, every case folder
# holds `<id>_seg.nii`, except case 355, whose segmentation is called
# `W39_1998.09.19_Segm.nii`. The source notebook drops that patient. The loader reads it:
# its names are checked against what each release really holds, and that one known
# exception is accepted. To see it, write a copy of the case above in the Kaggle layout,
# uncompressed `.nii` files under case 355's names:

# %% tags=["nbval-check-output"]
import tempfile
from pathlib import Path

kaggle_root = Path(tempfile.mkdtemp()) / "MICCAI_BraTS2020_TrainingData"
case_355 = kaggle_root / "BraTS20_Training_355"
case_355.mkdir(parents=True)
for modality, path in demo.modalities.items():
    nib.save(nib.load(path), case_355 / f"BraTS20_Training_355_{modality}.nii")
nib.save(nib.load(demo.seg), case_355 / "W39_1998.09.19_Segm.nii")

(found,) = find_cases(kaggle_root)
print(f"{found.case_id}: layout {found.layout}, segmentation file {found.seg.name}")
same = np.array_equal(load_case(found).labels, load_case(demo).labels)
print("labels read from the odd file equal the original's:", same)

# %% [markdown]
# ## Regions: what BraTS scores
#
# A segmentation has four classes, but BraTS does not score the classes one by one. It
# scores three **regions**, each a union of classes, chosen because they are what doctors
# use:
#
# | region | classes | what it is |
# |---|---|---|
# | **WT**, whole tumour | 1 + 2 + 3 | everything abnormal, edema included: the extent of the disease |
# | **TC**, tumour core | 1 + 3 | the tumour proper, without the edema: what a surgeon removes |
# | **ET**, enhancing tumour | 3 | the active, contrast-enhancing part |
#
# The regions are nested: ET lies inside TC, which lies inside WT.
#
# Each region is scored by its **Dice** overlap: with *A* the voxels the model puts in the
# region and *B* those of the ground truth, Dice = 2 |A ∩ B| / (|A| + |B|), the shared
# voxels counted twice over the two sizes added. It is 1 when the two masks are identical
# and 0 when they do not touch. The exercises below use it; notebook 5 builds it in code.
#
# **The report gets the tumour core wrong.** It describes TC as the central part "excluding
# the peripheral enhancing areas". In BraTS, and in every published score, the tumour core
# *includes* the enhancing tumour: TC = necrotic/non-enhancing core **+ enhancing tumour**.
# Computing TC as class 1 alone would score a different, smaller region, and the numbers
# would not be comparable with anyone else's.

# %%
case_data = load_case(demo)
masks = {region: region_mask(case_data.labels, region) for region in REGIONS}
assert np.all(masks["ET"] <= masks["TC"]) and np.all(masks["TC"] <= masks["WT"])  # nested
for region, classes in REGIONS.items():
    print(f"{region}: classes {classes}, {REGION_NAMES[region]}")

# %% [markdown]
# ## Tumour volumes in millilitres
#
# A voxel of BraTS is 1 mm x 1 mm x 1 mm = 1 mm³, and 1 mL = 1000 mm³. Reading the voxel
# size from the header (rather than assuming 1 mm) keeps the code right for other data.

# %% tags=["nbval-check-output"]
voxel_ml = float(np.prod(case_data.zooms)) / 1000.0
print(f"{demo.case_id}: voxel {case_data.zooms} mm = {voxel_ml} mL")
for code in (1, 2, 3):
    n_voxels = int(np.count_nonzero(case_data.labels == code))
    print(f"  class {code} {CLASS_NAMES[code]:30s} {n_voxels:7d} voxels {n_voxels * voxel_ml:7.2f} mL")
for region, mask in masks.items():
    n_voxels = int(mask.sum())
    print(f"  {region} {REGION_NAMES[region]:30s}    {n_voxels:7d} voxels {n_voxels * voxel_ml:7.2f} mL")
report_tc = int(np.count_nonzero(case_data.labels == 1))
missed = int(masks["TC"].sum()) - report_tc
print(f"  the report's 'TC' (class 1 only) would miss {missed} voxels: all of the enhancing tumour"
      + ("" if missed else " (this case has none, like many low-grade gliomas)"))

# %% [markdown]
# For scale: a glioblastoma's enhancing tumour and necrosis together often measure a few
# tens of millilitres, and the edema can be larger than the tumour itself. With the
# synthetic data this case is well above that, and not by chance: `demo_case` takes the
# case with the most enhancing tumour, and among the synthetic cases that is also the one
# with the largest whole tumour (compare notebook 1's table of the synthetic cases).

# %% [markdown]
# ## Overlays in the report's colours
#
# To draw labels over an image, cut the same slice out of both and draw the labels with a
# colour map in which class 0 is transparent (`label_colormap`). `ViewerState` (the state
# behind the course's viewer) cuts slices in display orientation: anterior at the top, the
# patient's left on the left (the viewer's neurological convention; the letters L and R
# mark the sides). We pick the axial slice with the most tumour core (where most classes
# show; a case without enhancing tumour, like many low-grade ones, has no yellow), or the
# most tumour if the case has no core.

# %%
core_per_slice = masks["TC"].sum(axis=(0, 1))
tumour_per_slice = masks["WT"].sum(axis=(0, 1))
best_slice = int(np.argmax(core_per_slice if core_per_slice.any() else tumour_per_slice))
state = ViewerState.from_case(case_data)
state.slice_index = best_slice
print(f"axial slice {best_slice + case_data.slices.start}: {tumour_per_slice[best_slice]} tumour voxels,"
      f" {core_per_slice[best_slice]} of them tumour core")

cmap, norm = label_colormap()
figure, axes = plt.subplots(1, 3, figsize=(13, 4.6), layout="constrained")
for ax, modality in zip(axes[:2], ["flair", "t1ce"]):
    low, high = state.display_range(modality)
    ax.imshow(state.image_slice(modality), cmap="gray", vmin=low, vmax=high)
    ax.imshow(state.label_slice(), cmap=cmap, norm=norm, alpha=0.45, interpolation="nearest")
    ax.set_title(f"{modality.upper()} + labels")
axes[2].imshow(state.label_slice(), cmap=cmap, norm=norm, interpolation="nearest")
axes[2].set_facecolor("black")
axes[2].set_title("labels alone")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
    mark_sides(ax, state.convention)  # neurological: L on the left
figure.legend(handles=legend_handles(), loc="outside lower center", ncols=3)
plt.show()

# %% [markdown]
# ## The three regions, drawn
#
# The same slice, one region per panel, on the contrast where that region is best seen:
# WT on FLAIR, TC and ET on T1ce. Inside each region the classes it is made of keep their
# colours (a region is a union of classes, not a class of its own), and the region's border
# is drawn in white.

# %%
region_contrast = {"WT": "flair", "TC": "t1ce", "ET": "t1ce"}
figure, axes = plt.subplots(1, 3, figsize=(13, 4.6), layout="constrained")
for ax, (region, modality) in zip(axes, region_contrast.items()):
    low, high = state.display_range(modality)
    region_slice = np.isin(state.label_slice(), REGIONS[region])
    ax.imshow(state.image_slice(modality), cmap="gray", vmin=low, vmax=high)
    classes_inside = np.where(region_slice, state.label_slice(), 0)
    ax.imshow(classes_inside, cmap=cmap, norm=norm, alpha=0.45, interpolation="nearest")
    if region_slice.any() and not region_slice.all():
        ax.contour(region_slice, levels=[0.5], colors="white", linewidths=1.0)
    ax.set_title(f"{region} ({REGION_NAMES[region]}) on {modality.upper()}\n"
                 f"{int(region_slice.sum())} voxels in this slice")
    ax.set_xticks([])
    ax.set_yticks([])
    mark_sides(ax, state.convention)
figure.legend(handles=legend_handles(), loc="outside lower center", ncols=3)
plt.show()

# %% [markdown]
# Which axial slices hold the tumour, and how many of them the report's training keeps, is a
# question of the data pipeline: notebook 3 (section *Which slices?*) counts it.

# %% [markdown]
# ## Summary
#
# * The course uses four classes: 0 not tumour, 1 necrotic/non-enhancing core, 2 edema,
#   3 enhancing tumour. BraTS 2017-2021 files store the enhancing tumour as 4, BraTS 2023 as
#   3, the Decathlon in another order; `to_internal` converts with a lookup table, and
#   `load_case` does it for you.
# * BraTS scores regions: WT = 1+2+3, TC = 1+3, ET = 3. The tumour core **includes** the
#   enhancing tumour, contrary to the report's description.
# * Volumes come from counting voxels and multiplying by the voxel volume from the header
#   (1 mm³ = 0.001 mL for BraTS).
# * Overlays need a colour map with a transparent background and slices cut in the same
#   orientation from image and labels; regions are drawn as their classes, in the classes'
#   colours, with the region's border on top.
#
# ## Exercises
#
# 1. A model confuses necrosis (1) with edema (2) everywhere, and gets everything else
#    right. Which of the three region scores (WT, TC, ET) drop, and which stay perfect?
#    What does that tell you about reading region scores instead of class scores?
# 2. A low-grade case has no enhancing tumour at all. The model predicts three voxels of
#    enhancing tumour in it. What is its ET Dice? What would it be if the model predicted
#    none? What does that do to a mean ET Dice over many cases?
# 3. Why does the course keep the enhancing tumour as class 3 internally, instead of the 4
#    that BraTS 2017-2021 files store? Think of what the network's output layer needs.
# 4. A rater labels a voxel 3 in a BraTS 2020 file, where 3 is unused. `load_case` refuses
#    the file instead of carrying on. Why is refusing better than mapping 3 to some class
#    (or to background)?
# 5. Write `to_msd(labels)`, converting the course's classes to the Decathlon's numbers
#    (given in words above, in *The same classes, different numbers on disk*) with a
#    lookup table you write yourself, and check it against `gliseg_nb.labels.from_internal`.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 1.** WT stays perfect: necrosis and edema are both inside the whole tumour,
# so its mask does not change. ET stays perfect too: the enhancing tumour was not touched.
# TC drops: the core includes necrosis but not edema, so every necrotic voxel called edema
# is a missed core voxel, and every edema voxel called necrosis a false core voxel. Region
# scores measure what clinicians use; a class confusion that does not change a region
# boundary is invisible to them, while one that does (core versus edema) shows in TC only.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 2.** With three predicted voxels and none true, Dice = 2 x 0 / (3 + 0) = 0.
# With none predicted, both masks are empty and Dice is 0 / 0: BraTS defines it as 1 (a
# correct "no enhancing tumour"). So for such a case the ET score is all or nothing, and a
# handful of them swing a mean ET Dice a lot: three voxels move one case from 1 to 0.
# Notebook 5 shows how the convention moves the means; always say which convention a
# reported score uses.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 3.** The network outputs one probability per class, in a vector indexed
# 0, 1, 2, 3; one-hot targets are built by indexing with the class number
# (`np.eye(4)[labels]`), and the predicted class is the argmax, an index. With 4 for the
# enhancing tumour, the output would need five channels, one of them (3) never used, and
# every loss and metric would have to skip it. Converting once, when the file is read
# (`to_internal`), and back once, when a prediction is written (`from_internal`), keeps
# everything in between simple and release-independent.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 4.** A value that a release does not use means the file is not what we think
# it is: another release's convention (in the Decathlon, 3 is enhancing tumour), a file
# from a different tool, or a labelling error. Mapping it to any class would be a guess,
# and a wrong guess trains the model on wrong labels and changes its scores, silently.
# Refusing, with the file's name in the message, costs a minute of a person's time and
# keeps every later number trustworthy.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 5: a lookup table indexed by the course's class, written from the Decathlon's
# numbering (0 background, 1 edema, 2 non-enhancing tumour, 3 enhancing tumour).
from gliseg_nb.labels import from_internal

msd_value_of = {0: 0,  # not tumour -> background
                1: 2,  # necrotic / non-enhancing core -> non-enhancing tumour
                2: 1,  # edema -> edema
                3: 3}  # enhancing tumour -> enhancing tumour
to_msd_table = np.array([msd_value_of[c] for c in range(4)], dtype=np.uint8)


def to_msd(labels):
    return to_msd_table[labels]


print("course class -> MSD value:", dict(enumerate(to_msd_table.tolist())))
print("same as from_internal:", np.array_equal(to_msd(case_data.labels),
                                               from_internal(case_data.labels, "msd")))

# %% [markdown]
# ## References
#
# * The report this course follows: *Segmentation of Gliomas in Pre-Operative MRI Scans using U-Net Architecture*. Its code comes from R. Kopál's Kaggle notebook *3D MRI brain tumor segmentation U-Net* (<https://www.kaggle.com/code/rastislav/3d-mri-brain-tumor-segmentation-u-net>), called "the source notebook" in this course.
# * B. H. Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", *IEEE Transactions on Medical Imaging* 34(10), 1993-2024, 2015.
# * S. Bakas et al., "Identifying the best machine learning algorithms for brain tumor segmentation, progression assessment, and overall survival prediction in the BRATS challenge", arXiv:1811.02629, 2018.
# * M. Antonelli et al., "The Medical Segmentation Decathlon", *Nature Communications* 13, 4128, 2022 (Task01 is BraTS data).
# * Data: BraTS 2020 on Kaggle (<https://www.kaggle.com/datasets/awsaf49/brats20-dataset-training-validation>), BraTS 2019 on Kaggle (<https://www.kaggle.com/datasets/aryashah2k/brain-tumor-segmentation-brats-2019>), the BraTS challenges (<https://www.synapse.org/brats>), the Medical Segmentation Decathlon (<http://medicaldecathlon.com>). BraTS data use requires citing Menze et al. 2015 and Bakas et al. 2017/2018.
