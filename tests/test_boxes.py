"""Bounding boxes (`gliseg_nb._boxes`), checked against `scipy.ndimage.find_objects`."""

import numpy as np
import pytest
from scipy import ndimage

from gliseg_nb._boxes import bounding_box, centre, grow, union


@pytest.mark.parametrize("shape", [(9,), (7, 11), (6, 8, 5)])
def test_bounding_box_matches_find_objects(rng, shape):
    for density in (0.002, 0.05, 0.5):
        mask = rng.random(shape) < density
        if not mask.any():
            mask.flat[rng.integers(mask.size)] = True
        (expected,) = ndimage.find_objects(mask.astype(np.int32))
        assert bounding_box(mask) == expected
        # Any non-zero value counts, not only True.
        assert bounding_box(mask * 7.5) == expected


def test_margin_is_clipped_to_the_array():
    mask = np.zeros((10, 10), bool)
    mask[1, 5:7] = True
    assert bounding_box(mask, margin=3) == (slice(0, 5), slice(2, 10))
    assert mask[bounding_box(mask, margin=3)].sum() == mask.sum()


def test_empty_mask_has_no_box():
    assert bounding_box(np.zeros((4, 5, 6), bool)) is None


def test_grow_union_and_centre():
    box = (slice(2, 5), slice(0, 1))
    assert grow(box, 2, (6, 3)) == (slice(0, 6), slice(0, 3))
    assert union(box, (slice(4, 9), slice(2, 3))) == (slice(2, 9), slice(0, 3))
    assert centre(box) == (3, 0)
    assert centre((slice(2, 4),)) == (2,)  # rounded down, still inside
