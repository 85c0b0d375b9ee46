"""From one case to 2-D training slices: slice selection, normalisation, resizing.

* `preprocess_case` turns one case into slices ``x`` (n, size, size, C) float32 and labels
  ``y`` (n, size, size) uint8, the way the report does it but with the source notebook's
  mistakes fixed (z-score per modality, labels resized by nearest neighbour).
* `load_arrays` stacks the slices of a few cases into two in-memory arrays.
* `normalize_intensities`, `resize_labels_nearest`: the two steps on their own;
  `resize_onehot_bilinear` and `resize_labels_bilinear` are the source notebook's ways of
  resizing labels, kept to show what goes wrong.

No TensorFlow is imported here (the NumPy work is in `gliseg_nb._preprocess`), so the
cache builder's threads and ``gliseg-nb`` commands that only preprocess stay light; only
`resize_onehot_bilinear`, the source notebook's TensorFlow resize, imports it when called.

Array layout: a slice ``x[k]`` is the axial plane ``volume[:, :, z]`` resized, so rows follow
the volume's first axis and columns its second, as ``cv2.resize(volume[:, :, z])`` gives in
the report's notebook.
"""

from __future__ import annotations

import numpy as np

from ._preprocess import load_selection as _load_for
from ._preprocess import normalize_intensities, resize_images, resize_labels
from ._preprocess import preprocess_arrays as _preprocess_all
from .config import _check_config

__all__ = [
    "preprocess_case",
    "load_arrays",
    "normalize_intensities",
    "resize_labels_nearest",
    "resize_onehot_bilinear",
    "resize_labels_bilinear",
]


def preprocess_case(case_data_or_case, config, return_slices=False):
    """Turn one case into 2-D training slices, as the report does but done right.

    Steps: select the axial slices ``config.slice_indices`` (the report: 22..121), optionally
    keep only those with brain in them, normalise each modality over the brain voxels of
    the case (or divide by one shared maximum with ``normalization="max"``, as the source
    notebook does), resize images with a smooth (triangle, antialiased) filter and label
    maps by nearest neighbour, so that no label is invented at tumour edges.

    Parameters
    ----------
    case_data_or_case : gliseg_nb.data.CaseData or gliseg_nb.data.Case
        A loaded case, or a case to load (only the needed slices are read).
    config : gliseg_nb.Config
        Uses ``modalities``, ``slice_start``, ``n_slices``, ``slice_step``,
        ``brain_slices_only``, ``image_size`` and ``normalization``.
    return_slices : bool, default=False
        Also return the axial slice numbers (in the original volume) of the rows of ``x``.

    Returns
    -------
    x : numpy.ndarray of float32, shape (n, image_size, image_size, n_channels)
    y : numpy.ndarray of uint8, shape (n, image_size, image_size), or None
        Internal classes 0-3; None if the case has no segmentation.
    slices : numpy.ndarray of int
        Only with ``return_slices=True``.
    """
    _check_config(config)
    if hasattr(case_data_or_case, "images"):
        x, y, slices, has_brain = _preprocess_all(case_data_or_case, config)
    else:  # loaded here and dropped after: normalise in place, no copy
        x, y, slices, has_brain = _preprocess_all(_load_for(case_data_or_case, config), config, copy=False)
    if config.brain_slices_only:
        x, slices = x[has_brain], slices[has_brain]
        y = None if y is None else y[has_brain]
    if return_slices:
        return x, y, slices
    return x, y


def resize_labels_nearest(labels, size):
    """Resize label maps by nearest neighbour, the right way (no class can be invented).

    Parameters
    ----------
    labels : array-like of int, shape (X, Y) or (X, Y, n)
        Label map(s), slices last as in a volume.
    size : int
        Output rows and columns.

    Returns
    -------
    numpy.ndarray of uint8, shape (size, size) or (n, size, size)
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return resize_labels(labels[:, :, None], size)[0]
    return resize_labels(labels, size)


def resize_onehot_bilinear(labels, size, n_classes=4):
    """The source notebook's way: one-hot encode, then resize the masks bilinearly.

    Kept to show the pitfall: at every boundary the result is no longer one-hot (a pixel is
    "half edema, half background"), and the network is trained on those blended targets.

    Parameters
    ----------
    labels : array-like of int, shape (X, Y) or (X, Y, n)
        Label map(s), slices last as in a volume.
    size : int
        Output rows and columns.
    n_classes : int, default=4
        Number of classes to one-hot encode.

    Returns
    -------
    numpy.ndarray of float32, shape (size, size, n_classes) or (n, size, size, n_classes)
        Soft masks; ``argmax(axis=-1)`` turns them back into labels.
    """
    # The source notebook's TensorFlow resize, reproduced exactly (half-pixel centres, no
    # antialiasing); imported here so that the rest of the module needs no TensorFlow.
    import tensorflow as tf

    labels = np.asarray(labels)
    single = labels.ndim == 2
    stack = labels[:, :, None] if single else labels
    onehot = tf.one_hot(np.moveaxis(stack, -1, 0).astype(np.int32), n_classes)
    resized = tf.image.resize(onehot, (size, size), method="bilinear").numpy()
    return resized[0] if single else resized


def resize_labels_bilinear(labels, size):
    """Resize a label map as if it were an image (bilinear) and round: invents classes.

    Between background (0) and enhancing tumour (3) the interpolated values pass through
    1 and 2, so thin rims of "necrosis" and "edema" appear where there were none.

    Parameters
    ----------
    labels : array-like of int, shape (X, Y) or (X, Y, n)
    size : int

    Returns
    -------
    numpy.ndarray of uint8, shape (size, size) or (n, size, size)
    """
    labels = np.asarray(labels)
    single = labels.ndim == 2
    stack = (labels[:, :, None] if single else labels)[..., None].astype(np.float32)
    resized = resize_images(stack, size)[..., 0]
    out = np.rint(resized).astype(np.uint8)
    return out[0] if single else out


def load_arrays(cases, config, one_hot=True, progress=False):
    """All selected slices of a few cases as two in-memory arrays (for small sets only).

    Parameters
    ----------
    cases : sequence of gliseg_nb.data.Case or gliseg_nb.data.CaseData
    config : gliseg_nb.Config
    one_hot : bool, default=True
        Return ``y`` one-hot float32 ``(N, size, size, n_classes)``; False: uint8 labels.
    progress : bool, default=False
        Show a tqdm progress bar.

    Returns
    -------
    x : numpy.ndarray of float32, shape (N, size, size, n_channels)
    y : numpy.ndarray
    """
    from ._progress_bar import progress_bar

    xs, ys = [], []
    for case in progress_bar(list(cases), desc="loading", unit="case", disable=not progress):
        x, y = preprocess_case(case, config)
        if y is None:
            raise ValueError(f"case {getattr(case, 'case_id', '?')} has no segmentation")
        xs.append(x)
        ys.append(y)
    if not xs:
        raise ValueError("load_arrays needs at least one case")
    x, y = np.concatenate(xs), np.concatenate(ys)
    if one_hot:
        y = np.eye(config.n_classes, dtype=np.float32)[y]
    return x, y
