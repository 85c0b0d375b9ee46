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
# # 4. The U-Net, built and trained
#
# This notebook builds the report's network from three small functions, checks it against
# the parameter count of the report's source notebook, and then trains a small version of
# it for real on this machine: first one epoch in plain Keras (`compile`, then `fit`),
# then the full short training with the course's library, which runs the same recipe.
#
# **Runtime**: the quick training takes a minute or two on two CPU cores (measured, see
# the README's *What to expect*); one epoch in plain Keras comes first, and each training
# cell prints its own time. When an earlier run has trained the model, the library's part
# takes seconds (the model is cached).
#
# After this notebook you will be able to:
#
# * write the three building blocks of a U-Net in Keras: a convolution block, an encoder
#   step and a decoder step with its skip connection;
# * assemble them into the report's network and account for the 7,759,908 parameters of
#   its source notebook;
# * compile and fit a U-Net in plain Keras, and do the same with the course's training
#   function, which adds checkpoints and resuming;
# * read training curves with a Dice per class, and say why accuracy is missing from them;
# * look at predictions on validation slices and judge them.

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

import time

import keras
import matplotlib.pyplot as plt
import numpy as np
from keras import layers

from gliseg_nb import Config, measured
from gliseg_nb.course import format_settings, load_or_train
from gliseg_nb.data import find_cases, get_data_dir
from gliseg_nb.labels import label_colormap, legend_handles
from gliseg_nb.losses import get_loss
from gliseg_nb.metrics import default_metrics
from gliseg_nb.model import build_unet, plot_unet
from gliseg_nb.orientation import axial_display
from gliseg_nb.pipeline import make_dataset, preprocess_case, select_cases, split_cases
from gliseg_nb.plotting import mark_sides, plot_history
from gliseg_nb.train import region_dice

config = Config.preset(PRESET)
report = Config.preset("report")

# %% [markdown]
# ## The idea
#
# Segmentation asks two questions of every pixel: *what* is here (which needs context: a
# bright spot means tumour only if it sits in the right surroundings) and *exactly where*
# is its border (which needs full resolution). A U-Net (Ronneberger and colleagues, 2015)
# answers both with two paths:
#
# * the **encoder** (contracting path) repeats "two 3x3 convolutions, then halve the image
#   with 2x2 max-pooling". Each halving lets the next convolutions see a region twice as
#   large, and the number of filters doubles to hold more abstract features;
# * the **bottleneck** at the bottom sees the coarsest, widest view;
# * the **decoder** (expanding path) climbs back up: double the image size, then at each
#   level **concatenate** the encoder's feature maps of the same size (the **skip
#   connections**), which carry the fine detail that pooling threw away, and convolve
#   again;
# * a final 1x1 convolution gives four raw numbers per pixel, and a **softmax** turns them
#   into four probabilities that add up to 1, one for each class.
#
# ## Three building blocks
#
# Each block is a function from a Keras tensor to a Keras tensor, so they compose like
# ordinary functions. First, two 3x3 convolutions, each followed by a ReLU (max(0, x):
# without it, stacked convolutions would add up to one linear filter), with "same" padding
# so that the image keeps its size, and the He-normal initialisation of the report's
# source notebook: random starting weights with a spread of sqrt(2 / inputs per filter),
# where the 2 makes up for each ReLU zeroing about half of its inputs, so that the signal
# keeps its size through many layers:

# %%
def conv_block(x, filters):
    """Two 3x3 convolutions with ReLU: the unit of every level of the U-Net."""
    x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer="he_normal")(x)
    x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer="he_normal")(x)
    return x


def encoder_block(x, filters):
    """One step down: a conv block, kept for the skip connection, then 2x2 max-pooling."""
    skip = conv_block(x, filters)
    down = layers.MaxPooling2D(pool_size=2)(skip)
    return skip, down


def decoder_block(x, skip, filters):
    """One step up: upsample, 2x2 convolution, concatenate the skip, conv block."""
    x = layers.UpSampling2D(size=2)(x)
    x = layers.Conv2D(filters, 2, padding="same", activation="relu", kernel_initializer="he_normal")(x)
    x = layers.Concatenate()([skip, x])
    return conv_block(x, filters)


# %% [markdown]
# The report's text calls the up step a "2x2 up-convolution (transpose convolution)". The
# network of its source notebook upsamples and then applies an ordinary 2x2 convolution,
# which is what `decoder_block` does. (A transposed 2x2 convolution with
# stride 2, as in the original U-Net paper, would have exactly as many parameters; both
# double the size and learn how to fill in the new pixels.)
#
# ## The report's network
#
# The report describes the architecture in words (its section 4); the exact network, with
# its sizes, dropout and initialisation, and its training (optimiser, schedule, 35 epochs)
# come from the report's source notebook (R. Kopál's Kaggle notebook, in the References).
# "The report's network" here means that one: input 128 x 128 pixels with 2 channels
# (FLAIR and T1ce); four levels with 32, 64, 128 and 256 filters; a 512-filter bottleneck
# followed by dropout (20 % of its outputs set to zero at random during training, against
# overfitting); four decoder levels back up; 4 classes.

# %%
def build_report_unet(input_shape=(128, 128, 2), n_classes=4, filters=(32, 64, 128, 256), dropout=0.2):
    """The report's U-Net from the three blocks above."""
    inputs = keras.Input(shape=input_shape)
    skips = []
    x = inputs
    for level_filters in filters:
        skip, x = encoder_block(x, level_filters)
        skips.append(skip)
    x = conv_block(x, 2 * filters[-1])  # the bottleneck
    x = layers.Dropout(dropout)(x)
    for level_filters, skip in zip(reversed(filters), reversed(skips)):
        x = decoder_block(x, skip, level_filters)
    outputs = layers.Conv2D(n_classes, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs)


our_unet = build_report_unet()

# %% tags=["nbval-check-output"]
print(f"input {our_unet.input_shape} -> output {our_unet.output_shape}")
print(f"parameters: {our_unet.count_params():,}")

# %% [markdown]
# 7,759,908: the parameter count of the source notebook's network. Where do they come
# from? A 3x3 convolution from `c_in` to `c_out` channels has `3 * 3 * c_in * c_out`
# weights plus `c_out` biases. Counting by hand, block by block:

# %% tags=["nbval-check-output"]
def conv_parameters(kernel, c_in, c_out):
    return kernel * kernel * c_in * c_out + c_out


counts = {}
c_in = 2
for level_filters in (32, 64, 128, 256):
    counts[f"encoder {level_filters}"] = conv_parameters(3, c_in, level_filters) + conv_parameters(3, level_filters, level_filters)
    c_in = level_filters
counts["bottleneck 512"] = conv_parameters(3, 256, 512) + conv_parameters(3, 512, 512)
c_in = 512
for level_filters in (256, 128, 64, 32):
    up = conv_parameters(2, c_in, level_filters)
    # after the concatenation: skip (level_filters) + upsampled (level_filters) channels
    convs = conv_parameters(3, 2 * level_filters, level_filters) + conv_parameters(3, level_filters, level_filters)
    counts[f"decoder {level_filters}"] = up + convs
    c_in = level_filters
counts["1x1 softmax"] = conv_parameters(1, 32, 4)
for name, count in counts.items():
    print(f"{name:15s} {count:10,d}")
print(f"{'total':15s} {sum(counts.values()):10,d}")

# %% [markdown]
# Almost half of them sit in the bottleneck, where the images are smallest: the cost of a
# convolution's weights grows with its channels, not with the image size. (The *compute*
# is spread evenly instead: one level down, a convolution sees a quarter of the pixels
# but twice the input and twice the output channels, four times the work per pixel, so
# every level costs about the same number of multiplications.)
#
# The library's `build_unet` is the same network, with names on its layers and the
# variants of report section 4.5 behind options (batch normalisation, residual blocks,
# attention gates). With the `report` preset it has exactly the same parameters:

# %% tags=["nbval-check-output"]
library_unet = build_unet(report)
print(f"build_unet(report preset): {library_unet.count_params():,} parameters")
print("same layer shapes:", [w.shape for w in library_unet.weights] == [w.shape for w in our_unet.weights])
quick_unet = build_unet(Config.preset("quick"))
print(f"build_unet(quick preset):  {quick_unet.count_params():,} parameters, input {quick_unet.input_shape[1:]}")

# %% [markdown]
# The drawing below is the U: one box per level with its filters and image size, the
# pooling steps going down, the up steps coming back, and the skip connections across.
# (Keras' own `keras.utils.plot_model` draws every layer, but it needs the graphviz
# programs, which Colab and Binder may lack; `plot_unet` uses them when present.)

# %%
plot_unet(report, method="drawing")
plt.show()

# %% [markdown]
# The `quick` preset keeps the same shape but makes it small enough to train on a laptop
# CPU, in a minute or two on two CPU cores (measured, see the README): 64 x 64 pixels,
# three levels of 8, 16 and 32 filters, every 2nd slice, all four contrasts. Its settings
# beside the report's are below. It also trains with a loss the report does not use:
# cross-entropy plus the soft Dice of the BraTS *regions* (whole tumour, tumour core,
# enhancing tumour), so that it learns what BraTS scores. That is a teaching shortcut, not
# a result: the report's network at 128 pixels (the source notebook's size) on real data
# is what you would train on a GPU.

# %%
print(format_settings({PRESET: config, "report": report}))

# %% [markdown]
# ## Training in plain Keras: `compile`, then `fit`
#
# Training a Keras model takes two calls. `compile` says *how* to learn: the optimiser,
# the loss to minimise and the metrics to report. `fit` says *on what*: the training
# batches, the validation batches, the number of epochs, and callbacks that act between
# epochs. Here is the whole recipe of the `quick` preset (printed above), with the
# settings it reads:
#
# * the patients split 68/20/12 with the preset's seed (notebook 3), the slices fed by
#   notebook 3's fast path `make_dataset` (training batches shuffled across patients and
#   augmented with random flips and small intensity changes);
# * Adam (the optimiser that sets each weight's step from running averages of its recent
#   gradients) with the preset's learning rate; the source notebook's schedule as
#   callbacks: the learning rate divided by 5 whenever the validation loss has not
#   improved for 2 epochs (down to 1e-6), and early stopping;
# * the loss `ce+region_dice`, which adds the soft Dice of the BraTS *regions* (whole
#   tumour, tumour core, enhancing tumour) to the source notebook's cross-entropy, with
#   extra weight for the rare classes: cross-entropy alone is dominated by the background
#   pixels (notebook 5 builds the soft Dice from scratch);
# * the metrics of `default_metrics`, counted over the epoch: the Dice of each tumour
#   class and their mean, the Dice of the regions WT, TC and ET, precision, sensitivity
#   and specificity, the report's accuracy, and a mean IoU of the argmax labels (all
#   from one confusion matrix per batch: notebook 5 explains the counts).
#
# One epoch is 100 steps of 8 slices; the cell prints how long it took on your machine, and
# `verbose=2` prints one line per epoch, with every metric.

# %%
cases = [case for case in find_cases(get_data_dir(DATA_DIR)) if case.seg is not None]
split = split_cases(cases, config)
train_cases, val_cases = select_cases(cases, split["train"]), select_cases(cases, split["val"])

keras.utils.set_random_seed(config.seed)  # the same initial weights and dropout every run
model = build_unet(config)
model.compile(
    optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
    loss=get_loss(config),  # "ce+region_dice": cross-entropy + soft Dice of WT, TC and ET
    metrics=default_metrics(config.n_classes),  # Dice per class and region, accuracy, IoU, ...
)
# Create Adam's running averages now, as the library's fit does: this epoch then gives
# exactly the numbers of the library's first epoch.
model.optimizer.build(model.trainable_variables)
train_data = make_dataset(train_cases, config, training=True)
val_data = make_dataset(val_cases, config, training=False)
callbacks = [
    keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=2, min_lr=1e-6),
    keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping_patience),
]
started = time.perf_counter()
history = model.fit(
    train_data,
    validation_data=val_data,
    epochs=1,
    callbacks=callbacks,
    shuffle=False,  # make_dataset shuffles across patients itself
    verbose=2,
)
print(f"1 epoch of {len(train_cases)} training patients in {time.perf_counter() - started:.0f} s")

# %% [markdown]
# ## The same training, with the library
#
# `gliseg_nb.train.fit` runs exactly this recipe (the same seed, split, network, `compile`,
# data and callbacks) for the preset's `epochs`, and adds what a long training needs: a
# *run folder* holding the settings, the split, a CSV log of every epoch, the best model
# (highest validation Dice) and the last epoch's model with its optimiser. Interrupt it
# (restart the kernel) and run the cell again: it continues after the last finished epoch.
#
# `load_or_train` wraps `fit` for the course: it keeps the run in a cache folder named
# after the settings and the data, so that notebooks 5 and 6 reuse this model instead of
# training their own. If the model was trained before with the same settings, the cell
# below loads it in seconds (pass `retrain=True` to watch it train again). While it trains,
# one line per epoch updates itself: the loss and the Dice of the regions WT, TC and ET
# (`history.csv` in the run folder keeps every metric).

# %%
started = time.perf_counter()
run = load_or_train(DATA_DIR, PRESET)
elapsed = time.perf_counter() - started
what = "loaded from the cache" if run.reused else "trained"
print(f"{what} in {elapsed:.0f} s: {len(run.history['epoch'])} epochs, run folder {run.run_dir.name}")
print({subset: len(ids) for subset, ids in run.split.items()}, "patients in train / val / test")

# %% [markdown]
# Is it really the same training? Its first epoch, from its log, next to the plain-Keras
# epoch above: the same split, the same numbers.

# %%
print("same split:", dict(run.split) == dict(split))
for key in ("loss", "val_loss", "val_dice_mean"):
    ours, library = history.history[key][0], run.history[key][0]
    print(f"epoch 1 {key:13s} plain Keras {ours:.4f}   library {library:.4f}   same to 4 decimals: {abs(ours - library) < 5e-5}")

# %% [markdown]
# How long does real training take? The source notebook trains the report's network for
# 35 epochs on BraTS 2020: about 250 training patients x 100 slices = 25,000 slices per
# epoch at 128 pixels.
# This 2-core CPU trains that network at about 8 slices per second (measured; how, and on
# what machine, is in `docs/benchmarks.md`, *Training*), so a single epoch would take almost
# an hour (25,000 / 8 = 3,125 s) and the 35 epochs over a day. A GPU changes the picture: on
# an NVIDIA H100 the same network trained at about 3,600 slices per second in float32 and
# 6,300-7,000 with mixed precision (measured through Keras' JAX backend; the table is in
# `docs/benchmarks.md`), that is seconds per epoch. Colab's GPUs are several times slower
# than an H100 (we have not timed them): count minutes per epoch. At such speeds the input
# pipeline matters, which is why notebook 3's slice cache exists: the report's generator
# delivers a few hundred slices per second and would keep any GPU waiting. In Colab,
# choose a GPU runtime, set `DATA_DIR` to your BraTS folder and `PRESET = "report"`.
#
# ## Training curves
#
# The report's figure 7.1 plots accuracy, loss, Dice and IoU per epoch. Accuracy is left
# out here on purpose. About 97 % of the pixels of these slices are background, so a
# "model" that answers background everywhere already scores about 0.97 (notebook 5
# measures it). The training accuracy of the first epoch printed above, an average over
# its batches, is *below* that: while it starts to find tumour, the network also labels
# many background pixels as tumour (the low `precision_mean` beside it; precision is the
# share of the pixels called tumour that really are tumour, notebook 5), and accuracy
# rates that worse than finding nothing at all. The last epoch's validation accuracy
# (printed below the curves) is only a little higher than 0.97, while the tumour Dice has
# climbed a long way: accuracy follows the background, not the tumour. Instead, the Dice
# of each tumour class, on the validation patients:

# %%
plot_history(run.history)
plt.show()

# %%
last = {key: values[-1] for key, values in run.history.items()}
best_epoch = int(np.argmax(run.history["val_dice_mean"]))
print(f"best epoch {best_epoch + 1}: validation mean Dice {run.history['val_dice_mean'][best_epoch]:.3f}")
print("last epoch: " + ", ".join(
    f"{name} {last[key]:.3f}" for name, key in (
        ("loss", "loss"), ("val_loss", "val_loss"), ("val Dice necrosis", "val_dice_class1"),
        ("edema", "val_dice_class2"), ("enhancing", "val_dice_class3"), ("val accuracy", "val_accuracy"),
    ) if key in last))

# %% [markdown]
# What to look for: the training and validation losses falling together (a validation loss
# rising while the training loss falls is overfitting; a bump of one or two epochs, then a
# fall, is the noise of a small validation set); the Dice of each tumour class rising
# after a slow start, at different speeds. In this run's log the enhancing-tumour *class*,
# pooled over all validation slices, tends to lead and the edema, whose border fades into
# normal white matter, to trail; scored per patient and by *region* (`region_dice` below),
# the whole tumour is the easiest and the enhancing tumour the hardest, as on real scans,
# since a small or missing enhancing tumour pulls one patient's score far down. One run on
# 16 patients shows an order, not a rule, and another seed or dataset can change it. The learning rate drops by 5 when the validation loss has
# not improved for 2 epochs. A few epochs on 16 synthetic patients give a model that has
# learnt something, but it is not converged, and its validation scores rest on only a
# handful of patients.
#
# BraTS scores regions rather than classes: whole tumour (WT = classes 1+2+3), tumour
# core (TC = 1+3) and enhancing tumour (ET = 3). The validation Dice per region of the
# best model, on the slices the preset selects of each validation patient.
#
# Three "validation Dice" numbers appear in this notebook, and they differ on purpose. The
# progress line during training and `val_dice_mean` in the log are counted over all
# validation slices of an epoch pooled together (the line by region, `val_dice_mean` as the
# mean over the three tumour classes); `region_dice` below scores each validation patient
# on its own and averages the patients, as BraTS does, so a small patient counts as much
# as a large one.

# %%
val_cases = run.cases_of("val")
scores = region_dice(run.model, val_cases, run.config)
print("validation Dice: " + ", ".join(f"{region} {scores[region]:.3f}" for region in ("WT", "TC", "ET")))

# %% [markdown]
# ## Synthetic scores are not real-scan scores
#
# These validation scores come from synthetic patients drawn by the same generator as the
# training patients, with perfect labels (notebook 1, *The embedded cases: what is
# simulated, and what is not*). They say how well the model fits the simulator. What a model trained exactly like
# this one does on real MRI was measured separately (`docs/benchmarks.md`, "Transfer to
# real scans", says how and on what machine): the quick preset trained on the embedded
# data, then segmenting five real BraTS 2018 training cases with expert labels (three
# high-grade, one low-grade, one BraTS 2013 case), predicted as `gliseg-nb predict` does
# by default (each slice averaged over its four flips, stray components under 1 mL erased;
# notebook 6; in brackets: one pass, no clean-up):
#
# | trained on | real WT | real TC | real ET |
# |---|---:|---:|---:|
# | the embedded synthetic cases, as in this notebook (training seed 42) | 0.79 (0.77) | 0.65 (0.64) | 0.63 (0.59) |
# | the same, training seed 1 | 0.80 (0.77) | 0.68 (0.64) | 0.62 (0.56) |
# | the same budget spent on real cases (leave-one-out over the five, 3 training cases per fold; one pass, no clean-up) | 0.77 | 0.58 | 0.46 |
#
# Five cases are few: one case moves a mean by 0.04 easily, and the two training seeds of
# the same setting differ per case by up to 0.17 (the small CBICA tumour's enhancing part:
# 0.63 against 0.46) although their means agree. The low-grade case is where the
# synthetic-trained model is weakest (whole tumour Dice 0.67 and 0.57): it finds about half
# of its 157 mL of tumour. So on real scans this
# model, trained in about a minute, is at least as good as the same budget spent on three real cases (better
# on TC and ET, measured on five cases), and far
# from a model trained on hundreds of real cases for hours.

# %% [markdown]
# ## Predictions on validation slices
#
# Finally, look at what the model does. For one validation patient, the slices with the
# most tumour: FLAIR, the ground-truth labels and the model's labels (the argmax of its
# softmax output), in the report's colours, the patient's right on the left (R and L at
# the edges).

# %%
x_val, y_val = preprocess_case(val_cases[0], run.config)
probabilities = run.model.predict(x_val, verbose=0)
predicted = np.argmax(probabilities, axis=-1)
largest = np.argsort(-np.count_nonzero(y_val, axis=(1, 2)))[:4]
# Slices are kept as stored; axial_display turns each one for the eye (anterior up).

cmap, norm = label_colormap()
figure, axes = plt.subplots(3, len(largest), figsize=(3 * len(largest), 9), layout="constrained")
for column, index in enumerate(sorted(largest)):
    flair = axial_display(x_val[index, ..., 0])
    for row, (title, labels) in enumerate((("FLAIR", None), ("truth", y_val[index]), ("model", predicted[index]))):
        axes[row, column].imshow(flair, cmap="gray", vmin=-2, vmax=4)
        if labels is not None:
            axes[row, column].imshow(np.ma.masked_equal(axial_display(labels), 0), cmap=cmap, norm=norm,
                                     alpha=0.6, interpolation="nearest")
        axes[row, column].set_title(f"{title}, slice {run.config.slice_indices[index]}", fontsize=9)
        axes[row, column].set_axis_off()
        mark_sides(axes[row, column])  # axial_display: radiological
figure.legend(handles=legend_handles(), loc="outside lower center", ncols=3, fontsize=8, frameon=False)
figure.suptitle(val_cases[0].case_id)
plt.show()

# %% [markdown]
# Look at the borders and at the inner parts: where do the model's classes differ from the
# ground truth, at the borders between classes or inside them? Compare the necrotic core
# (red) of the two rows: in the ground truth, enhancing pixels (yellow) are scattered
# through it and around it; the model paints a solid red core with only a few yellow
# pixels, and leaves part of the edema (green) unlabelled. Notebook 5 measures the errors
# properly, on patients the model has never seen, and notebook 6 segments whole volumes.

# %% [markdown]
# ## The report's corrections, measured
#
# The course changes four things in the way the report's source notebook trains, and each
# change was argued for in an earlier notebook. Does each one matter? The benchmark
# `benchmarks/bench_corrections.py` answers on the same data: it trains this notebook's
# network with the quick preset's budget (8 epochs, batch 8, 64 px, four contrasts,
# augmentation off) on the same 16 synthetic training patients, starting from the source
# notebook's configuration and correcting one choice per step, and scores each model the
# BraTS way (whole volumes, Dice per region) on the 8 validation and test patients. It then
# retrains the corrected model with other split seeds. How it was run, and on what
# machine, is in `docs/benchmarks.md` ("The source notebook's choices, corrected one at a
# time"); its result file ships with the course, and `gliseg_nb.measured.load` reads it.
# It was measured on the same synthetic data (generator version 4) as this notebook.

# %%
corrections = measured.load("corrections-v4-quick")
machine = corrections["machine"]
print(f"{machine['cpus']} CPU cores, load average {machine['load_average'][0]:.1f} at the start, "
      f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}; one training per row\n")
print(f"{'step':20s} {'WT':>6s} {'TC':>6s} {'ET':>6s}   change from the row above      training s")
previous = None
for step in corrections["steps"]:
    dice = step["dice"]
    change = ("" if previous is None else
              "  ".join(f"{region} {dice[region] - previous[region]:+.2f}" for region in ("WT", "TC", "ET")))
    print(f"{step['step']:20s} {dice['WT']:6.3f} {dice['TC']:6.3f} {dice['ET']:6.3f}   {change:28s} {step['train_seconds']:6.0f}")
    previous = dice
corrected = corrections["steps"][-1]["dice"]
print("\nthe corrected model, retrained on other splits (split seed: WT / TC / ET on its own held-out patients)")
runs = [(42, corrected)] + [(entry["seed"], entry["dice"]) for entry in corrections["seeds"]]
for seed, dice in runs:
    print(f"  seed {seed:2d}: " + " / ".join(f"{dice[region]:.3f}" for region in ("WT", "TC", "ET")))
for region in ("WT", "TC", "ET"):
    values = np.array([dice[region] for _, dice in runs])
    print(f"  {region}: {values.min():.2f} to {values.max():.2f} over {len(values)} splits "
          f"(mean {values.mean():.3f}, sd {values.std(ddof=1):.3f})")
print("\nET Dice per held-out patient (split seed 42):")
for step in (corrections["steps"][0], corrections["steps"][-1]):
    et_per_case = {case_id: dice["ET"] for case_id, dice in step["per_case"].items()}
    print(f"  {step['step']:18s} " + ", ".join(f"{case_id.rsplit('_', 1)[-1]} {value:.2f}"
                                          for case_id, value in et_per_case.items())
          + f"   (sd {np.std(list(et_per_case.values()), ddof=1):.2f})")
iou = corrections["iou_as_fed"]
print("\n'IoU 0.9', the source notebook's model (notebook 5 explains the difference):")
print(f"  keras.metrics.MeanIoU fed one-hot targets and softmax outputs: {iou['meaniou_as_fed']:.3f}")
print(f"  the real mean IoU (argmax of both, background included):     {iou['meaniou_argmax']:.3f}")

# %% [markdown]
# What each step changes, and what the table says about it:
#
# * **The source notebook** divides both input channels by one shared maximum, resizes
#   one-hot targets bilinearly (blended classes at every border), trains with
#   cross-entropy alone and never seeds its split. Its ET score is not what it seems: the
#   per-patient line under the table shows that this model predicts *no* enhancing tumour
#   at all. The two held-out patients without enhancing tumour score 1.0 by the convention
#   "Dice 1 when both masks are empty" (Dice is 0 / 0 there, and BraTS counts a model that
#   rightly finds nothing as perfect; notebook 5 teaches the conventions), the others 0.0,
#   and their mean is 0.25.
# * **+ z-score per case and contrast** (notebook 3): every case's tissue lands at the same
#   values, whatever its brightest voxel. For the whole tumour and the core it is the
#   correction that matters most: the shared maximum leaves the network guessing each
#   case's scale. The ET mean *falls*: a model that predicts a little enhancing tumour
#   where there is none loses the two convention points (the corrected model's
#   per-patient line shows that happening), and one training cannot say more (see below).
# * **+ labels resized by nearest neighbour** (notebook 3): every target pixel is one class,
#   as the labels the model is scored against. Bilinear resizing blends the thin enhancing
#   rim into its neighbours, so sharp targets should help ET most; its gain here points
#   that way, but one training cannot prove it (see below).
# * **+ cross-entropy plus region Dice loss, with class weights** (this notebook's quick
#   training): the loss now counts the tumour regions BraTS scores, not pixels, most of them
#   background. Whether that helps, this row cannot tell: its largest change is ET +0.07,
#   from one training scored on 8 patients (Exercise 2).
# * **"IoU 0.9"**: fed the source notebook's way, Keras' `MeanIoU` gives this model far
#   more than its real mean IoU: it does not measure overlap. Notebook 5 shows what it
#   counts instead.
# * **The unseeded split**: with nothing changed but which patients are held out, the
#   scores move by the printed ranges, the enhancing tumour the most. A single run of an
#   unseeded split can therefore not be repeated, and a difference between two such runs
#   smaller than that range means nothing.
#
# One training per row, scored on 8 patients: a single patient's ET Dice can be anywhere
# from 0 to 1 (the per-patient lines), so a mean over 8 of them moves by about a tenth
# with another choice of patients, and a second training would move it too. Only the
# z-score's gains for the whole tumour and the core are far beyond that; every other
# change in the table could be chance (Exercise 4 asks what it would take to tell).
#
# ## Summary
#
# * A U-Net is an encoder (convolutions and pooling: context), a bottleneck, and a decoder
#   (upsampling, convolutions) that gets fine detail back through skip connections.
# * Three small functions (conv block, encoder block, decoder block) build the report's
#   network: 7,759,908 parameters, almost half of them in the 512-filter bottleneck.
# * Training is `model.compile(optimizer, loss, metrics)` then `model.fit(train, validation,
#   epochs, callbacks)`. `gliseg_nb.train.fit` runs the same recipe (its first epoch gives
#   the same numbers) and adds a run folder, checkpoints and resuming; `load_or_train`
#   caches the run for the later notebooks.
# * The `quick` preset trains for real in a minute or two on two CPU cores (measured, see
#   the README); the report's setting takes hours on a GPU.
# * Plot Dice per class, not accuracy: accuracy is dominated by background.
# * Synthetic validation scores are not real-scan scores: measured on five real cases, the
#   synthetic-trained quick model is at least as good as the same budget spent on three
#   real cases, and weakest on the low-grade one.
# * Measured one at a time, the z-score is the correction of the source notebook that
#   matters most at this size (for WT and TC, far beyond the noise); the gains of the
#   other corrections are too small to tell from chance with one training on 8 patients,
#   and an unseeded split alone moves the scores by up to about 0.16 (the enhancing
#   tumour: 0.36 to 0.52).
#
# ## Exercises
#
# 1. Remove the skip connections from `decoder_block` (no concatenation). Predict the new
#    parameter count of the report's network before you check it. Why should the
#    segmentations get blurrier, and which tumour part should suffer most?
# 2. The source notebook trains with cross-entropy alone. Which region should gain most
#    from adding the region Dice loss? Argue from what each loss counts. Then read the
#    row *+ region Dice loss* of the table of corrections: does it show that gain?
# 3. In the prediction figure, find pixels the model gets wrong. Are they at borders
#    between classes or inside regions? What does that suggest about which errors a Dice
#    score punishes and which ones a surgeon would care about?
# 4. Over four split seeds the corrected model's ET Dice ranges widely. You have two
#    models whose mean ET Dice differs by 0.05 on 8 held-out patients. What would you do
#    before saying that one is better?
# 5. You change the synthetic data generator and the synthetic validation Dice goes up by
#    0.05. Design an experiment that tells whether the change helps on real scans. What
#    must stay fixed, and what must you repeat?

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 1.** Without the concatenation, the first convolution of each decoder level
# sees `level_filters` input channels instead of `2 * level_filters`, so it loses
# `3 * 3 * level_filters * level_filters` weights: 3x3x256x256 + 3x3x128x128 + 3x3x64x64 +
# 3x3x32x32 = 589,824 + 147,456 + 36,864 + 9,216 = 783,360, leaving 6,976,548 parameters
# (check it by removing the `Concatenate` line and calling `count_params()`). The decoder
# then has only what survived four poolings, one value per 16 x 16 pixels at the bottom:
# it knows *what* is there but not *exactly where*, so borders come out blurred and
# shifted. Thin structures suffer most: the enhancing rim, a few pixels wide, can vanish.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 2.** The enhancing tumour (then the tumour core). Cross-entropy averages over
# pixels, and about 97 % of them are background: a model that neglects a small region
# loses very little cross-entropy. The region Dice term is computed per region, each
# counting equally whatever its size, so missing half of a small enhancing rim costs as
# much as missing half of the whole tumour. The class weights push in the same direction.
# The table does not show it, though: the row changes ET by +0.07 and TC by +0.01, in the
# expected direction but smaller than the uncertainty of one training scored on 8
# patients (about 0.1 for an ET mean, Solution 4). To show the gain, train both versions
# with several training and split seeds and compare them patient by patient.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 3.** Many errors sit at borders: between edema and background (a gradual
# border on FLAIR) and between the necrotic core and the enhancing rim. But a small model
# also misses whole patches (edema, scattered enhancing tumour) and swaps classes inside a
# lesion; look for both kinds in the figure. Dice counts every wrong pixel alike, so a thin error along a long border
# costs as much as a missed lesion of the same area; a surgeon cares little about a
# one-pixel border shift and a lot about a missed satellite lesion. That is why BraTS also
# reports a distance (HD95, notebook 5), and why newer challenges score lesion by lesion.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 4.** Not conclude anything yet: the split alone moved the ET Dice of one
# and the same training by more than 0.05. Compare the two models on the same held-out
# patients (a paired comparison: the per-patient differences, not the two means), repeat
# over several split seeds and training seeds, and give an interval (a bootstrap over
# patients, notebook 5) rather than a single number. In the corrections benchmark the
# corrected model's ET Dice of the 8 held-out patients has a standard deviation of about
# 0.3 (printed under the table): the two patients without enhancing tumour score 0.0
# (the model predicts a little there), one with a small enhancing part 0.07, the others
# 0.35-0.75. The standard error of their mean is about 0.3 / sqrt(8) = 0.11, twice the
# difference.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 5.** Train with the old and the new generator under exactly the same preset,
# budget and seeds, and score both models on the same real cases with expert labels that
# neither training saw (`benchmarks/bench_transfer.py` does this). Repeat with a few
# training seeds, since two training seeds differed by up to 0.17 on one real case with the
# defaults (0.25 in one pass), and
# keep a larger hidden real set for the final decision so that you do not tune the
# generator to the cases you look at. The synthetic validation score cannot answer the
# question: the new generator changes the validation patients too. A change can make the
# synthetic task easier and transfer worse (the per-case random intensities did exactly
# that, `docs/benchmarks.md`).

# %% [markdown]
# ## References
#
# * The report this course follows: *Segmentation of Gliomas in Pre-Operative MRI Scans using U-Net Architecture*. Its code comes from R. Kopál's Kaggle notebook *3D MRI brain tumor segmentation U-Net* (<https://www.kaggle.com/code/rastislav/3d-mri-brain-tumor-segmentation-u-net>), called "the source notebook" in this course.
# * O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI 2015, LNCS 9351, 234-241.
# * F. Isensee, P. F. Jaeger, S. A. A. Kohl, J. Petersen, K. H. Maier-Hein, "nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation", *Nature Methods* 18, 203-211, 2021.
# * F. Chollet et al., Keras (<https://keras.io>): `keras.utils.PyDataset`, `Model.fit`, the Keras 3 saving format.
# * B. H. Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", *IEEE Transactions on Medical Imaging* 34(10), 1993-2024, 2015.
