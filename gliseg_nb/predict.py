"""Whole-volume inference: from a trained 2-D U-Net to BraTS-format NIfTI segmentations.

The report predicts only the 100 slices it trains on, at 128 x 128 pixels. A segmentation
that BraTS (or a clinician) can use covers the whole case on its original grid:

1. read the case's modalities (all axial slices);
2. normalise them exactly as training did (statistics from the training slab of slices,
   ``config.slice_start`` onwards, applied to every slice), and resize each axial slice that
   holds brain to ``image_size`` pixels with the pipeline's filter;
3. predict class probabilities slice by slice (optionally averaged over flipped copies);
4. resize the *probabilities* back to the original in-plane size (bilinear), then take the
   argmax, so class boundaries fall between pixels smoothly instead of in 128-px steps;
5. set everything outside the brain to background, and optionally relabel a tiny total
   enhancing tumour as necrosis (what the BraTS 2020 winner did: a false-positive ET in a
   case without ET costs Dice 0 and HD95 373 mm);
6. write ``<case_id>.nii.gz`` in the labels of the case's release, with its affine and header.

Public API
----------
predict_case(model, case, config)        label volume (uint8, internal 0-3), original grid
write_prediction(labels, case, out_dir)  ``<case_id>.nii.gz`` in the release's labels
remove_small_enhancing(labels, n)        ET -> necrosis when the total ET is under n voxels
load_trained(path)                       (model, config) from a ``.keras`` file or run folder
main_predict(args)                       the ``gliseg-nb predict`` command
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._preprocess import resize_images, resize_weights
from .config import Config
from .labels import from_internal
from .runs import MODEL_FILE_NAMES, RunFolder  # noqa: F401  (MODEL_FILE_NAMES: re-exported)

__all__ = [
    "predict_case",
    "write_prediction",
    "remove_small_enhancing",
    "remove_small_components",
    "load_trained",
    "find_model_file",
    "main_predict",
    "MODEL_FILE_NAMES",
]

#: In-plane flips used for test-time augmentation: (flip rows, flip columns).
TTA_FLIPS = ((False, False), (True, False), (False, True), (True, True))


# -- preprocessing, exactly as training ------------------------------------------------
def _training_slab(config, depth):
    """Axial slices whose brain voxels gave the normalisation statistics during training."""
    start = min(config.slice_start, depth)
    stop = min(config.slice_indices[-1] + 1, depth)
    if stop <= start:
        # The volume is shorter than the training selection (small test data): use it all.
        return 0, depth
    return start, stop


def _brain_mask(stack):
    """Voxels non-zero in any channel of a ``(..., C)`` stack: the pipeline's definition of
    brain in skull-stripped data (`gliseg_nb._preprocess.brain_mask`)."""
    return np.any(stack != 0, axis=-1)


def _normalize_like_training(stack, config):
    """Normalise a ``(X, Y, Z, C)`` case as training did, on every axial slice.

    `gliseg_nb.preprocessing.preprocess_case` normalises the slab of slices it trains on
    (``slice_start`` to the last selected slice) with the statistics of that slab. Here the
    statistics come from the very same function on the same slab, and are then applied to
    every slice with the same float32 operations: the training slices get bit for bit the
    inputs the network was trained on (a test checks this against ``preprocess_case``), the
    other slices the same scale. Voxels outside the brain stay 0.
    """
    from ._preprocess import apply_normalization, brain_mask, normalize_volumes

    start, stop = _training_slab(config, stack.shape[2])
    slab = [np.array(stack[:, :, start:stop, c], dtype=np.float32) for c in range(stack.shape[3])]
    _, parameters = normalize_volumes(slab, config.normalization, brain_mask(slab),
                                      return_parameters=True)
    volumes = [np.array(stack[..., c], dtype=np.float32) for c in range(stack.shape[3])]
    brain = brain_mask(volumes)
    for volume, (offset, scale) in zip(volumes, parameters):
        apply_normalization(volume, offset, scale, config.normalization, brain)
    return np.stack(volumes, axis=-1)


def _upsample_probabilities(probabilities, out_rows, out_cols):
    """``(n, size, size, K)`` probabilities -> ``(out_rows, out_cols, n, K)``, bilinear.

    Uses the pipeline's resampling weights, which are plain linear interpolation (edges
    clamped) when enlarging; each output pixel's probabilities still sum to 1. The weights
    may be a dense or a scipy sparse matrix: ``@`` works with both.
    """
    n, size_rows, size_cols, n_classes = probabilities.shape
    rows = resize_weights(size_rows, out_rows)
    cols = resize_weights(size_cols, out_cols)
    along_rows = probabilities.transpose(1, 0, 2, 3).reshape(size_rows, -1)
    out = np.asarray(rows @ along_rows).reshape(out_rows, n, size_cols, n_classes)
    along_cols = out.transpose(2, 0, 1, 3).reshape(size_cols, -1)
    out = np.asarray(cols @ along_cols).reshape(out_cols, out_rows, n, n_classes)
    return out.transpose(1, 0, 2, 3)


def _predict_probabilities(model, images, batch_size, tta_flips):
    """Softmax outputs of ``model`` for ``(n, size, size, C)`` inputs, flips averaged."""
    flips = TTA_FLIPS if tta_flips else TTA_FLIPS[:1]
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
        raise ValueError(f"min_voxels must be >= 0, got {min_voxels}")
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
        raise ValueError(f"min_voxels must be >= 0, got {min_voxels}")
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
    tta_flips=False,
    min_et_voxels=0,
    min_component_voxels=0,
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
        ``(batch, image_size, image_size, n_classes)``.
    case : gliseg_nb.data.Case or gliseg_nb.data.CaseData
        The case to segment. A `CaseData` must hold every axial slice and the modalities
        of `config` (as ``load_case(case, modalities=config.modalities)`` returns).
    config : gliseg_nb.Config
        The settings the model was trained with (``modalities``, ``image_size``,
        ``normalization``, ``slice_start``, ``n_slices``, ``slice_step``, ``n_classes``).
    batch_size : int, default=32
        Slices per forward pass.
    tta_flips : bool, default=False
        Average the probabilities over the four combinations of in-plane flips
        (test-time augmentation; four times slower).
    min_et_voxels : int, default=0
        If the predicted enhancing tumour has fewer voxels than this in total, relabel it
        as necrosis (`remove_small_enhancing`). 0 disables it.
    min_component_voxels : int, default=0
        Erase tumour components smaller than this, except the largest
        (`remove_small_components`; applied before `min_et_voxels`). 0 disables it.
    return_probabilities : bool, default=False
        Also return the probabilities on the original grid, shape ``(X, Y, Z, n_classes)``
        float32 (zero outside the predicted slices), e.g. for `report_metrics`.

    Returns
    -------
    labels : numpy.ndarray of uint8, shape (X, Y, Z)
        Internal classes 0-3 on the case's original grid.
    probabilities : numpy.ndarray of float32
        Only with ``return_probabilities=True``.
    """
    if not isinstance(config, Config):
        raise ValueError(f"config must be a gliseg_nb.Config, got {type(config).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    case_data = case if hasattr(case, "images") else _load_full_case(case, config)
    case_id = case_data.case.case_id
    missing = [m for m in config.modalities if m not in case_data.images]
    if missing:
        raise ValueError(f"case {case_id}: modalities {missing} were not loaded")
    stack = np.stack([case_data.images[m] for m in config.modalities], axis=-1)
    full_depth = case_data.shape[2] if len(case_data.shape) > 2 else stack.shape[2]
    if stack.shape[2] != full_depth:
        raise ValueError(
            f"case {case_id}: predict_case needs every axial slice, but only "
            f"{stack.shape[2]} of {full_depth} were loaded"
        )
    rows, cols, depth = stack.shape[:3]
    brain = _brain_mask(stack)
    brain_slices = np.flatnonzero(brain.any(axis=(0, 1)))
    labels = np.zeros((rows, cols, depth), dtype=np.uint8)
    probabilities = None
    if return_probabilities:
        probabilities = np.zeros((rows, cols, depth, config.n_classes), dtype=np.float32)
        probabilities[..., 0] = 1.0  # slices without brain are certain background
    if len(brain_slices):
        normalized = _normalize_like_training(stack, config)
        # Chunks of slices bound the memory of the full-size probabilities (a 240 x 240 x 4
        # float32 map per slice) whatever the depth of the volume.
        chunk = max(batch_size, 32)
        for start in range(0, len(brain_slices), chunk):
            indices = brain_slices[start : start + chunk]
            images = resize_images(normalized[:, :, indices], config.image_size)
            small = _predict_probabilities(model, images, batch_size, tta_flips)
            if small.shape[1:3] != images.shape[1:3]:
                raise ValueError(
                    f"model output {small.shape[1:]} does not match its input "
                    f"{images.shape[1:]}; is this a segmentation model for image_size "
                    f"{config.image_size}?"
                )
            full = _upsample_probabilities(small, rows, cols)
            labels[:, :, indices] = np.argmax(full, axis=-1).astype(np.uint8)
            if probabilities is not None:
                probabilities[:, :, indices] = full
    labels[~brain] = 0
    if probabilities is not None:
        probabilities[~brain] = np.eye(config.n_classes, dtype=np.float32)[0]
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
        raise ValueError(f"label_convention must be 'release' or 'internal', got {label_convention!r}")
    reference, reference_path = _reference_image(case)
    grid = tuple(reference.shape[:3])
    labels = np.asarray(labels)
    if labels.shape != grid:
        raise ValueError(
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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{case.case_id}.nii.gz"
    # The temporary name must end in .nii.gz too: nibabel picks compression by extension.
    tmp = out_dir / f".{case.case_id}.partial.nii.gz"
    nib.save(image, str(tmp))
    os.replace(tmp, path)
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
    """
    return RunFolder(run_dir).find_model_file()


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
    """
    from . import load_model

    path = Path(path)
    if path.is_dir():
        model_path = find_model_file(path)
        search = [path / "config.json"]
    elif path.is_file():
        model_path = path
        search = [path.parent / "config.json", path.parent.parent / "config.json"]
    else:
        raise FileNotFoundError(f"{path}: no such model file or run folder")
    if config_path is None:
        found = [candidate for candidate in search if candidate.is_file()]
        if not found:
            raise ValueError(
                f"{model_path}: no config.json next to the model, so the modalities, image "
                "size and normalisation it expects are unknown (pass --config FILE)"
            )
        config_path = found[0]
    config = Config.load(config_path)
    try:
        model = load_model(model_path, compile=False)
    except Exception as error:  # Keras raises many types for a bad or foreign file
        raise ValueError(f"{model_path}: cannot load the model ({error})") from None
    expected = (config.image_size, config.image_size, config.n_channels)
    if tuple(model.input_shape[1:]) != expected:
        raise ValueError(
            f"{model_path}: model input {tuple(model.input_shape[1:])} does not match "
            f"{config_path} (image_size={config.image_size}, modalities={list(config.modalities)})"
        )
    return model, config


def main_predict(args):
    """The ``gliseg-nb predict MODEL DATA --out DIR`` command.

    Parameters
    ----------
    args : argparse.Namespace
        ``model`` (``.keras`` file or run folder), ``data`` (BraTS folder), ``out``
        (output folder), and optionally ``config`` (default None), ``labels``
        (``"release"`` or ``"internal"``, default ``"release"``), ``batch_size``
        (default 32), ``tta`` (default False), ``min_et_voxels`` (default 0),
        ``min_component_voxels`` (default 0) and ``case`` (case ids to predict, default all).

    Returns
    -------
    int
        The exit status, 0 on success.
    """
    from tqdm.auto import tqdm

    from .data import find_cases

    model, config = load_trained(args.model, getattr(args, "config", None))
    cases = find_cases(args.data)
    wanted = getattr(args, "case", None)
    if wanted:
        known = {case.case_id for case in cases}
        unknown = [case_id for case_id in wanted if case_id not in known]
        if unknown:
            raise ValueError(f"{args.data}: no case(s) {', '.join(unknown)}")
        cases = [case for case in cases if case.case_id in set(wanted)]
    if not cases:
        raise ValueError(f"{args.data}: no BraTS case found")
    written = []
    for case in tqdm(cases, desc="predict", unit="case"):
        labels = predict_case(
            model,
            case,
            config,
            batch_size=getattr(args, "batch_size", 32) or 32,
            tta_flips=bool(getattr(args, "tta", False)),
            min_et_voxels=getattr(args, "min_et_voxels", 0) or 0,
            min_component_voxels=getattr(args, "min_component_voxels", 0) or 0,
        )
        written.append(
            write_prediction(labels, case, args.out, label_convention=getattr(args, "labels", "release"))
        )
    print(f"Wrote {len(written)} prediction(s) to {args.out}")
    return 0
