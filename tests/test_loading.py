"""Reading cases: labels in the internal convention, partial reads, and every bad file."""

import gzip
import struct
import warnings

import nibabel as nib
import numpy as np
import pytest

from gliseg_nb.data import CaseData, DataError, find_cases, load_case
from layout_fixtures import (
    FIXTURE_AFFINE,
    LAYOUTS,
    MODALITIES,
    fixture_case_ids,
    fixture_image,
    fixture_labels,
    write_layout,
    write_nifti,
)

SHAPE = (24, 24, 16)


def _cases_by_index(root, layout, n_cases=2, with_seg=True):
    """Cases keyed by the fixture's case index (what fixture_image/labels take)."""
    ids = fixture_case_ids(layout, n_cases, with_seg)
    return {ids.index(case.case_id): case for case in find_cases(root)}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_labels_come_back_in_internal_convention(tmp_path, layout):
    write_layout(tmp_path, layout, n_cases=2, shape=SHAPE)

    for index, case in _cases_by_index(tmp_path, layout).items():
        data = load_case(case)

        expected = fixture_labels(SHAPE, index)
        assert data.labels.dtype == np.uint8
        np.testing.assert_array_equal(data.labels, expected)
        # Every class is in the fixture, so a wrong mapping could not pass unnoticed.
        assert set(np.unique(data.labels)) == {0, 1, 2, 3}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_images_are_float32_and_the_right_modality(tmp_path, layout):
    write_layout(tmp_path, layout, n_cases=2, shape=SHAPE)

    for index, case in _cases_by_index(tmp_path, layout).items():
        data = load_case(case)

        assert list(data.images) == list(MODALITIES)
        for modality in MODALITIES:
            assert data.images[modality].dtype == np.float32
            # For MSD this checks that each modality is read from its own channel.
            np.testing.assert_array_equal(data.images[modality],
                                          fixture_image(SHAPE, index, modality))


def test_case_data_describes_the_volume(tmp_path):
    write_layout(tmp_path, "brats2021", n_cases=1, shape=SHAPE)
    (case,) = find_cases(tmp_path)

    data = load_case(case)

    assert isinstance(data, CaseData)
    assert data.case == case
    assert data.shape == SHAPE
    assert data.slices == slice(0, SHAPE[2])
    np.testing.assert_allclose(data.affine, FIXTURE_AFFINE)
    assert data.zooms == (1.0, 1.0, 1.0)
    assert isinstance(data.header, nib.Nifti1Header)
    assert "BraTS2021_00001" in repr(data)


def test_validation_case_has_no_labels(tmp_path):
    write_layout(tmp_path, "brats2020", n_cases=1, shape=SHAPE, with_seg=False)
    (case,) = find_cases(tmp_path)

    data = load_case(case)

    assert data.labels is None
    assert data.images["flair"].shape == SHAPE


def test_some_modalities_only(tmp_path):
    write_layout(tmp_path, "msd", n_cases=1, shape=SHAPE)
    (case,) = find_cases(tmp_path)

    data = load_case(case, modalities=["t1ce", "flair"])
    single = load_case(case, modalities="t2")

    assert list(data.images) == ["t1ce", "flair"]
    np.testing.assert_array_equal(data.images["t1ce"], fixture_image(SHAPE, 0, "t1ce"))
    assert list(single.images) == ["t2"]


def test_unknown_modality_is_refused(tmp_path):
    write_layout(tmp_path, "brats2021", n_cases=1, shape=SHAPE)
    (case,) = find_cases(tmp_path)

    with pytest.raises(ValueError, match="Unknown modality"):
        load_case(case, modalities=["pd"])


@pytest.mark.parametrize("layout", ["brats2020", "brats2020-kaggle", "msd"])
@pytest.mark.parametrize("slices", [(5, 9), slice(5, 9), slice(-3, None)])
def test_partial_read_equals_slices_of_the_full_read(tmp_path, layout, slices):
    write_layout(tmp_path, layout, n_cases=1, shape=SHAPE)
    (case,) = find_cases(tmp_path)
    full = load_case(case)

    part = load_case(case, slices=slices)

    selection = slices if isinstance(slices, slice) else slice(*slices)
    start, stop, _ = selection.indices(SHAPE[2])
    assert part.slices == slice(start, stop)
    assert part.shape == SHAPE  # the full shape on disk, not the shape read
    for modality in MODALITIES:
        assert part.images[modality].shape == SHAPE[:2] + (stop - start,)
        np.testing.assert_array_equal(part.images[modality],
                                      full.images[modality][:, :, start:stop])
    np.testing.assert_array_equal(part.labels, full.labels[:, :, start:stop])


@pytest.mark.parametrize("layout", ["brats2021", "msd"])
def test_partial_read_asks_nibabel_for_those_slices_only(tmp_path, monkeypatch, layout):
    # Record every index the array proxies receive: a loader that decoded the whole volume
    # and cut it afterwards would show full slices here.
    requested = []
    original = nib.arrayproxy.ArrayProxy.__getitem__

    def spy(self, index):
        requested.append(index)
        return original(self, index)

    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "__getitem__", spy)
    write_layout(tmp_path, layout, n_cases=1, shape=SHAPE)
    (case,) = find_cases(tmp_path)

    load_case(case, slices=(5, 9))

    for index in requested:
        assert index[:3] == (slice(None), slice(None), slice(5, 9))
    if layout == "msd":
        # One read for the four channels of the 4-D file (gzip decompressed once), one for
        # the labels.
        assert [index[3:] for index in requested] == [(slice(0, 4),), ()]
    else:
        assert len(requested) == 5  # four modalities and the segmentation


def test_partial_read_of_a_truncated_file_is_refused(tmp_path):
    # Even when the slices asked for are intact, a file cut short is reported when opened.
    dataset = write_layout(tmp_path, "brats2021", n_cases=1, shape=(64, 64, 40))
    flair = dataset / "BraTS2021_00001" / "BraTS2021_00001_flair.nii.gz"
    content = flair.read_bytes()
    flair.write_bytes(content[: len(content) * 3 // 4])
    (case,) = find_cases(tmp_path)

    with pytest.raises(DataError, match=r"BraTS2021_00001_flair\.nii\.gz.*truncated"):
        load_case(case, modalities=["flair"], slices=(0, 4))


def test_compressed_file_missing_only_its_trailer(tmp_path):
    _, case = _one_case(tmp_path)
    path = case.modalities["t1"]
    path.write_bytes(path.read_bytes()[:-4])

    with pytest.raises(DataError, match=r"BraTS2021_00001_t1\.nii\.gz.*truncated"):
        load_case(case)


def test_multi_member_gzip_file_is_accepted(tmp_path):
    # Legal gzip: two members back to back (the last ISIZE covers only the second one).
    _, case = _one_case(tmp_path)
    path = case.modalities["t1"]
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))

    data = load_case(case)

    np.testing.assert_array_equal(data.images["t1"], fixture_image(SHAPE, 0, "t1"))


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_scaled_and_big_endian_files_read_as_nibabel_reads_them(tmp_path, byte_order):
    # Voxels stored as scaled integers (scl_slope, scl_inter), in either byte order: the
    # partial read must give exactly nibabel's own full read.
    _, case = _one_case(tmp_path)
    path = case.modalities["flair"]
    values = fixture_image(SHAPE, 0, "flair").astype(np.float32)
    header = nib.Nifti1Header(endianness=byte_order)
    header.set_data_dtype(np.int16)
    image = nib.Nifti1Image(values, FIXTURE_AFFINE, header)
    image.header.set_slope_inter(0.5, 10.0)
    image.header.set_zooms((1.0, 1.0, 1.0))
    nib.save(image, str(path))
    stored = nib.load(path)
    assert stored.header.endianness == byte_order
    assert stored.dataobj.slope == 0.5 and stored.dataobj.inter == 10.0

    data = load_case(case, modalities=["flair"], slices=(3, 11))

    np.testing.assert_array_equal(data.images["flair"], stored.get_fdata()[:, :, 3:11].astype(np.float32))


def test_labels_only(tmp_path):
    # The evaluation reads ground truth alone: no modality decoded.
    _, case = _one_case(tmp_path, "brats2023-gli")

    data = load_case(case, modalities=[], slices=(2, 6))

    assert data.images == {}
    np.testing.assert_array_equal(data.labels, fixture_labels(SHAPE, 0)[:, :, 2:6])
    np.testing.assert_allclose(data.affine, FIXTURE_AFFINE)


@pytest.mark.parametrize("slices", [(10, 10), (20, 30), slice(0, 4, 2)])
def test_bad_slice_ranges_are_refused(tmp_path, slices):
    write_layout(tmp_path, "brats2021", n_cases=1, shape=SHAPE)
    (case,) = find_cases(tmp_path)

    with pytest.raises(ValueError, match="slice"):
        load_case(case, slices=slices)


def test_kaggle_case_355_is_read(tmp_path):
    write_layout(tmp_path, "brats2020-kaggle", n_cases=2, shape=SHAPE)
    case = {c.case_id: c for c in find_cases(tmp_path)}["BraTS20_Training_355"]

    data = load_case(case)

    np.testing.assert_array_equal(data.labels, fixture_labels(SHAPE, 1))


# -- bad files -------------------------------------------------------------------------
def _one_case(tmp_path, layout="brats2021"):
    dataset = write_layout(tmp_path, layout, n_cases=1, shape=SHAPE)
    (case,) = find_cases(tmp_path)
    return dataset, case


def test_file_that_is_not_nifti(tmp_path):
    _, case = _one_case(tmp_path)
    case.modalities["t1"].write_bytes(gzip.compress(b"this is a text file, not an image" * 20))

    with pytest.raises(DataError, match=r"BraTS2021_00001_t1\.nii\.gz.*not a readable NIfTI"):
        load_case(case)


def test_file_that_is_not_even_gzip(tmp_path):
    _, case = _one_case(tmp_path)
    case.modalities["t2"].write_bytes(b"<html>404 not found</html>")

    with pytest.raises(DataError, match=r"BraTS2021_00001_t2\.nii\.gz.*not a readable NIfTI"):
        load_case(case)


def test_truncated_compressed_file(tmp_path):
    _, case = _one_case(tmp_path)
    path = case.modalities["flair"]
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])

    with pytest.raises(DataError, match=r"BraTS2021_00001_flair\.nii\.gz.*(truncated|corrupt)"):
        load_case(case)


def test_truncated_uncompressed_file(tmp_path):
    _, case = _one_case(tmp_path, "brats2020-kaggle")
    path = case.modalities["t1ce"]
    content = path.read_bytes()
    path.write_bytes(content[:-1])  # a single missing byte must be caught

    with pytest.raises(DataError, match=r"BraTS20_Training_\d+_t1ce\.nii.*truncated"):
        load_case(case)


def test_truncated_segmentation(tmp_path):
    _, case = _one_case(tmp_path)
    content = case.seg.read_bytes()
    case.seg.write_bytes(content[: len(content) // 2])

    with pytest.raises(DataError, match=r"BraTS2021_00001_seg\.nii\.gz"):
        load_case(case)


def test_shapes_that_disagree(tmp_path):
    _, case = _one_case(tmp_path)
    write_nifti(case.modalities["t1"], np.zeros((24, 24, 15), np.int16))

    with pytest.raises(DataError, match=r"BraTS2021_00001_t1\.nii\.gz.*shape \(24, 24, 15\)"):
        load_case(case)


def test_segmentation_shape_that_disagrees(tmp_path):
    _, case = _one_case(tmp_path)
    write_nifti(case.seg, np.zeros((20, 24, 16), np.uint8))

    with pytest.raises(DataError, match=r"BraTS2021_00001_seg\.nii\.gz.*shape"):
        load_case(case)


def test_msd_image_that_is_not_4d(tmp_path):
    _, case = _one_case(tmp_path, "msd")
    write_nifti(case.modalities["flair"], np.zeros(SHAPE, np.int16))

    with pytest.raises(DataError, match=r"BRATS_001\.nii\.gz.*4-D"):
        load_case(case)


def test_affines_that_disagree(tmp_path):
    _, case = _one_case(tmp_path)
    shifted = FIXTURE_AFFINE.copy()
    shifted[0, 3] += 2.0
    write_nifti(case.modalities["t2"], fixture_image(SHAPE, 0, "t2"), affine=shifted)

    with pytest.raises(DataError, match=r"BraTS2021_00001_t2\.nii\.gz.*affine differs"):
        load_case(case)


def test_affines_within_rounding_are_accepted(tmp_path):
    _, case = _one_case(tmp_path)
    nudged = FIXTURE_AFFINE.copy()
    nudged[0, 3] += 1e-5
    write_nifti(case.modalities["t2"], fixture_image(SHAPE, 0, "t2"), affine=nudged)

    data = load_case(case)

    np.testing.assert_array_equal(data.images["t2"], fixture_image(SHAPE, 0, "t2"))


def _write_with_nan(case):
    volume = fixture_image(SHAPE, 0, "flair").astype(np.float32)
    volume[3, 4, 5] = np.nan
    volume[6, 7, 8] = np.inf
    write_nifti(case.modalities["flair"], volume)
    return volume


def test_nan_voxels_raise_by_default(tmp_path):
    _, case = _one_case(tmp_path)
    _write_with_nan(case)

    with pytest.raises(DataError, match=r"BraTS2021_00001_flair\.nii\.gz: 2 NaN or infinite"):
        load_case(case)


def test_nan_voxels_can_be_zeroed_with_a_warning(tmp_path):
    _, case = _one_case(tmp_path)
    volume = _write_with_nan(case)

    with pytest.warns(RuntimeWarning, match=r"BraTS2021_00001_flair\.nii\.gz: 2 NaN"):
        data = load_case(case, nan_policy="zero")

    flair = data.images["flair"]
    assert flair[3, 4, 5] == 0 and flair[6, 7, 8] == 0
    assert np.isfinite(flair).all()
    finite = np.isfinite(volume)
    np.testing.assert_array_equal(flair[finite], volume[finite])


def test_finite_data_gives_no_warning(tmp_path):
    _, case = _one_case(tmp_path)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_case(case, nan_policy="zero")


def test_unknown_nan_policy_is_refused(tmp_path):
    _, case = _one_case(tmp_path)

    with pytest.raises(ValueError, match="nan_policy"):
        load_case(case, nan_policy="ignore")


@pytest.mark.parametrize(
    "layout, bad_label",
    [("brats2020", 3), ("brats2019", 5), ("brats2023-gli", 4), ("msd", 4)],
)
def test_unexpected_labels(tmp_path, layout, bad_label):
    _, case = _one_case(tmp_path, layout)
    seg = np.asanyarray(nib.load(case.seg).dataobj).copy()
    seg[0, 0, 0] = bad_label
    write_nifti(case.seg, seg)

    with pytest.raises(DataError, match=rf"{case.seg.name}.*unexpected label.*\[{bad_label}\]"):
        load_case(case)


def test_labels_that_are_not_whole_numbers(tmp_path):
    _, case = _one_case(tmp_path)
    seg = np.asanyarray(nib.load(case.seg).dataobj).astype(np.float32)
    seg[1, 1, 1] = 0.5
    write_nifti(case.seg, seg)

    with pytest.raises(DataError, match=r"BraTS2021_00001_seg\.nii\.gz.*whole numbers"):
        load_case(case)


def test_file_deleted_after_finding(tmp_path):
    _, case = _one_case(tmp_path)
    case.modalities["t1"].unlink()

    with pytest.raises(DataError, match=r"BraTS2021_00001_t1\.nii\.gz: file not found"):
        load_case(case)


def test_float_labels_with_whole_values_are_accepted(tmp_path):
    # Some BraTS 2020 segmentations are stored as float64; their values are still 0/1/2/4.
    _, case = _one_case(tmp_path, "brats2020")
    seg = np.asanyarray(nib.load(case.seg).dataobj).astype(np.float64)
    write_nifti(case.seg, seg)

    data = load_case(case)

    np.testing.assert_array_equal(data.labels, fixture_labels(SHAPE, 0))


def test_complete_compressed_files_are_not_decompressed_twice(tmp_path, monkeypatch):
    # The completeness check reads the gzip trailer; only files whose trailer disagrees
    # with the header are decompressed a second time to be sure.
    import gliseg_nb.data._nifti as nifti

    def forbidden(*args, **kwargs):
        raise AssertionError("a complete file was decompressed for verification")

    monkeypatch.setattr(nifti.gzip, "open", forbidden)
    _, case = _one_case(tmp_path, "msd")

    data = load_case(case)

    np.testing.assert_array_equal(data.labels, fixture_labels(SHAPE, 0))


# -- damage only a checksum or a header field reveals --------------------------------------
def _rewrite_stored_with_flipped_byte(path, voxel):
    """Rewrite a fixture .nii.gz uncompressed inside gzip (stored deflate blocks) with one
    byte of the int16 `voxel` flipped: the deflate data stays valid and the length trailer
    intact, so only the CRC-32 can tell."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    i, j, k = voxel
    offset = 352 + 2 * (i + SHAPE[0] * j + SHAPE[0] * SHAPE[1] * k)
    assert len(raw) < 65535  # one stored block: 10 header bytes, then 5 bytes of block header
    content = bytearray(gzip.compress(bytes(raw), compresslevel=0))
    content[10 + 5 + offset] ^= 0x10
    path.write_bytes(bytes(content))


@pytest.mark.parametrize("voxel, slices", [((3, 4, 10), (8, 12)), ((3, 4, 14), (0, 4)),
                                           ((3, 4, 10), None)],
                         ids=["in-the-slices-read", "after-the-slices-read", "whole-volume"])
def test_bytes_flipped_inside_the_compressed_stream_are_reported(tmp_path, voxel, slices):
    _, case = _one_case(tmp_path)
    _rewrite_stored_with_flipped_byte(case.modalities["t1ce"], voxel)

    with pytest.raises(DataError, match=r"BraTS2021_00001_t1ce\.nii\.gz: the compressed data "
                                        r"is corrupt \(BadGzipFile: CRC check failed"):
        load_case(case, modalities=["flair", "t1ce"], slices=slices)


def test_intact_stored_gzip_still_reads(tmp_path):
    # The CRC check must not refuse a valid file written with other gzip settings.
    _, case = _one_case(tmp_path)
    path = case.modalities["t1ce"]
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=0))

    data = load_case(case, modalities=["t1ce"], slices=(8, 12))

    np.testing.assert_array_equal(data.images["t1ce"], fixture_image(SHAPE, 0, "t1ce")[:, :, 8:12])


def _patch_header(path, offset, fmt, value):
    raw = bytearray(gzip.decompress(path.read_bytes()))
    struct.pack_into(fmt, raw, offset, value)
    path.write_bytes(gzip.compress(bytes(raw)))


@pytest.mark.parametrize("offset, fmt, value, message", [
    (70, "<h", 1234, r"not a readable NIfTI file \(HeaderDataError: data code 1234"),  # datatype
    (40, "<h", 9, r"not a readable NIfTI file \(HeaderDataError"),  # dim[0]
    (80, "<f", float("nan"), r"has invalid voxel sizes \(nan, 1\.0, 1\.0\)"),  # pixdim[1]
    (280, "<f", float("nan"), r"has a non-finite affine"),  # srow_x[0]
], ids=["datatype", "dim0", "nan-pixdim", "nan-affine"])
def test_damaged_header_fields_name_the_file(tmp_path, caplog, offset, fmt, value, message):
    _, case = _one_case(tmp_path)
    _patch_header(case.modalities["t1"], offset, fmt, value)

    with pytest.raises(DataError, match=r"BraTS2021_00001_t1\.nii\.gz: " + message) as raised:
        load_case(case)

    assert "\n" not in str(raised.value)
    assert "differs" not in str(raised.value)  # not "different from itself by nan mm"
    # nibabel's own report of the problem is not printed as a second line.
    assert [record.getMessage() for record in caplog.records
            if record.name == "nibabel.global"] == []


def test_nibabel_reports_outside_the_loader_are_untouched(tmp_path, caplog):
    _, case = _one_case(tmp_path)
    _patch_header(case.modalities["t1"], 70, "<h", 1234)

    with pytest.raises(Exception, match="data code 1234"):
        nib.load(case.modalities["t1"])

    assert any("data code 1234" in record.getMessage() for record in caplog.records
               if record.name == "nibabel.global")


def test_nan_message_says_what_to_do_from_the_api_and_the_command_line(tmp_path):
    _, case = _one_case(tmp_path)
    _write_with_nan(case)

    with pytest.raises(DataError, match=r"pass nan_policy='zero' to load_case \(or "
                                        r"--nan-policy zero on the command line\)"):
        load_case(case)


# -- blank modalities -------------------------------------------------------------------
def test_all_zero_modality_beside_a_tumour_warns_naming_the_file(tmp_path):
    from gliseg_nb.data import BlankImageWarning

    _, case = _one_case(tmp_path)
    write_nifti(case.modalities["t1ce"], np.zeros(SHAPE, np.int16))

    with pytest.warns(BlankImageWarning, match=r"BraTS2021_00001_t1ce\.nii\.gz: the t1ce image "
                                               r"is all zeros in every slice read, beside \d+ "
                                               r"tumour voxel"):
        data = load_case(case, slices=(4, 12))

    assert not data.images["t1ce"].any() and data.labels.any()  # still read: a warning


def test_all_zero_whole_volume_warns_without_segmentation(tmp_path):
    from gliseg_nb.data import BlankImageWarning

    write_layout(tmp_path, "msd", n_cases=1, shape=SHAPE, with_seg=False)
    (case,) = find_cases(tmp_path)
    stack = np.stack([fixture_image(SHAPE, 0, m) for m in MODALITIES], axis=-1)
    stack[..., 0] = 0  # the FLAIR channel
    write_nifti(case.modalities["flair"], stack)

    with pytest.warns(BlankImageWarning, match=r"BRATS_485\.nii\.gz \(channel 0\): the flair "
                                               r"image is all zeros in the whole volume"):
        load_case(case)


def test_blank_slices_outside_the_tumour_do_not_warn(tmp_path):
    # The first slices of a skull-stripped scan are all zero: no tumour there, no warning.
    _, case = _one_case(tmp_path)
    volume = fixture_image(SHAPE, 0, "flair")
    volume[:, :, :3] = 0
    write_nifti(case.modalities["flair"], volume)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_case(case, slices=(0, 3))

    assert not data.images["flair"].any() and not data.labels.any()
