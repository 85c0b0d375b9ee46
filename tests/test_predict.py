"""Tests of gliseg_nb.predict: whole-volume inference back to the original grid, NIfTI output
in each release's labels, and the ``predict``/``evaluate`` commands on a tiny run folder."""

import json

import keras
import nibabel as nib
import numpy as np
import pytest

from gliseg_nb import Config, RunError
from gliseg_nb.cli import main
from gliseg_nb.data import find_cases, load_case
from gliseg_nb.model import build_unet
from gliseg_nb.preprocessing import preprocess_case
from gliseg_nb.predict import (
    _normalize_like_training,
    load_trained,
    predict_case,
    remove_small_components,
    remove_small_enhancing,
    write_prediction,
)
from gliseg_nb._preprocess import resize_images
from layout_fixtures import FIXTURE_AFFINE, write_layout

# Non-square in-plane grid: a transposed resize would change the shape and fail loudly.
SHAPE = (26, 22, 12)
EMPTY_SLICES = (0, 1, 11)  # no brain: predicted as background without running the model


def tiny_config(**overrides):
    """A config small enough to build and run a U-Net in a fraction of a second."""
    values = dict(image_size=16, depth=2, base_filters=4, slice_start=2, n_slices=8, batch_size=8)
    return Config.preset("quick", **{**values, **overrides})


def _blank_slices(dataset):
    """Zero the first and last slices (and a corner column) of every image: 'outside the brain'."""
    for path in sorted(dataset.rglob("*.nii*")):
        if path.name.startswith("._") or "seg" in path.name or "labelsTr" in path.parts:
            continue
        image = nib.load(str(path))
        data = np.asarray(image.dataobj).copy()
        for z in EMPTY_SLICES:
            data[:, :, z] = 0
        data[:3, :3] = 0
        nib.save(nib.Nifti1Image(data, image.affine, image.header), str(path))


def make_dataset(tmp_path, layout="brats2020", with_seg=True, n_cases=1):
    dataset = write_layout(tmp_path / layout, layout, n_cases=n_cases, shape=SHAPE, with_seg=with_seg)
    _blank_slices(dataset)
    return dataset


def constant_class_model(config, favoured_class):
    """An untrained U-Net whose softmax always favours one class (final bias dominates)."""
    keras.utils.set_random_seed(0)
    model = build_unet(config)
    head = model.get_layer("class_probabilities")
    kernel, bias = head.get_weights()
    bias = np.zeros_like(bias)
    bias[favoured_class] = 20.0
    head.set_weights([np.zeros_like(kernel), bias])
    return model


def bright_flair_model(config):
    """A pointwise model: class 3 where the (normalised) FLAIR is high, else background.

    Pointwise, so its output lands exactly where the input feature is: any transposition
    or missing un-flip in the resizing path moves the predicted region.
    """
    inputs = keras.Input(config.input_shape)
    logits = keras.layers.Conv2D(config.n_classes, 1, name="pointwise")(inputs)
    outputs = keras.layers.Softmax(name="class_probabilities")(logits)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((1, 1, config.n_channels, config.n_classes), dtype=np.float32)
    kernel[0, 0, 0, 3] = 10.0  # FLAIR drives class 3
    bias = np.zeros(config.n_classes, dtype=np.float32)
    bias[3] = -10.0  # ... above one standard deviation over the mean
    model.get_layer("pointwise").set_weights([kernel, bias])
    return model


def test_prediction_is_on_the_original_grid(tmp_path):
    config = tiny_config()
    case = find_cases(make_dataset(tmp_path))[0]
    labels = predict_case(build_unet(config), case, config)
    assert labels.shape == SHAPE
    assert labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    # Outside the brain: background, both whole slices and the zeroed corner.
    assert not labels[:, :, list(EMPTY_SLICES)].any()
    assert not labels[:3, :3].any()


def test_every_brain_slice_is_predicted_not_only_training_slices(tmp_path):
    config = tiny_config(slice_start=4, n_slices=2)  # trains on slices 4-5 only
    case = find_cases(make_dataset(tmp_path))[0]
    labels = predict_case(constant_class_model(config, 2), case, config)
    brain_slices = [z for z in range(SHAPE[2]) if z not in EMPTY_SLICES]
    for z in brain_slices:
        assert (labels[3:, 3:, z] == 2).all(), f"slice {z} was not predicted"
    # The model says edema everywhere; outside the brain the answer is still background.
    assert not labels[:3, :3].any()
    assert not labels[:, :, list(EMPTY_SLICES)].any()


def test_normalisation_matches_training_exactly(tmp_path):
    config = tiny_config(slice_start=3, n_slices=7, slice_step=2)
    case = find_cases(make_dataset(tmp_path))[0]
    x_training, _ = preprocess_case(case, config)
    data = load_case(case, modalities=list(config.modalities))
    normalized = np.stack(_normalize_like_training([data.images[m] for m in config.modalities], config), axis=-1)
    x_predict = resize_images(normalized[:, :, list(config.slice_indices)], config.image_size)
    np.testing.assert_array_equal(x_predict, x_training)


@pytest.mark.parametrize("normalization", ["zscore", "max"])
def test_slices_outside_the_training_slab_get_the_same_scale(tmp_path, normalization):
    config = tiny_config(slice_start=3, n_slices=6, normalization=normalization)
    case = find_cases(make_dataset(tmp_path))[0]
    data = load_case(case, modalities=list(config.modalities))
    volumes = [data.images[m].copy() for m in config.modalities]
    for volume in volumes:
        volume[:, :, 10] = volume[:, :, 5]  # slice 10 (outside the slab 3-8) copies slice 5 (inside)
    normalized = np.stack(_normalize_like_training(volumes, config), axis=-1)
    np.testing.assert_allclose(normalized[:, :, 10], normalized[:, :, 5], rtol=1e-5, atol=1e-5)
    assert np.abs(normalized[:, :, 5]).max() > 0.5  # not trivially zero
    assert not normalized[:, :, list(EMPTY_SLICES)].any()


def test_max_normalisation_matches_training(tmp_path):
    config = tiny_config(normalization="max", slice_start=2, n_slices=6)
    case = find_cases(make_dataset(tmp_path))[0]
    x_training, _ = preprocess_case(case, config)
    data = load_case(case, modalities=list(config.modalities))
    normalized = np.stack(_normalize_like_training([data.images[m] for m in config.modalities], config), axis=-1)
    x_predict = resize_images(normalized[:, :, list(config.slice_indices)], config.image_size)
    np.testing.assert_array_equal(x_predict, x_training)


def _write_blob_case(tmp_path):
    """A BraTS 2021 case whose FLAIR is bright in an off-centre, off-diagonal block."""
    dataset = make_dataset(tmp_path, layout="brats2021")
    case = find_cases(dataset)[0]
    image = nib.load(str(case.modalities["flair"]))
    data = np.asarray(image.dataobj).astype(np.int16)
    data[data > 0] = 100
    data[4:12, 12:20, 3:9] = 400  # rows 4-11, columns 12-19: not symmetric under a transpose
    nib.save(nib.Nifti1Image(data, image.affine, image.header), str(case.modalities["flair"]))
    expected = np.zeros(SHAPE, dtype=bool)
    expected[4:12, 12:20, 3:9] = True
    return case, expected


def test_predictions_land_where_the_features_are(tmp_path):
    config = tiny_config(image_size=16)
    case, expected = _write_blob_case(tmp_path)
    labels = predict_case(bright_flair_model(config), case, config)
    enhancing = labels == 3
    # Bilinear resizing blurs the edges by a pixel or two: compare with a tolerance.
    overlap = np.count_nonzero(enhancing & expected) / np.count_nonzero(enhancing | expected)
    assert overlap > 0.6
    assert not enhancing[:, :, :3].any() and not enhancing[:, :, 9:].any()
    assert not enhancing[14:].any() and not enhancing[:, :9].any()


def test_flip_averaging_is_undone_correctly(tmp_path):
    # A pointwise model is flip-equivariant: averaging un-flipped predictions changes nothing.
    config = tiny_config()
    case, _ = _write_blob_case(tmp_path)
    model = bright_flair_model(config)
    plain = predict_case(model, case, config, tta_flips="none")
    averaged = predict_case(model, case, config, tta_flips=True)
    np.testing.assert_array_equal(plain, averaged)


def test_probabilities_on_the_original_grid(tmp_path):
    config = tiny_config()
    case, _ = _write_blob_case(tmp_path)
    # The labels before the small-component clean-up, so that they are the probabilities' argmax.
    labels, probabilities = predict_case(bright_flair_model(config), case, config, min_component_voxels=0,
                                         return_probabilities=True)
    assert probabilities.shape == SHAPE + (config.n_classes,)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    brain = labels > 0
    np.testing.assert_array_equal(np.argmax(probabilities, axis=-1)[brain], labels[brain])


def test_remove_small_enhancing():
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[2:6, 2:6, 2:6] = 2
    labels[3:5, 3:5, 3:5] = 3  # 8 enhancing voxels
    kept = remove_small_enhancing(labels, 8)
    np.testing.assert_array_equal(kept, labels)
    removed = remove_small_enhancing(labels, 9)
    assert not (removed == 3).any()
    assert np.count_nonzero(removed == 1) == 8
    assert np.count_nonzero(removed == 2) == np.count_nonzero(labels == 2)
    with pytest.raises(ValueError):
        remove_small_enhancing(labels, -1)


def test_min_et_voxels_in_predict_case(tmp_path):
    config = tiny_config()
    case = find_cases(make_dataset(tmp_path))[0]
    model = constant_class_model(config, 3)
    assert (predict_case(model, case, config) == 3).any()
    relabelled = predict_case(model, case, config, min_et_voxels=10**7)
    assert not (relabelled == 3).any() and (relabelled == 1).any()


@pytest.mark.parametrize(
    "layout, convention, enhancing_on_disk",
    [
        ("brats2020", "release", 4),
        ("brats2023-gli", "release", 3),
        ("msd", "release", 3),
        ("brats2020", "internal", 3),
    ],
)
def test_written_file_has_source_geometry_and_release_labels(tmp_path, layout, convention, enhancing_on_disk):
    config = tiny_config()
    case = find_cases(make_dataset(tmp_path, layout=layout, with_seg=False))[0]
    assert case.seg is None  # validation data: nothing to compare with, still predicted
    labels = predict_case(constant_class_model(config, 3), case, config)
    labels[5, 5, 5] = 1  # necrosis too: MSD stores it as 2
    path = write_prediction(labels, case, tmp_path / "out", label_convention=convention)
    assert path.name == f"{case.case_id}.nii.gz"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left
    written = nib.load(str(path))
    assert written.shape == SHAPE
    np.testing.assert_allclose(written.affine, FIXTURE_AFFINE, atol=1e-5)
    assert written.get_data_dtype() == np.uint8
    data = np.asanyarray(written.dataobj)
    assert data.dtype == np.uint8
    values = set(np.unique(data).tolist())
    assert enhancing_on_disk in values
    assert values <= {0, 1, 2, enhancing_on_disk}
    necrosis_on_disk = 2 if (layout == "msd" and convention == "release") else 1
    assert data[5, 5, 5] == necrosis_on_disk


def test_write_prediction_refuses_wrong_grid(tmp_path):
    case = find_cases(make_dataset(tmp_path))[0]
    with pytest.raises(ValueError, match=case.case_id):
        write_prediction(np.zeros((5, 5, 5), np.uint8), case, tmp_path / "out")


def _tiny_run_folder(tmp_path, config, favoured_class=3):
    run = tmp_path / "run"
    run.mkdir()
    constant_class_model(config, favoured_class).save(run / "best.keras")
    config.save(run / "config.json")
    return run


def test_cli_predict_then_evaluate(tmp_path, capsys):
    config = tiny_config()
    dataset = make_dataset(tmp_path, n_cases=2)
    run = _tiny_run_folder(tmp_path, config)
    out = tmp_path / "predictions"
    assert main(["predict", str(run), str(dataset), "--out", str(out)]) == 0
    files = sorted(p.name for p in out.iterdir() if p.name != "predictions.json")
    assert files == sorted(f"{case.case_id}.nii.gz" for case in find_cases(dataset))
    first = nib.load(str(out / files[0]))
    assert 4 in np.unique(np.asanyarray(first.dataobj))  # brats2020: enhancing written as 4
    capsys.readouterr()

    assert main(["evaluate", str(out), str(dataset), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["cases"]) == 2
    # Everything in the brain predicted enhancing: ET sensitivity 1, Dice well below 1.
    for row in report["cases"]:
        assert row["scores"]["ET"]["sensitivity"] == 1.0
        assert 0.0 < row["scores"]["ET"]["dice"] < 0.5


def test_cli_predict_with_a_model_file_and_errors(tmp_path, capsys):
    config = tiny_config()
    dataset = make_dataset(tmp_path, with_seg=False)
    run = _tiny_run_folder(tmp_path, config)
    out = tmp_path / "internal"
    assert main(["predict", str(run / "best.keras"), str(dataset), "--out", str(out), "--labels", "internal"]) == 0
    (written,) = out.glob("*.nii.gz")
    assert set(np.unique(np.asanyarray(nib.load(str(written)).dataobj))) == {0, 3}
    # A model file without its settings: one line naming the file.
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (run / "best.keras").rename(lonely / "model.keras")
    capsys.readouterr()
    assert main(["predict", str(lonely / "model.keras"), str(dataset), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "model.keras" in error and "config.json" in error and len(error.strip().splitlines()) == 1


def test_run_folder_model_choice(tmp_path):
    from gliseg_nb import train
    from gliseg_nb.predict import find_model_file

    assert train.BEST_MODEL_FILE == "best.keras" and train.CONFIG_FILE == "config.json"
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(RunError, match="no .keras"):
        find_model_file(run)
    for name in ("last-epoch-002.keras", "last-epoch-010.keras", ".best.tmp-1.keras"):
        (run / name).write_bytes(b"")
    assert find_model_file(run).name == "last-epoch-010.keras"
    (run / "best.keras").write_bytes(b"")
    assert find_model_file(run).name == "best.keras"


def test_load_trained_checks_input_shape(tmp_path):
    config = tiny_config()
    run = _tiny_run_folder(tmp_path, config)
    model, loaded = load_trained(run)
    assert loaded == config and model.input_shape[1:] == config.input_shape
    Config.preset("quick", image_size=32, depth=2).save(run / "config.json")
    with pytest.raises(ValueError, match="does not match"):
        load_trained(run)


def test_remove_small_components_keeps_the_tumour_and_erases_specks():
    labels = np.zeros((30, 30, 20), dtype=np.uint8)
    labels[5:15, 5:15, 5:15] = 2
    labels[8:12, 8:12, 8:12] = 3  # one tumour of 1000 voxels, enhancing inside
    labels[25:27, 25:27, 15:17] = 2  # an 8-voxel speck
    labels[20, 3, 3] = 3  # a 1-voxel enhancing speck
    labels[15, 15, 15] = 2  # touches the tumour by a corner: same component (26-connectivity)
    cleaned = remove_small_components(labels, 50)
    expected = labels.copy()
    expected[25:27, 25:27, 15:17] = 0
    expected[20, 3, 3] = 0
    np.testing.assert_array_equal(cleaned, expected)
    assert remove_small_components(labels, 0) is labels
    assert remove_small_components(labels, 1) is labels  # nothing is smaller than 1 voxel


def test_remove_small_components_never_erases_the_largest():
    labels = np.zeros((20, 20, 20), dtype=np.uint8)
    labels[2:4, 2:4, 2:4] = 2  # 8 voxels
    labels[10:13, 10:13, 10:13] = 1  # 27 voxels: the largest
    cleaned = remove_small_components(labels, 1000)
    assert np.count_nonzero(cleaned) == 27 and (cleaned[10:13, 10:13, 10:13] == 1).all()
    with pytest.raises(ValueError):
        remove_small_components(labels, -1)


def test_min_component_voxels_reaches_predict_case_and_the_command(tmp_path, capsys):
    config = tiny_config()
    case = find_cases(make_dataset(tmp_path))[0]
    model = constant_class_model(config, 2)
    plain = predict_case(model, case, config, min_component_voxels=0)
    cleaned = predict_case(model, case, config, min_component_voxels=10**7)
    # A constant prediction is one component per connected piece of brain: the largest stays.
    assert 0 < np.count_nonzero(cleaned) <= np.count_nonzero(plain)
    from gliseg_nb.cli import build_parser

    args = build_parser().parse_args(["predict", "run", "data", "--out", "o", "--min-component-voxels", "500"])
    assert args.min_component_voxels == 500


def test_default_prediction_averages_four_flips_and_erases_small_components(tmp_path):
    # An untrained U-Net is not mirror-symmetric, so the flip average differs from one pass.
    config = tiny_config()
    keras.utils.set_random_seed(3)
    model = build_unet(config)
    data = load_case(find_cases(make_dataset(tmp_path))[0], modalities=list(config.modalities))
    _, default = predict_case(model, data, config, return_probabilities=True)
    _, four = predict_case(model, data, config, tta_flips="all", return_probabilities=True)
    _, mirrored = predict_case(model, data, config, tta_flips="lr", return_probabilities=True)
    _, once = predict_case(model, data, config, tta_flips="none", return_probabilities=True)
    np.testing.assert_array_equal(default, four)
    assert np.abs(default - once).max() > 1e-4 and np.abs(default - mirrored).max() > 1e-4
    # A bright speck far from the bright blob: a second, small component, erased by default
    # (under 1000 voxels; the blob, the largest, stays) and kept with min_component_voxels=0.
    case, blob = _write_blob_case(tmp_path / "blob")
    image = nib.load(str(case.modalities["flair"]))
    flair = np.asarray(image.dataobj).copy()
    flair[19:23, 3:7, 4:8] = 400
    nib.save(nib.Nifti1Image(flair, image.affine, image.header), str(case.modalities["flair"]))
    bright = bright_flair_model(config)
    kept = predict_case(bright, case, config, min_component_voxels=0)
    cleaned = predict_case(bright, case, config)
    assert kept[19:23, 3:7, 4:8].any() and not cleaned[19:23, 3:7, 4:8].any()
    np.testing.assert_array_equal(cleaned[blob], kept[blob])
    from gliseg_nb.predict import DEFAULT_MIN_COMPONENT_VOXELS, DEFAULT_TTA

    assert (DEFAULT_TTA, DEFAULT_MIN_COMPONENT_VOXELS) == ("all", 1000)


def test_predict_command_flips_by_default():
    from gliseg_nb.cli import build_parser

    parse = build_parser().parse_args
    base = ["predict", "run", "data", "--out", "o"]
    assert parse(base).tta == "all" and parse(base).min_component_voxels == 1000
    assert parse(base + ["--tta"]).tta == "all"  # the flag of earlier versions: all four flips
    assert parse(base + ["--tta", "lr"]).tta == "lr"
    assert parse(base + ["--no-tta"]).tta == parse(base + ["--tta", "none"]).tta == "none"
    for wrong in (base + ["--tta", "lr", "--no-tta"], base + ["--tta", "ud"]):
        with pytest.raises(SystemExit):
            parse(wrong)


def test_a_bare_tta_before_the_paths_still_means_four_flips():
    # Earlier versions' `--tta` took no value; `predict --tta RUN DATA` must not read RUN as it.
    from gliseg_nb.cli import _bare_tta_means_all, build_parser

    argv = _bare_tta_means_all(["predict", "--tta", "run", "data", "--out", "o"])
    assert argv == ["predict", "--tta", "all", "run", "data", "--out", "o"]
    args = build_parser().parse_args(argv)
    assert (args.tta, args.model.name, args.data.name) == ("all", "run", "data")
    assert _bare_tta_means_all(["predict", "run", "data", "--tta", "lr"])[-1] == "lr"
    assert _bare_tta_means_all(["predict", "run", "data", "--tta"])[-1] == "all"


def test_write_prediction_names_an_unreadable_reference_image(tmp_path):
    # The reference image is opened by the loader's own NIfTI reader: a damaged header is a
    # one-line DataError naming the file, not nibabel's HeaderDataError.
    import gzip
    import struct

    from gliseg_nb.errors import DataError

    write_layout(tmp_path / "data", "brats2021", n_cases=1)
    (case,) = find_cases(tmp_path / "data")
    path = case.modalities["flair"]
    raw = bytearray(gzip.decompress(path.read_bytes()))
    struct.pack_into("<h", raw, 70, 1234)  # datatype
    path.write_bytes(gzip.compress(bytes(raw)))

    with pytest.raises(DataError, match=r"BraTS2021_00001_flair\.nii\.gz: not a readable NIfTI "
                                        r"file \(HeaderDataError"):
        write_prediction(np.zeros((24, 24, 16), np.uint8), case, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
