"""Label conventions: each release's labels, conversions both ways, regions, colours."""

import numpy as np
import pytest

from gliseg_nb import labels


@pytest.mark.parametrize(
    "layout, on_disk, internal",
    [
        # BraTS 2019-2021 store enhancing tumour as 4.
        ("brats2019", [0, 1, 2, 4], [0, 1, 2, 3]),
        ("brats2020-kaggle", [0, 1, 2, 4], [0, 1, 2, 3]),
        ("brats2021", [0, 1, 2, 4], [0, 1, 2, 3]),
        # BraTS 2023 stores it as 3.
        ("brats2023-gli", [0, 1, 2, 3], [0, 1, 2, 3]),
        # MSD: 1 edema, 2 non-enhancing core, 3 enhancing.
        ("msd", [0, 1, 2, 3], [0, 2, 1, 3]),
    ],
)
def test_release_labels_convert_to_the_report_classes_and_back(layout, on_disk, internal):
    seg = np.array(on_disk * 3, dtype=np.int16).reshape(3, 4)
    converted = labels.to_internal(seg, layout)
    assert converted.dtype == np.uint8
    assert converted.tolist() == [internal] * 3
    assert labels.from_internal(converted, layout).tolist() == seg.tolist()


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64, np.float32, np.float64]
)
def test_any_stored_dtype_is_accepted(dtype):
    seg = np.array([[0, 4], [2, 1]], dtype=dtype)
    assert labels.to_internal(seg, "brats2020").tolist() == [[0, 3], [2, 1]]


def test_boolean_masks_read_as_labels_0_and_1():
    assert labels.to_internal(np.array([True, False]), "brats2020").tolist() == [1, 0]


@pytest.mark.parametrize("order", ["C", "F"])
def test_conversion_keeps_the_memory_order_of_the_volume(order, rng):
    seg = np.asarray(rng.choice([0, 1, 2, 4], size=(5, 6, 7)).astype(np.uint8), order=order)
    converted = labels.to_internal(seg, "brats2020")
    expected = np.select([seg == 4, seg == 2, seg == 1], [3, 2, 1], 0)
    assert np.array_equal(converted, expected)
    assert converted.flags[f"{order}_CONTIGUOUS"]


@pytest.mark.parametrize(
    "dtype, bad_value",
    [(np.int32, 70000), (np.int64, -40000), (np.float64, 1e6), (np.uint16, 65535), (np.int8, -3)],
)
def test_out_of_range_values_of_any_dtype_are_reported_as_themselves(dtype, bad_value):
    seg = np.array([0, 4, bad_value], dtype=dtype)
    with pytest.raises(ValueError, match=rf"seg\.nii.*\[{int(bad_value)}\]"):
        labels.to_internal(seg, "brats2020", source="seg.nii")


@pytest.mark.parametrize(
    "layout, bad_value", [("brats2020", 3), ("brats2023-gli", 4), ("msd", 4), ("brats2020", -1)]
)
def test_a_label_outside_the_release_set_is_an_error_naming_the_file(layout, bad_value):
    seg = np.array([0, 1, bad_value])
    with pytest.raises(ValueError, match=rf"case_seg\.nii.*\[{bad_value}\]"):
        labels.to_internal(seg, layout, source="case_seg.nii")


def test_fractional_labels_are_an_error():
    with pytest.raises(ValueError, match="whole numbers"):
        labels.to_internal(np.array([0.0, 1.5]), "brats2020", source="x.nii")


def test_unknown_layout_is_an_error():
    with pytest.raises(ValueError, match="Unknown layout"):
        labels.to_internal(np.zeros(3, int), "brats1999")


def test_from_internal_rejects_release_labels():
    with pytest.raises(ValueError, match="0-3"):
        labels.from_internal(np.array([0, 4]), "brats2020")


def test_regions_nest_as_brats_defines_them(rng):
    volume = rng.integers(0, 4, size=(8, 8, 8))
    wt, tc, et = (labels.region_mask(volume, r) for r in ("WT", "TC", "ET"))
    # The enhancing tumour is inside the tumour core, which is inside the whole tumour.
    assert np.all(wt[tc]) and np.all(tc[et])
    assert np.array_equal(tc, (volume == 1) | (volume == 3))  # TC includes enhancing
    assert np.array_equal(wt, volume > 0)
    assert set(labels.region_masks(volume)) == {"WT", "TC", "ET"}
    with pytest.raises(ValueError, match="Unknown region"):
        labels.region_mask(volume, "XX")


def test_colours_follow_the_report_figure():
    red, green, yellow = labels.CLASS_COLORS[1], labels.CLASS_COLORS[2], labels.CLASS_COLORS[3]
    assert red[0] > 0.8 and red[1] < 0.3  # necrotic core: red
    assert green[1] > 0.6 and green[0] < 0.3  # edema: green
    assert yellow[0] > 0.8 and yellow[1] > 0.8 and yellow[2] < 0.3  # enhancing: yellow
    cmap, norm = labels.label_colormap()
    assert cmap(norm(0))[3] == 0.0  # background is transparent in overlays
    assert np.allclose(cmap(norm(2))[:3], green)
    assert [h.get_label() for h in labels.legend_handles()][0].startswith("1: necrotic")


# -- modality and layout names: one owner ----------------------------------------------
def test_modality_and_layout_names_have_one_owner():
    import gliseg_nb.config
    import gliseg_nb.data.cases
    import gliseg_nb.labels
    import gliseg_nb.plotting
    import gliseg_nb.viewers

    names = gliseg_nb.labels
    assert gliseg_nb.config.MODALITIES is names.MODALITIES
    assert gliseg_nb.data.cases.MODALITIES is names.MODALITIES
    assert gliseg_nb.data.cases.LAYOUTS is names.LAYOUTS
    assert gliseg_nb.viewers._MODALITY_ORDER is names.MODALITIES
    assert gliseg_nb.viewers._MODALITY_TITLES is names.MODALITY_TITLES
    assert gliseg_nb.plotting._MODALITY_TITLES is names.MODALITY_TITLES
    assert set(names.MODALITY_TITLES) == set(names.MODALITIES)
    # Every layout has a label convention.
    assert set(names.LAYOUTS) <= set(names.LAYOUT_CONVENTION)


def test_no_module_spells_out_the_modality_list_again():
    import re
    from pathlib import Path

    import gliseg_nb

    package = Path(gliseg_nb.__file__).parent
    spelled = re.compile(r"""\(\s*["']flair["']\s*,\s*["']t1["']\s*,\s*["']t1ce["']\s*,\s*["']t2["']""")
    offenders = sorted(
        path.relative_to(package).as_posix() for path in package.rglob("*.py")
        if spelled.search(path.read_text(encoding="utf-8"))
    )
    assert offenders == ["labels.py"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_decode_outputs_is_numpy_argmax_with_ties_and_nan(rng, dtype):
    # decode_outputs compares class planes instead of calling np.argmax: same answer,
    # first class on ties, np.argmax's answer wherever a NaN is.
    probabilities = rng.integers(0, 3, size=(7, 6, 5, 4)).astype(dtype)  # many ties
    if dtype != np.int16:
        probabilities = probabilities + rng.random(probabilities.shape).astype(dtype) * (rng.random(probabilities.shape) < 0.5)
        probabilities[0, 0, 0, 2] = np.nan
        probabilities[1, 1, 1, :] = np.nan
        probabilities[2, 2, 2, 0] = np.nan
    view = probabilities.transpose(2, 1, 0, 3)  # any memory order
    for array in (probabilities, view):
        decoded = labels.decode_outputs(array)
        assert decoded.dtype == np.uint8
        np.testing.assert_array_equal(decoded, np.argmax(array, axis=-1))
