"""Finding BraTS cases below a folder, in every released layout.

Each BraTS release packs the same kind of data differently. `find_cases` walks a folder,
recognises each case and its release, and returns one `Case` per case with the paths of the
four modalities under the same keys (``flair``, ``t1``, ``t1ce``, ``t2``) whatever the
release calls them.

* ``brats2019``: ``MICCAI_BraTS_2019_Data_Training/{HGG,LGG}/<id>/<id>_<mod>.nii.gz``, with
  ``<mod>`` one of ``flair``, ``t1``, ``t1ce``, ``t2``, ``seg``; the grade is the folder name.
* ``brats2020-kaggle``: ``BraTS20_Training_NNN/BraTS20_Training_NNN_<mod>.nii``
  (uncompressed), ``name_mapping.csv`` beside the cases (grades); case 355's segmentation
  is named ``W39_1998.09.19_Segm.nii``.
* ``brats2020``: the same names as ``.nii.gz`` (the official release).
* ``brats2021``: ``BraTS2021_NNNNN/BraTS2021_NNNNN_<mod>.nii.gz``.
* ``brats2023-gli``: ``BraTS-GLI-NNNNN-NNN/BraTS-GLI-NNNNN-NNN-<mod>.nii.gz`` with
  ``t2f`` (FLAIR), ``t1n`` (T1), ``t1c`` (T1ce), ``t2w`` (T2), ``seg``.
* ``msd``: ``imagesTr/BRATS_NNN.nii.gz`` (4-D: one channel per modality, in the order
  ``dataset.json`` gives), ``labelsTr/BRATS_NNN.nii.gz``, ``imagesTs/`` (no labels); the
  macOS ``._*`` files of the archive are skipped.

Validation folders, which ship without segmentations, give cases whose ``seg`` is None.
"""

from __future__ import annotations

import csv
import json
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..labels import LAYOUTS, MODALITIES
from ._errors import DataError

__all__ = ["Case", "find_cases", "format_case_table", "LAYOUTS", "MODALITIES"]

# File-name suffix -> package modality name. BraTS 2023 renamed the contrasts
# (t1n = native T1, t1c = contrast-enhanced T1, t2w = T2, t2f = T2-FLAIR).
_MODALITY_ALIASES = {
    "flair": "flair",
    "t1": "t1",
    "t1ce": "t1ce",
    "t2": "t2",
    "t2f": "flair",
    "t1n": "t1",
    "t1c": "t1ce",
    "t2w": "t2",
    "seg": "seg",
}
# Longest alternatives first, so that "t1ce" is not read as "t1" followed by junk.
_SUFFIX_PATTERN = "|".join(sorted(_MODALITY_ALIASES, key=len, reverse=True))
_CASE_FILE = re.compile(
    rf"^(?P<prefix>.+?)[_-](?P<suffix>{_SUFFIX_PATTERN})\.nii(?:\.gz)?$", re.IGNORECASE
)
_NIFTI = re.compile(r"\.nii(?:\.gz)?$", re.IGNORECASE)
# The one segmentation of a release not named <case>_seg: case 355 of the Kaggle BraTS 2020.
_KAGGLE_355_SEG = re.compile(r"^W39_1998\.09\.19_Segm\.nii(?:\.gz)?$", re.IGNORECASE)

# Case-folder names of each release, checked in this order.
_ID_PATTERNS = (
    ("brats2023-gli", re.compile(r"^BraTS-[A-Z]+-\d+-\d+$", re.IGNORECASE)),
    ("brats2021", re.compile(r"^BraTS2021_\d+$", re.IGNORECASE)),
    ("brats2020", re.compile(r"^BraTS20_(?:Training|Validation|Testing|Synthetic)_\d+$", re.IGNORECASE)),
    ("brats2019", re.compile(r"^BraTS19_", re.IGNORECASE)),
)
_MSD_IMAGE = re.compile(r"^BRATS_\d+\.nii(?:\.gz)?$", re.IGNORECASE)
# MSD's dataset.json names the channels; map its names onto ours.
_MSD_CHANNEL_NAMES = {"flair": "flair", "t1w": "t1", "t1": "t1", "t1gd": "t1ce", "t1ce": "t1ce",
                      "t2w": "t2", "t2": "t2"}
_MSD_DEFAULT_CHANNELS = {"flair": 0, "t1": 1, "t1ce": 2, "t2": 3}

_HOW_TO_GET_DATA = (
    "To get data: `gliseg-nb synth DIR` writes the embedded synthetic dataset (BraTS 2020 "
    "layout); `gliseg_nb.data.download_msd(DEST)` fetches the public Medical Segmentation "
    "Decathlon Task01_BrainTumour archive (7.6 GB, no account); the BraTS 2020 copy on Kaggle "
    "(awsaf49/brats20-dataset-training-validation) needs a free Kaggle account."
)


@dataclass(frozen=True)
class Case:
    """One BraTS case: where its files are and which release wrote them.

    Parameters
    ----------
    case_id : str
        The release's identifier, e.g. ``"BraTS20_Training_001"`` or ``"BRATS_001"``.
    layout : str
        One of `LAYOUTS`; decides how labels are converted when reading.
    modalities : dict of str to pathlib.Path
        Keys exactly ``flair``, ``t1``, ``t1ce``, ``t2``. For MSD all four point at the
        same 4-D file.
    channels : dict of str to int or None, default=None
        MSD only: the index of each modality along the 4th axis of the image file.
    seg : pathlib.Path or None, default=None
        The segmentation file; None for validation or test cases.
    grade : str or None, default=None
        ``"HGG"`` or ``"LGG"`` where the layout says so (BraTS 2019 folders, or the
        ``name_mapping.csv`` of BraTS 2020).
    """

    case_id: str
    layout: str
    # Dicts are not hashable: leave them out of the hash (equality still compares them).
    modalities: dict = field(hash=False)
    channels: dict | None = field(default=None, hash=False)
    seg: Path | None = None
    grade: str | None = None

    def to_dict(self):
        """The case as JSON-ready data (paths as strings).

        Returns
        -------
        dict
            Keys ``case_id``, ``layout``, ``modalities``, ``channels``, ``seg``, ``grade``.
        """
        return {
            "case_id": self.case_id,
            "layout": self.layout,
            "modalities": {name: str(path) for name, path in self.modalities.items()},
            "channels": dict(self.channels) if self.channels is not None else None,
            "seg": str(self.seg) if self.seg is not None else None,
            "grade": self.grade,
        }

    @property
    def has_seg(self):
        """True when the case comes with a segmentation."""
        return self.seg is not None


def find_cases(root):
    """Find every BraTS case below a folder and recognise its layout.

    Parameters
    ----------
    root : str or pathlib.Path
        The dataset folder itself (``MICCAI_BraTS2020_TrainingData``,
        ``Task01_BrainTumour``, ...) or any folder above it. Several datasets below one
        folder are all found.

    Returns
    -------
    list of Case
        Sorted by ``case_id``.

    Raises
    ------
    DataError
        If `root` does not exist or holds no case (the message says how to get data), if a
        case folder lacks a modality (the message names the folder and the modality), if
        its modality files name several cases, or if two cases share an identifier.

    Warns
    -----
    UserWarning
        If some, but not all, cases of one folder lack a segmentation (an incomplete copy;
        validation folders, where none has one, do not warn), or if a case folder holds a
        file that says "seg" but is not named as a release names its ground truth (the
        file is named and ignored).

    Notes
    -----
    A case folder is any folder holding ``<id>_<modality>.nii[.gz]`` files (``-`` for
    BraTS 2023); its name is the ``case_id``. Folders whose names match no known release
    but follow the 2017-2021 file names (BraTS 2018, a renamed copy) are listed as
    ``brats2020`` (or ``brats2020-kaggle`` when uncompressed): those releases share one
    label convention, so their labels are converted correctly. Hidden folders and files
    (names starting with ``.``, such as macOS ``._*`` files) and ``__MACOSX`` are skipped.

    The ground truth is ``<id>_seg.nii[.gz]`` (``<id>-seg`` for BraTS 2023), or
    ``W39_1998.09.19_Segm.nii``, the name case 355 of the Kaggle BraTS 2020 copy carries;
    no other file is taken for it. Folder links are followed (datasets linked in from
    another disk), each folder once, so a link cycle ends.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: folder does not exist. {_HOW_TO_GET_DATA}")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (find_cases needs the folder holding the cases)")
    root = root.absolute()

    cases = []
    for folder, files in _walk_following_links(root):
        nifti_files = sorted(f for f in files if _NIFTI.search(f) and not _is_junk(f))
        if not nifti_files:
            continue
        if _is_msd_images_folder(folder, nifti_files):
            cases.extend(_msd_cases(folder, nifti_files))
        else:
            case = _brats_case(folder, nifti_files)
            if case is not None:
                cases.append(case)

    if not cases:
        raise DataError(f"{root}: no BraTS case found in this folder or below. {_HOW_TO_GET_DATA}")

    _warn_about_lone_missing_segmentations(cases)
    seen = {}
    for case in cases:
        if case.case_id in seen:
            raise DataError(
                f"{root}: case {case.case_id!r} found twice ({_case_folder(seen[case.case_id])} "
                f"and {_case_folder(case)}); point find_cases at one copy of the data"
            )
        seen[case.case_id] = case
    return sorted(cases, key=lambda case: case.case_id)


def _walk_following_links(root):
    """(folder, file names) below `root`, sorted, following folder links, each folder once.

    Datasets are often linked in from another disk: a case folder that is a symbolic link
    is a case like any other. A folder reached twice (a link to a folder already walked,
    or a link back up the tree) is walked only the first time, so a link cycle ends.
    """
    visited = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        identity = _folder_identity(folder)
        if identity in visited:
            subfolders[:] = []
            continue
        visited.add(identity)
        # Sorted, and without hidden folders or macOS resource forks, for a stable walk.
        subfolders[:] = sorted(
            name for name in subfolders
            if not _is_junk(name) and name != "__MACOSX"
            and _folder_identity(os.path.join(folder, name)) not in visited
        )
        yield Path(folder), files


def _folder_identity(folder):
    try:
        status = os.stat(folder)  # follows links: the folder itself, whatever its path
    except OSError:
        return ("unreadable", os.path.abspath(folder))
    return (status.st_dev, status.st_ino)


def _warn_about_lone_missing_segmentations(cases):
    # Validation folders have no segmentation at all; a training folder where a few cases
    # lack one points at an incomplete download or copy rather than at validation data.
    by_folder = {}
    for case in cases:
        if case.layout != "msd":
            by_folder.setdefault(_case_folder(case).parent, []).append(case)
    for folder, siblings in by_folder.items():
        without = [case.case_id for case in siblings if case.seg is None]
        if without and len(without) < len(siblings):
            shown = ", ".join(without[:5]) + (", ..." if len(without) > 5 else "")
            warnings.warn(
                f"{folder}: {len(without)} of {len(siblings)} cases have no segmentation "
                f"({shown}); they are listed with seg=None. Is the copy complete?",
                UserWarning,
                stacklevel=3,
            )


def format_case_table(cases):
    """A readable text table of cases: id, layout, grade and whether a segmentation exists.

    Parameters
    ----------
    cases : list of Case
        As returned by `find_cases`.

    Returns
    -------
    str
        One line per case under a header, then a count line such as
        ``"3 cases (brats2020: 3), 2 with segmentation"``.
    """
    cases = list(cases)
    headers = ("case_id", "layout", "grade", "seg")
    rows = [(c.case_id, c.layout, c.grade or "-", "yes" if c.seg is not None else "no")
            for c in cases]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    layouts = Counter(c.layout for c in cases)
    per_layout = ", ".join(f"{name}: {count}" for name, count in sorted(layouts.items()))
    with_seg = sum(c.seg is not None for c in cases)
    noun = "case" if len(cases) == 1 else "cases"
    summary = f"{len(cases)} {noun}"
    if per_layout:
        summary += f" ({per_layout})"
    summary += f", {with_seg} with segmentation"
    lines.append(summary)
    return "\n".join(lines)


# -- BraTS case folders ----------------------------------------------------------------
def _is_junk(name):
    # macOS writes "._name" AppleDouble files beside every file it copies; dot-folders
    # (.git, .ipynb_checkpoints) never hold cases.
    return name.startswith(".")


def _case_folder(case):
    any_path = case.seg if case.seg is not None else next(iter(case.modalities.values()))
    return any_path.parent if case.layout != "msd" else any_path


def _brats_case(folder, nifti_files):
    """The case in a BraTS case folder, or None if the folder holds no modality files."""
    found = {}
    prefixes = {}
    leftovers = []
    for name in nifti_files:
        match = _CASE_FILE.match(name)
        if match is None:
            leftovers.append(name)
            continue
        key = _MODALITY_ALIASES[match["suffix"].lower()]
        if key in found:
            raise DataError(
                f"{folder}: two files for {key!r}: {found[key].name} and {name}; "
                f"remove the extra one"
            )
        found[key] = folder / name
        prefixes[key] = match["prefix"]
    if not any(m in found for m in MODALITIES):
        # No modality file at all (a folder of predictions, say): not a case folder.
        return None

    # Every file of a case starts with the case's name: files of two cases in one folder
    # would otherwise be read as one case.
    modality_prefixes = {prefixes[m].casefold(): prefixes[m] for m in MODALITIES if m in found}
    if len(modality_prefixes) > 1:
        raise DataError(
            f"{folder}: the modality files name several cases "
            f"({', '.join(sorted(modality_prefixes.values()))}); keep one case per folder"
        )
    (case_prefix,) = modality_prefixes.values()

    seg = found.pop("seg", None)
    if seg is not None and prefixes["seg"].casefold() != case_prefix.casefold():
        # "<case>_flair_seg.nii.gz" (someone's own segmentation of the FLAIR) is not the
        # release's ground truth: only "<case>_seg" is.
        leftovers.append(seg.name)
        seg = None
    seg_like = [name for name in leftovers if "seg" in name.lower()]
    if seg is None:
        # The Kaggle copy of BraTS 2020 names case 355's segmentation
        # "W39_1998.09.19_Segm.nii": the only other name accepted as a segmentation.
        known = [name for name in seg_like if _KAGGLE_355_SEG.match(name)]
        if known:
            seg = folder / known[0]
            seg_like.remove(known[0])
    if seg_like:
        # Say so rather than guess: a wrong ground truth would spoil every score silently.
        first_modality = next(found[m] for m in MODALITIES if m in found)
        separator = first_modality.name[len(case_prefix)]
        expected = f"{case_prefix}{separator}seg.nii.gz (or .nii)"
        status = (f"the segmentation is {seg.name}" if seg is not None else
                  f"the case is listed without segmentation; if one of them is the ground "
                  f"truth, rename it {expected}")
        warnings.warn(
            f"{folder}: ignored {', '.join(seg_like)}: not a segmentation name of a BraTS "
            f"release ({expected}); {status}",
            UserWarning,
            stacklevel=3,
        )

    missing = [m for m in MODALITIES if m not in found]
    if missing:
        noun = "modality" if len(missing) == 1 else "modalities"
        raise DataError(
            f"{folder}: case folder is missing the {', '.join(missing)} {noun} "
            f"(found: {', '.join(sorted(p.name for p in found.values())) or 'none'})"
        )

    layout = _brats_layout(folder, found)
    grade = _grade_from_folder(folder) or _grade_from_name_mapping(folder)
    return Case(case_id=folder.name, layout=layout, modalities={m: found[m] for m in MODALITIES},
                channels=None, seg=seg, grade=grade)


def _brats_layout(folder, modality_files):
    file_names = [p.name.lower() for p in modality_files.values()]
    uncompressed = all(file_name.endswith(".nii") for file_name in file_names)
    for layout, pattern in _ID_PATTERNS:
        if pattern.match(folder.name):
            if layout == "brats2020" and uncompressed:
                return "brats2020-kaggle"
            return layout
    if folder.parent.name.upper() in ("HGG", "LGG"):
        return "brats2019"
    if any(re.search(r"-t(?:1n|1c|2w|2f)\.nii(?:\.gz)?$", f) for f in file_names):
        # BraTS 2023 contrast names in a renamed folder.
        return "brats2023-gli"
    # An unknown case name with the 2017-2021 file names: those releases share one label
    # convention (enhancing = 4), so reading it as BraTS 2020 converts labels correctly.
    return "brats2020-kaggle" if uncompressed else "brats2020"


def _grade_from_folder(folder):
    parent = folder.parent.name.upper()
    return parent if parent in ("HGG", "LGG") else None


def _grade_from_name_mapping(folder):
    # BraTS 2020 ships name_mapping.csv beside the case folders: Grade, ..., BraTS_2020_subject_ID.
    mapping = _read_name_mapping(folder.parent / "name_mapping.csv")
    return mapping.get(folder.name)


_NAME_MAPPING_CACHE = {}


def _read_name_mapping(path):
    if not path.is_file():
        return {}
    key = (path, path.stat().st_mtime_ns)
    if key not in _NAME_MAPPING_CACHE:
        grades = {}
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                for row in csv.DictReader(handle):
                    grade = (row.get("Grade") or "").strip().upper()
                    if grade not in ("HGG", "LGG"):
                        continue
                    for column, value in row.items():
                        if column and "subject_id" in column.lower() and value:
                            grades.setdefault(value.strip(), grade)
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise DataError(f"{path}: cannot read the grade table ({error})") from error
        _NAME_MAPPING_CACHE[key] = grades
    return _NAME_MAPPING_CACHE[key]


# -- Medical Segmentation Decathlon ----------------------------------------------------
def _is_msd_images_folder(folder, nifti_files):
    return folder.name in ("imagesTr", "imagesTs") and any(_MSD_IMAGE.match(f) for f in nifti_files)


def _msd_cases(images_folder, nifti_files):
    dataset_folder = images_folder.parent
    channels = _msd_channels(dataset_folder / "dataset.json")
    labels_folder = dataset_folder / "labelsTr"
    is_training = images_folder.name == "imagesTr"
    cases = []
    for name in nifti_files:
        if not _MSD_IMAGE.match(name):
            continue
        image = images_folder / name
        seg = None
        if is_training and labels_folder.is_dir():
            seg = labels_folder / name
            if not seg.is_file():
                raise DataError(f"{seg}: label file of training image {image} is missing")
        case_id = _NIFTI.sub("", name)
        cases.append(Case(case_id=case_id, layout="msd",
                          modalities={m: image for m in MODALITIES},
                          channels=dict(channels), seg=seg, grade=None))
    return cases


def _msd_channels(dataset_json):
    """Modality -> channel index, from ``dataset.json`` if present (else the Task01 order)."""
    if not dataset_json.is_file():
        return dict(_MSD_DEFAULT_CHANNELS)
    try:
        description = json.loads(dataset_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{dataset_json}: not a readable dataset description ({error})") from error
    names = description.get("modality") if isinstance(description, dict) else None
    if not isinstance(names, dict):
        return dict(_MSD_DEFAULT_CHANNELS)
    channels = {}
    for index, name in names.items():
        key = _MSD_CHANNEL_NAMES.get(str(name).strip().lower())
        if key is not None:
            channels[key] = int(index)
    missing = [m for m in MODALITIES if m not in channels]
    if missing:
        raise DataError(
            f"{dataset_json}: 'modality' lists {dict(names)}, which lacks {', '.join(missing)}"
        )
    return {m: channels[m] for m in MODALITIES}
