"""Opening and reading NIfTI files, with one-line errors that name the file.

The one place in the package that calls ``nibabel.load``: the loader (`load_case`), the
prediction writer (the reference image a prediction copies its grid from) and the
evaluation (prediction files) all open files here, so a bad file gets the same clear
`DataError` whichever command met it.

What is checked, and when:

* on opening (`open_nifti`, headers only, no voxel decoded): the file exists and is a
  NIfTI-1/2 image nibabel can parse (a bad ``datatype`` or ``dim[0]`` included), it holds
  as many bytes as its header announces (a cut-short download), its affine and its voxel
  sizes are finite;
* on reading (`read_voxels`): a ``.nii.gz`` file's gzip checksum (CRC-32). Python's gzip
  module checks it only once the stream is read to its end, and reading the first slices
  of a volume never gets there: bytes flipped inside the compressed stream would be
  decoded as wrong voxels without a word. The stream is therefore read to its end after
  the slices asked for; that costs the decompression of the rest of the file, nothing
  when the whole volume is read.
"""

from __future__ import annotations

import gzip
import logging
import struct
import threading
import warnings
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.arrayproxy import ArrayProxy
from nibabel.spatialimages import HeaderDataError, ImageDataError
from nibabel.wrapstruct import WrapStructError

from ..errors import DataError

__all__ = ["open_nifti", "read_voxels", "read_nifti", "READ_ERRORS", "describe_error"]

#: What nibabel, gzip, zlib and numpy raise on a file that is not NIfTI, corrupt or cut short.
READ_ERRORS = (nib.filebasedimages.ImageFileError, HeaderDataError, ImageDataError,
               WrapStructError, OSError, EOFError, zlib.error, gzip.BadGzipFile, struct.error,
               ValueError, TypeError, MemoryError)

# Decompressed bytes read at a time when finishing a gzip stream to check its CRC.
_DRAIN_CHUNK = 1 << 22


class _HeaderReports(logging.Filter):
    """Holds back what nibabel logs about a header while `open_nifti` opens it.

    nibabel prints each header problem it finds to stderr ("data code 1234 not
    recognized") before raising: with our own message that made two lines for one
    problem. While this thread is inside `open_nifti`, the reports are collected instead
    (the error already says it; a problem nibabel fixed becomes a warning naming the
    file). Other threads, and nibabel used outside `open_nifti`, log as usual.
    """

    _local = threading.local()

    def filter(self, record):
        collected = getattr(self._local, "reports", None)
        if collected is None:
            return True
        collected.append(record.getMessage())
        return False

    def __enter__(self):
        self._local.reports = []
        return self._local.reports

    def __exit__(self, *exc_info):
        self._local.reports = None
        return False


_NIBABEL_LOGGER = logging.getLogger("nibabel.global")
_HEADER_REPORTS = next((f for f in _NIBABEL_LOGGER.filters if type(f).__name__ == "_HeaderReports"),
                       None)
if _HEADER_REPORTS is None:  # once per process, even if this module is reloaded
    _HEADER_REPORTS = _HeaderReports()
    _NIBABEL_LOGGER.addFilter(_HEADER_REPORTS)


def open_nifti(path, what="NIfTI file"):
    """Open a NIfTI file's header (voxels stay on disk), or raise a DataError naming it.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.nii`` or ``.nii.gz`` file.
    what : str, default="NIfTI file"
        What the file is, for the messages (e.g. ``"prediction"``).

    Returns
    -------
    nibabel.Nifti1Image or nibabel.Nifti2Image
        The image, its voxels not yet read (read them with `read_voxels`).

    Raises
    ------
    DataError
        If the file is missing, is not a NIfTI image nibabel can read (bad header fields
        such as ``datatype`` or ``dim[0]`` included), is truncated, or has a non-finite
        affine or non-finite or non-positive voxel sizes.
    """
    path = Path(path)
    if not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "file not found"
        raise DataError(f"{path}: {problem} ({what})")
    with _HEADER_REPORTS as reports:
        try:
            # mmap=False: slices are read with seeks rather than by mapping the file, which
            # keeps no handle open and fails cleanly on a truncated file.
            image = nib.load(path, mmap=False)
        except READ_ERRORS as error:
            raise DataError(
                f"{path}: not a readable {what} ({describe_error(error, path)})") from error
    if reports:
        warnings.warn(f"{path}: nibabel fixed the header: {'; '.join(reports)}", UserWarning,
                      stacklevel=2)
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise DataError(f"{path}: not a NIfTI file (nibabel reads it as {type(image).__name__})")
    _check_complete(path, image)
    _check_grid(path, image)
    return image


def read_voxels(path, image, index=None):
    """Decode the voxels `index` selects, checking a ``.nii.gz`` file's gzip checksum.

    Parameters
    ----------
    path : str or pathlib.Path
        The file `image` was opened from (`open_nifti`).
    image : nibabel.Nifti1Image or nibabel.Nifti2Image
        As `open_nifti` returns it.
    index : tuple or None, default=None
        What to read, as for ``image.dataobj[index]`` (e.g. ``(slice(None), slice(None),
        slice(22, 122))``); None reads the whole array.

    Returns
    -------
    numpy.ndarray
        The voxels, scaled as nibabel scales them (the file's data type when unscaled).

    Raises
    ------
    DataError
        Naming the file, if the voxels cannot be decoded or the gzip checksum or length
        does not match (bytes changed or lost inside the compressed stream).
    """
    path = Path(path)
    index = () if index is None else index
    try:
        if not _is_gzip(path):
            return np.asanyarray(image.dataobj[index])
        proxy = image.dataobj
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            # The same reader nibabel builds, on a stream we keep: once the voxels asked for
            # are decoded, the rest is read too, so that gzip checks the CRC at the end.
            on_stream = ArrayProxy(stream, (proxy.shape, proxy.dtype, proxy.offset,
                                            proxy.slope, proxy.inter), mmap=False)
            data = np.asanyarray(on_stream[index])
            while stream.read(_DRAIN_CHUNK):
                pass
        return data
    except gzip.BadGzipFile as error:
        raise DataError(
            f"{path}: the compressed data is corrupt ({describe_error(error, path)}); "
            f"download or copy the file again"
        ) from error
    except READ_ERRORS as error:
        raise DataError(
            f"{path}: cannot read the voxels; the file is corrupt or truncated "
            f"({describe_error(error, path)})"
        ) from error


def read_nifti(path, what="NIfTI file"):
    """Open a NIfTI file and read all its voxels, with the checks of both steps.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.nii`` or ``.nii.gz`` file.
    what : str, default="NIfTI file"
        What the file is, for the messages.

    Returns
    -------
    data : numpy.ndarray
        All voxels (see `read_voxels`).
    image : nibabel.Nifti1Image or nibabel.Nifti2Image
        The opened image (header, affine).

    Raises
    ------
    DataError
        As `open_nifti` and `read_voxels`.
    """
    image = open_nifti(path, what)
    return read_voxels(path, image), image


def describe_error(error, path=None):
    """``"TypeName: message"`` of an exception, the file's full path shortened to its name."""
    text = str(error).strip()
    if path is not None:
        # nibabel repeats the full path in its messages; ours already start with it.
        text = text.replace(str(path), Path(path).name)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# -- checks on opening -------------------------------------------------------------------
def _is_gzip(path):
    return str(path).lower().endswith(".gz")


def _check_complete(path, image):
    """Raise a DataError if the file holds fewer bytes than its header announces.

    Checked when the file is opened, so that a file cut short (an interrupted download or
    copy) is reported even when only its first slices are read.
    """
    # The proxy knows where the voxels start (the loaded header's own offset may be reset).
    offset = int(getattr(image.dataobj, "offset", image.header.get_data_offset()))
    expected = offset + int(np.prod(image.shape, dtype=np.int64)) * \
        image.header.get_data_dtype().itemsize
    if not _is_gzip(path):
        actual = path.stat().st_size
        if actual < expected:
            raise DataError(
                f"{path}: file is truncated ({actual} bytes, the header announces {expected})"
            )
        return
    # A gzip file ends with the uncompressed size modulo 2**32 (RFC 1952, ISIZE): reading
    # 4 bytes tells whether it is complete without decompressing anything.
    with open(path, "rb") as handle:
        handle.seek(-4, 2)
        stored_size = struct.unpack("<I", handle.read(4))[0]
    if stored_size == expected % 2**32:
        return
    # Files made of several gzip members (or padded) legitimately disagree with the last
    # ISIZE: decompress once to be sure, counting bytes rather than keeping them.
    actual = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_DRAIN_CHUNK):
                actual += len(chunk)
    except READ_ERRORS as error:
        raise DataError(
            f"{path}: file is truncated or corrupt ({describe_error(error, path)}); download or "
            f"copy it again"
        ) from error
    if actual < expected:
        raise DataError(
            f"{path}: file is truncated ({actual} bytes once decompressed, the header announces "
            f"{expected})"
        )


def _check_grid(path, image):
    """Raise a DataError if the voxel sizes or the affine are not finite numbers."""
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    if not all(np.isfinite(zooms)) or min(zooms, default=1.0) <= 0:
        raise DataError(
            f"{path}: has invalid voxel sizes {zooms} (pixdim must be positive and finite); "
            f"the header is damaged"
        )
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        raise DataError(
            f"{path}: has a non-finite affine (NaN or infinite entries in the qform/sform); "
            f"the header is damaged"
        )
