"""Tests of gliseg_nb.metrics.evaluation: region scores against independent computations."""

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from gliseg_nb.errors import DataError
from gliseg_nb.metrics import evaluation
from gliseg_nb.metrics.evaluation import (
    HD95_EMPTY_MM,
    background_everywhere_scores,
    evaluate_case,
    hd95,
    keras_meaniou_as_fed,
    report_metrics,
    summarize_scores,
)


# -- an independent HD95: explicit neighbour tests and a k-d tree ------------------------
def _border_voxels_bruteforce(mask):
    """Indices of mask voxels with a face neighbour outside the mask (or outside the array)."""
    padded = np.pad(mask, 1, constant_values=False)
    border = np.zeros_like(mask)
    for axis in range(mask.ndim):
        for step in (-1, 1):
            neighbour = np.roll(padded, step, axis=axis)[tuple(slice(1, -1) for _ in range(mask.ndim))]
            border |= mask & ~neighbour
    return np.argwhere(border)


def _hd95_reference(pred, truth, spacing):
    pred_points = _border_voxels_bruteforce(pred) * np.asarray(spacing)
    truth_points = _border_voxels_bruteforce(truth) * np.asarray(spacing)
    to_truth, _ = cKDTree(truth_points).query(pred_points)
    to_pred, _ = cKDTree(pred_points).query(truth_points)
    return np.percentile(np.concatenate([to_truth, to_pred]), 95)


def _random_blobby_mask(rng, shape, n_blobs=3):
    grid = np.indices(shape).astype(float)
    mask = np.zeros(shape, dtype=bool)
    for _ in range(n_blobs):
        centre = [rng.uniform(0, s) for s in shape]
        radii = [rng.uniform(1.5, s / 3) for s in shape]
        mask |= sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0
    mask ^= rng.random(shape) < 0.03  # ragged surfaces and isolated voxels
    return mask


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 1.0, 3.0), (1.2, 0.7, 2.5)])
def test_hd95_matches_bruteforce_surface_distances(rng, spacing):
    for _ in range(4):
        shape = tuple(int(s) for s in rng.integers(8, 20, size=3))
        pred = _random_blobby_mask(rng, shape)
        truth = _random_blobby_mask(rng, shape)
        if not pred.any() or not truth.any():
            continue
        assert hd95(pred, truth, spacing) == pytest.approx(_hd95_reference(pred, truth, spacing), rel=1e-9)


def _hd95_distance_transform(pred, truth, spacing):
    """HD95 the way the library computed it before its k-d tree: two distance transforms."""
    from scipy import ndimage

    def border(mask):
        return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1))

    pred_border, truth_border = border(pred), border(truth)
    to_truth = ndimage.distance_transform_edt(~truth_border, sampling=spacing)[pred_border]
    to_pred = ndimage.distance_transform_edt(~pred_border, sampling=spacing)[truth_border]
    return float(np.percentile(np.concatenate([to_truth, to_pred]), 95))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.2, 0.7, 2.5)])
def test_hd95_equals_the_distance_transform_computation(rng, spacing):
    # Bit for bit on a 1 mm grid (integer offsets); to rounding on an anisotropic one,
    # where two voxels at the same distance may be rounded differently.
    tolerance = 0.0 if spacing == (1.0, 1.0, 1.0) else 1e-12
    for _ in range(6):
        shape = tuple(int(s) for s in rng.integers(10, 30, size=3))
        pred, truth = _random_blobby_mask(rng, shape), _random_blobby_mask(rng, shape)
        if not pred.any() or not truth.any():
            continue
        expected = _hd95_distance_transform(pred, truth, spacing)
        assert abs(hd95(pred, truth, spacing) - expected) <= tolerance * expected


def test_hd95_crop_gives_same_result_as_full_volume(rng):
    # Small masks far from the edges of a big volume: the cropped computation is exact.
    pred = np.zeros((60, 50, 40), dtype=bool)
    truth = np.zeros_like(pred)
    pred[20:30, 10:18, 5:12] = True
    truth[24:33, 12:20, 7:15] = True
    truth[40:42, 40:42, 30:32] = True  # a far-away island dominates the high percentiles
    spacing = (0.9, 1.1, 2.0)
    assert hd95(pred, truth, spacing) == pytest.approx(_hd95_reference(pred, truth, spacing))


def test_hd95_masks_touching_array_edge(rng):
    pred = np.zeros((12, 12, 12), dtype=bool)
    truth = np.zeros_like(pred)
    pred[:6, :, :4] = True
    truth[:8, 2:, :3] = True
    assert hd95(pred, truth, (1.0, 2.0, 0.5)) == pytest.approx(_hd95_reference(pred, truth, (1.0, 2.0, 0.5)))


def test_hd95_of_a_shifted_cube_is_the_shift():
    pred = np.zeros((30, 30, 30), dtype=bool)
    truth = np.zeros_like(pred)
    pred[5:15, 5:15, 5:15] = True
    truth[5:15, 5:15, 8:18] = True  # shifted 3 voxels along z, 2 mm each
    assert hd95(pred, truth, (1.0, 1.0, 2.0)) == pytest.approx(6.0)


def _counts_reference(pred_mask, truth_mask):
    tp = np.sum(pred_mask & truth_mask)
    fp = np.sum(pred_mask & ~truth_mask)
    fn = np.sum(~pred_mask & truth_mask)
    tn = np.sum(~pred_mask & ~truth_mask)
    return tp, fp, fn, tn


def test_evaluate_case_scores_match_direct_counting(rng):
    shape = (20, 18, 12)
    truth = rng.choice(4, size=shape, p=[0.7, 0.1, 0.1, 0.1]).astype(np.uint8)
    pred = truth.copy()
    flip = rng.random(shape) < 0.2
    pred[flip] = rng.integers(0, 4, size=int(flip.sum()))
    spacing = (1.0, 1.5, 2.0)
    scores = evaluate_case(pred, truth, spacing)
    assert set(scores) == {"WT", "TC", "ET"}
    for region, classes in {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}.items():
        pred_mask, truth_mask = np.isin(pred, classes), np.isin(truth, classes)
        tp, fp, fn, tn = _counts_reference(pred_mask, truth_mask)
        got = scores[region]
        assert got["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
        assert got["sensitivity"] == pytest.approx(tp / (tp + fn))
        assert got["specificity"] == pytest.approx(tn / (tn + fp))
        assert got["volume_pred_ml"] == pytest.approx(pred_mask.sum() * 3.0 / 1000)
        assert got["volume_truth_ml"] == pytest.approx(truth_mask.sum() * 3.0 / 1000)
        assert got["hd95"] == pytest.approx(_hd95_reference(pred_mask, truth_mask, spacing))
    # Nested regions: TC is inside WT, so its truth volume cannot be larger.
    assert scores["TC"]["volume_truth_ml"] <= scores["WT"]["volume_truth_ml"]


def test_tumour_core_includes_enhancing_tumour():
    truth = np.zeros((10, 10, 10), dtype=np.uint8)
    truth[2:5, 2:5, 2:5] = 3  # only enhancing tumour
    scores = evaluate_case(truth, truth)
    assert scores["TC"]["volume_truth_ml"] == pytest.approx(27 / 1000)
    assert scores["TC"]["dice"] == 1.0


def test_empty_mask_conventions():
    truth = np.zeros((16, 16, 16), dtype=np.uint8)
    truth[4:10, 4:10, 4:10] = 2  # edema only: TC and ET empty in the truth
    pred = truth.copy()
    pred[5:7, 5:7, 5:7] = 3  # predicts a little enhancing tumour that is not there
    scores = evaluate_case(pred, truth)
    # TC: truth empty, prediction not -> Dice 0, HD95 = the constant.
    assert scores["TC"]["dice"] == 0.0 and scores["TC"]["hd95"] == HD95_EMPTY_MM
    assert scores["ET"]["dice"] == 0.0 and scores["ET"]["hd95"] == HD95_EMPTY_MM
    both_empty = evaluate_case(truth, truth)
    assert both_empty["ET"]["dice"] == 1.0 and both_empty["ET"]["hd95"] == 0.0
    assert both_empty["ET"]["sensitivity"] == 1.0
    # Prediction empty, truth not.
    nothing = evaluate_case(np.zeros_like(truth), truth)
    assert nothing["WT"]["dice"] == 0.0
    assert nothing["WT"]["hd95"] == HD95_EMPTY_MM
    assert nothing["WT"]["sensitivity"] == 0.0
    assert nothing["WT"]["specificity"] == 1.0
    assert HD95_EMPTY_MM == pytest.approx(np.sqrt(240**2 + 240**2 + 155**2), abs=0.01)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        evaluate_case(np.zeros((10, 10, 10), np.uint8), np.zeros((10, 10, 9), np.uint8))


def test_release_labels_are_refused():
    pred = np.zeros((5, 5, 5), np.uint8)
    pred[1, 1, 1] = 4
    with pytest.raises(ValueError, match="0-3"):
        evaluate_case(pred, np.zeros_like(pred))


@pytest.mark.parametrize("bad, message", [
    (np.inf, r"prediction: 1 NaN or infinite value\(s\)"),
    (-np.inf, r"prediction: 1 NaN or infinite value\(s\)"),
    (np.nan, r"prediction: 1 NaN or infinite value\(s\)"),
    (1.5, r"prediction: labels must be whole numbers"),
], ids=["inf", "-inf", "nan", "fraction"])
def test_non_finite_or_fractional_labels_are_named(bad, message):
    pred = np.zeros((5, 5, 5), np.float32)
    pred[1, 1, 1] = bad
    with pytest.raises(DataError, match=message):
        evaluate_case(pred, np.zeros((5, 5, 5), np.uint8))


def test_text_labels_are_refused():
    truth = np.zeros((2, 2, 2), np.uint8)
    with pytest.raises(DataError, match=r"ground truth: labels must be whole numbers, got dtype"):
        evaluate_case(truth, truth.astype(str))


def test_volumes_must_be_3d():
    with pytest.raises(DataError, match=r"must be 3-D label volumes, got 2-D arrays of shape "
                                        r"\(10, 10\)"):
        evaluate_case(np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8))


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.0, 1.0, 1.0, 1.0), ((1.0, 1.0, 1.0),)])
def test_spacing_must_fit_the_volume(spacing):
    volume = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(DataError, match=r"voxel spacing .* does not fit a 3-D volume"):
        evaluate_case(volume, volume, spacing=spacing)


def test_evaluate_case_on_a_brats_sized_volume(rng):
    # Correctness on the full 240 x 240 x 155 grid (the bounding-box crop at work); its speed
    # is measured by the benchmark, not asserted here (a loaded machine would fail it).
    truth = np.zeros((240, 240, 155), dtype=np.uint8)
    truth[80:160, 70:150, 40:110] = 2
    truth[100:140, 90:130, 60:90] = 1
    truth[110:130, 100:120, 65:85] = 3
    pred = np.roll(truth, 3, axis=0)
    scores = evaluate_case(pred, truth)
    assert scores["WT"]["hd95"] == pytest.approx(3.0)
    assert scores["WT"]["dice"] == pytest.approx(1 - 3 / 80)  # 3 of 80 rows shifted out


def test_summarize_scores_statistics():
    rows = [{"case_id": str(i), "scores": {r: {m: float(i) for m in evaluation.METRIC_NAMES} for r in ("WT", "TC", "ET")}} for i in range(5)]
    summary = summarize_scores(rows)
    assert summary["WT"]["dice"] == {"mean": 2.0, "median": 2.0, "std": pytest.approx(np.sqrt(2.0)), "q25": 1.0, "q75": 3.0}


# -- the report's numbers --------------------------------------------------------------
def test_keras_meaniou_as_fed_matches_keras(rng):
    import keras

    truth = rng.integers(0, 4, size=(3, 16, 16))
    logits = rng.normal(size=(3, 16, 16, 4)) * rng.choice([1.0, 40.0], size=(3, 16, 16, 1))
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    probabilities = probabilities.astype(np.float32)
    assert np.any(probabilities == 1.0), "saturated softmax outputs are what the test is about"
    one_hot = np.eye(4, dtype=np.float32)[truth]
    metric = keras.metrics.MeanIoU(num_classes=4)
    metric.update_state(one_hot, probabilities)
    assert keras_meaniou_as_fed(one_hot, probabilities) == pytest.approx(float(metric.result()), rel=1e-6)


def test_meaniou_as_fed_without_saturation_is_three_eighths(rng):
    # Probabilities below 1 all truncate to 0: the confusion matrix has 3N at (0, 0) and N
    # at (1, 0), so IoU(0) = 3/4, IoU(1) = 0 and the mean over the two "classes" is 0.375,
    # whatever the model predicts.
    truth = rng.integers(0, 4, size=(50,))
    probabilities = np.full((50, 4), 0.25, dtype=np.float32)
    assert keras_meaniou_as_fed(np.eye(4)[truth], probabilities) == pytest.approx(0.375)


def test_report_metrics_and_background_everywhere():
    truth = np.zeros((60, 60, 40), dtype=np.uint8)
    truth[20:30, 20:30, 10:20] = 2
    truth[23:27, 23:27, 13:17] = 1
    truth[24:26, 24:26, 14:16] = 3
    background = background_everywhere_scores(truth)
    assert background["accuracy"] == pytest.approx(1 - 1000 / truth.size)
    assert background["accuracy"] > 0.99
    assert background["region_dice"] == {"WT": 0.0, "TC": 0.0, "ET": 0.0}
    # The notebook's MeanIoU rewards the empty prediction almost fully.
    assert background["mean_iou_as_fed"] > 0.98
    perfect = report_metrics(truth, truth)
    assert perfect["accuracy"] == 1.0 and perfect["mean_iou"] == 1.0
    assert perfect["region_dice"] == {"WT": 1.0, "TC": 1.0, "ET": 1.0}
    # IoU <= Dice for the same masks, class by class.
    shifted = np.roll(truth, 2, axis=0)
    scores = report_metrics(shifted, truth)
    assert scores["mean_iou"] <= np.mean(scores["dice_per_class"])


def test_report_metrics_soft_dice_uses_probabilities():
    truth = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    probabilities = np.full((2, 2, 4), 0.25, dtype=np.float32)
    scores = report_metrics(truth, truth, probabilities=probabilities, smooth=1.0)
    # Each class: one true pixel, predicted mass 4 * 0.25 = 1, overlap 0.25.
    assert scores["dice_background_inclusive"] == pytest.approx((2 * 0.25 + 1) / (1 + 1 + 1))
    with pytest.raises(ValueError, match="probabilities"):
        report_metrics(truth, truth, probabilities=probabilities[..., :3])


# -- evaluate_folder and the CLI -------------------------------------------------------
def _write_cases(root, rng, n_cases=2, shape=(24, 24, 16)):
    """BraTS 2021-layout cases (seg with 4 = enhancing) and matching release-label predictions."""
    import nibabel as nib

    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[:3, 3] = (10.0, 20.0, -5.0)
    truths = {}
    for index in range(n_cases):
        case_id = f"BraTS2021_{index:05d}"
        folder = root / "data" / case_id
        folder.mkdir(parents=True)
        truth = np.zeros(shape, dtype=np.uint8)
        truth[6:16, 6:16, 4:12] = 2
        truth[8:14, 8:14, 5:10] = 1
        truth[9:12, 9:12, 6:9] = 3
        truth = np.roll(truth, index, axis=0)
        for modality in ("flair", "t1", "t1ce", "t2"):
            image = rng.normal(size=shape).astype(np.float32)
            nib.save(nib.Nifti1Image(image, affine), folder / f"{case_id}_{modality}.nii.gz")
        release = truth.copy()
        release[truth == 3] = 4
        nib.save(nib.Nifti1Image(release, affine), folder / f"{case_id}_seg.nii.gz")
        truths[case_id] = (truth, affine)
    return truths


def _write_predictions(root, truths, shift=1, release=True):
    import nibabel as nib

    pred_dir = root / "pred"
    pred_dir.mkdir(exist_ok=True)
    for case_id, (truth, affine) in truths.items():
        pred = np.roll(truth, shift, axis=1)
        if release:
            pred = np.where(pred == 3, 4, pred).astype(np.uint8)
        nib.save(nib.Nifti1Image(pred, affine), pred_dir / f"{case_id}.nii.gz")
    return pred_dir


@pytest.fixture
def scored_folder(tmp_path, rng):
    truths = _write_cases(tmp_path, rng)
    pred_dir = _write_predictions(tmp_path, truths)
    return tmp_path, truths, pred_dir


def test_evaluate_folder_matches_evaluate_case(scored_folder):
    root, truths, pred_dir = scored_folder
    rows = evaluation.evaluate_folder(pred_dir, root / "data")
    assert [row["case_id"] for row in rows] == sorted(truths)
    for row in rows:
        truth, _ = truths[row["case_id"]]
        expected = evaluate_case(np.roll(truth, 1, axis=1), truth)
        assert row["scores"] == expected
        assert row["scores"]["ET"]["dice"] < 1.0  # the 4 -> 3 conversion happened


def test_evaluate_folder_internal_labels(scored_folder, tmp_path):
    root, truths, _ = scored_folder
    pred_dir = _write_predictions(root, truths, shift=0, release=False)
    with pytest.raises(ValueError, match="unexpected label"):
        # Internal files hold 3, which BraTS 2021 does not use: read as release, an error.
        evaluation.evaluate_folder(pred_dir, root / "data", label_convention="release")
    rows = evaluation.evaluate_folder(pred_dir, root / "data", label_convention="internal")
    assert all(row["scores"]["ET"]["dice"] == 1.0 for row in rows)


def test_evaluate_folder_errors_name_the_problem(scored_folder):
    import nibabel as nib

    root, truths, pred_dir = scored_folder
    first, second = sorted(truths)
    for path in pred_dir.iterdir():
        path.unlink()
    with pytest.raises(ValueError, match="no prediction .* for any of the 2 case"):
        evaluation.evaluate_folder(pred_dir, root / "data")
    _write_predictions(root, truths)
    truth, affine = truths[second]
    nib.save(nib.Nifti1Image(truth[:-1], affine), pred_dir / f"{second}.nii.gz")
    with pytest.raises(ValueError, match="shape"):
        evaluation.evaluate_folder(pred_dir, root / "data")
    moved = affine.copy()
    moved[0, 3] += 1.0
    nib.save(nib.Nifti1Image(truth, moved), pred_dir / f"{second}.nii.gz")
    with pytest.raises(ValueError, match="affine"):
        evaluation.evaluate_folder(pred_dir, root / "data")


def test_evaluate_folder_refuses_a_wrong_grid_before_scoring_anything(scored_folder, monkeypatch):
    import nibabel as nib

    root, truths, pred_dir = scored_folder
    second = sorted(truths)[1]
    truth, affine = truths[second]
    moved = affine.copy()
    moved[1, 3] += 2.0
    nib.save(nib.Nifti1Image(truth, moved), pred_dir / f"{second}.nii.gz")
    scored = []
    monkeypatch.setattr(evaluation, "evaluate_case", lambda *args, **kwargs: scored.append(args))
    with pytest.raises(DataError, match=rf"{second}\.nii\.gz: affine differs"):
        evaluation.evaluate_folder(pred_dir, root / "data")
    assert scored == []  # the first case, on the right grid, was not scored in vain


def test_prediction_with_bytes_flipped_in_the_compressed_stream_is_refused(scored_folder):
    import gzip

    import nibabel as nib

    root, truths, pred_dir = scored_folder
    case_id = sorted(truths)[0]
    path = pred_dir / f"{case_id}.nii.gz"
    raw = gzip.decompress(path.read_bytes())
    # Stored deflate blocks: flipping a voxel byte keeps the stream valid, only the CRC tells.
    content = bytearray(gzip.compress(raw, compresslevel=0))
    offset = int(nib.load(path).dataobj.offset) + 100
    content[10 + 5 + offset] ^= 0x01
    path.write_bytes(bytes(content))

    with pytest.raises(DataError, match=rf"{case_id}\.nii\.gz: the compressed data is corrupt "
                                        r"\(BadGzipFile: CRC check failed"):
        evaluation.evaluate_folder(pred_dir, root / "data")


def test_cli_evaluate_damaged_prediction_is_one_line(scored_folder, capsys):
    import gzip

    from gliseg_nb.cli import main

    root, truths, pred_dir = scored_folder
    case_id = sorted(truths)[0]
    path = pred_dir / f"{case_id}.nii.gz"
    content = bytearray(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=0))
    content[10 + 5 + 352 + 7] ^= 0x01  # a voxel byte: only the CRC tells
    path.write_bytes(bytes(content))

    assert main(["evaluate", str(pred_dir), str(root / "data")]) == 2
    error = capsys.readouterr().err.strip()
    assert "Traceback" not in error
    # The progress bar shares stderr: the error is its last line.
    last = error.splitlines()[-1]
    assert f"{case_id}.nii.gz: the compressed data is corrupt" in last and "CRC" in last


def test_prediction_with_a_damaged_header_names_the_file(scored_folder):
    import gzip
    import struct

    root, truths, pred_dir = scored_folder
    case_id = sorted(truths)[1]
    path = pred_dir / f"{case_id}.nii.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    struct.pack_into("<h", raw, 70, 1234)  # datatype
    path.write_bytes(gzip.compress(bytes(raw)))

    with pytest.raises(DataError, match=rf"{case_id}\.nii\.gz: not a readable prediction "
                                        r"\(HeaderDataError"):
        evaluation.evaluate_folder(pred_dir, root / "data")


def test_cli_evaluate_table_json_csv(scored_folder, capsys):
    from gliseg_nb.cli import main

    root, truths, pred_dir = scored_folder
    csv_path = root / "out" / "scores.csv"
    assert main(["evaluate", str(pred_dir), str(root / "data"), "--csv", str(csv_path)]) == 0
    text = capsys.readouterr().out
    for case_id in truths:
        assert case_id in text
    assert "WT Dice" in text and "median" in text and "q75" in text
    lines = csv_path.read_text().splitlines()
    assert lines[0].split(",")[:3] == ["case_id", "WT_dice", "WT_hd95"]
    assert len(lines) == 1 + len(truths)
    assert not list(csv_path.parent.glob("*.tmp"))

    assert main(["evaluate", str(pred_dir), str(root / "data"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["case_id"] for row in report["cases"]] == sorted(truths)
    assert set(report["summary"]) == {"WT", "TC", "ET"}
    assert 0.0 < report["summary"]["WT"]["dice"]["mean"] < 1.0


def test_cli_evaluate_scores_the_predicted_cases_and_names_the_missing_ones(scored_folder, capsys):
    from gliseg_nb.cli import main

    root, truths, pred_dir = scored_folder
    missing, kept = sorted(truths)
    (pred_dir / f"{missing}.nii.gz").unlink()
    assert main(["evaluate", str(pred_dir), str(root / "data"), "--json"]) == 0
    captured = capsys.readouterr()
    assert [row["case_id"] for row in json.loads(captured.out)["cases"]] == [kept]
    lines = captured.err.strip().splitlines()
    # One line for the folder without a manifest, one naming the missing case and the count.
    assert len(lines) == 2 and all(line.startswith("gliseg-nb evaluate: warning: ") for line in lines)
    assert "no predictions.json" in lines[0]
    assert f"no prediction for 1 of 2 case(s), not scored: {missing}" in lines[1]


def test_cli_evaluate_without_any_prediction_is_one_line_suggesting_case(scored_folder, capsys):
    from gliseg_nb.cli import main

    root, truths, pred_dir = scored_folder
    for path in pred_dir.iterdir():
        path.unlink()
    assert main(["evaluate", str(pred_dir), str(root / "data")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("gliseg-nb evaluate: error: ")
    assert str(pred_dir) in error[0] and "--case" in error[0]


def test_evaluate_only_some_cases(scored_folder, capsys):
    from gliseg_nb.cli import main

    root, truths, pred_dir = scored_folder
    first, second = sorted(truths)
    (pred_dir / f"{second}.nii.gz").unlink()  # not needed when only the first is scored
    rows = evaluation.evaluate_folder(pred_dir, root / "data", case_ids=[first])
    assert [row["case_id"] for row in rows] == [first]
    with pytest.raises(ValueError, match="nonexistent"):
        evaluation.evaluate_folder(pred_dir, root / "data", case_ids=["nonexistent"])
    assert main(["evaluate", str(pred_dir), str(root / "data"), "--case", first, "--json"]) == 0
    assert [row["case_id"] for row in json.loads(capsys.readouterr().out)["cases"]] == [first]


# -- BraTS 2023 lesion-wise scores -----------------------------------------------------
def _ball(shape, centre, radius):
    grid = np.indices(shape)
    return ((grid - np.reshape(centre, (-1, 1, 1, 1))) ** 2).sum(axis=0) <= radius**2


def _lesion_wise_reference(pred, truth, spacing, dilation=3, min_volume=50.0):
    """The challenge's steps on whole volumes, one full-size array per lesion (no cropping)."""
    from scipy import ndimage

    all26 = ndimage.generate_binary_structure(3, 3)
    grow = ndimage.generate_binary_structure(3, 2)
    zones, _ = ndimage.label(ndimage.binary_dilation(truth, grow, iterations=dilation), all26)
    lesions = zones * truth
    pred_cc, n_pred = ndimage.label(pred, all26)
    dices, distances, matched = [], [], set()
    for lesion_id in np.unique(lesions[lesions > 0]):
        lesion = lesions == lesion_id
        near = np.unique(pred_cc[ndimage.binary_dilation(lesion, grow, iterations=dilation)])
        near = [c for c in near if c]
        matched.update(near)
        if lesion.sum() * np.prod(spacing) <= min_volume:
            continue
        mine = np.isin(pred_cc, near)
        dices.append(2 * (mine & lesion).sum() / (mine.sum() + lesion.sum()))
        distances.append(_hd95_reference(mine, lesion, spacing) if near else 374.0)
    false_positives = len(set(range(1, n_pred + 1)) - matched)
    count = len(dices) + false_positives
    if count == 0:
        return 1.0, 0.0
    return sum(dices) / count, (sum(distances) + 374.0 * false_positives) / count


def test_lesion_wise_counts_each_lesion_and_each_false_positive():
    shape = (60, 60, 40)
    found = _ball(shape, (15, 15, 20), 5)
    missed = _ball(shape, (45, 45, 20), 4)
    false_positive = _ball(shape, (15, 45, 20), 3)

    scores = evaluation.lesion_wise_scores(found | false_positive, found | missed)

    # (1 for the found lesion + 0 for the missed one + 0 for the false positive) / 3
    assert scores["lesion_dice"] == pytest.approx(1 / 3)
    assert scores["lesion_hd95"] == pytest.approx((0 + 374 + 374) / 3)
    assert (scores["lesions"], scores["lesions_found"], scores["lesions_missed"],
            scores["false_positive_lesions"]) == (2, 1, 1, 1)
    # The legacy whole-volume Dice hardly notices the missed lesion and the false positive.
    assert evaluation.dice_score(found | false_positive, found | missed) > 0.6


def test_lesions_closer_than_the_dilation_are_one_lesion():
    shape = (50, 50, 30)
    left = _ball(shape, (25, 15, 15), 6)
    right = _ball(shape, (25, 15 + 6 + 6 + 3, 15), 6)  # a 2-voxel gap between them
    assert not (left & right).any()
    scores = evaluation.lesion_wise_scores(left, left | right)
    assert scores["lesions"] == 1 and scores["false_positive_lesions"] == 0
    # One lesion, half of it predicted: its Dice, not a mean of 1 and 0.
    assert scores["lesion_dice"] == pytest.approx(evaluation.dice_score(left, left | right))


def test_small_lesions_are_not_scored_unless_the_voxels_are_large():
    shape = (50, 50, 30)
    big = _ball(shape, (15, 15, 15), 6)
    small = _ball(shape, (38, 38, 15), 2)  # 33 voxels: 33 mm³ at 1 mm, 264 mm³ at 2 mm
    assert 0 < small.sum() <= 50
    at_1mm = evaluation.lesion_wise_scores(big, big | small)
    assert (at_1mm["lesion_dice"], at_1mm["lesions"], at_1mm["lesions_missed"]) == (1.0, 1, 0)
    at_2mm = evaluation.lesion_wise_scores(big, big | small, spacing=(2.0, 2.0, 2.0))
    assert (at_2mm["lesion_dice"], at_2mm["lesions"], at_2mm["lesions_missed"]) == (0.5, 2, 1)


def test_a_prediction_next_to_a_lesion_is_a_miss_not_a_false_positive():
    shape = (40, 40, 30)
    lesion = _ball(shape, (20, 12, 15), 5)
    beside = _ball(shape, (20, 12 + 5 + 3 + 3, 15), 3)  # 2 voxels from the lesion's edge
    scores = evaluation.lesion_wise_scores(beside, lesion)
    assert scores["false_positive_lesions"] == 0 and scores["lesions_found"] == 1
    assert scores["lesion_dice"] == 0.0


@pytest.mark.parametrize("pred_any, truth_any, expected", [
    (False, False, (1.0, 0.0)), (True, False, (0.0, 374.0)), (False, True, (0.0, 374.0))])
def test_lesion_wise_empty_masks(pred_any, truth_any, expected):
    shape = (30, 30, 20)
    blob = _ball(shape, (15, 15, 10), 5)
    empty = np.zeros(shape, dtype=bool)
    scores = evaluation.lesion_wise_scores(blob if pred_any else empty, blob if truth_any else empty)
    assert (scores["lesion_dice"], scores["lesion_hd95"]) == expected


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.0, 1.0, 2.5)])
def test_lesion_wise_matches_the_challenge_steps_on_whole_volumes(rng, spacing):
    shape = (48, 44, 32)
    for _ in range(4):
        truth = _random_blobby_mask(rng, shape, n_blobs=4)
        pred = _random_blobby_mask(rng, shape, n_blobs=4) | np.roll(truth, 2, axis=0)
        scores = evaluation.lesion_wise_scores(pred, truth, spacing)
        dice, distance = _lesion_wise_reference(pred, truth, spacing)
        assert scores["lesion_dice"] == pytest.approx(dice, rel=1e-9)
        assert scores["lesion_hd95"] == pytest.approx(distance, rel=1e-9)


def test_evaluate_case_adds_lesion_wise_scores_only_when_asked(rng):
    truth = np.zeros((30, 30, 20), dtype=np.uint8)
    truth[5:20, 5:20, 5:15] = 2
    truth[8:14, 8:14, 7:12] = 3
    plain = evaluate_case(truth, truth)
    assert "lesion_dice" not in plain["WT"]
    with_lesions = evaluate_case(truth, truth, lesion_wise=True)
    for region in ("WT", "TC", "ET"):
        assert set(evaluation.LESION_METRIC_NAMES) <= set(with_lesions[region])
        assert with_lesions[region]["lesion_dice"] == 1.0
        assert {k: v for k, v in with_lesions[region].items() if k in plain[region]} == plain[region]


def test_cli_evaluate_lesion_wise(scored_folder, capsys):
    from gliseg_nb.cli import main

    root, truths, pred_dir = scored_folder
    csv_path = root / "lesions.csv"
    assert main(["evaluate", str(pred_dir), str(root / "data"), "--lesion-wise", "--csv", str(csv_path)]) == 0
    text = capsys.readouterr().out
    assert "WT LesDice" in text and "lesion_hd95" in text
    header = csv_path.read_text().splitlines()[0].split(",")
    assert "WT_lesion_dice" in header and "ET_false_positive_lesions" in header
    assert main(["evaluate", str(pred_dir), str(root / "data"), "--lesion-wise", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "lesion_dice" in report["summary"]["TC"]
    assert all("lesions" in row["scores"]["WT"] for row in report["cases"])


def test_lesion_wise_scores_do_not_depend_on_the_empty_space_around(rng):
    # The masks sit in a corner of a much larger volume: the crop must not change a score.
    truth = _ball((30, 30, 20), (12, 12, 10), 6) | _ball((30, 30, 20), (24, 24, 10), 3)
    pred = np.roll(truth, 2, axis=1) | (rng.random(truth.shape) < 0.01)
    big_truth = np.zeros((120, 100, 60), dtype=bool)
    big_pred = np.zeros_like(big_truth)
    big_truth[1:31, 60:90, 38:58] = truth
    big_pred[1:31, 60:90, 38:58] = pred
    assert evaluation.lesion_wise_scores(big_pred, big_truth) == evaluation.lesion_wise_scores(pred, truth)


@pytest.mark.parametrize("where", ["inside", "at the edge"])
def test_evaluate_case_scores_a_crop_exactly_as_the_whole_volume(rng, where):
    """evaluate_case scores only the box around the tumour; nothing may change by it."""
    from gliseg_nb.labels import REGIONS
    from gliseg_nb.metrics.evaluation import _region_scores, lesion_wise_scores

    shape = (48, 40, 36)
    pred = np.zeros(shape, dtype=np.uint8)
    truth = np.zeros(shape, dtype=np.uint8)
    corner = (20, 14, 10) if where == "inside" else (0, 0, 22)  # touching three faces of the array
    box = tuple(slice(c, c + 14) for c in corner)
    for labels in (pred, truth):
        part = np.zeros((14, 14, 14), dtype=np.uint8)
        for label in (2, 1, 3):
            part[_random_blobby_mask(rng, (14, 14, 14), n_blobs=2)] = label
        labels[box] = part
    pred[40:43, 30:33, 2:4] = 2  # a far false positive: a second component, a far border
    spacing = (1.0, 1.2, 2.0)
    scores = evaluate_case(pred, truth, spacing, lesion_wise=True)
    voxel_ml = float(np.prod(spacing)) / 1000
    for region, classes in REGIONS.items():
        pred_mask, truth_mask = np.isin(pred, classes), np.isin(truth, classes)
        expected = _region_scores(pred_mask, truth_mask, spacing, voxel_ml)  # the whole volume
        expected.update(lesion_wise_scores(pred_mask, truth_mask, spacing))
        assert scores[region].keys() == expected.keys()
        for metric, value in expected.items():
            assert scores[region][metric] == pytest.approx(value, rel=1e-12), (region, metric)


def test_evaluate_case_of_two_empty_volumes():
    empty = np.zeros((10, 12, 8), dtype=np.uint8)
    scores = evaluate_case(empty, empty)
    for region in ("WT", "TC", "ET"):
        assert (scores[region]["dice"], scores[region]["hd95"]) == (1.0, 0.0)
        assert (scores[region]["sensitivity"], scores[region]["specificity"]) == (1.0, 1.0)
