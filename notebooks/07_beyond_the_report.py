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
# # 7. Beyond the report (optional): region outputs, 2.5-D input, test-time flips
#
# *This notebook is optional: the course is complete without it.*
#
# The report's section 4.5 lists ways to extend the U-Net: a 3-D U-Net, attention gates,
# residual blocks. Three more ideas cost little and fit a 2-D network. The first and the
# last are what the BraTS 2020 winner (nnU-Net, Isensee and colleagues) trained and
# predicted with; the second is a cheap halfway house to the 3-D networks such methods use:
#
# 1. **Region outputs.** BraTS scores three nested regions, whole tumour (WT), tumour core
#    (TC) and enhancing tumour (ET), not the four classes. Train the network to answer the
#    three yes/no questions directly, with one sigmoid each, instead of picking one class
#    per pixel with a softmax.
# 2. **2.5-D input.** A radiologist scrolls through neighbouring slices to tell a vessel from
#    a tumour. Give the 2-D network the slice above and below as extra input channels.
# 3. **Test-time flips.** A brain is roughly symmetric left-right, a network is not: average
#    its prediction with the prediction on the mirrored image, mirrored back.
#
# Each idea is first built in a few lines of visible code, then checked against the
# library's option that does the same (`Config(outputs="regions")`,
# `Config(context_slices=1)`, `predict_case(..., tta_flips="lr")`). Then each is measured
# against the report's kind of network, the 2-D softmax U-Net, on the same data, split,
# seed and training budget.
#
# After this notebook you will be able to:
#
# * turn labels into region targets, train a sigmoid head on them with binary
#   cross-entropy plus soft Dice, and decode its three outputs back into BraTS labels;
# * stack neighbouring slices as channels, and say what it changes in the network;
# * average a prediction over a left-right flip, and say when that helps and what it costs;
# * read a benchmark table of the three ideas, and say how much of a difference is noise.

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

import dataclasses
import time

import keras
import matplotlib.pyplot as plt
import numpy as np

from gliseg_nb.course import demo_case, load_or_train
from gliseg_nb.data import load_case
from gliseg_nb import measured
from gliseg_nb.labels import REGIONS, labels_to_regions, regions_to_labels
from gliseg_nb.losses import RegionLoss
from gliseg_nb.metrics import evaluate_case
from gliseg_nb.model import build_unet
from gliseg_nb.orientation import axial_display
from gliseg_nb.pipeline import preprocess_case
from gliseg_nb.predict import predict_case

# %% [markdown]
# The model notebook 4 trained, its settings and its split, reused from the cache (or
# trained now, a minute or two, if this notebook runs first):

# %%
run = load_or_train(DATA_DIR, PRESET)
config = run.config
test_cases = run.cases_of("test")
case = demo_case(test_cases, run.data_dir)  # the test patient with the most enhancing tumour
print(f"model {run.run_dir.name} ({'cached' if run.reused else 'trained now'}): {config.image_size} px, "
      f"inputs {list(config.modalities)}, outputs {config.outputs!r}")
print("test patients:", ", ".join(c.case_id for c in test_cases))

# %% [markdown]
# ## Region outputs: three yes/no questions
#
# The report's network ends in a softmax over four classes: for each pixel, four numbers
# that sum to 1, and the largest wins. But BraTS never asks "which class?". It asks three
# questions, each of which has a region for its answer, and the regions are nested:
#
# * WT, whole tumour: classes 1, 2 and 3;
# * TC, tumour core: classes 1 and 3;
# * ET, enhancing tumour: class 3.
#
# A pixel of enhancing tumour is in all three. A region network answers the three
# questions directly: its last layer has three channels with a **sigmoid** each (a number
# between 0 and 1 that needs no other channel), and its targets are the three region masks.
# First the targets, by hand:

# %%
labels = np.array([[0, 2, 2], [2, 1, 3], [2, 3, 3]])  # a 3 x 3 patch: edema around a core
by_hand = np.stack([np.isin(labels, (1, 2, 3)), np.isin(labels, (1, 3)), labels == 3], axis=-1)
for index, region in enumerate(REGIONS):
    print(f"{region} target:\n{by_hand[..., index].astype(int)}")

# %% tags=["nbval-check-output"]
print("same as gliseg_nb.labels.labels_to_regions:", np.array_equal(by_hand, labels_to_regions(labels)))

# %% [markdown]
# The head: where the softmax network has `Conv2D(4, 1, activation="softmax")`, the region
# network has three sigmoid channels. Everything before it is the same U-Net.

# %%
features = keras.Input((64, 64, 8))  # what the last decoder level gives, say
region_head = keras.layers.Conv2D(3, 1, activation="sigmoid", name="region_probabilities")(features)
print("region head:", region_head.shape, "(batch, rows, columns, WT/TC/ET)")

# %% [markdown]
# The loss treats each channel as its own yes/no problem: binary cross-entropy per pixel
# and region, plus one minus the soft Dice of each region over the batch (the soft Dice of
# notebook 5, on region probabilities). nnU-Net's BraTS 2020 entry trained its regions
# with this sum of Dice and binary cross-entropy; MONAI's BraTS tutorial trains the same
# three sigmoid outputs with the Dice part alone (`DiceLoss(sigmoid=True)`). In NumPy, on
# a made-up prediction of the patch above:

# %%
rng = np.random.default_rng(0)
targets = by_hand.astype(np.float32)[None]  # a batch of one patch
predicted = np.clip(targets * 0.8 + rng.uniform(0, 0.3, targets.shape), 0.01, 0.99).astype(np.float32)

crossentropy = -(targets * np.log(predicted) + (1 - targets) * np.log(1 - predicted)).mean()
smooth = 1.0
dice = [(2 * (targets[..., r] * predicted[..., r]).sum() + smooth)
        / (targets[..., r].sum() + predicted[..., r].sum() + smooth) for r in range(3)]
loss_by_hand = crossentropy + 1 - np.mean(dice)
print(f"BCE {crossentropy:.4f}, soft Dice WT/TC/ET {np.round(dice, 4)}, loss {loss_by_hand:.4f}")

# %% [markdown]
# The library's `RegionLoss` takes the one-hot classes the input pipeline feeds (so the
# data pipeline does not change) and makes the region targets itself:

# %% tags=["nbval-check-output"]
onehot = np.eye(4, dtype=np.float32)[labels][None]
library_loss = float(keras.ops.convert_to_numpy(RegionLoss().call(onehot, predicted))[0])
print(f"RegionLoss: {library_loss:.4f}; the same as by hand: {np.isclose(library_loss, loss_by_hand, atol=1e-5)}")

# %% [markdown]
# Three independent sigmoids need not agree: a pixel may be "enhancing" (ET > 0.5) without
# being "core" (TC < 0.5). Decoding back to the four classes lets the innermost region win,
# the BraTS way: enhancing where ET > 0.5, else necrotic core where TC > 0.5, else edema
# where WT > 0.5, else background.

# %%
probabilities = np.array([[0.9, 0.1, 0.1],   # WT only: edema
                          [0.9, 0.8, 0.1],   # WT and TC: necrotic core
                          [0.9, 0.8, 0.7],   # all three: enhancing
                          [0.4, 0.3, 0.6],   # ET alone: still enhancing
                          [0.2, 0.1, 0.1]])  # none: background
decoded = np.where(probabilities[:, 2] > 0.5, 3,
                   np.where(probabilities[:, 1] > 0.5, 1, np.where(probabilities[:, 0] > 0.5, 2, 0)))
print("decoded by hand:", decoded)

# %% tags=["nbval-check-output"]
print("gliseg_nb.labels.regions_to_labels:", regions_to_labels(probabilities),
      "same:", np.array_equal(decoded, regions_to_labels(probabilities)))

# %% [markdown]
# In the library it is one setting, `outputs="regions"`: `build_unet` then ends in the
# sigmoid head, `get_loss` gives the `RegionLoss` (with the same class weights on the
# cross-entropy), the training metrics decode before they count, and `predict_case`
# decodes the whole volume, so evaluation and the NIfTI files are unchanged.

# %% tags=["nbval-check-output"]
softmax_net = build_unet(config)
region_net = build_unet(config.replace(outputs="regions"))
for name, net in (("softmax", softmax_net), ("regions", region_net)):
    print(f"{name:8s} last layer {net.layers[-1].name!r}, output {net.output_shape}, "
          f"{net.count_params():,} parameters")

# %% [markdown]
# ## 2.5-D input: a slice and its neighbours
#
# The U-Net sees one axial slice. Whether a bright spot is a vessel, which continues as a
# tube through the next slices, or a piece of enhancing rim, which closes into a shell
# around the necrosis, is easier to tell with the slices above and below in view. A 3-D
# network sees them all, at a cost in memory and time; a **2.5-D** network gets only the
# `k` neighbours on each side as extra input channels: with four contrasts and `k = 1`,
# 12 channels instead of 4.
#
# By hand, on every slice of the training slab (`slice_step=1`, so that the neighbours of a
# slice are the rows above and below it):

# %%
every_slice = config.replace(slice_step=1)
x, y = preprocess_case(case, every_slice)
channels = len(config.modalities)
inner = np.arange(1, len(x) - 1)  # the first and last rows have a neighbour outside x
stacked_by_hand = np.concatenate([x[inner - 1], x[inner], x[inner + 1]], axis=-1)
print(f"one slice: {x.shape[1:]}; with its two neighbours: {stacked_by_hand.shape[1:]}")

# %% [markdown]
# The library does it when preprocessing (`context_slices=k`), for the training cache and
# for whole-volume prediction alike; at the ends of the volume a missing neighbour repeats
# the end slice. Its channels are grouped by slice (lower neighbour, centre, upper
# neighbour), as above:

# %% tags=["nbval-check-output"]
x_context, _ = preprocess_case(case, every_slice.replace(context_slices=1))
print("shape:", x_context.shape[1:], "- the same as by hand:", np.array_equal(x_context[inner], stacked_by_hand))
print("centre channels are the 2-D input:", np.array_equal(x_context[..., channels:2 * channels], x))

# %%
# The three FLAIR slices one 2.5-D input holds, at the slice with the most tumour, and
# what changes from the lower to the upper one.
row = int(np.argmax((y > 0).sum(axis=(1, 2))))
flair = [x_context[row, :, :, (offset + 1) * channels + config.modalities.index("flair")] for offset in (-1, 0, 1)]
affine = load_case(case, modalities=["flair"], slices=(0, 1)).affine
figure, axes = plt.subplots(1, 4, figsize=(12, 3.6), layout="constrained")
for ax, image, offset in zip(axes, flair, (-1, 0, 1)):
    ax.imshow(axial_display(image, affine), cmap="gray")
    ax.set_title(f"FLAIR, slice {every_slice.slice_indices[row] + offset}")
difference = axial_display(flair[2] - flair[0], affine)
limit = float(np.abs(difference).max()) or 1.0
axes[3].imshow(difference, cmap="RdBu_r", vmin=-limit, vmax=limit)
axes[3].set_title("upper minus lower")
for ax in axes:
    ax.set_axis_off()
figure.suptitle(f"{case.case_id}: the FLAIR channels of one 2.5-D input (radiological view)")
plt.show()

# %% [markdown]
# Neighbouring slices, 1 mm apart, look almost the same; what the network gains is in the
# difference (right): the borders that move from one slice to the next, here mostly the
# edges of the ventricles and of the tumour.

# %% [markdown]
# Only the first convolution changes: it reads 12 channels instead of 4, a few hundred
# weights more. The rest of the network is the same.

# %% tags=["nbval-check-output"]
context_net = build_unet(config.replace(context_slices=1))
print(f"2-D:   input {softmax_net.input_shape}, {softmax_net.count_params():,} parameters")
print(f"2.5-D: input {context_net.input_shape}, {context_net.count_params():,} parameters "
      f"(+{context_net.count_params() - softmax_net.count_params():,})")

# %% [markdown]
# ## Test-time flips
#
# The course's training flips slices at random (augmentation), so the network has seen
# mirrored brains, but it does not give a mirrored image the mirrored answer exactly.
# Averaging the two answers removes some of its random errors: predict the patient, predict
# the patient mirrored left-right, mirror that prediction back, and average the
# probabilities. By hand, with the whole-volume prediction of notebook 6 (`predict_case`
# averages over the four in-plane flips by default and erases components under 1 mL; both
# are switched off here, to see each step):

# %%
case_data = load_case(case, modalities=list(config.modalities))
plain_labels, plain = predict_case(run.model, case_data, config, tta_flips="none", min_component_voxels=0,
                                   return_probabilities=True)
# In BraTS files the first voxel axis runs left-right: mirroring is reversing it.
mirrored_case = dataclasses.replace(case_data, images={m: v[::-1] for m, v in case_data.images.items()})
started = time.process_time()  # CPU s of the second pass: the first one also set TensorFlow up
_, mirrored = predict_case(run.model, mirrored_case, config, tta_flips="none", min_component_voxels=0,
                           return_probabilities=True)
one_pass = time.process_time() - started
averaged_by_hand = (plain + mirrored[::-1]) / 2
print(f"one pass {one_pass:.1f} CPU s; largest change of a probability by the average: "
      f"{np.abs(averaged_by_hand - plain).max():.2f}")

# %% [markdown]
# `predict_case(..., tta_flips="lr")` does the same inside (it finds the left-right axis
# from the image's affine, and mirrors the small network inputs rather than the whole
# volume, so the numbers agree to rounding); `tta_flips=True` (`"all"`, the default)
# averages over all four in-plane flips.

# %% tags=["nbval-check-output"]
started = time.process_time()
flipped_labels, averaged = predict_case(run.model, case_data, config, tta_flips="lr", min_component_voxels=0,
                                        return_probabilities=True)
two_passes = time.process_time() - started
print("library = by hand (to 1e-4):", np.allclose(averaged, averaged_by_hand, atol=1e-4))

# %% [markdown]
# Does it help this model on this patient? Dice per region with and without the flip,
# and what it cost in CPU seconds (measured now, on this machine; the benchmark below scores every test
# patient):

# %%
print(f"{case.case_id:16s} {'WT':>6s} {'TC':>6s} {'ET':>6s}  CPU s")
for name, predicted_labels, seconds in (("no flip", plain_labels, one_pass),
                                        ("left-right flip", flipped_labels, two_passes)):
    result = evaluate_case(predicted_labels, case_data.labels, case_data.zooms)
    print(f"{name:16s} " + " ".join(f"{result[region]['dice']:6.3f}" for region in REGIONS) + f"  {seconds:6.1f}")

# %% [markdown]
# ## The three ideas, measured
#
# Is any of this worth it? Only a measurement on the same data can say.
# `benchmarks/bench_beyond.py` trains notebook 4's network with the quick preset three
# times on the same training patients, split, seed and budget (8 epochs at most, batch 8,
# 64 px, augmentation on), changing one setting each time: the 2-D softmax network (the
# report's kind), `outputs="regions"`, and `context_slices=1`. The softmax model is also
# scored with test-time flips (left-right only, and all four in-plane flips). Every model
# is scored the BraTS way (whole volumes, Dice per region) on the test patients, which none
# of them trained on, and the whole comparison is repeated with a second seed (another split
# and another initialisation). Its result file ships with the package
# (`gliseg_nb.measured`), so Colab has it too; the command and machine are printed with the table.
# It was measured on the same synthetic data (generator version 4) as this notebook, and it
# scores the networks' own outputs: flips as named, no clean-up of small components.

# %%
bench = measured.load("beyond-quick")
machine = bench["machine"]
print(f"command: {bench['command']}")
print(f"machine: {machine['cpus']} CPU cores ({machine['platform']}), TensorFlow {machine['tensorflow']}, "
      f"Keras {machine['keras']}; run {bench['started']} to {bench['finished']}\n")
seeds = list(bench["seeds"])
names = list(bench["seeds"][seeds[0]]["rows"])
print(f"{'':26s} {'WT':>6s} {'TC':>6s} {'ET':>6s}   mean Dice on the test patients of {len(seeds)} seed(s)")
for name in names:
    means = [bench["seeds"][seed]["rows"][name]["test"]["mean"] for seed in seeds]
    print(f"{name:26s} " + " ".join(f"{np.mean([m[r] for m in means]):6.3f}" for r in REGIONS)
          + "   per seed: " + "; ".join(" ".join(f"{m[r]:.2f}" for r in REGIONS) for m in means))
print(f"\n{'training (per seed)':26s} {'wall s':>7s} {'CPU s':>7s} {'epochs':>7s} {'load before':>12s}")
for name in names:
    for seed in seeds:
        timing = bench["seeds"][seed]["rows"][name].get("train")
        if timing:
            print(f"{name + ', seed ' + seed:26s} {timing['wall_seconds']:7.0f} {timing['cpu_seconds']:7.0f} "
                  f"{timing['epochs']:7d} {timing['load_before'][0]:12.1f}")
print("\nET Dice of each test patient (the mean hides them):")
for seed in seeds:
    rows_of_seed = bench["seeds"][seed]["rows"]
    for case_id in bench["seeds"][seed]["split"]["test"]:
        print(f"  seed {seed:>2s} {case_id}: " + "  ".join(
            f"{name} {rows_of_seed[name]['test']['per_case'][case_id]['ET']:.2f}" for name in names))

# %% [markdown]
# How to read it:
#
# * **Few patients, large steps.** Each seed scores three test patients: one patient more
#   or less well segmented moves a mean by several hundredths. A difference smaller than
#   the spread between the two seeds of the *same* variant is not evidence.
# * **One patient without enhancing tumour decides the ET column.** Test patient
#   `BraTS20_Synthetic_006` (seed 42) has no enhancing tumour at all. BraTS scores such a
#   case 1 if nothing is predicted and 0 for even one false voxel (notebook 5). The softmax
#   network predicts a few voxels there in one pass and with the mirror (0.00), none once
#   four flips are averaged (1.00); the region and the 2.5-D networks predict none (1.00).
#   That one case is the whole of the four flips' ET gain (0.35 to 0.69 for seed 42) and
#   most of the other two networks' ET lead. In seed 0, the low-grade test patient
#   `BraTS20_Synthetic_001` has no enhancing tumour either, and every variant puts a few
#   voxels there (0.00). On the four patients with a real enhancing tumour the differences
#   are small and go both ways: the region and the 2.5-D networks are ahead on three of
#   them (by up to 0.09) and behind on `BraTS20_Synthetic_007`. A rule that removes a tiny
#   predicted ET (`predict_case(..., min_et_voxels=...)`, notebook 6) targets the empty
#   case directly.
# * **What it says, at this budget.** The flips change the whole tumour little (+0.001 for
#   the mirror, +0.005 for four flips on the mean; on one patient a region can also drop,
#   `BraTS20_Synthetic_012` with the mirror), with no training and little extra
#   prediction time: in the benchmark most of the time goes to reading, normalising and
#   resizing the volume, done once, while the small 64-px network runs two or four times
#   (notebook 6 times the whole `predict_case` on one case: four flips took about twice
#   the CPU time of one pass; the mirror, timed above, a little more than one pass).
#   The region network is the most promising of the three here: WT 0.775 against 0.714 and
#   TC 0.731 against 0.702 in seed 42, level with the softmax network in seed 0 (WT
#   0.867 against 0.873, TC 0.709 against 0.700). The
#   2.5-D network goes both ways (WT +0.04 in seed 42, -0.01 in seed 0; TC +0.02, -0.05).
#   Two seeds and six test patients cannot tell either from the noise.
# * **Timings.** The benchmark ran on a 2-core machine that was not idle: the load average
#   before each training, printed beside its time, was close to the number of cores, so
#   other programs shared the CPUs. CPU seconds, which they disturb less than the clock,
#   are the fairer comparison.
# * **Same budget.** The variants train the same number of epochs on the same slices. A
#   region network or a 2.5-D network may need a different budget to show its best; the
#   table answers "at this budget", nothing more. The winners of BraTS combine all three
#   ideas with a 3-D network, real data and days of GPU training.
# * **Synthetic data.** The patients come from the course's simulator. What helps here need
#   not help on real scans (notebook 4's "Synthetic scores are not real-scan scores"). The
#   repository's `docs/benchmarks.md` ("Beyond the report") gives the seed-42 models of an
#   earlier run (generator version 3) scored on five real BraTS scans too: there the 2.5-D
#   network transferred best on WT and TC and the region network worst, from one seed and
#   five cases; the flips, now the default of `predict_case`, helped on real scans in every
#   seed tried (`docs/benchmarks.md`, "Inference defaults").

# %% [markdown]
# ## Summary
#
# * A **region network** answers BraTS's three questions (WT, TC, ET) with three sigmoids,
#   trained with binary cross-entropy plus the soft Dice of each region; its outputs are
#   decoded to classes by letting the innermost region win. In the library:
#   `Config(outputs="regions")`.
# * A **2.5-D input** stacks the neighbouring slices as channels: only the first
#   convolution grows. In the library: `Config(context_slices=k)`, in training and in
#   whole-volume prediction alike.
# * **Test-time flips** average the prediction with the mirrored prediction of the mirrored
#   image: two forward passes instead of one, no training (for the small quick network a
#   fraction more time: normalising and resizing the volume, done once, cost more than a
#   forward pass). In the library: `predict_case(..., tta_flips="lr")`; four flips
#   (`"all"`) are the default of `predict_case` and `gliseg-nb predict` (`"none"` for one
#   pass).
# * Each was measured against the report's 2-D softmax network on the same data, split,
#   seed and budget; with a few test patients per seed, read the differences against the
#   spread between seeds.
#
# ## Exercises
#
# 1. A softmax network can also be scored by region: WT is "class 1, 2 or 3", so
#    `p_WT = p1 + p2 + p3`. Write `p_TC` and `p_ET` the same way. Which triples of region
#    probabilities can a region network give that a softmax network cannot? Where do the
#    two networks really differ, and what can go wrong with three independent sigmoids
#    that cannot happen with a softmax?
# 2. With `context_slices=1`, the quick preset (`slice_step=2`) trains on every second
#    slice, yet each input holds the slices right next to it, not the next selected ones.
#    Why must training take the neighbours from the volume rather than from the selected
#    slices? (Think of what `predict_case` feeds the network.)
# 3. Averaging over a left-right flip makes the model's answer follow a mirroring of its
#    input: show it the mirrored patient and the averaged prediction comes out mirrored.
#    It does not make the prediction symmetric: the tumour stays on its side. Give one way
#    in which averaging a left-right flip could *hurt* on real patients, and one reason
#    why it should not cost accuracy on average for a network trained with random flips.
# 4. The benchmark trains each variant once per seed. How many seeds would you need before
#    believing a difference of 0.02 in ET Dice? Look at the per-seed numbers of the same
#    variant, and say what you would measure next.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 1.** From a softmax, `p_TC = p1 + p3` and `p_ET = p3`, and every nested
# triple `p_WT >= p_TC >= p_ET` comes from some softmax (`p3 = p_ET`, `p1 = p_TC - p_ET`,
# `p2 = p_WT - p_TC`, `p0 = 1 - p_WT`): "enhancing tumour 0.6, whole tumour 0.9" is
# `p3 = 0.6, p2 = 0.3, p0 = 0.1`. The only triples a region network adds are the ones that
# are not nested, such as ET above TC, and those are its weakness: three independent
# sigmoids need not agree (ET above 0.5 where TC is below), so decoding needs a rule, the
# innermost region wins, which imposes the nesting afterwards. With a softmax it holds by
# construction.
#
# The real differences are in training and decoding. The region network's loss is each
# region's own binary cross-entropy and soft Dice, the quantities BraTS scores, so edema
# called necrosis costs it on TC only, not on WT; a four-class cross-entropy counts it
# like any other wrong class (the quick preset's softmax network already adds the
# regions' soft Dice, `loss="ce+region_dice"`, so here the two losses differ in their
# cross-entropy). And the region network thresholds each region at 0.5, where the softmax
# takes the argmax of four classes: a pixel with `p0 = 0.4, p1 = 0.3, p2 = 0.3` is
# background for the argmax, although its `p_WT = 0.6` says tumour is more likely than
# not; decoded by regions (WT 0.6, TC 0.3, ET 0) it is edema.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 2.** At prediction time every slice of the volume is predicted, and its
# neighbours are the slices at distance 1 in the volume. If training had used the next
# *selected* slices (distance 2 with `slice_step=2`), the network would have learned what
# slices 2 mm away look like and be shown slices 1 mm away: a mismatch between training and
# use, the kind of silent error that notebooks 3 and 6 check for (the library's tests check
# that training and prediction feed the same numbers).

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 3.** Brains and tumours are not symmetric: a tumour is on one side. The flip
# does not move it to the other side in the result (the mirrored prediction is mirrored
# back), but a network that learned side-specific cues (a scanner's bias field, a
# characteristic asymmetry of the anatomy) loses them in the mirrored pass, and the average
# blurs borders where the two passes disagree, which can shrink a thin enhancing rim below
# 0.5. For a network trained with random flips, the mirrored image is as familiar as the
# original, so the average is one of two equally good opinions: on average it reduces the
# variance of the errors, for two forward passes instead of one (a fraction more time for
# the quick network, whose prediction is mostly reading and resizing the volume).

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 4.** Read the per-seed numbers of the table: the two seeds of the same variant
# differ in ET by 0.13 (2-D softmax, 0.35 and 0.48) up to 0.22 (2.5-D input, 0.71 and
# 0.49), several times the 0.02 in question. And a seed here changes more than the
# initialisation: it also draws another split, so three other test patients, and each
# seed's split holds one patient without enhancing tumour, whose ET Dice of 0 or 1 (the
# empty-mask convention) can move the mean by a third on its own. The spread mixes seed
# noise and patient noise.
#
# Even taking the smallest gap, 0.13 between two runs, as a spread of about
# 0.13 / sqrt(2) = 0.09 per run (a crude estimate from two values), the difference of two
# means over n seeds has a spread of about 0.09 * sqrt(2 / n); to make it 0.01, so that
# 0.02 is two spreads, takes 2 * (0.09 / 0.01)² = about 160 seeds per variant, and more
# with the larger gaps. Seeds alone will not settle it. Next: fix the split and vary only
# the initialisation, to see how much is the seed; score many more test patients per seed
# (a larger synthetic set); compare the variants on the same patients, the difference per
# patient with a bootstrap interval, as notebook 5 compares the U-Net with its baseline;
# report ET with and without the patients that have none (notebook 5's empty-mask
# convention); then real scans.

# %% [markdown]
# ## References
#
# * The report this course follows: *Segmentation of Gliomas in Pre-Operative MRI Scans using U-Net Architecture*, section 4.5, "Extensions and Variants". Its code comes from R. Kopál's Kaggle notebook *3D MRI brain tumor segmentation U-Net* (<https://www.kaggle.com/code/rastislav/3d-mri-brain-tumor-segmentation-u-net>).
# * F. Isensee, P. F. Jaeger, S. A. A. Kohl, J. Petersen, K. H. Maier-Hein, "nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation", *Nature Methods* 18, 203-211, 2021 (region-based training, test-time mirroring).
# * F. Isensee, P. F. Jäger, P. M. Full, P. Vollmuth, K. H. Maier-Hein, "nnU-Net for Brain Tumor Segmentation", BrainLes 2020, LNCS 12659, 118-132, 2021 (the BraTS 2020 winner: WT/TC/ET regions, sigmoid outputs, Dice + cross-entropy).
# * MONAI, "Brain tumor 3D segmentation with MONAI" tutorial (<https://github.com/Project-MONAI/tutorials/blob/main/3d_segmentation/brats_segmentation_3d.ipynb>): `ConvertToMultiChannelBasedOnBratsClasses`, three sigmoid channels, `DiceLoss(sigmoid=True)`.
# * B. H. Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", *IEEE Transactions on Medical Imaging* 34(10), 1993-2024, 2015.
# * S. Bakas et al., "Advancing The Cancer Genome Atlas glioma MRI collections with expert segmentation labels and radiomic features", *Scientific Data* 4, 170117, 2017.
# * O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI 2015, LNCS 9351, 234-241.
# * L. Maier-Hein et al., "Metrics reloaded: recommendations for image analysis validation", *Nature Methods* 21, 195-212, 2024.
# * Data: BraTS 2020 on Kaggle (<https://www.kaggle.com/datasets/awsaf49/brats20-dataset-training-validation>), the BraTS challenges (<https://www.synapse.org/brats>), the Medical Segmentation Decathlon (<http://medicaldecathlon.com>). BraTS data use requires citing Menze et al. 2015 and Bakas et al. 2017/2018.
