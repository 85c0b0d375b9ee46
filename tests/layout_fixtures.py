"""Tiny BraTS datasets written in the exact on-disk layout of each release.

Tests (and the notebook tests) call ``write_layout(tmp_path, "brats2020")`` to get a small
but faithful copy of a release's folder structure, file names and label convention. The
voxels are deterministic, so a test can rebuild what it expects with `fixture_image` and
`fixture_labels` and compare exactly.

Layouts: ``brats2019``, ``brats2020-kaggle``, ``brats2020``, ``brats2021``,
``brats2023-gli``, ``msd`` (see HANDBOOK section 3).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from gliseg_nb.labels import from_internal

__all__ = [
    "LAYOUTS",
    "MODALITIES",
    "FIXTURE_AFFINE",
    "write_layout",
    "fixture_case_ids",
    "fixture_image",
    "fixture_labels",
    "write_nifti",
]

LAYOUTS = ("brats2019", "brats2020-kaggle", "brats2020", "brats2021", "brats2023-gli", "msd")
MODALITIES = ("flair", "t1", "t1ce", "t2")

#: BraTS volumes are stored LPS-like: x and y flipped, 1 mm voxels, origin off-centre.
FIXTURE_AFFINE = np.array(
    [[-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 239.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)

# Each release's name for each modality in file names.
_SUFFIXES = {
    "brats2023-gli": {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w"},
}
_DEFAULT_SUFFIXES = {m: m for m in MODALITIES}
# MSD Task01's channel order (dataset.json "modality").
_MSD_CHANNELS = ("flair", "t1", "t1ce", "t2")
_KAGGLE_ODD_CASE = 355
_KAGGLE_ODD_SEG = "W39_1998.09.19_Segm.nii"


def fixture_labels(shape, case_index, seed=0):
    """Internal labels (0-3) of fixture case `case_index`: every class present.

    A tumour with nested classes: edema (2) around a core (1) holding an enhancing part
    (3), placed by `seed` and `case_index`, in the middle slices only (the first and last
    slices stay tumour-free, as in real scans).
    """
    rng = np.random.default_rng([seed, case_index, 1])
    x, y, z = shape
    labels = np.zeros(shape, dtype=np.uint8)
    cx = int(rng.integers(x // 3, 2 * x // 3))
    cy = int(rng.integers(y // 3, 2 * y // 3))
    z0, z1 = z // 4, max(z // 4 + 2, 3 * z // 4)
    labels[cx - 5:cx + 5, cy - 5:cy + 5, z0:z1] = 2
    labels[cx - 3:cx + 3, cy - 3:cy + 3, z0 + 1:z1 - 1] = 1
    labels[cx - 1:cx + 2, cy - 1:cy + 2, z0 + 1:z1 - 1] = 3
    return labels


def fixture_image(shape, case_index, modality, seed=0):
    """The int16 voxels of one modality of fixture case `case_index`.

    Each modality has its own intensity level (flair ~ 100, t1 ~ 200, t1ce ~ 300,
    t2 ~ 400) so a test can tell which channel was read.
    """
    level = 100 * (MODALITIES.index(modality) + 1)
    rng = np.random.default_rng([seed, case_index, 2 + MODALITIES.index(modality)])
    noise = rng.integers(0, 50, size=shape)
    # A ramp along z makes every axial slice different, so slice reads are checkable.
    ramp = np.arange(shape[2])[None, None, :]
    return (level + noise + ramp).astype(np.int16)


def write_nifti(path, data, affine=FIXTURE_AFFINE):
    """Write `data` as a NIfTI-1 file (``.nii`` or ``.nii.gz`` from the name) with 1 mm voxels."""
    image = nib.Nifti1Image(np.asarray(data), affine)
    image.header.set_zooms((1.0,) * np.asarray(data).ndim)
    image.header.set_xyzt_units("mm")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return Path(path)


def fixture_case_ids(layout, n_cases=2, with_seg=True):
    """The case ids `write_layout` writes, in the order of their case index (0, 1, ...)."""
    numbers = list(range(1, n_cases + 1))
    if layout == "brats2019":
        ids = []
        for index in range(n_cases):
            if index % 2 == 0:
                ids.append(f"BraTS19_CBICA_A{chr(ord('A') + index // 2)}A_1")
            else:
                ids.append(f"BraTS19_TCIA10_{100 + index:03d}_1")
        return ids
    if layout in ("brats2020", "brats2020-kaggle"):
        if layout == "brats2020-kaggle" and with_seg and n_cases >= 1:
            # Always include case 355 and its odd segmentation file name.
            numbers[-1] = _KAGGLE_ODD_CASE
        kind = "Training" if with_seg else "Validation"
        return [f"BraTS20_{kind}_{n:03d}" for n in numbers]
    if layout == "brats2021":
        return [f"BraTS2021_{n:05d}" for n in numbers]
    if layout == "brats2023-gli":
        return [f"BraTS-GLI-{n:05d}-000" for n in numbers]
    if layout == "msd":
        first = 1 if with_seg else 485  # MSD numbers its test images after the training ones
        return [f"BRATS_{first + i:03d}" for i in range(n_cases)]
    raise ValueError(f"unknown layout {layout!r}; choose from {LAYOUTS}")


def write_layout(root, layout, n_cases=2, shape=(24, 24, 16), with_seg=True, seed=0):
    """Write a small dataset in the exact folder layout of one BraTS release.

    Parameters
    ----------
    root : str or pathlib.Path
        Folder to write into (created if needed).
    layout : str
        One of `LAYOUTS`.
    n_cases : int, default=2
        Number of cases.
    shape : tuple of int, default=(24, 24, 16)
        Volume shape (real data is 240 x 240 x 155).
    with_seg : bool, default=True
        Write a training set with segmentations; False writes the release's validation
        (or, for MSD, ``imagesTs`` test) folder without them.
    seed : int, default=0
        Seed of the voxels (see `fixture_image` and `fixture_labels`).

    Returns
    -------
    pathlib.Path
        The dataset folder as the release unpacks it (e.g.
        ``root / "MICCAI_BraTS_2019_Data_Training"``, ``root / "Task01_BrainTumour"``).
    """
    root = Path(root)
    shape = tuple(int(s) for s in shape)
    ids = fixture_case_ids(layout, n_cases, with_seg)
    if layout == "msd":
        return _write_msd(root, ids, shape, with_seg, seed)

    suffixes = _SUFFIXES.get(layout, _DEFAULT_SUFFIXES)
    separator = "-" if layout == "brats2023-gli" else "_"
    extension = ".nii" if layout == "brats2020-kaggle" else ".nii.gz"
    dataset, case_parent = _brats_folders(root, layout, with_seg)
    grades = {}
    for index, case_id in enumerate(ids):
        parent = case_parent
        if layout == "brats2019" and with_seg:
            grade = "HGG" if index % 2 == 0 else "LGG"
            parent = case_parent / grade
        else:
            grade = "HGG" if index % 2 == 0 else "LGG"
        grades[case_id] = grade
        folder = parent / case_id
        for modality in MODALITIES:
            write_nifti(folder / f"{case_id}{separator}{suffixes[modality]}{extension}",
                        fixture_image(shape, index, modality, seed))
        if with_seg:
            on_disk = from_internal(fixture_labels(shape, index, seed), layout)
            if layout == "brats2020-kaggle" and case_id.endswith(f"_{_KAGGLE_ODD_CASE}"):
                seg_name = _KAGGLE_ODD_SEG
            else:
                seg_name = f"{case_id}{separator}seg{extension}"
            write_nifti(folder / seg_name, on_disk)
    if layout in ("brats2020", "brats2020-kaggle"):
        _write_brats2020_tables(case_parent, ids, grades, with_seg)
    return dataset


def _brats_folders(root, layout, with_seg):
    """(folder the release unpacks to, folder holding the case folders)."""
    if layout == "brats2019":
        kind = "Training" if with_seg else "Validation"
        name = f"MICCAI_BraTS_2019_Data_{kind}"
        return root / name, root / name
    if layout == "brats2020-kaggle":
        kind = "Training" if with_seg else "Validation"
        outer = root / f"BraTS2020_{kind}Data"
        return outer, outer / f"MICCAI_BraTS2020_{kind}Data"
    if layout == "brats2020":
        name = "MICCAI_BraTS2020_TrainingData" if with_seg else "MICCAI_BraTS2020_ValidationData"
        return root / name, root / name
    if layout == "brats2021":
        name = ("RSNA_ASNR_MICCAI_BraTS2021_TrainingData_16July2021" if with_seg
                else "RSNA_ASNR_MICCAI_BraTS2021_ValidationData")
        return root / name, root / name
    if layout == "brats2023-gli":
        kind = "TrainingData" if with_seg else "ValidationData"
        name = f"ASNR-MICCAI-BraTS2023-GLI-Challenge-{kind}"
        return root / name, root / name
    raise ValueError(f"unknown layout {layout!r}; choose from {LAYOUTS}")


def _write_brats2020_tables(folder, ids, grades, with_seg):
    folder.mkdir(parents=True, exist_ok=True)
    if with_seg:
        with open(folder / "name_mapping.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["Grade", "BraTS_2017_subject_ID", "BraTS_2018_subject_ID",
                             "TCGA_TCIA_subject_ID", "BraTS_2019_subject_ID",
                             "BraTS_2020_subject_ID"])
            for number, case_id in enumerate(ids):
                writer.writerow([grades[case_id], "NA", "NA", f"TCGA-XX-{number:04d}", "NA",
                                 case_id])
        with open(folder / "survival_info.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["Brats20ID", "Age", "Survival_days", "Extent_of_Resection"])
            for number, case_id in enumerate(ids):
                writer.writerow([case_id, 60.5 + number, 300 + number, "GTR"])
    else:
        with open(folder / "name_mapping_validation_data.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["BraTS_2017_subject_ID", "BraTS_2018_subject_ID",
                             "TCGA_TCIA_subject_ID", "BraTS_2019_subject_ID",
                             "BraTS_2020_subject_ID"])
            for case_id in ids:
                writer.writerow(["NA", "NA", "NA", "NA", case_id])


def _write_msd(root, ids, shape, with_seg, seed):
    dataset = root / "Task01_BrainTumour"
    images_folder = dataset / ("imagesTr" if with_seg else "imagesTs")
    entries = []
    for index, case_id in enumerate(ids):
        stack = np.stack([fixture_image(shape, index, m, seed) for m in _MSD_CHANNELS], axis=-1)
        image_path = write_nifti(images_folder / f"{case_id}.nii.gz", stack)
        if with_seg:
            on_disk = from_internal(fixture_labels(shape, index, seed), "msd")
            write_nifti(dataset / "labelsTr" / f"{case_id}.nii.gz", on_disk)
            entries.append({"image": f"./imagesTr/{case_id}.nii.gz",
                            "label": f"./labelsTr/{case_id}.nii.gz"})
        else:
            entries.append(f"./imagesTs/{image_path.name}")
    # The archive carries macOS AppleDouble files beside the images: not NIfTI at all.
    junk_name = f"._{ids[0]}.nii.gz" if ids else "._BRATS_001.nii.gz"
    (images_folder / junk_name).write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    (dataset / "labelsTr").mkdir(parents=True, exist_ok=True)
    description = {
        "name": "BRATS",
        "description": "Gliomas segmentation tumour and oedema in on brain images",
        "tensorImageSize": "4D",
        "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
        "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor",
                   "3": "enhancing tumour"},
        "numTraining": len(ids) if with_seg else 0,
        "numTest": 0 if with_seg else len(ids),
        "training": entries if with_seg else [],
        "test": [] if with_seg else entries,
    }
    (dataset / "dataset.json").write_text(json.dumps(description, indent=4))
    return dataset
