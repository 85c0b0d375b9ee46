"""Image orientation: every axis order and direction a NIfTI affine can give, shown the same way."""

import itertools

import nibabel as nib
import numpy as np
import pytest
from nibabel import orientations

from gliseg_nb.orientation import (
    BRATS_AXCODES,
    axial_display,
    axis_codes,
    display_slice,
    flip_to_ras,
    ras_flips,
)

# Every stored orientation whose third axis is inferior-superior: both in-plane axis orders,
# each axis running either way (16 in all).
IN_PLANE = [
    (first, second, third)
    for first, second in itertools.chain(
        itertools.product("RL", "AP"), itertools.product("AP", "RL"))
    for third in "SI"
]


def stored_as(canonical, codes):
    """`canonical` (a RAS+ volume, identity affine) stored with axis codes `codes`.

    Returns the stored array and its affine: the same voxels in the same world positions.
    """
    transform = orientations.ornt_transform(orientations.axcodes2ornt("RAS"), orientations.axcodes2ornt(codes))
    stored = orientations.apply_orientation(canonical, transform)
    affine = orientations.inv_ornt_aff(transform, canonical.shape)
    assert nib.aff2axcodes(affine) == tuple(codes)
    return stored, affine


@pytest.fixture
def canonical(rng):
    # Random values: no symmetry can hide a wrong flip.
    return rng.random((5, 7, 3))


@pytest.mark.parametrize("codes", IN_PLANE)
def test_axial_display_is_the_same_picture_for_every_storage(canonical, codes):
    stored, affine = stored_as(canonical, codes)
    depth_axis_flipped = codes[2] == "I"
    for z in range(canonical.shape[2]):
        stored_z = canonical.shape[2] - 1 - z if depth_axis_flipped else z
        # Canonical slice: axis 0 runs towards the patient's right, axis 1 towards the front.
        expected_neurological = canonical[:, :, z].T[::-1, :]  # anterior up, left on the left
        np.testing.assert_array_equal(
            axial_display(stored[:, :, stored_z], affine, convention="neurological"), expected_neurological)
        np.testing.assert_array_equal(
            axial_display(stored[:, :, stored_z], affine), expected_neurological[:, ::-1])


def test_axial_display_of_a_brats_slice_puts_right_anterior_top_left():
    # BraTS stores x towards the patient's left and y towards the back: voxel (0, 0) is the
    # most right and most anterior, so the radiological display shows it top-left.
    slice_2d = np.zeros((4, 6))
    slice_2d[0, 0] = 1
    for affine in (None, np.diag([-1.0, -1.0, 1.0, 1.0])):
        shown = axial_display(slice_2d, affine)
        assert shown.shape == (6, 4)
        assert shown[0, 0] == 1
        assert axial_display(slice_2d, affine, convention="neurological")[0, -1] == 1


@pytest.mark.parametrize("codes", [c for c in IN_PLANE if c[0] in "RL"])
def test_flip_to_ras_undoes_every_reversal(canonical, codes):
    stored, affine = stored_as(canonical, codes)
    flips = ras_flips(affine)
    assert flips == tuple(code in "LPI" for code in codes)
    np.testing.assert_array_equal(flip_to_ras(stored, flips), canonical)


@pytest.mark.parametrize("codes", [("A", "R", "S"), ("S", "A", "R"), ("R", "S", "A")])
def test_ras_flips_gives_up_on_permuted_axes(canonical, codes):
    _, affine = stored_as(canonical, codes)
    assert ras_flips(affine) is None
    stored = np.arange(8).reshape(2, 2, 2)
    assert flip_to_ras(stored, None) is stored


def test_brats_orientation_is_the_default():
    assert axis_codes() == BRATS_AXCODES == ("L", "P", "S")
    assert ras_flips() == (True, True, False)
    assert axis_codes(np.diag([-1.0, -1.0, 1.0, 1.0])) == ("L", "P", "S")


def test_degenerate_affine_has_no_direction():
    affine = np.diag([1.0, 0.0, 1.0, 1.0])
    assert axis_codes(affine)[1] is None
    assert ras_flips(affine) is None


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="4x4"):
        ras_flips(np.eye(3))
    with pytest.raises(ValueError, match="convention must be one of"):
        axial_display(np.zeros((2, 2)), convention="upside-down")
    with pytest.raises(ValueError, match="plane must be one of"):
        display_slice(np.zeros((2, 2)), "oblique")


@pytest.mark.parametrize("plane", ["coronal", "sagittal"])
def test_display_slice_puts_superior_on_top(plane):
    volume = np.zeros((3, 4, 5))
    volume[..., -1] = 1  # the most superior slab of a RAS+ volume
    cut = volume[:, 1, :] if plane == "coronal" else volume[1, :, :]
    shown = display_slice(cut, plane)
    assert shown[0].all() and not shown[1:].any()
    # Sagittal views have no left-right; coronal ones follow the convention.
    radiological = display_slice(cut, plane, convention="radiological")
    np.testing.assert_array_equal(radiological, shown[:, ::-1] if plane == "coronal" else shown)
