"""Which way a volume's voxel axes point, and how its slices are put on the screen.

One owner for image orientation, built on `nibabel.orientations`: the affine says which
anatomical direction each voxel axis runs towards (``nib.aff2axcodes``: BraTS files are
``("L", "P", "S")``, the axes running towards the patient's Left, Posterior, Superior).

* `ras_flips` / `flip_to_ras`: reverse axes (never permute them) so that they run towards
  Right, Anterior, Superior (RAS+), the orientation nilearn and the viewers work in.
* `display_slice`: a slice of a RAS+ volume as ``(rows, columns)`` for
  ``imshow(origin="upper")``: anterior (or superior) at the top, and left-right in the
  chosen convention.
* `axial_display`: one axial slice as stored, with its affine, straight to the screen.

Two display conventions, and which part of the course uses which:

``"radiological"``
    The patient's right on the left of the screen, as if facing the patient; how
    radiologists read scans and how the report's figures look. The static figures
    (`gliseg_nb.plotting`, `axial_display`) use it.
``"neurological"``
    The patient's left on the left of the screen, as nilearn draws it. The interactive
    viewers (`gliseg_nb.viewers`) start in it and offer both.

The defaults differ on purpose, each matching the tool learners compare it with; every
figure says which side is which (an "R" or "L" letter at the edge).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BRATS_AXCODES",
    "DISPLAY_CONVENTIONS",
    "PLANES",
    "axis_codes",
    "ras_flips",
    "flip_to_ras",
    "display_slice",
    "axial_display",
]

#: Axis codes of every BraTS release (affine ``diag(-1, -1, 1)``): assumed when no affine is given.
BRATS_AXCODES = ("L", "P", "S")

#: The left-right display conventions of axial and coronal views (see the module docstring).
DISPLAY_CONVENTIONS = ("neurological", "radiological")

#: Viewing planes and the volume axis each one holds fixed.
PLANES = {"axial": 2, "coronal": 1, "sagittal": 0}


def _orientation(affine):
    """``nibabel.orientations.io_orientation`` of `affine`: per voxel axis (RAS axis, +1/-1).

    None means the BraTS orientation. A row of NaN marks an axis with no direction (a
    degenerate affine).
    """
    from nibabel import orientations

    if affine is None:
        return orientations.axcodes2ornt(BRATS_AXCODES)
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"an affine must be a 4x4 matrix, got shape {affine.shape}")
    return orientations.io_orientation(affine)


def axis_codes(affine=None):
    """The anatomical direction each voxel axis runs towards, e.g. ``("L", "P", "S")``.

    Parameters
    ----------
    affine : array-like of shape (4, 4) or None, default=None
        Voxel-to-world matrix. None: the BraTS orientation, `BRATS_AXCODES`.

    Returns
    -------
    tuple of str
        One of ``L``/``R``, ``P``/``A``, ``I``/``S`` per axis (None for an axis the affine
        gives no direction).
    """
    from nibabel import orientations

    return tuple(orientations.ornt2axcodes(_orientation(affine)))


def ras_flips(affine=None):
    """Which voxel axes to reverse so that they run towards Right, Anterior, Superior.

    Parameters
    ----------
    affine : array-like of shape (4, 4) or None, default=None
        Voxel-to-world matrix. None: the BraTS orientation (axes 0 and 1 reversed).

    Returns
    -------
    tuple of bool or None
        One flag per axis. None when the axes are permuted (axis 0 does not run left-right,
        axis 1 front-back or axis 2 up-down, or the affine is degenerate): reversing alone
        cannot make such a volume RAS+, and it is best shown as stored.
    """
    orientation = _orientation(affine)
    if not np.array_equal(orientation[:, 0], [0, 1, 2]):  # NaN rows fail this too
        return None
    return tuple(bool(direction < 0) for direction in orientation[:, 1])


def flip_to_ras(volume, flips):
    """Reverse the axes of `volume` that `ras_flips` names (a view, no copy).

    Parameters
    ----------
    volume : numpy.ndarray or None
        A 3-D volume (more trailing axes, e.g. channels, are left alone).
    flips : tuple of bool or None
        From `ras_flips`; None returns `volume` unchanged.

    Returns
    -------
    numpy.ndarray or None
    """
    if volume is None or flips is None:
        return volume
    axes = tuple(axis for axis, flip in enumerate(flips) if flip)
    # np.flip returns a view: no copy of a 35 MB volume just to look at it.
    return np.flip(volume, axis=axes) if axes else volume


def _check_convention(convention):
    if convention not in DISPLAY_CONVENTIONS:
        raise ValueError(f"convention must be one of {list(DISPLAY_CONVENTIONS)}, got {convention!r}")


def display_slice(plane, plane_name="axial", convention="neurological"):
    """A 2-D cut of a RAS+ volume, as ``(rows, columns)`` for ``imshow(origin="upper")``.

    Parameters
    ----------
    plane : numpy.ndarray, shape (A, B)
        ``volume[:, :, z]`` (axial), ``volume[:, y, :]`` (coronal) or ``volume[x, :, :]``
        (sagittal) of a RAS+ volume (see `flip_to_ras`).
    plane_name : {"axial", "coronal", "sagittal"}, default="axial"
        Which cut `plane` is.
    convention : {"neurological", "radiological"}, default="neurological"
        Left-right order of axial and coronal views (sagittal views have no left-right):
        the patient's left on the left of the screen, or the right.

    Returns
    -------
    numpy.ndarray
        Rows run anterior to posterior (axial) or superior to inferior (coronal, sagittal);
        columns run along the first axis of `plane`. A view where possible.
    """
    if plane_name not in PLANES:
        raise ValueError(f"plane must be one of {list(PLANES)}, got {plane_name!r}")
    _check_convention(convention)
    # plane is (columns, rows-from-bottom): transpose, then put anterior/superior on top.
    display = np.asarray(plane).T[::-1, :]
    if convention == "radiological" and plane_name in ("axial", "coronal"):
        display = display[:, ::-1]
    return display


def axial_display(slice_2d, affine=None, convention="radiological"):
    """Turn an axial slice ``volume[:, :, k]``, as stored, into display order.

    The in-plane axes are reversed, and swapped if the volume stores them front-back
    first, as its affine says (`nibabel.orientations.io_orientation`).

    Parameters
    ----------
    slice_2d : array-like, shape (X, Y)
        A 2-D axial slice as stored (first two voxel axes).
    affine : array-like of shape (4, 4) or None, default=None
        The volume's affine. None assumes the BraTS orientation (`BRATS_AXCODES`).
    convention : {"radiological", "neurological"}, default="radiological"
        ``"radiological"``: the patient's right on the left of the screen (column 0), as the
        course's static figures show it; ``"neurological"``: the left.

    Returns
    -------
    numpy.ndarray
        Anterior at the top (row 0), ready for ``imshow``. A volume whose first two axes
        are not the left-right and front-back ones (not an axial slice) is shown as a
        BraTS slice would be (transposed).
    """
    _check_convention(convention)
    image = np.asarray(slice_2d)
    orientation = _orientation(affine)
    in_plane = orientation[:2]
    if not {float(v) for v in in_plane[:, 0]} == {0.0, 1.0}:
        orientation = _orientation(None)  # not axial: no better guess than BraTS
        in_plane = orientation[:2]
    # Reverse the axes pointing left or back, then order them (left-right, back-front).
    reverse = tuple(axis for axis in (0, 1) if in_plane[axis, 1] < 0)
    if reverse:
        image = np.flip(image, axis=reverse)
    if in_plane[0, 0] == 1:  # stored front-back first
        image = image.T
    return display_slice(image, "axial", convention)
