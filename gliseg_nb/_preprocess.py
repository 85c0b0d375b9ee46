"""NumPy building blocks of the preprocessing: resampling weights, nearest-neighbour label
resizing and intensity normalisation. No TensorFlow here, so these run in any worker."""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=32)
def resize_weights(n_in, n_out):
    """Sparse row-stochastic matrix ``(n_out, n_in)`` resampling one axis with a triangle filter.

    Upsampling gives ordinary linear interpolation (edges clamped). Downsampling widens the
    triangle by the shrink factor, like PIL's antialiased bilinear filter, so each output
    pixel averages all the input pixels it covers instead of aliasing. Each row has only a
    few non-zero weights, hence the sparse matrix: a resize costs a few multiply-adds per
    output pixel. The matrices are cached (the same few sizes recur): do not modify them.
    """
    from scipy import sparse

    scale = n_in / n_out
    support = max(scale, 1.0)
    centers = (np.arange(n_out) + 0.5) * scale
    positions = np.arange(n_in) + 0.5
    distance = np.abs(positions[None, :] - centers[:, None]) / support
    weights = np.clip(1.0 - distance, 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    return sparse.csr_matrix(weights.astype(np.float32))


@functools.lru_cache(maxsize=8)
def _per_slice_weights(n_slices, n_in, n_out):
    """`resize_weights` repeated on the diagonal once per slice: ``(n * n_out, n * n_in)``.

    Multiplying a C-ordered ``(n, n_in, k)`` stack, seen as ``(n * n_in, k)``, by this
    matrix resamples the middle axis of every slice in one sparse product, with no copy
    of the input. Cached per shape (the same few recur); do not modify.
    """
    from scipy import sparse

    identity = sparse.identity(n_slices, dtype=np.float32, format="csr")
    return sparse.kron(identity, resize_weights(n_in, n_out), format="csr")


def resize_volume(volume, size):
    """Resize the axial slices of one ``(X, Y, n)`` volume to ``(n, size, size)`` float32.

    Separable: one sparse matrix product per axis, each over all slices at once. NIfTI
    volumes come in Fortran order, in which ``volume.T`` is a C-ordered ``(n, Y, X)``
    stack: resampling its middle axis (Y) first needs no copy, and after one transpose of
    the already smaller result the same trick resamples X.
    """
    volume = np.asarray(volume, dtype=np.float32)
    n_rows, n_cols, n_slices = volume.shape
    stack = np.ascontiguousarray(volume.T)  # (n, Y, X); free for a Fortran-ordered volume
    out = _per_slice_weights(n_slices, n_cols, size) @ stack.reshape(n_slices * n_cols, n_rows)
    out = np.ascontiguousarray(out.reshape(n_slices, size, n_rows).transpose(0, 2, 1))  # (n, X, size)
    out = _per_slice_weights(n_slices, n_rows, size) @ out.reshape(n_slices * n_rows, size)
    return out.reshape(n_slices, size, size)


def resize_images(stack, size):
    """Resize a ``(X, Y, n, C)`` stack to ``(n, size, size, C)`` float32, smoothly."""
    return np.stack([resize_volume(stack[..., c], size) for c in range(stack.shape[-1])], axis=-1)


def nearest_indices(n_in, n_out):
    """Source index of each output pixel for nearest-neighbour resampling (pixel centres)."""
    indices = ((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64)
    return np.minimum(indices, n_in - 1)


def resize_labels(labels, size):
    """Resize a ``(X, Y, n)`` label stack to ``(n, size, size)`` uint8 by nearest neighbour.

    Every output pixel copies one input pixel, so no class can appear that was not there.
    """
    labels = np.asarray(labels)
    rows = nearest_indices(labels.shape[0], size)
    cols = nearest_indices(labels.shape[1], size)
    # Through the transpose: a Fortran-ordered (X, Y, n) volume is a C-ordered (n, Y, X) one.
    out = labels.T[:, cols[:, None], rows[None, :]]  # (n, size, size), axes (slice, Y, X)
    return np.ascontiguousarray(out.transpose(0, 2, 1), dtype=np.uint8)


def brain_mask(volumes):
    """Voxels that are non-zero in any of the volumes (skull-stripped data).

    Parameters
    ----------
    volumes : sequence of numpy.ndarray
        Same-shaped volumes, e.g. one per modality.
    """
    mask = volumes[0] != 0
    for volume in volumes[1:]:
        mask |= volume != 0
    return mask


def normalize_volumes(volumes, method, brain, return_parameters=False):
    """Normalise float32 volumes of one case in place (see `normalize_intensities`).

    With ``return_parameters=True`` also returns one ``(offset, scale)`` pair per volume,
    the statistics used, so that other slices of the same case can be put on the same
    scale with `apply_normalization` (whole-volume prediction does this).
    """
    parameters = []
    if method == "max":
        peak = max(float(v.max()) for v in volumes) if volumes[0].size else 0.0
        scale = np.float32(peak if peak > 0 else 1.0)
        for volume in volumes:
            volume /= scale
            parameters.append((np.float32(0.0), scale))
        return (volumes, parameters) if return_parameters else volumes
    if method != "zscore":
        raise ValueError(f"normalization must be 'zscore' or 'max', got {method!r}")
    count = int(np.count_nonzero(brain))
    for index, volume in enumerate(volumes):
        if not (volume.flags.c_contiguous or volume.flags.f_contiguous):
            volume = volumes[index] = np.ascontiguousarray(volume)
        if count == 0:
            volume[...] = 0
            parameters.append((np.float32(0.0), np.float32(1.0)))
            continue
        flat = volume.ravel(order="K")  # a view: the in-place steps below show through it
        # Background voxels are set to 0 first, so sums over the whole volume are sums over
        # the brain. The mean is accumulated in float64 (float32 sums over millions of
        # voxels drift); centred values are small, so a float32 dot product is enough.
        np.multiply(volume, brain, out=volume)
        mean = np.float32(flat.sum(dtype=np.float64) / count)
        np.subtract(volume, mean, out=volume, where=brain)  # background stays exactly 0
        std = float(np.sqrt(np.dot(flat, flat) / count))
        scale = np.float32(std if std > 0 else 1.0)
        volume /= scale
        parameters.append((mean, scale))
    return (volumes, parameters) if return_parameters else volumes


def apply_normalization(volume, offset, scale, method, brain):
    """Normalise a float32 volume in place with given statistics (from `normalize_volumes`).

    The same float32 operations in the same order as `normalize_volumes`, so a voxel gets
    bit for bit the value it gets there.
    """
    if method == "max":
        volume /= scale
        return volume
    np.multiply(volume, brain, out=volume)
    np.subtract(volume, offset, out=volume, where=brain)
    volume /= scale
    return volume


def normalize_intensities(stack, method="zscore", brain=None):
    """Normalise a ``(..., C)`` intensity stack of one case.

    Parameters
    ----------
    stack : numpy.ndarray
        Intensities of one case, channels last.
    method : {"zscore", "max"}, default="zscore"
        ``"zscore"``: each channel separately, ``(v - mean) / std`` over brain voxels, with
        background set to 0. ``"max"``: divide everything by the one largest value across
        all channels, as the report's source notebook does (``X / np.max(X)``).
    brain : numpy.ndarray of bool, optional
        Brain mask (``stack.shape[:-1]``). Default=None: non-zero in any channel.

    Returns
    -------
    numpy.ndarray of float32
        A new array; `stack` is not changed.
    """
    stack = np.asarray(stack)
    volumes = [np.array(stack[..., c], dtype=np.float32) for c in range(stack.shape[-1])]
    if brain is None:
        brain = brain_mask(volumes)
    return np.stack(normalize_volumes(volumes, method, brain), axis=-1)


# ---------------------------------------------------------------------------------------
# One case: what preprocess_case and the cache builder share (no TensorFlow here)
# ---------------------------------------------------------------------------------------
def _as_slice(indices):
    """A regularly spaced index array as the equivalent slice (indexing with it is a view)."""
    indices = np.asarray(indices)
    if len(indices) == 1:
        return slice(int(indices[0]), int(indices[0]) + 1)
    step = int(indices[1] - indices[0])
    if step > 0 and np.array_equal(np.diff(indices), np.full(len(indices) - 1, step)):
        return slice(int(indices[0]), int(indices[-1]) + 1, step)
    return indices


def selection_slab(config):
    """The contiguous range ``(start, stop)`` of axial slices that holds the selection."""
    indices = config.slice_indices
    return indices[0], indices[-1] + 1


def load_selection(case, config):
    """Read the modalities of `config` and the slab of slices holding its selection.

    With ``config.context_slices`` the slab is widened by that many slices on each side
    (as far as the volume goes), so that every selected slice has its neighbours.
    """
    from .data import load_case

    start, stop = selection_slab(config)
    start, stop = max(0, start - config.context_slices), stop + config.context_slices
    return load_case(case, modalities=list(config.modalities), slices=(start, stop))


# ---------------------------------------------------------------------------------------
# 2.5-D input: neighbouring slices as extra channels (Config.context_slices)
# ---------------------------------------------------------------------------------------
def context_rows(centres, context_slices, depth):
    """The slice numbers whose images form each centre slice's 2.5-D input.

    Parameters
    ----------
    centres : array-like of int, shape (n,)
        Axial slice numbers.
    context_slices : int
        Neighbours taken on each side.
    depth : int
        Axial slices in the volume: neighbours beyond its ends repeat the end slice.

    Returns
    -------
    numpy.ndarray of int, shape (n, 2 * context_slices + 1)
        Row ``i`` is ``centres[i] - context_slices .. centres[i] + context_slices``, clipped.
    """
    offsets = np.arange(-context_slices, context_slices + 1)
    return np.clip(np.asarray(centres)[:, None] + offsets[None, :], 0, depth - 1)


def stack_context(slices, rows):
    """Stack each slice's neighbours as channels: ``(m, h, w, C)`` -> ``(n, h, w, (2k+1) C)``.

    Parameters
    ----------
    slices : numpy.ndarray, shape (m, h, w, C)
        Preprocessed slices.
    rows : numpy.ndarray of int, shape (n, 2k + 1)
        Indices into `slices` of each output's neighbours, lowest slice first
        (`context_rows`).

    Returns
    -------
    numpy.ndarray, shape (n, h, w, (2k + 1) * C)
        Channels grouped by slice: the first ``C`` are the lowest neighbour's modalities,
        the middle ``C`` the centre slice's, the last ``C`` the highest neighbour's.
    """
    picked = slices[rows]  # (n, 2k+1, h, w, C)
    n, width, height, cols, channels = picked.shape
    return np.ascontiguousarray(picked.transpose(0, 2, 3, 1, 4)).reshape(n, height, cols, width * channels)


def _context_inputs(case_data, config, parameters, first_loaded):
    """The 2.5-D inputs of the selected slices (`preprocess_arrays` with ``context_slices``).

    Every needed slice, neighbours outside the training slab included, is normalised with
    the slab's statistics (`apply_normalization`: bit for bit what `normalize_volumes`
    gives the slab's own slices), resized, then stacked by `stack_context`.
    """
    depth = case_data.shape[2] if len(case_data.shape) > 2 else case_data.images[config.modalities[0]].shape[2]
    rows = context_rows(config.slice_indices, config.context_slices, depth)
    needed, inverse = np.unique(rows, return_inverse=True)
    loaded = case_data.images[config.modalities[0]].shape[2]
    if needed[0] < first_loaded or needed[-1] >= first_loaded + loaded:
        raise ValueError(
            f"case {case_data.case.case_id}: context_slices={config.context_slices} needs slices "
            f"{needed[0]}..{needed[-1]}, but only {first_loaded}..{first_loaded + loaded - 1} were loaded"
        )
    volumes = [np.array(case_data.images[m][:, :, needed - first_loaded], dtype=np.float32)
               for m in config.modalities]
    brain = brain_mask(volumes)
    for volume, (offset, scale) in zip(volumes, parameters):
        apply_normalization(volume, offset, scale, config.normalization, brain)
    resized = np.stack([resize_volume(volume, config.image_size) for volume in volumes], axis=-1)
    return stack_context(resized, inverse.reshape(rows.shape))


def preprocess_arrays(case_data, config, copy=True):
    """Preprocess every selected slice; also return the slice numbers and which hold brain.

    ``copy=False`` lets normalisation work in place on ``case_data.images`` (which is then
    changed): for callers that loaded the case themselves and drop it afterwards.
    """
    missing = [m for m in config.modalities if m not in case_data.images]
    if missing:
        raise ValueError(f"case {case_data.case.case_id}: modalities {missing} were not loaded")
    loaded = case_data.slices if isinstance(case_data.slices, slice) else slice(*case_data.slices)
    first_loaded = loaded.start or 0
    depth = case_data.images[config.modalities[0]].shape[2]
    wanted = np.asarray(config.slice_indices)
    if wanted[0] < first_loaded or wanted[-1] >= first_loaded + depth:
        total = case_data.shape[2] if len(case_data.shape) > 2 else depth
        raise ValueError(
            f"case {case_data.case.case_id}: slices {wanted[0]}..{wanted[-1]} requested "
            f"(slice_start={config.slice_start}, n_slices={config.n_slices}) but only "
            f"{first_loaded}..{first_loaded + depth - 1} were loaded of {total}"
        )
    # Normalisation statistics come from the contiguous slab holding the selection (all its
    # slices, not only the kept ones), so keeping every 4th slice barely changes them.
    slab_start = config.slice_start - first_loaded
    slab_stop = slab_start + int(wanted[-1]) + 1 - config.slice_start
    # In place only when asked, and never with context: its neighbours are read afterwards.
    in_place = not copy and not config.context_slices
    volumes = [
        np.array(case_data.images[m][:, :, slab_start:slab_stop], dtype=np.float32, copy=None if in_place else True)
        for m in config.modalities
    ]
    brain = brain_mask(volumes)
    _, parameters = normalize_volumes(volumes, config.normalization, brain, return_parameters=True)
    keep = _as_slice(wanted - config.slice_start)
    if config.context_slices:
        x = _context_inputs(case_data, config, parameters, first_loaded)
    else:
        # Selecting through the transpose keeps Fortran-ordered slices Fortran-ordered (and
        # a view when the selection is a range), which `resize_volume` reads without a copy.
        x = np.stack([resize_volume(volume.T[keep].T, config.image_size) for volume in volumes], axis=-1)
    has_brain = brain.T[keep].any(axis=(1, 2))
    y = None
    if case_data.labels is not None:
        labels = case_data.labels[:, :, slab_start:slab_stop].T[keep].T
        y = resize_labels(labels, config.image_size)
    return x, y, wanted, has_brain
