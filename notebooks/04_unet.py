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
# the report's parameter count, and then trains a small version of it for real on this
# machine.
#
# After this notebook you will be able to:
#
# * write the three building blocks of a U-Net in Keras: a convolution block, an encoder
#   step and a decoder step with its skip connection;
# * assemble them into the report's network and account for its 7,759,908 parameters;
# * train a U-Net with the course's training function, which checkpoints and resumes;
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

from gliseg_nb import Config
from gliseg_nb.course import load_or_train
from gliseg_nb.labels import label_colormap, legend_handles
from gliseg_nb.model import build_unet, plot_unet
from gliseg_nb.pipeline import preprocess_case
from gliseg_nb.plotting import plot_history
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
# * a final 1x1 convolution with a softmax gives, for every pixel, a probability for each
#   of the 4 classes.
#
# ## Three building blocks
#
# Each block is a function from a Keras tensor to a Keras tensor, so they compose like
# ordinary functions. First, two 3x3 convolutions with ReLU, "same" padding so that the
# image keeps its size, and the He-normal initialisation the report uses (suited to ReLU):

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
# Input 128 x 128 pixels with 2 channels (FLAIR and T1ce); four levels with 32, 64, 128 and
# 256 filters; a 512-filter bottleneck followed by dropout (20 % of its outputs set to zero
# at random during training, against overfitting); four decoder levels back up; 4 classes.

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
# 7,759,908: the parameter count of the report's network. Where do they come from? A 3x3
# convolution from `c_in` to `c_out` channels has `3 * 3 * c_in * c_out` weights plus
# `c_out` biases. Counting by hand, block by block:

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
# CPU in about a minute: 64 x 64 pixels, three levels of 8, 16 and 32 filters, every 2nd
# slice. It also trains with a loss the report does not use: cross-entropy plus the soft
# Dice of the BraTS *regions* (whole tumour, tumour core, enhancing tumour), so that it
# learns what BraTS scores. That is a teaching shortcut, not a result: the report's network
# at 128 pixels on real data is what you would train on a GPU.

# %%
print(config)

# %% [markdown]
# ## Training
#
# `gliseg_nb.train.fit` trains the network the settings describe on the fast pipeline of
# notebook 3, with the report's optimiser and schedule: Adam with a learning rate of 0.001,
# divided by 5 whenever the validation loss has not improved for 2 epochs (down to 1e-6),
# and early stopping. The `quick` preset (printed above) changes a few training settings
# to learn fast: a loss that adds a soft Dice term to the report's cross-entropy
# (cross-entropy alone is dominated by the background pixels; the Dice term weighs each
# tumour class equally), optional extra weight for the rarest classes, smaller batches,
# and random flips and intensity changes as augmentation.
#
# Everything goes into a *run folder*: the settings, the split, a CSV log of every epoch,
# the best model (highest validation Dice) and the last epoch's model with its optimiser.
# Interrupt it (restart the kernel) and run the cell again: it continues after the last
# finished epoch.
#
# `load_or_train` wraps `fit` for the course: it keeps the run in a cache folder named
# after the settings and the data, so that notebooks 5 and 6 reuse this model instead of
# training their own. If this notebook ran before with the same settings, the cell below
# loads the model in seconds; pass `retrain=True` to watch it train again. While it trains,
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
# How long does real training take? The report trained its network for 35 epochs on BraTS
# 2020: about 250 training patients x 100 slices = 25,000 slices per epoch at 128 pixels.
# This 2-core CPU trains that network at about 8 slices per second (`docs/benchmarks.md`,
# Training, measured at a quiet moment; under load it drops to 4-6), so a single epoch
# would take almost an hour (25,000 / 8 = 3,125 s) and the 35 epochs over a day. A GPU changes the picture: on
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
# out here on purpose: with about 98 % of the pixels background, it is near 1 from the
# first epoch and says nothing (notebook 5 shows why). Instead, the Dice of each tumour
# class, on the validation patients:

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
# What to look for: the training and validation losses falling together (a validation
# loss rising while the training loss falls is overfitting); the Dice of each tumour class
# rising after a slow start, the necrotic core, small and with the least distinctive
# intensities, usually last. A few epochs on 16 synthetic patients give a model that has
# learnt something real, but it is not converged, and its validation scores rest on only a
# handful of patients.
#
# BraTS scores regions rather than classes: whole tumour (WT = classes 1+2+3), tumour
# core (TC = 1+3) and enhancing tumour (ET = 3). The validation Dice per region of the
# best model, on the training slices of each validation patient:

# %%
val_cases = run.cases_of("val")
scores = region_dice(run.model, val_cases, run.config)
print("validation Dice: " + ", ".join(f"{region} {scores[region]:.3f}" for region in ("WT", "TC", "ET")))

# %% [markdown]
# ## Predictions on validation slices
#
# Finally, look at what the model does. For one validation patient, the slices with the
# most tumour: FLAIR, the expert labels and the model's labels (the argmax of its softmax
# output), in the report's colours.

# %%
x_val, y_val = preprocess_case(val_cases[0], run.config)
probabilities = run.model.predict(x_val, verbose=0)
predicted = np.argmax(probabilities, axis=-1)
largest = np.argsort(-np.count_nonzero(y_val, axis=(1, 2)))[:4]

cmap, norm = label_colormap()
figure, axes = plt.subplots(3, len(largest), figsize=(3 * len(largest), 9), layout="constrained")
for column, index in enumerate(sorted(largest)):
    flair = x_val[index, ..., 0]
    for row, (title, labels) in enumerate((("FLAIR", None), ("expert", y_val[index]), ("model", predicted[index]))):
        axes[row, column].imshow(flair, cmap="gray", vmin=-2, vmax=4)
        if labels is not None:
            axes[row, column].imshow(np.ma.masked_equal(labels, 0), cmap=cmap, norm=norm, alpha=0.6,
                                     interpolation="nearest")
        axes[row, column].set_title(f"{title}, slice {run.config.slice_indices[index]}", fontsize=9)
        axes[row, column].set_axis_off()
figure.legend(handles=legend_handles(), loc="outside lower center", ncols=3, fontsize=8, frameon=False)
figure.suptitle(val_cases[0].case_id)
plt.show()

# %% [markdown]
# Look at the borders and at the small inner parts: the outline of the edema (the whole
# tumour) is the easiest to get right, the thin enhancing rim and the necrotic core inside
# it the hardest. Notebook 5 measures this properly, on patients the model has never seen,
# and notebook 6 segments whole volumes.
#
# ## Summary
#
# * A U-Net is an encoder (convolutions and pooling: context), a bottleneck, and a decoder
#   (upsampling, convolutions) that gets fine detail back through skip connections.
# * Three small functions (conv block, encoder block, decoder block) build the report's
#   network: 7,759,908 parameters, almost half of them in the 512-filter bottleneck.
# * `gliseg_nb.model.build_unet` is the same network with options; `gliseg_nb.train.fit`
#   trains it with the report's schedule, logs every epoch, keeps the best model and resumes
#   after an interruption.
# * The `quick` preset trains for real in about a minute on a CPU; the report's setting
#   takes hours on a GPU.
# * Plot Dice per class, not accuracy: accuracy is dominated by background.
#
# ## Exercises
#
# 1. Add batch normalisation to `conv_block` (a `BatchNormalization` layer between each
#    convolution and its ReLU). How many parameters does the report's network have then, and
#    how many of those are trainable?
# 2. Remove the skip connections from `decoder_block` (no concatenation). Predict the new
#    parameter count, then check it. Why should segmentations get blurrier?
# 3. Train the quick model with `load_or_train(DATA_DIR, PRESET, epochs=16)`. Does the
#    validation Dice of the enhancing tumour keep rising?
# 4. Train with `loss="categorical_crossentropy"` (the report's loss), then with `"ce+dice"`
#    (Dice per class), instead of `"ce+region_dice"`. Which region suffers most, and why?
# 5. In the prediction figure, find a pixel the model gets wrong. Is it at a border or inside
#    a region? What does that suggest about the errors that matter?

# %% [markdown]
# ## References
#
# * The report this course follows: *Segmentation of Gliomas in Pre-Operative MRI Scans using U-Net Architecture*. Its code comes from R. Kopál's Kaggle notebook *3D MRI brain tumor segmentation U-Net* (<https://www.kaggle.com/code/rastislav/3d-mri-brain-tumor-segmentation-u-net>), called "the source notebook" in this course.
# * O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI 2015, LNCS 9351, 234-241.
# * F. Isensee, P. F. Jaeger, S. A. A. Kohl, J. Petersen, K. H. Maier-Hein, "nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation", *Nature Methods* 18, 203-211, 2021.
# * F. Chollet et al., Keras (<https://keras.io>): `keras.utils.PyDataset`, `Model.fit`, the Keras 3 saving format.
# * B. H. Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", *IEEE Transactions on Medical Imaging* 34(10), 1993-2024, 2015.
