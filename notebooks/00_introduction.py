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
# # 0. Introduction: finding a glioma in an MRI, voxel by voxel
#
# This course teaches you to segment brain tumours in magnetic resonance images (MRI) with
# a U-Net, one notebook at a time. It follows the report *Segmentation of Gliomas in
# Pre-Operative MRI Scans using U-Net Architecture* chapter by chapter, keeps its good ideas, and fixes the places where it goes wrong.
#
# After this notebook you will be able to:
#
# * say what a glioma is and why doctors want its outline, not just its presence;
# * state the task precisely: give every voxel of a 3-D scan one of four classes;
# * find your way through the eight notebooks of the course (the last one optional);
# * run the course in Colab, on Binder or on your own machine, on the embedded synthetic
#   data or on a real BraTS download, by changing one setting.

# %%
# In Colab, install the course; anywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    # %pip install --quiet "gliseg-nb @ git+https://github.com/gliseg-nb/gliseg-nb"
    from google.colab import output

    output.enable_custom_widget_manager()  # Colab draws the course's widgets only with this

# %% [markdown]
# ## Settings
#
# Every notebook of the course has this cell, and it is the only one you need to change.
#
# * `DATA_DIR = None` uses the **embedded synthetic dataset**: BraTS-like cases built from
#   a brain template, generated once on your machine (the README's *What to expect* says how
#   long) and reused. They are simulated, not patients: notebook 1 shows what is simulated
#   and what is not, and notebook 4 what a model trained on them does on real scans. Set it to
#   the folder of a real BraTS download instead (any release, any of the layouts listed
#   below), or set the environment variable `GLISEG_NB_DATA` before starting Jupyter.
# * `PRESET = "quick"` keeps images small and networks narrow so that everything runs on a
#   laptop CPU in minutes. `"report"` uses the report's settings; meant for real data and
#   a GPU.

# %%
DATA_DIR = None  # or a BraTS folder in any layout; env GLISEG_NB_DATA also works
PRESET = "quick"  # or "report": the report's settings (real data, a GPU, hours of training)

# %%
# %matplotlib inline
import gliseg_nb
from gliseg_nb import Config
from gliseg_nb.course import demo_case, format_settings
from gliseg_nb.data import find_cases, get_data_dir, load_case
from gliseg_nb.viewers import CaseViewer

print("gliseg-nb", gliseg_nb.__version__)

# %% [markdown]
# ## Brain tumours and gliomas
#
# A tumour is a mass of cells that divide when they should not. In the brain we distinguish
# **primary** tumours, which start in the brain, from **secondary** tumours (metastases),
# which start elsewhere, in a lung or a breast for example, and travel to the brain.
#
# The brain is not only neurons. Around them sit the **glial cells**, which feed, insulate
# and repair: astrocytes, oligodendrocytes (which make the myelin around nerve fibres) and
# others. A **glioma** is a tumour with glial features. Gliomas are the most common
# malignant primary brain tumours in adults, roughly four in five of them.
#
# Gliomas are graded from 1 (slow-growing) to 4 (the most aggressive). Type and grade long
# came from how the tissue looks under the microscope. The World Health Organization's 2016
# classification made molecular markers part of the definitions themselves: a tumour's type
# is set by its tissue *and* by markers such as a mutation of the *IDH* gene, an
# "integrated diagnosis" (Louis et al., 2016). Its 2021 edition went further: grades are
# given within each type, some markers set the grade on their own, and the name
# **glioblastoma** is kept for the grade 4 tumour *without* an IDH mutation (the mutated one
# is now "astrocytoma, IDH-mutant, grade 4"; Louis et al., 2021). Glioblastoma is the most
# common and the most aggressive glioma: it grows fast and sends cells into the surrounding
# brain, so even after surgery, radiotherapy and chemotherapy (temozolomide) most patients
# live little more than a year. BraTS 2019 and 2020 sort their cases into *HGG* (high-grade,
# glioblastoma) and *LGG* (lower-grade gliomas, grades 2 and 3), diagnosed before the 2021
# edition.
#
# A glioma is not one uniform blob. In MRI we see up to three parts:
#
# * an **enhancing** part: tumour tissue where the blood-brain barrier leaks, so the
#   contrast agent (gadolinium) injected into the blood lights it up; in a glioblastoma
#   often a rim a few millimetres thick around the core;
# * a **necrotic or non-enhancing core**: dead tissue in the middle of a fast-growing
#   tumour, and tumour that does not take up contrast;
# * **edema** around it: swollen brain tissue full of water, which also hides infiltrating
#   tumour cells.
#
# Notebook 2 looks at these parts, their label numbers and the regions BraTS scores.

# %% [markdown]
# ## Why an outline, and why automate it
#
# Knowing *that* there is a tumour is not enough to treat it. Doctors need *where* it is
# and *how big* each part is:
#
# * a surgeon plans how much to remove while sparing the areas that control speech or
#   movement;
# * a radiotherapist draws the volume to irradiate, plus a margin, and the organs to
#   protect;
# * at follow-up, a change in the volume of the enhancing part or of the edema tells
#   whether a treatment works. Clinical criteria still measure mostly diameters on a few
#   slices, because measuring volumes by hand is too slow.
#
# Drawing a tumour by hand, slice by slice, on four kinds of image, takes an expert a long
# time, and two experts never draw the same outline: in the first BraTS challenge (Menze et
# al., 2015) raters agreed only to a Dice overlap of about 0.74 to 0.85, depending on the
# region. (Dice compares two outlines: twice the voxels they share, divided by the sizes of
# the two added, so 1 for identical outlines and 0 for outlines that do not touch;
# notebook 2 comes back to it.) A model that draws the outline in seconds, the same way
# every time, is useful even when a doctor corrects it afterwards.
#
# ## The task, precisely
#
# An MRI scan is a 3-D grid of **voxels** (volume pixels). BraTS scans are 240 x 240 x 155
# voxels of 1 mm. **Segmentation** gives every voxel one label:
#
# | class | meaning |
# |---|---|
# | 0 | not tumour (healthy brain and background) |
# | 1 | necrotic or non-enhancing tumour core |
# | 2 | edema |
# | 3 | enhancing tumour (stored as **4** in BraTS 2017-2021 files) |
#
# Like the report, we train a 2-D U-Net: it looks at one axial slice at a time, with MRI
# contrasts as input channels, and outputs one of the four classes per pixel. The report
# (and the `report` preset) feeds two of the four contrasts, FLAIR and T1ce; the `quick`
# preset feeds all four (notebook 1 says why).

# %% [markdown]
# ## The road map
#
# | notebook | you learn | report |
# |---|---|---|
# | 00 introduction | gliomas, the task, how to run the course | ch. 1-2 |
# | 01 modalities | the BraTS data, the four MRI contrasts, reading NIfTI files, viewing a case | 3.1-3.4.4 |
# | 02 labels | label numbers across BraTS releases, the regions WT/TC/ET, tumour volumes | 2.1-2.3, 3.3, 3.4.1 |
# | 03 data generators | choosing slices, normalising, streaming batches, splitting by patient | 3.4.2, 6 |
# | 04 U-Net | the architecture in code, a short real training run, training curves | 4, 7 |
# | 05 metrics | Dice, sensitivity, specificity, HD95, lesion-wise scores, and why "99 % accuracy" means little | 5, 7 |
# | 06 predictions | whole-volume prediction, truth beside prediction, BraTS-format files | 8 |
# | 07 beyond the report (optional) | region outputs (WT/TC/ET sigmoids), 2.5-D input, test-time flips, each measured | 4.5 |
#
# Each notebook runs on its own from a fresh kernel: if it needs a trained model it trains
# a small one (or reuses one) in a minute or two.

# %% [markdown]
# ## How to run the course
#
# * **Colab**: open a notebook from the badges in the README. The first code cell of every
#   notebook installs the package (Colab only). *Runtime > Change runtime type > GPU* helps
#   from notebook 4 on.
# * **Binder**: the Binder badge builds an environment with everything installed and the
#   synthetic data and the quick model ready (notebook 4 still trains its plain-Keras epoch
#   live). It takes a few minutes to start and has no GPU.
# * **Your machine**: clone the repository, then `pip install -e ".[lab]"` (the package with
#   JupyterLab, jupytext and what the tour needs) and `jupyter lab notebooks/`.
#   `gliseg-nb tour --out build` runs every notebook headless and writes HTML pages into
#   `build/`. (Instructors who change a notebook: the README's section *The course* says
#   how.)
# * **Real data**: download BraTS (Kaggle's *BraTS2020 Training Data*, the official
#   2019/2021/2023 releases, or the public Medical Segmentation Decathlon *Task01*, which
#   `gliseg_nb.data.download_msd` fetches) and set `DATA_DIR` above. The layout is
#   recognised on its own. With real data, `PRESET = "report"` reproduces the report's
#   training, which needs a GPU: on an NVIDIA H100 an epoch takes seconds (3,600 to 7,000
#   slices per second, measured), on a CPU almost an hour (about 3,125 s on a two-core CPU,
#   from its measured speed; notebook 4 counts it); Colab's GPUs sit in between.
#
# The two settings become a data folder and a `Config`:

# %%
data_dir = get_data_dir(DATA_DIR)
config = Config.preset(PRESET)
cases = find_cases(data_dir)
print(f"{len(cases)} cases, layout {cases[0].layout}")

# %% [markdown]
# The presets differ in image size, slices, network width and training length, side by
# side:

# %% tags=["nbval-check-output"]
fields = ["modalities", "slice_start", "n_slices", "slice_step", "image_size",
          "base_filters", "depth", "batch_size", "loss", "epochs"]
presets = {"quick": Config.preset("quick"), "report": Config.preset("report")}
print(format_settings(presets, fields))

# %% [markdown]
# ## A first look
#
# Here is a high-grade case, the one with the most enhancing tumour (`demo_case` reads the
# grade and volumes the generator recorded; with your own data it takes the first
# high-grade case): FLAIR, one of the four MRI contrasts, with the ground-truth labels laid
# over it in the report's colours (red necrotic core, green edema, yellow enhancing tumour).
# The letters at the picture's edges say which side is the patient's left (L) and right (R).
# Notebook 1 explains the viewer; for now, if your Jupyter shows widgets, drag the slider
# or click a picture.
# Below it, the same view as a plain picture, for places where widgets do not run (a
# static web page, GitHub).

# %%
demo = demo_case(cases, data_dir)
print(demo.case_id, demo.grade)
case_data = load_case(demo)
viewer = CaseViewer(case_data)
viewer

# %%
viewer.static_figure()

# %% [markdown]
# ## Summary
#
# * A glioma is a tumour with glial features; glioblastoma is the most common and most
#   aggressive kind.
# * In MRI a glioma shows up to three parts: enhancing tumour, necrotic/non-enhancing core
#   and edema. Segmentation labels every voxel with one of them, or "not tumour".
# * Outlines drive surgery, radiotherapy and follow-up; drawing them by hand is slow and
#   varies between experts.
# * Two settings control the whole course: `DATA_DIR` (synthetic or real data) and
#   `PRESET` (`"quick"` or `"report"`).
#
# ## Exercises
#
# 1. Two experts outline the same tumour, and you compare their outlines with Dice, region
#    by region. Which would you expect to get the lower Dice between them: the whole
#    tumour, whose outer border is the edge of the edema, or the enhancing tumour? Why?
#    (Think of what each border looks like, and of each region's size: Dice divides the
#    disagreement by it.)
# 2. The course trains a 2-D network on axial slices of a 3-D scan. What does the network
#    not see that a radiologist scrolling through the slices does see? After the contrast
#    injection not only the tumour lights up (on the T1ce image; notebook 1 shows it) but
#    also blood vessels and the choroid plexus, a tissue inside the brain's fluid-filled
#    ventricles. For which of them could what the network misses matter?
# 3. The `quick` preset shrinks each 240 x 240 slice to 64 x 64 pixels. Which tumour part
#    is most likely to suffer from that, and why? (The enhancing rim is often 2-9 mm thick.)
# 4. A model scores a Dice of 0.9 on the course's synthetic validation patients. What can
#    you conclude about its use on real patients, and what would you need to measure
#    before believing it?

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 1.** The enhancing tumour, although its border is the sharper one. On T1ce it
# is bright against a dark necrosis inside and darker tissue outside, while edema fades
# into normal white matter on FLAIR, so where the whole tumour "ends" is a judgement (and
# tumour cells infiltrate beyond any visible border). Counted in voxels, the experts may
# well disagree about more edema. But Dice divides the disagreement by the region's size:
# the whole tumour is large, so a band of disagreement a millimetre or two wide along its
# border costs it little, while the enhancing tumour is a rim a few millimetres thick, so
# the same band is a large share of it, and its Dice drops far more. (The raters' agreement
# in the first BraTS challenge, 0.74 to 0.85, likewise depends on the region.) Which part
# experts "disagree more" about depends on the measure, so always say which one you use.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 2.** Continuity along the head's axis. A radiologist sees that a bright spot
# on one slice is a vessel because it continues as a tube through the next slices, or that
# the choroid plexus sits in the ventricles on both sides; the tumour's rim, seen across
# slices, closes into a shell around the necrosis. A 2-D network judges each slice alone,
# from in-plane context only, so it has the fewest clues exactly for the look-alikes of
# enhancing tumour. Giving it neighbouring slices as extra channels (2.5-D) or a 3-D
# network restores some of that context.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 3.** The enhancing tumour. At 64 px a pixel covers 240 / 64 = 3.75 mm, so a rim
# 2-9 mm thick is one to two pixels wide, or vanishes at its thin places; the necrosis
# inside it shrinks too. The whole tumour, tens of millilitres, survives resizing easily.
# Expect the ET scores to suffer first at low resolution, which is one reason the report's
# source notebook trains at 128 px and BraTS methods at full resolution.

# %% [markdown] tags=["solution"] jupyter={"source_hidden": true}
# **Solution 4.** Very little. The validation patients come from the same generator as the
# training patients, with perfect labels, so the score says how well the model fits the
# simulator (notebook 1, *The embedded cases: what is simulated, and what is not*); on five
# real scans the course's quick model scored about 0.79 / 0.65 / 0.63 (WT / TC / ET), far
# below 0.9 (notebook 4). Before believing a model for real patients you would
# need scores on real scans it never saw, from several hospitals and both grades, with
# enough patients for a confidence interval, and the BraTS region scores (notebook 5), not
# one mean.

# %% [markdown]
# ## References
#
# * The report this course follows: *Segmentation of Gliomas in Pre-Operative MRI Scans using U-Net Architecture*. Its code comes from R. Kopál's Kaggle notebook *3D MRI brain tumor segmentation U-Net* (<https://www.kaggle.com/code/rastislav/3d-mri-brain-tumor-segmentation-u-net>), called "the source notebook" in this course.
# * B. H. Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", *IEEE Transactions on Medical Imaging* 34(10), 1993-2024, 2015.
# * S. Bakas et al., "Advancing The Cancer Genome Atlas glioma MRI collections with expert segmentation labels and radiomic features", *Scientific Data* 4, 170117, 2017.
# * S. Bakas et al., "Identifying the best machine learning algorithms for brain tumor segmentation, progression assessment, and overall survival prediction in the BRATS challenge", arXiv:1811.02629, 2018.
# * D. N. Louis et al., "The 2016 World Health Organization Classification of Tumors of the Central Nervous System: a summary", *Acta Neuropathologica* 131, 803-820, 2016; and "The 2021 WHO Classification of Tumors of the Central Nervous System: a summary", *Neuro-Oncology* 23(8), 1231-1251, 2021.
# * O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI 2015, LNCS 9351, 234-241.
# * F. Isensee, P. F. Jaeger, S. A. A. Kohl, J. Petersen, K. H. Maier-Hein, "nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation", *Nature Methods* 18, 203-211, 2021.
# * B. Billot et al., "SynthSeg: Segmentation of brain MRI scans of any contrast and resolution without retraining", *Medical Image Analysis* 86, 102789, 2023 (the idea behind the synthetic data's randomisation).
# * Data: BraTS 2020 on Kaggle (<https://www.kaggle.com/datasets/awsaf49/brats20-dataset-training-validation>), BraTS 2019 on Kaggle (<https://www.kaggle.com/datasets/aryashah2k/brain-tumor-segmentation-brats-2019>), the BraTS challenges (<https://www.synapse.org/brats>), the Medical Segmentation Decathlon (<http://medicaldecathlon.com>). BraTS data use requires citing Menze et al. 2015 and Bakas et al. 2017/2018.
