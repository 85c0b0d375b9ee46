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
# # 3. From volumes to training batches
#
# A 2-D U-Net does not see a brain: it sees one axial slice at a time. Between the NIfTI
# files of notebook 1 and the network of notebook 4 sits the data pipeline, and most of the
# silent mistakes of a segmentation project live there.
#
# After this notebook you will be able to:
#
# * say which axial slices the report trains on, and count what it leaves out;
# * normalise MRI intensities per case and per contrast, and explain why one shared maximum
#   is a poor scale;
# * resize label maps without inventing classes at the tumour's edges;
# * split patients 68/20/12 into training, validation and test sets, reproducibly;
# * feed a Keras model from a `PyDataset` that streams cases from disk, and explain why
#   streaming is needed;
# * use the fast path (`make_dataset`: a slice cache read by `tf.data`), and, optionally,
#   see how it works inside.

# %% [markdown]
# **Words this notebook uses**, in one place:
#
# * **one-hot**: a class stored as a vector with a 1 at its index and 0 elsewhere (class 2
#   of 4 is `[0, 0, 1, 0]`), the form of the network's targets;
# * **batch**: the group of slices the network sees before each update of its weights;
# * **epoch**: one pass over all the training slices;
# * **gradient**: how much the loss changes when each weight changes a little; training
#   moves every weight a small step against it;
# * **learning rate**: how large those steps are, the main setting of training
#   (notebook 4 trains with it).

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

# %% [markdown]
# TensorFlow prints a few lines of C++ logging when it loads; `quiet_tensorflow` hides
# them (it changes nothing else). Then the usual imports, the settings of the chosen preset,
# and the cases of the dataset: the synthetic one unless you set `DATA_DIR`.

# %%
# %matplotlib inline
from gliseg_nb.course import quiet_tensorflow

quiet_tensorflow()

import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from gliseg_nb import Config
from gliseg_nb.data import find_cases, get_data_dir, load_case
from gliseg_nb.labels import label_colormap, legend_handles
from gliseg_nb.orientation import axial_display
from gliseg_nb.pipeline import (
    SliceSequence,
    load_split,
    make_dataset,
    normalize_intensities,
    preprocess_case,
    resize_labels_bilinear,
    resize_labels_nearest,
    resize_onehot_bilinear,
    save_split,
    select_cases,
    split_cases,
)
from gliseg_nb.plotting import mark_sides

config = Config.preset(PRESET)
report = Config.preset("report")
data_dir = get_data_dir(DATA_DIR)
cases = [case for case in find_cases(data_dir) if case.seg is not None]
print(f"{len(cases)} cases with segmentations in {data_dir.name}")

# %% [markdown]
# ## Which slices? The report's `VOLUME_START_AT` and `VOLUME_SLICES`
#
# A BraTS volume has 155 axial slices, 1 mm apart, from below the brain to above it. The
# report keeps 100 consecutive slices starting at slice 22 (`VOLUME_START_AT = 22`,
# `VOLUME_SLICES = 100`) and trains on each one as a separate 2-D image. The settings object
# holds the same two numbers:

# %% tags=["nbval-check-output"]
kept = report.slice_indices
n_total = 155
print(f"report preset: slice_start={report.slice_start}, n_slices={report.n_slices}")
print(f"kept: slices {kept[0]} to {kept[-1]} ({len(kept)} slices)")
print(f"left out before: {kept[0]} slices (0 to {kept[0] - 1})")
print(f"left out after:  {n_total - 1 - kept[-1]} slices ({kept[-1] + 1} to {n_total - 1})")
print(f"left out in all: {n_total - len(kept)} of {n_total}")
print(f"{PRESET} preset keeps {len(config.slice_indices)} slices: one in {config.slice_step}, from {config.slice_indices[0]}")

# %% [markdown]
# **The report miscounts here.** Its section 3.4.2 says this choice "skips the first 22
# slices and the last 22 slices (totaling 44 skipped slices out of 100)". Starting at 22
# and keeping 100 of 155 slices skips 22 at the bottom and **33** at the top: 55 in all,
# out of 155. The window is not centred on the volume.
#
# Does it matter? The figure counts, slice by slice, the brain and tumour voxels of a few
# cases, with the report's window shaded and the `quick` preset's slices (every 2nd slice
# of the same window, to train faster) marked below. Look at where each curve ends,
# compared with the window's two edges.

# %%
figure, (brain_axis, tumour_axis) = plt.subplots(1, 2, figsize=(12, 3.6), layout="constrained")
inside_fractions = []
for case in cases[:6]:
    loaded_case = load_case(case, modalities=["flair"])
    brain_per_slice = np.count_nonzero(loaded_case.images["flair"], axis=(0, 1))
    tumour_per_slice = np.count_nonzero(loaded_case.labels, axis=(0, 1))
    brain_axis.plot(brain_per_slice, lw=1)
    tumour_axis.plot(tumour_per_slice, lw=1, label=case.case_id)
    inside_fractions.append(tumour_per_slice[kept[0] : kept[-1] + 1].sum() / tumour_per_slice.sum())
for axis, title in ((brain_axis, "brain voxels per slice"), (tumour_axis, "tumour voxels per slice")):
    axis.axvspan(kept[0], kept[-1], color="tab:green", alpha=0.12, label="report's slices 22-121")
    axis.plot(config.slice_indices, np.zeros(len(config.slice_indices)), "|", color="k", ms=8,
              label=f"{PRESET} preset")
    axis.set_xlabel("axial slice")
    axis.set_title(title)
tumour_axis.legend(fontsize=7, ncols=2)
plt.show()
print("share of each case's tumour voxels inside slices 22-121:",
      ", ".join(f"{fraction:.1%}" for fraction in inside_fractions))

# %% [markdown]
# The window does not follow the brain. The 22 slices below it hold the narrow bottom of
# the brain, but at slice 121 the brain curves are still at about half their peak, and
# they fall to zero only some 20 to 30 slices higher: the 33 slices left out at the top
# hold more brain than the 22 at the bottom. What the network must learn, though, is the
# tumour, and most of it lies inside the window (the printed shares), but not all of it:
# the parts above slice 121 are never shown to the network during training. The course
# keeps the report's window anyway, so that its results can be compared with the
# report's; Exercise 5 asks what this means when a whole volume is segmented.
#
# ### Only slices with brain in them
#
# A fixed window is a blunt tool: it can include empty slices at one end and cut brain at
# the other. `Config(brain_slices_only=True)` keeps, among the selected slices, only those
# that contain brain (any non-zero voxel after skull stripping). To see it drop something,
# select all 155 slices of one case (FLAIR alone is enough to see where the brain is) and
# compare. The last line applies the same test to the preset's own slices (inside the
# report's window): how many of them hold brain, that is, how many `brain_slices_only`
# would keep.

# %%
every_slice = config.replace(slice_start=0, n_slices=155, slice_step=1, modalities=("flair",))
_, _, slices_all = preprocess_case(cases[0], every_slice, return_slices=True)
_, _, slices_brain = preprocess_case(cases[0], every_slice.replace(brain_slices_only=True),
                                     return_slices=True)
brain_kept = set(slices_brain.tolist())
below = [index for index in slices_all if index not in brain_kept and index < slices_brain.min()]
above = [index for index in slices_all if index not in brain_kept and index > slices_brain.max()]
print(f"{cases[0].case_id}: {len(slices_all)} slices selected, {len(slices_brain)} hold brain")
print(f"dropped: {len(below)} below the brain, {len(above)} above it, "
      f"{len(slices_all) - len(slices_brain) - len(below) - len(above)} in between")
in_window = [index for index in config.slice_indices if index in brain_kept]
print(f"of the {PRESET} preset's {len(config.slice_indices)} slices (22-121), {len(in_window)} hold brain")

# %% [markdown]
# ## Normalisation: one scale per case and per contrast
#
# MRI intensities have no unit (notebook 1): the same tissue can be 300 in one case and
# 900 in another, depending on the scanner, its settings and the position in the head.
# The network needs comparable numbers across patients, so each case is rescaled before
# training. Two ways:
#
# * the report's source notebook divides the two input channels (FLAIR and T1ce) by **one
#   shared maximum**, `X / np.max(X)`: the brightest voxel of either channel sets the scale
#   of both;
# * the course (and most BraTS pipelines) computes a **z-score per case and per contrast
#   over brain voxels** (the non-zero ones: skull stripping set everything else to 0):
#   subtract the mean of the brain voxels, divide by their standard deviation; background
#   stays 0.
#
# Both are in the library (`normalize_intensities(stack, "max")` and `"zscore"`). Here they
# are on the FLAIR and T1ce brain voxels of four cases:

# %%
figure, axes = plt.subplots(2, 2, figsize=(12, 6), layout="constrained")
for case in cases[:4]:
    loaded = load_case(case, modalities=["flair", "t1ce"], slices=(kept[0], kept[-1] + 1))
    stack = np.stack([loaded.images["flair"], loaded.images["t1ce"]], axis=-1)
    brain = np.any(stack != 0, axis=-1)
    for row, method in enumerate(("max", "zscore")):
        normalised = normalize_intensities(stack, method)
        for column, name in enumerate(("FLAIR", "T1ce")):
            values = normalised[..., column][brain]
            axes[row, column].hist(values, bins=120, histtype="step", density=True,
                                   label=case.case_id)
            axes[row, column].set_title(f"{name}, {'shared maximum' if method == 'max' else 'z-score'}")
    peak_flair, peak_t1ce = stack[..., 0].max(), stack[..., 1].max()
    print(f"{case.case_id}: max FLAIR {peak_flair:7.0f}, max T1ce {peak_t1ce:7.0f} "
          f"-> the shared maximum comes from {'FLAIR' if peak_flair >= peak_t1ce else 'T1ce'}")
axes[0, 0].legend(fontsize=8)
for axis in axes[1]:
    axis.set_xlim(-4, 6)
plt.show()

# %% [markdown]
# Top row, the shared maximum: the same tissue lands at a different place in every case,
# because the maximum is one extreme voxel (often a vessel or the choroid plexus on T1ce,
# which are bright after contrast). The channel that did not provide the maximum is
# squeezed into a fraction of the range (the printed lines say which one provided it).
# Bottom row, the z-score: the main hump of each curve, the bulk of normal brain (grey and
# white matter overlap into one hump on these synthetic scans), sits near 0 with about the
# same width in every case and both channels use the same range; the tail on the right of
# FLAIR is edema and tumour. The network can then learn "brighter than normal brain" once,
# for every scanner.
#
# ## Resizing: labels are not images
#
# The report's source notebook trains at 128 x 128 pixels, so every 240 x 240 slice is
# shrunk. Images are resized with a smooth filter (each new pixel a weighted average of
# its neighbours). Labels must not be averaged: "halfway between background (0) and
# enhancing tumour (3)" is 1.5, which rounds to necrosis or edema, classes that are not
# there. Label maps are resized by **nearest neighbour**: each new pixel copies one old
# pixel, so no class can appear that was not there.
#
# The report's source notebook one-hot encodes the labels first and then resizes the four
# masks bilinearly. First, a toy slice with only background and enhancing tumour, resized
# the three ways:

# %%
toy = np.zeros((240, 240), dtype=np.uint8)
toy[80:170, 60:150] = 3  # a square of enhancing tumour on background
nearest = resize_labels_nearest(toy, 128)
as_image = resize_labels_bilinear(toy, 128)  # labels treated as intensities, then rounded
soft = resize_onehot_bilinear(toy, 128)  # the source notebook: one-hot, then bilinear
print("classes in the toy slice:          ", np.unique(toy).tolist())
print("after nearest neighbour:           ", np.unique(nearest).tolist())
print("after bilinear on the label values:", np.unique(as_image).tolist(),
      f"({np.count_nonzero(np.isin(as_image, [1, 2]))} pixels of invented necrosis or edema)")
print(f"after one-hot + bilinear: {np.count_nonzero(soft.max(axis=-1) < 1)} pixels whose target "
      "is a blend of classes instead of one class")

# %% [markdown]
# Treated as an image, the square grows a rim of "necrosis" and "edema" that nobody
# annotated. One-hot encoding first avoids that particular error, but the targets at every
# boundary become blends such as "70 % enhancing, 30 % background": the network is asked to
# be unsure exactly where the experts were sure, and its training signal no longer matches
# the labels it will be scored against.
#
# Now on a real slice, the one with most tumour in the first case, zoomed in on the tumour:

# %%
case_data = load_case(cases[0], modalities=["flair"], slices=(kept[0], kept[-1] + 1))
labels_slab = case_data.labels
slice_number = int(np.argmax(np.count_nonzero(labels_slab, axis=(0, 1))))
# Turned to display order (anterior up, the patient's right on the left) before resizing:
# resizing does not care, and the figure then shows the slice the right way up.
labels_slice = axial_display(labels_slab[:, :, slice_number], case_data.affine)

nearest = resize_labels_nearest(labels_slice, report.image_size)
soft = resize_onehot_bilinear(labels_slice, report.image_size)
as_image = resize_labels_bilinear(labels_slice, report.image_size)
blended = soft.max(axis=-1) < 1
changed = as_image != nearest

rows, cols = np.nonzero(nearest)
zoom = (slice(rows.min() - 4, rows.max() + 5), slice(cols.min() - 4, cols.max() + 5))
cmap, norm = label_colormap()
figure, axes = plt.subplots(1, 4, figsize=(14, 3.8), layout="constrained")
axes[0].imshow(labels_slice, cmap=cmap, norm=norm, interpolation="nearest")
axes[0].set_title(f"original 240 x 240 (slice {kept[0] + slice_number})")
axes[1].imshow(nearest[zoom], cmap=cmap, norm=norm, interpolation="nearest")
axes[1].set_title("nearest neighbour, 128 px")
image = axes[2].imshow(soft.max(axis=-1)[zoom], cmap="magma", vmin=0.3, vmax=1, interpolation="nearest")
axes[2].set_title("one-hot + bilinear:\nlargest class share")
figure.colorbar(image, ax=axes[2], shrink=0.8)
axes[3].imshow(as_image[zoom], cmap=cmap, norm=norm, interpolation="nearest")
axes[3].contour(changed[zoom], levels=[0.5], colors="white", linewidths=0.6)
axes[3].set_title("bilinear on label values\n(white: differs from nearest)")
for axis in axes:
    axis.set_xticks([])
    axis.set_yticks([])
for axis in axes:  # the zoomed panels keep the orientation too
    mark_sides(axis, color="black")  # axial_display's radiological convention: R on the left
figure.legend(handles=legend_handles(), loc="outside lower center", ncols=3, fontsize=8, frameon=False)
plt.show()
tumour_pixels = np.count_nonzero(nearest)
print(f"tumour pixels at 128 px: {tumour_pixels}")
blended_tumour = np.count_nonzero(blended & (nearest > 0))  # blended and tumour by nearest neighbour
print(f"one-hot + bilinear: {np.count_nonzero(blended)} pixels with blended targets, {blended_tumour} of them "
      f"tumour pixels ({blended_tumour / tumour_pixels:.0%} of the tumour)")
print(f"bilinear on values: {np.count_nonzero(changed)} pixels get another class than nearest neighbour")

# %% [markdown]
# On a real slice a sizeable share of the tumour pixels get blended targets (the counts
# below the figure; the other blended pixels are background along the tumour's outer
# edge): the boundary is where segmentation is hard, and where the source notebook's
# targets are wrong. Treating label values as an image is worse still:
# the red rim around the edema is "necrosis" that lies halfway between background (0) and
# edema (2). `preprocess_case` resizes images smoothly and labels by nearest neighbour, and
# one-hot encodes only afterwards.
#
# ## The split: 68 / 20 / 12, by patient
#
# Report section 6.2 splits the patients with two calls of scikit-learn's
# `train_test_split`: 20 % for validation, then 15 % of the remaining 80 % for testing,
# which leaves 0.85 x 0.80 = 68 % for training and 0.15 x 0.80 = 12 % for testing.
#
# Three things matter more than the percentages:
#
# * **split patients, not slices.** Neighbouring slices of one brain are nearly identical;
#   slices of one patient in both training and test sets would measure memory, not skill;
# * **seed it.** The source notebook does not, so every run tests on different patients and
#   its scores cannot be reproduced;
# * **write it down**, so that training, evaluation and prediction agree on which patients
#   are test patients, even weeks later.
#
# `split_cases` does all three, and keeps the proportion of high- and low-grade gliomas
# equal across the sets where the data say which is which (BraTS 2019 and 2020 do).

# %% tags=["nbval-check-output"]
split = split_cases(cases, config)
grades = {case.case_id: case.grade for case in cases}
for subset in ("train", "val", "test"):
    ids = split[subset]
    counts = {grade: sum(grades[i] == grade for i in ids) for grade in ("HGG", "LGG")}
    print(f"{subset:5s} {len(ids):3d} patients ({len(ids) / len(cases):.0%}), grades {counts}")
print(f"seed {split.seed}, stratified by {split.stratified_by}")

# %% [markdown]
# With 24 synthetic patients the percentages are only approximate (a patient cannot be
# split). On the 369 training cases of BraTS 2020 the same procedure gives:

# %% tags=["nbval-check-output"]
brats2020_ids = [f"BraTS20_Training_{number:03d}" for number in range(1, 370)]
brats2020_split = split_cases(brats2020_ids, report)
print({subset: len(ids) for subset, ids in brats2020_split.items()})

# %% [markdown]
# Written to a JSON file and read back, it is the same split; the same seed always gives
# the same split, and another seed another one:

# %% tags=["nbval-check-output"]
split_file = Path(tempfile.mkdtemp()) / "split.json"
save_split(split, split_file)
print("read back identical:", dict(load_split(split_file, cases)) == dict(split))
print("same seed, same split:", dict(split_cases(cases, config)) == dict(split))
print("seed 1, same split:", dict(split_cases(cases, config.replace(seed=1))) == dict(split))
all_ids = split["train"] + split["val"] + split["test"]
print("every patient in exactly one set:", sorted(all_ids) == sorted(grades))
print(split_file.read_text()[:120], "...")

# %%
print("test patients:", ", ".join(split["test"]))

# %% [markdown]
# ## Feeding the model, first way: a `PyDataset` that streams from disk
#
# Why not load everything into memory and call `model.fit(x, y)`? Count the bytes for the
# report's settings on BraTS 2020:

# %%
n_train = len(brats2020_split["train"])
slices_per_case, pixels = report.n_slices, report.image_size**2
x_bytes = n_train * slices_per_case * pixels * report.n_channels * 4  # float32
y_bytes = n_train * slices_per_case * pixels * report.n_classes * 4  # one-hot float32
raw_bytes = n_train * 5 * 240 * 240 * 155 * 8  # what get_fdata() gives: float64
print(f"{n_train} training patients x {slices_per_case} slices at {report.image_size} px:")
print(f"  inputs {x_bytes / 1e9:.1f} GB + one-hot targets {y_bytes / 1e9:.1f} GB")
print(f"  the raw volumes as float64: {raw_bytes / 1e9:.0f} GB")

# %% [markdown]
# About 10 GB of arrays, and nearly 90 GB of raw volumes: more than a Colab session or a
# laptop holds. A **data generator** loads only what the next batch needs. The source
# notebook's is a `keras.utils.Sequence`; in Keras 3 it is a `keras.utils.PyDataset`: a
# class with `__len__` (batches per epoch) and `__getitem__(i)` (batch `i`), plus
# `on_epoch_end` to reshuffle. Keras calls `__getitem__` in worker threads or processes
# while the model trains; in Keras 3 the `workers` and `use_multiprocessing` settings
# belong to the dataset's constructor (`fit` no longer accepts them).
#
# A generator is short enough to write from scratch. This one is the design of the
# report's source notebook: batch `i` holds every selected slice of patient `i`, read from
# disk, preprocessed with `preprocess_case` (the steps above) and one-hot encoded, only
# when Keras asks for it:

# %%
import keras


class MinimalSliceDataset(keras.utils.PyDataset):
    """The source notebook's generator from scratch: one patient per batch, loaded on demand."""

    def __init__(self, cases, config, **kwargs):
        super().__init__(**kwargs)  # Keras 3: workers= and use_multiprocessing= go here
        self.cases, self.config = list(cases), config

    def __len__(self):  # batches per epoch
        return len(self.cases)

    def __getitem__(self, index):  # batch `index`: read, z-score, resize, one-hot
        x, labels = preprocess_case(self.cases[index], self.config)
        return x, np.eye(self.config.n_classes, dtype="float32")[labels]

# %% [markdown]
# The library's `SliceSequence` is the same idea, done for real training: it shuffles the
# patients and the slices at every epoch (`on_epoch_end`), takes any batch size (a batch
# may span two patients), keeps the last two patients in memory so that consecutive
# batches do not re-read them, and checks its input. With one patient per batch and no
# shuffling it gives exactly the batches of the 15 lines above:

# %% tags=["nbval-check-output"]
minimal = MinimalSliceDataset(select_cases(cases, split["train"]), config)
one_patient_per_batch = config.replace(batch_size=len(config.slice_indices))
library = SliceSequence(minimal.cases, one_patient_per_batch, shuffle=False)
x_minimal, y_minimal = minimal[1]
x_library, y_library = library[1]
print(f"{len(minimal)} batches each; batch 1: x {x_minimal.shape}, y {y_minimal.shape}")
print("same inputs:", np.array_equal(x_minimal, x_library), "| same targets:", np.array_equal(y_minimal, y_library))

# %% [markdown]
# With the preset's own batch size and shuffling, one batch of `SliceSequence`:

# %% tags=["nbval-check-output"]
train_cases = select_cases(cases, split["train"])
sequence = SliceSequence(train_cases, config, shuffle=True)
x_batch, y_batch = sequence[0]
print(f"{len(sequence)} batches per epoch ({len(train_cases)} patients x "
      f"{len(config.slice_indices)} slices, {config.batch_size} slices per batch)")
print(f"x: {x_batch.shape} {x_batch.dtype}, channels {list(config.modalities)}")
print(f"y: {y_batch.shape} {y_batch.dtype}, one-hot: {bool(np.all(y_batch.sum(axis=-1) == 1))}")

# %%
# Batches hold slices as stored (BraTS orientation); axial_display turns them for the eye.
figure, axes = plt.subplots(2, 6, figsize=(14, 5), layout="constrained")
most_tumour_first = np.argsort(-y_batch[..., 1:].sum(axis=(1, 2, 3)))[:6]
for column, index in enumerate(most_tumour_first):
    flair = axial_display(x_batch[index, ..., 0])
    labels_shown = axial_display(np.argmax(y_batch[index], axis=-1))
    axes[0, column].imshow(flair, cmap="gray", vmin=-2, vmax=4)
    axes[1, column].imshow(flair, cmap="gray", vmin=-2, vmax=4)
    axes[1, column].imshow(np.ma.masked_equal(labels_shown, 0), cmap=cmap, norm=norm, alpha=0.6,
                           interpolation="nearest")
    axes[0, column].set_title(f"batch item {index}", fontsize=9)
for axis in axes.ravel():
    axis.set_axis_off()
    mark_sides(axis)  # axial_display: the patient's right on the left
figure.suptitle("FLAIR channel of six slices of the first batch (z-scored, most tumour first), "
                "and their labels")
plt.show()

# %% [markdown]
# The order of the patients and of the slices within each patient is shuffled at every
# epoch, but a batch still holds the slices of only one or two patients (the report's
# source notebook feeds exactly one patient per batch). Slices of one brain look alike, so
# such batches are strongly correlated: each step pulls the weights towards one patient,
# the next towards another. The fast path below mixes slices of many patients in every
# batch.
#
# ## Feeding the model, second way: `make_dataset`
#
# A generator that re-reads and re-preprocesses compressed volumes at every epoch does the
# same work 35 times (the source notebook's 35 epochs). `make_dataset` does it **once**,
# keeps the preprocessed slices on disk, and then streams batches with `tf.data`, each batch mixing
# slices of many patients, shuffled and augmented (random flips, small intensity changes),
# prepared while the model computes. It is what notebook 4 trains on. The first call
# preprocesses the training cases (a progress bar); later calls, and notebook 4, reuse
# what it wrote. It yields the same kind of batches as `SliceSequence`:

# %%
dataset = make_dataset(train_cases, config, training=True)
print(dataset.element_spec)

# %% [markdown]
# ## Optional: inside the fast path
#
# Nothing later in the course depends on this section.
#
# **The cache.** `make_dataset` writes each case's preprocessed slices (the steps of this
# notebook, in `preprocess_case`) as `.npy` files, images in float16 and labels in uint8,
# one folder per case. The folders are named after the settings that shape the arrays and
# a digest of the case's source files, so changing either builds new entries instead of
# reading stale ones. float16 halves the disk space and the bytes read per batch, and its
# precision (about three decimal digits) is far finer than the noise in an MRI.
#
# **The stream.** A `tf.data` pipeline then interleaves the patients, shuffles slices
# through a buffer (`Config.shuffle_buffer` slices), reads batches in parallel, augments
# them and prefetches the next ones. Memory stays bounded by the batch and the buffer,
# whatever the number of cases.
#
# How fast is each feed? The cell below gives both the same work: one whole epoch of four
# training patients, in batches of the same size, each feed starting with nothing in
# memory (the cache files are already on disk, as they are from the second epoch on). A
# whole epoch, because a `SliceSequence` reads a patient once and then serves several
# batches from it almost for free: a few batches alone would say little. With only four
# patients the cache's start (opening its files, filling the shuffle buffer) counts for
# more than in a real training, so its speed here is on the low side. Your numbers depend
# on your computer and on what else it is doing; compare the two lines with each other:

# %%
def slices_per_second(batches):
    started = time.perf_counter()
    n_slices = sum(len(x) for x, _y in batches)
    return n_slices / (time.perf_counter() - started)


timed_cases = train_cases[:4]
fresh_sequence = SliceSequence(timed_cases, config, shuffle=True)
sequence_speed = slices_per_second(fresh_sequence[i] for i in range(len(fresh_sequence)))
cached_speed = slices_per_second(iter(make_dataset(timed_cases, config, training=True, progress=False)))
print(f"one epoch of {len(timed_cases)} patients, {len(fresh_sequence)} batches of {config.batch_size} slices each way:")
print(f"SliceSequence (reads and preprocesses cases): {sequence_speed:8.0f} slices/s")
print(f"make_dataset (from the slice cache):          {cached_speed:8.0f} slices/s")

# %% [markdown]
# The same comparison with the report's settings, and its original generator, is in
# `docs/benchmarks.md`. The point to keep: with the cache, the data are no longer what
# the training waits for; the network's own computation is.
#
# ## Summary
#
# * The report trains on axial slices 22 to 121: 100 of 155 slices, leaving out 22 below
#   and 33 above (not "22 and 22" as the report says). Some tumour lies outside.
#   `brain_slices_only` drops selected slices without brain.
# * Normalise each case and contrast separately, over brain voxels (z-score). One shared
#   maximum lets a single bright voxel set the scale of both channels.
# * Resize images smoothly and labels by nearest neighbour, then one-hot encode. Resizing
#   one-hot masks bilinearly blends classes at every boundary; resizing label values
#   invents classes.
# * Split by patient, 68/20/12, with a seed, and save the split.
# * A `PyDataset` streams batches so that the dataset need not fit in memory;
#   `make_dataset` (a slice cache read by `tf.data`) does the preprocessing once, mixes
#   patients in every batch and keeps the model busy.
#
# ## Exercises
#
# 1. One T1ce voxel of a case (a vessel, say) becomes ten times brighter than the case's
#    maximum. What happens to the FLAIR channel under the shared maximum, and under the
#    z-score? Guess, then check on `stack` from the normalisation section.
# 2. Resize the toy square to 64, 128 and 300 px with `resize_onehot_bilinear`. Guess first:
#    does the share of tumour pixels with blended targets grow or shrink with the size?
#    Then explain the numbers you get (one of them is a coincidence of the toy).
# 3. Split the 369 BraTS 2020 ids with 20 different seeds. How often does one given patient
#    land in the test set? What does that mean when you compare two models trained with
#    different, unrecorded seeds?
# 4. Why should a batch that mixes slices of many patients (the fast path) train better
#    than a batch of one patient's slices (the source notebook's generator), even with the
#    same slices in each epoch?
# 5. `brain_slices_only` or a fixed window of slices: which would you use to choose the
#    training slices, and which slices must be predicted when the model segments a whole
#    volume? Why are the two answers different?

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 1: one voxel rescales FLAIR under the shared maximum; the z-score is per channel.
brain = np.any(stack != 0, axis=-1)
bright = stack.copy()
bright[..., 1].flat[np.argmax(bright[..., 1])] = 10 * stack.max()  # one T1ce voxel
for method in ("max", "zscore"):
    before = normalize_intensities(stack, method)[..., 0][brain]
    after = normalize_intensities(bright, method)[..., 0][brain]
    print(f"{method:6s}: median FLAIR brain value {np.median(before):7.3f} -> {np.median(after):7.3f}")

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# The shared maximum divides both channels by the brightest voxel of either: after the
# change that voxel is ten times larger, so every FLAIR value shrinks about tenfold (more
# exactly: by the ratio of the new maximum to the old one) although FLAIR did not change
# at all. The z-score uses each channel's own mean and standard deviation over about a
# million brain voxels: FLAIR is untouched, and even T1ce's statistics move very little.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 2: count the tumour pixels with blended targets at three sizes.
for size in (64, 128, 300):
    blended_toy = resize_onehot_bilinear(toy, size).max(axis=-1) < 1
    tumour_toy = resize_labels_nearest(toy, size) > 0
    n_blended, n_tumour = np.count_nonzero(blended_toy & tumour_toy), np.count_nonzero(tumour_toy)
    print(f"{size:3d} px: {n_blended:4d} of {n_tumour:5d} tumour pixels blended ({n_blended / n_tumour:.1%})")

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# The share hardly changes with the size (about 2 % at 128 and at 300 px), and at 64 px
# it is zero. The source notebook's resize (TensorFlow's bilinear, no antialiasing)
# computes each output pixel from the two-by-two input pixels around one sample point. A
# target is blended only when that point falls between two input pixels of different
# classes, that is, within one *input* pixel of the boundary. That band is a fixed part of
# the image, about the boundary's length times one input pixel, so the output pixels whose
# sample point lands in it scale with the size squared, exactly as the tumour's area in
# output pixels does: their ratio stays about the boundary's length over the tumour's
# area, whatever the size. At 64 px the sample points (every 3.75 input pixels) happen to
# skip the square's straight edges, so none falls across them: a coincidence of a square
# aligned with the grid, which a real, irregular tumour border never offers (the real
# slice above, with borders between classes inside the tumour as well, had several times
# that share at 128 px). Small structures, a thin enhancing rim say, are mostly boundary,
# so their targets are the most blended.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 3: how often each patient is a test patient, over 20 seeds.
test_sets = [set(split_cases(brats2020_ids, report.replace(seed=seed))["test"]) for seed in range(20)]
times_in_test = np.array([sum(patient in test for test in test_sets) for patient in brats2020_ids])
n_test = len(test_sets[0])
print(f"each split: {n_test} of {len(brats2020_ids)} patients in the test set ({n_test / len(brats2020_ids):.1%}); "
      f"per patient, {times_in_test.mean():.2f} of 20 seeds on average")
print("number of patients by how many of the 20 seeds put them in the test set:",
      dict(enumerate(np.bincount(times_in_test).tolist())))
shared = [len(test_sets[a] & test_sets[b]) for a in range(20) for b in range(a + 1, 20)]
print(f"two seeds' test sets share {np.mean(shared):.1f} of {n_test} patients on average "
      f"({min(shared)} to {max(shared)} over the {len(shared)} pairs of seeds)")

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# Each split puts about 12 % of the patients in the test set, so over 20 seeds a patient
# is a test patient about 2.4 times on average. Which patients, though, is chance: the
# printed counts spread from patients that no seed tests to patients tested several
# times, as 20 independent draws at 12 % would. Two seeds' test sets share only a handful
# of patients, about 12 % of them, as chance predicts. Two runs with different seeds are
# therefore tested on mostly different patients, and their scores differ even if the
# models are equally good: notebook 4 (*The report's corrections, measured*) measured the
# course's model over four split seeds, and its ET Dice moved from 0.36 to 0.52 with
# nothing else changed. A comparison of two models means something only on the same,
# recorded split (or averaged over several).

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 4.** Each training step moves the weights along the gradient of one batch. A
# batch of one patient's slices is a highly correlated sample (neighbouring slices of one
# brain look alike, one scanner's contrast, one tumour), so its gradient points towards
# "fit this patient", and the next batch pulls towards another: the steps zigzag, and the
# learning rate must be smaller to stay stable. A batch of slices from many patients is a
# better estimate of the gradient over the whole training set, so the same number of steps
# goes further. (With batch normalisation, a layer that rescales each feature by its mean
# and spread over the current batch, the effect is stronger still: those statistics would
# describe one patient.)

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 5.** For training either is defensible: slices without brain teach the model
# nothing it cannot learn from the background of other slices, so `brain_slices_only` (or a
# window chosen to cover the brain) saves time; a fixed window is what the report does.
# For prediction the answer is different: every slice that holds brain must be segmented,
# because a tumour does not stop at slice 121, and a slice left out is a slice where the
# tumour is missed. Notebook 6 predicts every slice with brain, whatever the training
# window was.

# %% [markdown]
# ## References
#
# * The report this course follows: *Segmentation of Gliomas in Pre-Operative MRI Scans using U-Net Architecture*. Its code comes from R. Kopál's Kaggle notebook *3D MRI brain tumor segmentation U-Net* (<https://www.kaggle.com/code/rastislav/3d-mri-brain-tumor-segmentation-u-net>), called "the source notebook" in this course.
# * F. Chollet et al., Keras (<https://keras.io>): `keras.utils.PyDataset`, `Model.fit`, the Keras 3 saving format.
# * B. H. Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", *IEEE Transactions on Medical Imaging* 34(10), 1993-2024, 2015.
# * Data: BraTS 2020 on Kaggle (<https://www.kaggle.com/datasets/awsaf49/brats20-dataset-training-validation>), BraTS 2019 on Kaggle (<https://www.kaggle.com/datasets/aryashah2k/brain-tumor-segmentation-brats-2019>), the BraTS challenges (<https://www.synapse.org/brats>), the Medical Segmentation Decathlon (<http://medicaldecathlon.com>). BraTS data use requires citing Menze et al. 2015 and Bakas et al. 2017/2018.
