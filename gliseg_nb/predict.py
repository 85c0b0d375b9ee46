"""Whole-volume inference: from a trained 2-D U-Net to BraTS-format NIfTI segmentations.

The report predicts only the 100 slices it trains on, at 128 x 128 pixels. A segmentation
that BraTS (or a clinician) can use covers the whole case on its original grid:

1. read the case's modalities (all axial slices);
2. normalise them exactly as training did (statistics from the training slab of slices,
   ``config.slice_start`` onwards, applied to every slice), and resize each axial slice that
   holds brain to ``image_size`` pixels with the pipeline's filter;
3. predict class probabilities slice by slice, averaged by default over the four in-plane
   flips of each slice (``tta_flips``: none, the left-right mirror, or all four);
4. resize the *probabilities* back to the original in-plane size (bilinear), then take the
   argmax, so class boundaries fall between pixels smoothly instead of in 128-px steps;
5. set everything outside the brain to background, erase stray tumour components under
   1 mL (by default; the largest always stays), and optionally relabel a tiny total
   enhancing tumour as necrosis (what the BraTS 2020 winner did: a false-positive ET in a
   case without ET costs Dice 0 and HD95 373 mm);
6. write ``<case_id>.nii.gz`` in the labels of the case's release, with its affine and header.

Public API
----------
predict_case(model, case, config)        label volume (uint8, internal 0-3), original grid
write_prediction(labels, case, out_dir)  ``<case_id>.nii.gz`` in the release's labels
remove_small_enhancing(labels, n)        ET -> necrosis when the total ET is under n voxels
remove_small_components(labels, n)       erase tumour components under n voxels, but the largest
load_trained(path)                       (model, config) from a ``.keras`` file or run folder
predict_folder(model, data, out)         every case of a folder, with a manifest (``gliseg-nb predict``)
read_manifest(folder)                    which model wrote the predictions of a folder

The manifest
------------
`predict_folder` writes ``predictions.json`` (`MANIFEST_FILE`) into its output folder: the
model file and its SHA-256, its settings, the options that change the labels, the date, the
cases it writes and whether it finished. Predicting into a folder that holds another
model's predictions is refused unless ``overwrite=True`` (which first removes them), so a
folder never mixes two models; `gliseg_nb.metrics.evaluate_folder` reads the manifest and
refuses to score a mix.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import zipfile

import numpy as np

from ._io import atomic_write, output_folder, user_path
from ._preprocess import _as_slice, brain_mask, resize_volume, resize_weights
from .config import Config
from .errors import ConfigError, DataError, RunError
from .labels import decode_outputs, from_internal
from .runs import MODEL_FILE_NAMES, RunFolder  # noqa: F401  (MODEL_FILE_NAMES: re-exported)

__all__ = [
    "predict_case",
    "write_prediction",
    "remove_small_enhancing",
    "remove_small_components",
    "load_trained",
    "find_model_file",
    "predict_folder",
    "read_manifest",
    "MANIFEST_FILE",
    "MODEL_FILE_NAMES",
    "DEFAULT_TTA",
    "DEFAULT_MIN_COMPONENT_VOXELS",
]

#: The manifest `predict_folder` writes beside its predictions.
MANIFEST_FILE = "predictions.json"
_MANIFEST_FORMAT = "gliseg-nb predictions 1"

#: In-plane flips used for test-time augmentation: (flip rows, flip columns).
TTA_FLIPS = ((False, False), (True, False), (False, True), (True, True))
#: What `predict_case`'s ``tta_flips`` accepts besides True and False.
TTA_CHOICES = ("none", "lr", "all")
#: `predict_case`'s default test-time flips: the four in-plane flips of each slice.
DEFAULT_TTA = "all"
#: `predict_case`'s default `remove_small_components` threshold, in voxels (1 mL at 1 mm).
DEFAULT_MIN_COMPONENT_VOXELS = 1000


# -- preprocessing, exactly as training ------------------------------------------------
def _training_slab(config, depth):
    """Axial slices whose brain voxels gave the normalisation statistics during training."""
    start = min(config.slice_start, depth)
    stop = min(config.slice_indices[-1] + 1, depth)
    if stop <= start:
        # The volume is shorter than the training selection (small test data): use it all.
        return 0, depth
    return start, stop


def _normalize_like_training(volumes, config, brain=None):
    """Normalise the ``(X, Y, Z)`` volumes of one case (one per channel) as training did.

    `gliseg_nb.preprocessing.preprocess_case` normalises the slab of slices it trains on
    (``slice_start`` to the last selected slice) with the statistics of that slab. Here the
    statistics come from the very same function on the same slab, and are then applied to
    every slice with the same float32 operations: the training slices get bit for bit the
    inputs the network was trained on (a test checks this against ``preprocess_case``), the
    other slices the same scale. Voxels outside the brain stay 0.

    Parameters
    ----------
    volumes : sequence of numpy.ndarray
        One ``(X, Y, Z)`` volume per channel, in ``config.modalities`` order; not changed.
    config : gliseg_nb.Config
        ``normalization``, ``slice_start`` and the selected slices.
    brain : numpy.ndarray of bool or None, default=None
        The brain mask of `volumes` (`gliseg_nb._preprocess.brain_mask`), if already
        computed; None computes it.

    Returns
    -------
    list of numpy.ndarray
        float32 volumes, one per channel, each in its input's memory order (Fortran order
        for volumes read from NIfTI, which `resize_volume` reads without a copy).
    """
    from ._preprocess import apply_normalization, normalize_volumes

    if brain is None:
        brain = brain_mask(volumes)
    start, stop = _training_slab(config, volumes[0].shape[2])
    slab = [np.array(volume[:, :, start:stop], dtype=np.float32) for volume in volumes]
    _, parameters = normalize_volumes(slab, config.normalization, brain[:, :, start:stop],
                                      return_parameters=True)
    normalized = [np.array(volume, dtype=np.float32, order="K") for volume in volumes]
    for volume, (offset, scale) in zip(normalized, parameters):
        apply_normalization(volume, offset, scale, config.normalization, brain)
    return normalized


def _upsample_probabilities(probabilities, out_rows, out_cols):
    """``(n, size, size, K)`` probabilities -> ``(out_rows, out_cols, n, K)``, bilinear.

    Uses the pipeline's resampling weights, which are plain linear interpolation (edges
    clamped) when enlarging; each output pixel's probabilities still sum to 1. The weights
    may be a dense or a scipy sparse matrix: ``@`` works with both. The result is a view
    of an array stored class by class (``(out_cols, K, out_rows, n)`` in memory), so that
    `decode_outputs` compares whole planes of one class instead of looping over pixels.
    """
    n, size_rows, size_cols, n_classes = probabilities.shape
    rows = resize_weights(size_rows, out_rows)
    cols = resize_weights(size_cols, out_cols)
    along_rows = probabilities.transpose(1, 3, 0, 2).reshape(size_rows, -1)  # (size_rows, K n size_cols)
    out = np.asarray(rows @ along_rows).reshape(out_rows, n_classes, n, size_cols)
    along_cols = out.transpose(3, 1, 0, 2).reshape(size_cols, -1)  # (size_cols, K out_rows n)
    out = np.asarray(cols @ along_cols).reshape(out_cols, n_classes, out_rows, n)
    return out.transpose(2, 0, 3, 1)


def _tta_flip_set(tta_flips, affine):
    """The (flip rows, flip columns) pairs `predict_case` averages over for `tta_flips`."""
    choice = ("all" if tta_flips else "none") if isinstance(tta_flips, (bool, np.bool_)) else tta_flips
    if choice not in TTA_CHOICES:
        raise ConfigError(f"tta_flips must be True, False or one of {TTA_CHOICES}, got {tta_flips!r}")
    if choice == "none":
        return TTA_FLIPS[:1]
    if choice == "all":
        return TTA_FLIPS
    # Left-right: the in-plane axis the affine says runs towards L or R (axis 0 in BraTS).
    from .orientation import axis_codes

    codes = axis_codes(affine)
    lateral = [axis for axis in (0, 1) if codes[axis] in ("L", "R")]
    if not lateral:
        raise DataError(f"tta_flips='lr': no in-plane axis of this image runs left-right (axes {codes})")
    return (TTA_FLIPS[0], (True, False) if lateral[0] == 0 else (False, True))


def _predict_probabilities(model, images, batch_size, flips):
    """Outputs of ``model`` for ``(n, size, size, C)`` inputs, averaged over `flips`.

    Parameters
    ----------
    flips : sequence of (bool, bool)
        (flip rows, flip columns) pairs, e.g. ``TTA_FLIPS[:1]`` for no flip.
    """
    total = None
    for flip_rows, flip_cols in flips:
        axes = tuple(axis for axis, flip in ((1, flip_rows), (2, flip_cols)) if flip)
        batch_input = np.flip(images, axis=axes) if axes else images
        outputs = [
            np.asarray(model.predict_on_batch(batch_input[start : start + batch_size]), dtype=np.float32)
            for start in range(0, len(batch_input), batch_size)
        ]
        outputs = np.concatenate(outputs, axis=0)
        # Flip the prediction back onto the unflipped image before averaging.
        outputs = np.flip(outputs, axis=axes) if axes else outputs
        total = outputs if total is None else total + outputs
    return total / len(flips)


def _resized_slices(volumes, indices, size):
    """Axial slices `indices` of each ``(X, Y, Z)`` volume, resized: ``(n, size, size, C)``."""
    # Selecting through the transpose keeps Fortran-ordered slices Fortran-ordered, which
    # `resize_volume` reads without a copy (the same values as ``volume[:, :, indices]``).
    return np.stack([resize_volume(volume.T[indices].T, size) for volume in volumes], axis=-1)


def _network_inputs(normalized, indices, config):
    """The network's inputs for axial slices `indices` of a normalised case.

    `normalized` holds one ``(X, Y, Z)`` volume per channel (`_normalize_like_training`).
    Each slice resized to ``image_size``; with ``config.context_slices`` its neighbours'
    images are stacked as extra channels, as in training (`gliseg_nb._preprocess.stack_context`).
    """
    if not config.context_slices:
        return _resized_slices(normalized, indices, config.image_size)
    from ._preprocess import context_rows, stack_context

    rows = context_rows(indices, config.context_slices, normalized[0].shape[2])
    needed, inverse = np.unique(rows, return_inverse=True)
    return stack_context(_resized_slices(normalized, needed, config.image_size), inverse.reshape(rows.shape))


def remove_small_enhancing(labels, min_voxels, replacement=1):
    """Relabel all enhancing tumour (3) as necrosis when the case has fewer than `min_voxels`.

    BraTS scores a case without enhancing tumour Dice 1 if nothing is predicted and Dice 0
    (HD95 373 mm) for even one false voxel, so the BraTS 2020 winner (Isensee et al.)
    replaced a small total enhancing volume by necrosis. Necrosis keeps the voxels in the
    tumour core and the whole tumour, so only the ET score changes.

    Parameters
    ----------
    labels : numpy.ndarray of int
        Internal labels (0-3) of one case.
    min_voxels : int
        Threshold on the total number of enhancing voxels; 0 disables the rule.
    replacement : int, default=1
        The class given to the removed enhancing voxels (1, necrotic core).

    Returns
    -------
    numpy.ndarray
        `labels` itself when nothing changes, else a relabelled copy.
    """
    if min_voxels < 0:
        raise ConfigError(f"min_voxels must be >= 0, got {min_voxels}")
    enhancing = labels == 3
    count = int(np.count_nonzero(enhancing))
    if count == 0 or count >= min_voxels:
        return labels
    relabelled = labels.copy()
    relabelled[enhancing] = replacement
    return relabelled


def _load_full_case(case, config):
    from .data import load_case

    return load_case(case, modalities=list(config.modalities))


def remove_small_components(labels, min_voxels):
    """Erase predicted tumour components smaller than `min_voxels`, except the largest.

    A network that segments slice by slice leaves small stray blobs away from the tumour.
    The whole-volume Dice hardly notices them; the BraTS 2023 lesion-wise scores count each
    as a false lesion (`gliseg_nb.metrics.lesion_wise_scores`). Components are those of the
    whole tumour (any class > 0, 26-connectivity); the largest one is always kept, so a
    case never loses all of its tumour.

    Parameters
    ----------
    labels : numpy.ndarray of int
        Internal labels (0-3) of one case.
    min_voxels : int
        Components with fewer voxels are set to background; 0 disables the rule.

    Returns
    -------
    numpy.ndarray
        `labels` itself when nothing changes, else a cleaned copy.
    """
    from scipy import ndimage

    if min_voxels < 0:
        raise ConfigError(f"min_voxels must be >= 0, got {min_voxels}")
    if min_voxels == 0:
        return labels
    structure = ndimage.generate_binary_structure(labels.ndim, labels.ndim)
    components, count = ndimage.label(labels > 0, structure=structure)
    if count <= 1:
        return labels
    sizes = np.bincount(components.ravel())
    small = sizes < min_voxels
    small[0] = False  # background
    small[np.argmax(sizes[1:]) + 1] = False  # the largest component stays
    if not small.any():
        return labels
    cleaned = labels.copy()
    cleaned[small[components]] = 0
    return cleaned


def predict_case(
    model,
    case,
    config,
    batch_size=32,
    tta_flips=DEFAULT_TTA,
    min_et_voxels=0,
    min_component_voxels=DEFAULT_MIN_COMPONENT_VOXELS,
    return_probabilities=False,
):
    """Segment a whole case and return labels on its original grid.

    Every axial slice that contains brain is predicted (slices without any brain voxel are
    background and skipped, which saves about a fifth of the time on BraTS). Inputs are
    normalised and resized as in training; the class probabilities are resized back to the
    original in-plane size (bilinear) before the argmax; voxels outside the brain are set
    to background.

    Parameters
    ----------
    model : keras.Model
        Maps ``(batch, image_size, image_size, n_channels)`` to softmax probabilities
        ``(batch, image_size, image_size, n_classes)``, or with ``config.outputs="regions"``
        to WT/TC/ET sigmoid probabilities (decoded by `gliseg_nb.labels.regions_to_labels`).
    case : gliseg_nb.data.Case or gliseg_nb.data.CaseData
        The case to segment. A `CaseData` must hold every axial slice and the modalities
        of `config` (as ``load_case(case, modalities=config.modalities)`` returns).
    config : gliseg_nb.Config
        The settings the model was trained with (``modalities``, ``image_size``,
        ``normalization``, ``slice_start``, ``n_slices``, ``slice_step``, ``n_classes``,
        ``context_slices``: the neighbours stacked as channels, ``outputs``).
    batch_size : int, default=32
        Slices per forward pass.
    tta_flips : bool or {"none", "lr", "all"}, default="all"
        Test-time augmentation: average the probabilities over flipped copies of each
        slice (each prediction flipped back first). ``"all"`` or ``True`` (the default):
        the four combinations of in-plane flips, four forward passes instead of one (1.3
        to 4 times the time, depending on the network's size: with the quick preset's
        small network about 2x, 1.7 against 0.8 CPU s for a BraTS case, since reading and
        resizing cost as much as the network; with the report's network about 4x).
        ``"lr"``: the image and its left-right mirror (the in-plane axis the affine says
        runs left-right; an image without one is refused), two forward passes.
        ``False`` or ``"none"``: no flip, one forward pass.
    min_et_voxels : int, default=0
        If the predicted enhancing tumour has fewer voxels than this in total, relabel it
        as necrosis (`remove_small_enhancing`). 0 disables it.
    min_component_voxels : int, default=1000
        Erase tumour components smaller than this (1000 voxels: 1 mL at BraTS's 1 mm),
        except the largest (`remove_small_components`; applied before `min_et_voxels`).
        0 disables it.
    return_probabilities : bool, default=False
        Also return the probabilities on the original grid, shape ``(X, Y, Z, n_classes)``
        float32 (background certain outside the brain), e.g. for `report_metrics`; for a
        region network ``(X, Y, Z, 3)``, the WT/TC/ET probabilities (0 outside the brain).

    Returns
    -------
    labels : numpy.ndarray of uint8, shape (X, Y, Z)
        Internal classes 0-3 on the case's original grid.
    probabilities : numpy.ndarray of float32
        Only with ``return_probabilities=True``.

    Notes
    -----
    The defaults (four flips, components under 1 mL erased) raised the whole tumour Dice of
    quick models trained on the synthetic data, on real scans and on synthetic held-out
    cases alike, for each of the three training seeds compared (docs/benchmarks.md,
    "Transfer to real scans"). The network was trained on flipped slices
    (``Config.augment`` flips both in-plane axes), so each flipped copy is an image it
    knows how to read; averaging the copies removes what only some of them predict (nnU-Net
    mirrors along every axis at inference for the same reason). Satellite lesions smaller
    than 1 mL are lost with the second rule (the largest component is always kept); pass
    ``min_component_voxels=0`` to keep them, ``tta_flips="none"`` for one forward pass.
    """
    if not isinstance(config, Config):
        raise ConfigError(f"config must be a gliseg_nb.Config, got {type(config).__name__}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    case_data = case if hasattr(case, "images") else _load_full_case(case, config)
    case_id = case_data.case.case_id
    missing = [m for m in config.modalities if m not in case_data.images]
    if missing:
        raise DataError(f"case {case_id}: modalities {missing} were not loaded")
    # One volume per channel, as loaded: stacking them into one array would copy them all.
    volumes = [np.asarray(case_data.images[m], dtype=np.float32) for m in config.modalities]
    full_depth = case_data.shape[2] if len(case_data.shape) > 2 else volumes[0].shape[2]
    if volumes[0].shape[2] != full_depth:
        raise DataError(
            f"case {case_id}: predict_case needs every axial slice, but only "
            f"{volumes[0].shape[2]} of {full_depth} were loaded"
        )
    rows, cols, depth = volumes[0].shape[:3]
    flips = _tta_flip_set(tta_flips, case_data.affine)
    # Brain: non-zero in any channel, the pipeline's definition for skull-stripped data.
    brain = brain_mask(volumes)
    brain_slices = np.flatnonzero(brain.any(axis=(0, 1)))
    labels = np.zeros((rows, cols, depth), dtype=np.uint8)
    # What is certain outside the brain: class 0 (softmax), or no region at all.
    outside = np.zeros(config.n_outputs, dtype=np.float32)
    if config.outputs == "softmax":
        outside[0] = 1.0
    probabilities = None
    if return_probabilities:
        probabilities = np.empty((rows, cols, depth, config.n_outputs), dtype=np.float32)
        # Slices without brain hold `outside`; the others are filled chunk by chunk below.
        probabilities[:, :, np.setdiff1d(np.arange(depth), brain_slices)] = outside
    if len(brain_slices):
        normalized = _normalize_like_training(volumes, config, brain)
        # Chunks of slices bound the memory of the full-size probabilities (a 240 x 240 x 4
        # float32 map per slice) whatever the depth of the volume.
        chunk = max(batch_size, 32)
        for start in range(0, len(brain_slices), chunk):
            indices = brain_slices[start : start + chunk]
            images = _network_inputs(normalized, indices, config)
            small = _predict_probabilities(model, images, batch_size, flips)
            if small.shape[1:3] != images.shape[1:3]:
                raise DataError(
                    f"model output {small.shape[1:]} does not match its input "
                    f"{images.shape[1:]}; is this a segmentation model for image_size "
                    f"{config.image_size}?"
                )
            full = _upsample_probabilities(small, rows, cols)
            where = _as_slice(indices)  # a range of slices: a view, faster to write into
            labels[:, :, where] = decode_outputs(full, config.outputs)
            if probabilities is not None:
                # Outside the brain, class plane by class plane (the layout of `full`);
                # then classes last again, rows and columns still swapped in memory: one
                # cheap copy that makes the write into `probabilities` a copy of blocks.
                outside_brain = ~brain[:, :, where]
                for plane, value in zip(np.moveaxis(full, -1, 0), outside):
                    np.copyto(plane, value, where=outside_brain)
                full = np.ascontiguousarray(full.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
                probabilities[:, :, where] = full
    labels *= brain  # background outside the brain (faster than labels[~brain] = 0)
    labels = remove_small_components(labels, min_component_voxels)
    labels = remove_small_enhancing(labels, min_et_voxels)
    if return_probabilities:
        return labels, probabilities
    return labels


# -- writing ---------------------------------------------------------------------------
def _reference_image(case):
    """The image whose affine and header a prediction copies: the case's first modality."""
    from .data._nifti import open_nifti

    path = next(iter(case.modalities.values()))
    return open_nifti(path), path


def write_prediction(labels, case, out_dir, label_convention="release"):
    """Write a label volume as ``<case_id>.nii.gz``, as BraTS submissions expect.

    The file copies the affine and header of the case's first modality (so it overlays the
    source images in any viewer), with the data type set to uint8, intensity scaling reset
    and the display range set to the labels written.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (X, Y, Z)
        Internal labels 0-3 on the case's grid (`predict_case`'s output).
    case : gliseg_nb.data.Case or gliseg_nb.data.CaseData
        The case the labels belong to.
    out_dir : str or pathlib.Path
        Output folder (created if needed).
    label_convention : {"release", "internal"}, default="release"
        ``"release"``: the labels of the case's own release (4 = enhancing for BraTS
        2019-2021, 3 for BraTS 2023, MSD's order for MSD). ``"internal"``: 0-3 as is.

    Returns
    -------
    pathlib.Path
        The file written. It is written under a temporary name and renamed, so a reader
        never sees half a file.
    """
    import nibabel as nib

    case = getattr(case, "case", case)
    if label_convention not in ("release", "internal"):
        raise ConfigError(f"label_convention must be 'release' or 'internal', got {label_convention!r}")
    reference, reference_path = _reference_image(case)
    grid = tuple(reference.shape[:3])
    labels = np.asarray(labels)
    if labels.shape != grid:
        raise DataError(
            f"case {case.case_id}: labels of shape {labels.shape} do not match the grid "
            f"{grid} of {reference_path}"
        )
    layout = case.layout if label_convention == "release" else "internal"
    data = from_internal(labels, layout).astype(np.uint8)
    # from_header copies a NIfTI-1 header and converts any other kind (NIfTI-2, Analyze).
    header = nib.Nifti1Header.from_header(reference.header)
    header.set_data_dtype(np.uint8)
    # The source images may be stored scaled (scl_slope); labels must be read back as is.
    header.set_slope_inter(None, None)
    header["cal_min"], header["cal_max"] = 0, int(data.max(initial=0))
    image = nib.Nifti1Image(data, reference.affine, header)
    path = user_path(out_dir) / f"{case.case_id}.nii.gz"
    try:
        # The temporary name must end in .nii.gz too: nibabel picks compression by extension.
        with atomic_write(path, mode=None, suffix=".nii.gz") as tmp:
            nib.save(image, str(tmp))
    except OSError as error:
        raise RunError(f"{path}: cannot write the prediction ({error.strerror or error})") from error
    return path


# -- the command -----------------------------------------------------------------------
def find_model_file(run_dir):
    """The model file of a training run folder (`gliseg_nb.runs.RunFolder.find_model_file`).

    ``best.keras`` (the best epoch), else ``model.keras``, else the latest
    ``last-epoch-NNN.keras`` checkpoint, else a single ``.keras`` file. Hidden temporary
    files are ignored.

    Parameters
    ----------
    run_dir : str or pathlib.Path
        A folder written by ``gliseg-nb train``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    gliseg_nb.RunError
        If the folder holds no model file, or several without a preferred one.
    """
    return RunFolder(user_path(run_dir)).find_model_file()


def load_trained(path, config_path=None):
    """Load a trained model and the settings it was trained with.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.keras`` file, or a run folder holding ``config.json`` and a model file
        (see `find_model_file`).
    config_path : str or pathlib.Path or None, default=None
        The settings (``config.json``). Default: ``config.json`` in the run folder, or next
        to the ``.keras`` file, or in its parent folder (checkpoint sub-folders).

    Returns
    -------
    model : keras.Model
    config : gliseg_nb.Config

    Raises
    ------
    gliseg_nb.DataError
        If the model file is missing, truncated, corrupt or not a Keras model, has no
        settings, or does not take the inputs its settings describe.
    gliseg_nb.ConfigError
        If the settings file cannot be read or holds an invalid setting.
    """
    path = user_path(path)
    if path.is_dir():
        model_path = find_model_file(path)
        search = [path / "config.json"]
    elif path.is_file():
        model_path = path
        search = [path.parent / "config.json", path.parent.parent / "config.json"]
    else:
        raise DataError(f"{path}: no such model file or run folder")
    if config_path is None:
        found = [candidate for candidate in search if candidate.is_file()]
        if not found:
            raise DataError(
                f"{model_path}: no config.json next to the model, so the modalities, image "
                "size and normalisation it expects are unknown (pass --config FILE)"
            )
        config_path = found[0]
    config = Config.load(user_path(config_path))
    model = _load_model_file(model_path)
    expected = (config.image_size, config.image_size, config.n_channels)
    if tuple(model.input_shape[1:]) != expected:
        raise DataError(
            f"{model_path}: model input {tuple(model.input_shape[1:])} does not match "
            f"{config_path} (image_size={config.image_size}, modalities={list(config.modalities)})"
        )
    return model, config


def _load_model_file(model_path):
    """`gliseg_nb.load_model` with an error naming the file when it is not a usable model.

    A ``.keras`` file is a zip archive; Keras reports a truncated one as "File not found"
    (for a file that exists), so the archive is checked first.
    """
    import keras

    from . import load_model

    if model_path.suffix != ".keras":
        raise DataError(f"{model_path}: not a .keras model file (gliseg-nb saves models as .keras)")
    try:
        with zipfile.ZipFile(model_path) as archive:
            damaged = archive.testzip()
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(
            f"{model_path}: not a complete .keras file (truncated or corrupt: {error}); "
            "train again or copy the file again"
        ) from error
    if damaged is not None:
        raise DataError(f"{model_path}: corrupt .keras file ({damaged} fails its checksum)")
    if "config.json" not in names:
        raise DataError(f"{model_path}: not a Keras model file (no config.json inside the archive)")
    try:
        return load_model(model_path, compile=False)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        # What a well-formed archive that Keras cannot rebuild raises (foreign layers, other
        # Keras versions, weights of another shape).
        raise DataError(
            f"{model_path}: cannot load the model ({type(error).__name__}: {error}; "
            f"Keras {keras.__version__})"
        ) from error


def _sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder):
    """The manifest (``predictions.json``) of a predictions folder, or None if it has none.

    Parameters
    ----------
    folder : str or pathlib.Path
        A folder written by `predict_folder` (or ``gliseg-nb predict``).

    Returns
    -------
    dict or None
        ``model`` (``path``, ``sha256``), ``config``, ``options`` (labels, tta,
        min_et_voxels, min_component_voxels, nan_policy), ``created``, ``files``
        (``{case_id: file name}`` of every case the run set out to write) and ``complete``
        (False when the run was interrupted). None when the folder has no manifest (older
        versions, or predictions from elsewhere).

    Raises
    ------
    gliseg_nb.RunError
        If the manifest exists but cannot be read.
    """
    path = user_path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(f"{path}: cannot read the predictions manifest ({error})") from error
    if not isinstance(manifest, dict) or manifest.get("format") != _MANIFEST_FORMAT:
        raise RunError(f"{path}: not a gliseg-nb predictions manifest")
    return manifest


def _write_manifest(folder, manifest):
    with atomic_write(folder / MANIFEST_FILE) as handle:
        handle.write(json.dumps(manifest, indent=2) + "\n")


def _prediction_files(folder):
    """The prediction-like files in `folder` (``*.nii.gz``, ``*.nii``; hidden files skipped)."""
    return sorted(path for pattern in ("*.nii.gz", "*.nii") for path in folder.glob(pattern)
                  if path.is_file() and not path.name.startswith("."))


def _describe_writer(manifest):
    return f"{manifest['model']['path']} on {manifest.get('created', '?')}"


def _claim_folder(out_dir, identity, overwrite):
    """Make `out_dir` hold only predictions of the model `identity` describes.

    Returns the case files an earlier run of the same model and options recorded (kept),
    after removing another model's files when `overwrite` is set.
    """
    manifest = read_manifest(out_dir)
    existing = _prediction_files(out_dir)
    same = manifest is not None and all(manifest.get(key) == value for key, value in identity.items())
    if same:
        listed = set(manifest.get("files", {}).values())
        strays = [path for path in existing if path.name not in listed]
        if not strays:
            return dict(manifest.get("files", {}))  # the same model again: resume or add cases
        # Files its manifest does not list were put there by someone else.
        other = f"{len(strays)} prediction file(s) its {MANIFEST_FILE} does not list ({strays[0].name}, ...)"
        stale = strays
    elif manifest is not None:
        other = f"predictions of another model or options ({_describe_writer(manifest)})"
        listed = [out_dir / name for name in manifest.get("files", {}).values()]
        stale = [path for path in listed if path.is_file()]
        stale += [path for path in existing if path not in listed]
    elif existing:
        other = f"{len(existing)} prediction file(s) without a {MANIFEST_FILE} (older or foreign)"
        stale = existing
    else:
        return {}
    if not overwrite:
        raise RunError(
            f"{out_dir}: holds {other}; pass --overwrite (overwrite=True) to replace them, "
            "or choose another output folder"
        )
    for path in stale:
        path.unlink(missing_ok=True)
    if same:
        return dict(manifest.get("files", {}))
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    return {}


def predict_folder(model, data, out, *, config=None, label_convention="release", batch_size=32,
                   tta=DEFAULT_TTA, min_et_voxels=0,
                   min_component_voxels=DEFAULT_MIN_COMPONENT_VOXELS, cases=None,
                   nan_policy="raise", overwrite=False, progress=True):
    """Segment every case of a BraTS folder into ``out/<case_id>.nii.gz`` (``gliseg-nb predict``).

    The output folder is checked (created, writable, not a file) before any case is
    predicted, and gets a manifest (``predictions.json``, see the module docstring) naming
    the model that wrote its files. Each file is written atomically.

    Parameters
    ----------
    model : str or pathlib.Path
        A trained model (``.keras``) or a run folder (`load_trained`).
    data : str or pathlib.Path
        Folder of BraTS cases in any layout (`gliseg_nb.data.find_cases`).
    out : str or pathlib.Path
        Output folder (``~`` expanded; created if missing).
    config : str or pathlib.Path or None, default=None
        The settings the model was trained with; None: the run's ``config.json``.
    label_convention : {"release", "internal"}, default="release"
        Labels written (`write_prediction`).
    batch_size : int, default=32
        Slices per forward pass; at least 1.
    tta : bool or {"none", "lr", "all"}, default="all"
        Test-time flips (`predict_case`'s ``tta_flips``): ``"all"`` (True) averages over
        the four in-plane flips, ``"lr"`` over the image and its left-right mirror, False
        (``"none"``) predicts once.
    min_et_voxels : int, default=0
        `predict_case`'s small-enhancing-tumour rule (0: off); not negative.
    min_component_voxels : int, default=1000
        `predict_case`'s small-component rule (0: off); not negative.
    cases : sequence of str or None, default=None
        Case ids to predict; None predicts every case.
    nan_policy : {"raise", "zero"}, default="raise"
        What to do with NaN or infinite voxels in a float image (`gliseg_nb.data.load_case`).
    overwrite : bool, default=False
        Replace predictions of another model (or of unknown origin) found in `out`;
        without it such a folder is refused.
    progress : bool, default=True
        Show a progress bar over cases.

    Returns
    -------
    list of pathlib.Path
        The files written, one per case.

    Raises
    ------
    gliseg_nb.ConfigError
        For a non-positive `batch_size`, negative post-processing thresholds or an unknown
        `label_convention` / `nan_policy`.
    gliseg_nb.DataError
        If the model or data cannot be read, or a case id in `cases` is not in `data`.
    gliseg_nb.RunError
        If `out` cannot be written, or holds another model's predictions (without
        `overwrite`).
    """
    from ._progress_bar import progress_bar

    from . import __version__
    from .data import find_cases, load_case

    _check_count("batch_size", batch_size, minimum=1)
    _check_count("min_et_voxels", min_et_voxels, minimum=0)
    _check_count("min_component_voxels", min_component_voxels, minimum=0)
    if label_convention not in ("release", "internal"):
        raise ConfigError(f"label_convention must be 'release' or 'internal', got {label_convention!r}")
    if nan_policy not in ("raise", "zero"):
        raise ConfigError(f"nan_policy must be 'raise' or 'zero', got {nan_policy!r}")
    if not isinstance(tta, (bool, np.bool_)) and tta not in TTA_CHOICES:
        raise ConfigError(f"tta must be True, False or one of {TTA_CHOICES}, got {tta!r}")
    tta = tta if isinstance(tta, str) else bool(tta)  # as recorded in the manifest
    model_path = user_path(model)
    loaded, config = load_trained(model_path, config)
    if model_path.is_dir():
        model_path = find_model_file(model_path)
    found = find_cases(data)
    if cases:
        known = {case.case_id for case in found}
        unknown = [case_id for case_id in cases if case_id not in known]
        if unknown:
            raise DataError(f"{data}: no case(s) {', '.join(unknown)}")
        found = [case for case in found if case.case_id in set(cases)]
    if not found:
        raise DataError(f"{data}: no BraTS case found")
    # Checked before any case is predicted: a folder we cannot write fails now.
    out_dir = output_folder(out, what="predictions folder")
    identity = {
        "format": _MANIFEST_FORMAT,
        "model": {"path": str(model_path.resolve()), "sha256": _sha256(model_path)},
        "config": config.to_dict(),
        "options": {"labels": label_convention, "tta": tta, "min_et_voxels": int(min_et_voxels),
                    "min_component_voxels": int(min_component_voxels), "nan_policy": nan_policy},
    }
    identity = json.loads(json.dumps(identity))  # as read back from the manifest (lists, not tuples)
    files = _claim_folder(out_dir, identity, overwrite)
    files.update({case.case_id: f"{case.case_id}.nii.gz" for case in found})
    manifest = {**identity, "gliseg_nb_version": __version__,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "files": dict(sorted(files.items())), "complete": False}
    # Written before the first prediction: an interrupted run leaves complete=False.
    _write_manifest(out_dir, manifest)
    written = []
    for case in progress_bar(found, desc="predict", unit="case", disable=not progress):
        case_data = load_case(case, modalities=list(config.modalities), nan_policy=nan_policy)
        labels = predict_case(loaded, case_data, config, batch_size=batch_size, tta_flips=tta,
                              min_et_voxels=min_et_voxels, min_component_voxels=min_component_voxels)
        written.append(write_prediction(labels, case, out_dir, label_convention=label_convention))
    manifest["complete"] = True
    _write_manifest(out_dir, manifest)
    return written


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
