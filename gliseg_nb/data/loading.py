"""Reading a case with nibabel: the modalities as float32, the labels as internal classes.

`load_case` reads only what is asked for: the requested modalities, and optionally a range
of axial slices (``img.dataobj[..., a:b]`` decodes only those slices). It checks what it
reads, because a silently wrong volume spoils a training run hours later: every file must be
a readable NIfTI image, all files of a case must share one shape and one affine, voxels must
be finite, and labels must be those of the case's release. Each problem raises a `DataError`
naming the file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .. import labels as _labels
from ._errors import DataError
from ._nifti import open_nifti, read_voxels
from .cases import MODALITIES, Case

__all__ = ["CaseData", "load_case", "BlankImageWarning", "NAN_POLICIES", "AFFINE_TOLERANCE_MM"]

#: What `load_case` does with NaN or infinite voxels.
NAN_POLICIES = ("raise", "zero")

#: Largest difference (in mm, per affine entry) tolerated between the files of one case.
#: Affines are stored as float32 in NIfTI headers, so bit-exact equality is too strict.
AFFINE_TOLERANCE_MM = 1e-3


class BlankImageWarning(UserWarning):
    """A modality is zero everywhere: a missing acquisition or a failed conversion.

    `load_case` warns (naming the file) when a modality read is all zeros beside a
    segmentation that holds tumour in the same slices, or over the whole volume. A model
    trained on such a case learns from a blank channel; a prediction from one is a guess.
    """


@dataclass(repr=False)
class CaseData:
    """The arrays of one case, as `load_case` returns them.

    Attributes
    ----------
    case : Case
        The case that was read.
    images : dict of str to numpy.ndarray
        float32 volumes of shape (X, Y, Z') for each requested modality, Z' the number of
        axial slices read.
    labels : numpy.ndarray or None
        uint8 internal classes 0-3 (0 not tumour, 1 necrotic core, 2 edema, 3 enhancing),
        same shape as the images; None when the case has no segmentation.
    affine : numpy.ndarray
        4x4 voxel-to-world matrix of the full volume (the first image's).
    header : nibabel.nifti1.Nifti1Header
        Header of the first image read.
    zooms : tuple of float
        Voxel size in mm along X, Y, Z.
    slices : slice
        Which axial slices were read, with explicit start and stop.
    shape : tuple of int
        The full 3-D shape on disk.
    """

    case: Case
    images: dict
    labels: np.ndarray | None
    affine: np.ndarray
    header: object
    zooms: tuple
    slices: slice
    shape: tuple

    def __repr__(self):
        read_shape = next(iter(self.images.values())).shape if self.images else (
            self.labels.shape if self.labels is not None else None)
        return (f"CaseData(case_id={self.case.case_id!r}, layout={self.case.layout!r}, "
                f"modalities={list(self.images)}, labels={self.labels is not None}, "
                f"shape={self.shape}, slices={self.slices.start}:{self.slices.stop}, "
                f"read_shape={read_shape})")


def load_case(case, modalities=None, slices=None, nan_policy="raise"):
    """Read a case's modalities and labels with nibabel.

    Parameters
    ----------
    case : Case
        A case from `find_cases`.
    modalities : str or sequence of str or None, default=None
        Which of ``flair``, ``t1``, ``t1ce``, ``t2`` to read; None reads all four.
    slices : slice or tuple of (int, int) or None, default=None
        Axial slices to read, e.g. ``(22, 122)`` or ``slice(22, 122)``; only those are
        decoded. None reads the whole volume.
    nan_policy : {"raise", "zero"}, default="raise"
        NaN or infinite voxels raise a `DataError` (``"raise"``), or are reported with a
        warning and set to 0 (``"zero"``).

    Returns
    -------
    CaseData
        float32 images, uint8 labels in the internal convention (or None), affine, header,
        voxel size, the slices read and the full shape.

    Raises
    ------
    DataError
        Naming the file, if a file is missing, is not NIfTI, is corrupt or truncated, if
        shapes or affines disagree between the files of the case, if an affine or a voxel
        size is not finite, if a ``.nii.gz`` file fails its gzip checksum, if voxels are
        NaN or infinite (with ``nan_policy="raise"``), or if labels are not those of the
        release.

    Warns
    -----
    RuntimeWarning
        With ``nan_policy="zero"``, naming the file and the number of voxels zeroed.
    BlankImageWarning
        Naming the file, if a modality read is zero everywhere while the segmentation
        holds tumour in the same slices, or over the whole volume (a missing acquisition).

    Notes
    -----
    Files are opened and read by `gliseg_nb.data._nifti` (shared with the prediction
    writer and the evaluation). A file cut short is detected when it is opened, before any
    voxel is decoded: from the file size for ``.nii``, from the uncompressed size that ends
    every gzip stream for ``.nii.gz``. Reading slices ``a:b`` of a ``.nii.gz`` file
    decompresses the stream up to slice ``b`` (gzip cannot seek), then the rest of it
    without keeping it, so that gzip checks the stream's CRC-32 (bytes changed inside the
    compressed data raise a `DataError`); nothing is converted to float except the slices
    asked for.

    Examples
    --------
    >>> case = find_cases(data_dir)[0]  # doctest: +SKIP
    >>> data = load_case(case, modalities=["flair", "t1ce"], slices=(22, 122))  # doctest: +SKIP
    >>> data.images["flair"].shape, data.labels.dtype  # doctest: +SKIP
    ((240, 240, 100), dtype('uint8'))
    """
    if not isinstance(case, Case):
        raise TypeError(f"load_case expects a Case from find_cases, got {type(case).__name__}")
    modalities = _check_modalities(modalities)
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")

    # Open every file first (headers only) so that shape and affine problems are reported
    # before any voxel is decoded.
    opened = {}  # key -> (path, image, channel)
    for modality in modalities:
        path = case.modalities[modality]
        channel = case.channels[modality] if case.channels is not None else None
        opened[modality] = (path, open_nifti(path), channel)
    if case.seg is not None:
        opened["seg"] = (case.seg, open_nifti(case.seg), None)
    if not opened:
        raise ValueError(f"{case.case_id}: nothing to read (no modality requested and no seg)")

    shape = _check_geometry(opened)
    selection = _normalise_slices(slices, shape[2], case)

    if case.channels is not None and modalities:
        # MSD: the modalities are consecutive channels of one 4-D .nii.gz. One read of the
        # channel range decompresses the stream once, not once per modality.
        path, image, _ = opened[modalities[0]]
        wanted = [case.channels[m] for m in modalities]
        first = min(wanted)
        block = _read_voxels(path, image, selection, slice(first, max(wanted) + 1))
        raw = {m: block[..., case.channels[m] - first] for m in modalities}
    else:
        raw = {m: _read_voxels(opened[m][0], opened[m][1], selection, None) for m in modalities}
    images = {}
    for modality in modalities:
        # astype keeps nibabel's memory order (Fortran for NIfTI): forcing C order would
        # cost one more full copy of every volume.
        volume = raw.pop(modality)
        stored_as_float = volume.dtype.kind == "f"  # integers (most BraTS files) cannot be NaN
        volume = volume.astype(np.float32, copy=False)
        if stored_as_float:
            volume = _apply_nan_policy(volume, opened[modality][0], nan_policy)
        images[modality] = volume

    labels = None
    if case.seg is not None:
        path, image, _ = opened["seg"]
        raw = _read_voxels(path, image, selection, None)
        try:
            labels = _labels.to_internal(raw, case.layout, source=path)
        except ValueError as error:
            raise DataError(str(error)) from error
    _warn_about_blank_images(case, images, labels, opened, whole_volume=selection.stop
                             - selection.start == shape[2])

    first_path, first_image, _ = next(iter(opened.values()))
    header = first_image.header
    return CaseData(
        case=case,
        images=images,
        labels=labels,
        affine=np.asarray(first_image.affine, dtype=np.float64),
        header=header,
        zooms=tuple(float(z) for z in header.get_zooms()[:3]),
        slices=selection,
        shape=shape,
    )


# -- helpers ---------------------------------------------------------------------------
def _check_modalities(modalities):
    if modalities is None:
        return list(MODALITIES)
    if isinstance(modalities, str):
        modalities = [modalities]
    modalities = list(modalities)
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise ValueError(f"Unknown modality {unknown}; choose from {list(MODALITIES)}")
    if len(set(modalities)) != len(modalities):
        raise ValueError(f"Modalities listed twice: {modalities}")
    return modalities


def _spatial_shape(path, image, channel):
    shape = tuple(int(s) for s in image.shape)
    if channel is not None:
        # MSD: one 4-D file, modalities along the 4th axis.
        if len(shape) != 4:
            raise DataError(f"{path}: expected a 4-D image (x, y, z, channel), got shape {shape}")
        if channel >= shape[3]:
            raise DataError(f"{path}: has {shape[3]} channel(s), channel {channel} was requested")
        return shape[:3]
    # Some writers store 3-D volumes with trailing singleton axes.
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise DataError(f"{path}: expected a 3-D volume, got shape {shape}")
    return shape


def _check_geometry(opened):
    reference_key = next(iter(opened))
    reference_path, reference_image, reference_channel = opened[reference_key]
    reference_shape = _spatial_shape(reference_path, reference_image, reference_channel)
    reference_affine = reference_image.affine
    for key, (path, image, channel) in opened.items():
        shape = _spatial_shape(path, image, channel)
        if shape != reference_shape:
            raise DataError(
                f"{path}: shape {shape} differs from {reference_path.name}'s {reference_shape}"
            )
        if not np.allclose(image.affine, reference_affine, rtol=0, atol=AFFINE_TOLERANCE_MM):
            difference = float(np.max(np.abs(image.affine - reference_affine)))
            raise DataError(
                f"{path}: affine differs from {reference_path.name}'s by up to {difference:.3g} "
                f"mm; the files of a case must be co-registered on one grid"
            )
    return reference_shape


def _normalise_slices(slices, depth, case):
    if slices is None:
        return slice(0, depth)
    if isinstance(slices, slice):
        if slices.step not in (None, 1):
            raise ValueError(f"slices must be contiguous (step 1), got {slices}")
        start, stop = slices.start, slices.stop
    else:
        try:
            start, stop = slices
        except (TypeError, ValueError):
            raise ValueError(f"slices must be a slice or (start, stop), got {slices!r}") from None
    start, stop, _ = slice(start, stop).indices(depth)
    if stop <= start:
        raise ValueError(
            f"{case.case_id}: slices {slices!r} select no axial slice of a volume with {depth}"
        )
    return slice(start, stop)


def _read_voxels(path, image, selection, channel):
    """Decode only the selected axial slices (and channel, an index or a slice) of a file."""
    if channel is not None:
        index = (slice(None), slice(None), selection, channel)
    else:
        index = (slice(None), slice(None), selection) + (0,) * (len(image.shape) - 3)
    return read_voxels(path, image, index)


def _warn_about_blank_images(case, images, labels, opened, whole_volume):
    # The first and last axial slices of a skull-stripped scan are legitimately all zero:
    # only a blank modality beside tumour, or a blank whole volume, is suspicious.
    tumour_voxels = int(np.count_nonzero(labels)) if labels is not None else 0
    if not (tumour_voxels or whole_volume):
        return
    for modality, volume in images.items():
        if volume.any():
            continue
        path, _, channel = opened[modality]
        where = f" (channel {channel})" if channel is not None else ""
        extent = (f"in every slice read, beside {tumour_voxels} tumour voxel(s) of the "
                  f"segmentation" if tumour_voxels else "in the whole volume")
        warnings.warn(
            f"{path}{where}: the {modality} image is all zeros {extent}; a missing or "
            f"failed acquisition? A model trained or run on it sees a blank {modality}",
            BlankImageWarning,
            stacklevel=3,
        )


def _apply_nan_policy(volume, path, nan_policy):
    finite = np.isfinite(volume)
    if finite.all():
        return volume
    count = int(volume.size - np.count_nonzero(finite))
    message = f"{path}: {count} NaN or infinite voxel(s)"
    if nan_policy == "raise":
        raise DataError(message + "; to set them to 0, pass nan_policy='zero' to load_case "
                        "(or --nan-policy zero on the command line)")
    warnings.warn(message + "; set to 0", RuntimeWarning, stacklevel=3)
    volume = np.array(volume, dtype=np.float32, copy=True)
    volume[~finite] = 0
    return volume
