"""The three options "beyond the report" (notebook 07): region outputs (three sigmoids,
WT/TC/ET), 2.5-D input (neighbouring slices as channels) and left-right test-time flips.
Each is off by default, and with it off everything is as before."""

import keras
import numpy as np
import pytest

import gliseg_nb
from gliseg_nb import Config, ConfigError
from gliseg_nb._cache import CACHE_FORMAT, CACHED_SETTINGS, _digest, settings_key
from gliseg_nb._preprocess import context_rows, stack_context
from gliseg_nb.course import run_key
from gliseg_nb.data import find_cases, load_case
from gliseg_nb.labels import REGIONS, decode_outputs, labels_to_regions, regions_to_labels
from gliseg_nb.losses import CEDiceLoss, RegionLoss, get_loss, region_targets
from gliseg_nb.metrics.keras_metrics import DiceScore, RegionDiceScore, decode_regions, default_metrics
from gliseg_nb.model import build_unet
from gliseg_nb.predict import (
    _network_inputs,
    _normalize_like_training,
    _tta_flip_set,
    _upsample_probabilities,
    predict_case,
)
from gliseg_nb.preprocessing import preprocess_case
from test_predict import SHAPE, _write_blob_case, make_dataset, tiny_config


# -- defaults: nothing changes -------------------------------------------------------------
def test_defaults_keep_the_report_network_and_the_cache_keys():
    for config in (Config(), Config.preset("quick")):
        assert config.outputs == "softmax" and config.context_slices == 0
        assert config.n_channels == len(config.modalities) and config.n_outputs == config.n_classes
        # Slice caches and cached runs made before the options existed keep their keys.
        before = [n for n in CACHED_SETTINGS if n != "context_slices"]
        old_key = _digest({"format": CACHE_FORMAT, "settings": {n: getattr(config, n) for n in before}})
        assert settings_key(config) == old_key
        assert settings_key(config.replace(context_slices=1)) != old_key
        old_fields = {k: v for k, v in config.to_dict().items() if k not in ("outputs", "context_slices")}
        assert config.key_dict() == old_fields
        identity = {"data_dir": "x", "files": []}
        assert run_key(config, identity) != run_key(config.replace(outputs="regions"), identity)
    model = build_unet(Config.preset("quick"))
    assert model.output_shape == (None, 64, 64, 4)
    assert model.layers[-1].name == "class_probabilities"
    assert build_unet().count_params() == 7_759_908  # the report's network, unchanged
    assert isinstance(get_loss(Config.preset("quick")), CEDiceLoss)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="outputs must be one of"):
        Config(outputs="sigmoid")
    with pytest.raises(ConfigError, match="n_classes=4"):
        Config(outputs="regions", n_classes=3)
    with pytest.raises(ConfigError, match="context_slices must be >= 0"):
        Config(context_slices=-1)
    with pytest.raises(ConfigError, match="context_slices must be int"):
        Config(context_slices=1.5)


# -- region outputs --------------------------------------------------------------------------
def test_regions_round_trip_every_label():
    labels = np.array([[0, 1], [2, 3]])
    regions = labels_to_regions(labels)
    assert regions.shape == (2, 2, 3)
    # WT, TC, ET in that order; enhancing tumour is in all three.
    np.testing.assert_array_equal(regions[1, 1], [1, 1, 1])
    np.testing.assert_array_equal(regions[0, 1], [1, 1, 0])
    np.testing.assert_array_equal(regions[1, 0], [1, 0, 0])
    np.testing.assert_array_equal(regions_to_labels(regions), labels)
    assert list(REGIONS) == ["WT", "TC", "ET"]


def test_region_decoding_lets_the_innermost_region_win():
    # (p_WT, p_TC, p_ET) -> class: independent sigmoids need not be nested.
    cases = {
        (0.2, 0.1, 0.1): 0,
        (0.9, 0.1, 0.1): 2,
        (0.9, 0.8, 0.1): 1,
        (0.9, 0.8, 0.7): 3,
        (0.1, 0.1, 0.7): 3,  # ET alone still counts as enhancing, as in BraTS
        (0.1, 0.6, 0.2): 1,
        (0.5, 0.5, 0.5): 0,  # strictly above the threshold
    }
    probabilities = np.array(list(cases), dtype=np.float32)
    np.testing.assert_array_equal(regions_to_labels(probabilities), list(cases.values()))
    np.testing.assert_array_equal(decode_outputs(probabilities, "regions"), list(cases.values()))
    # The tensor version used by the training metrics gives the same classes.
    onehot = keras.ops.convert_to_numpy(decode_regions(probabilities))
    np.testing.assert_array_equal(np.argmax(onehot, axis=-1), list(cases.values()))
    with pytest.raises(ConfigError, match="3 channels"):
        regions_to_labels(np.zeros((2, 4)))


def test_decoding_agrees_with_the_tensor_version_on_random_outputs(rng):
    probabilities = rng.random((5, 7, 9, 3)).astype(np.float32)
    onehot = keras.ops.convert_to_numpy(decode_regions(probabilities))
    np.testing.assert_array_equal(np.argmax(onehot, axis=-1), regions_to_labels(probabilities))
    softmax = rng.random((4, 4)).astype(np.float32)
    np.testing.assert_array_equal(decode_outputs(softmax), np.argmax(softmax, axis=-1))


def _reference_region_loss(onehot, predicted, weights=None, smooth=1.0):
    """BCE (mean over regions and pixels, pixels weighted by their class) + 1 - mean soft Dice."""
    labels = np.argmax(onehot, axis=-1)
    targets = labels_to_regions(labels)
    p = np.clip(predicted, 1e-7, 1 - 1e-7)
    bce = -(targets * np.log(p) + (1 - targets) * np.log(1 - p)).mean(axis=-1)
    if weights is not None:
        bce = bce * np.asarray(weights)[labels]
    dice = [(2 * (targets[..., r] * predicted[..., r]).sum() + smooth)
            / (targets[..., r].sum() + predicted[..., r].sum() + smooth) for r in range(3)]
    return bce.reshape(len(bce), -1).mean(axis=1) + 1 - np.mean(dice)


@pytest.mark.parametrize("weights", [None, (1.0, 3.0, 1.0, 3.0)])
def test_region_loss_is_bce_plus_region_dice(rng, weights):
    labels = rng.integers(0, 4, size=(3, 8, 8))
    onehot = np.eye(4, dtype=np.float32)[labels]
    predicted = rng.uniform(0.01, 0.99, size=(3, 8, 8, 3)).astype(np.float32)
    loss = RegionLoss(weights)
    values = keras.ops.convert_to_numpy(loss.call(onehot, predicted))
    np.testing.assert_allclose(values, _reference_region_loss(onehot, predicted, weights), rtol=1e-4)
    # A perfect prediction costs (almost) nothing.
    perfect = keras.ops.convert_to_numpy(loss.call(onehot, labels_to_regions(labels)))
    assert perfect.max() < 1e-4
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(region_targets(onehot)), labels_to_regions(labels))
    # It saves and loads with the model (registered, with its settings).
    again = RegionLoss.from_config(loss.get_config())
    assert again.class_weights == loss.class_weights


def test_region_config_builds_a_sigmoid_head_and_its_loss():
    config = Config.preset("quick", outputs="regions")
    model = build_unet(config)
    assert model.output_shape == (None, 64, 64, 3)
    assert model.layers[-1].name == "region_probabilities"
    out = keras.ops.convert_to_numpy(model(np.random.default_rng(0).normal(size=(2, 64, 64, 4)).astype("float32")))
    assert out.min() >= 0 and out.max() <= 1
    assert not np.allclose(out.sum(axis=-1), 1.0)  # independent sigmoids, not a softmax
    for name, (ce, dice) in {"categorical_crossentropy": (1, 0), "dice": (0, 1), "ce+dice": (1, 1),
                             "ce+region_dice": (1, 1)}.items():
        loss = get_loss(config.replace(loss=name))
        assert isinstance(loss, RegionLoss) and (loss.ce_weight, loss.dice_weight) == (ce, dice)
        assert loss.class_weights == config.class_weights


def test_training_metrics_score_region_outputs_like_class_outputs(rng):
    labels = rng.integers(0, 4, size=(2, 16, 16))
    onehot = np.eye(4, dtype=np.float32)[labels]
    # A region network that gets every pixel right scores 1 ...
    perfect = labels_to_regions(labels)
    for metric in default_metrics(4, outputs="regions"):
        metric.update_state(onehot, perfect)
        for name, value in metric.result().items():
            assert float(value) == pytest.approx(1.0), name
    # ... and an imperfect one scores as a softmax network predicting its decoded classes.
    guess = rng.random((2, 16, 16, 3)).astype(np.float32)
    decoded = np.eye(4, dtype=np.float32)[regions_to_labels(guess)]
    for region in REGIONS:
        on_regions, on_classes = RegionDiceScore(region, outputs="regions"), RegionDiceScore(region)
        on_regions.update_state(onehot, guess)
        on_classes.update_state(onehot, decoded)
        assert float(on_regions.result()) == pytest.approx(float(on_classes.result()))
        assert float(on_regions.result()) < 0.99
    mean_regions, mean_classes = DiceScore(outputs="regions"), DiceScore()
    mean_regions.update_state(onehot, guess)
    mean_classes.update_state(onehot, decoded)
    assert float(mean_regions.result()) == pytest.approx(float(mean_classes.result()))
    assert DiceScore.from_config(mean_regions.get_config()).outputs == "regions"


def pointwise_region_model(config):
    """A 1x1 model: all three regions where the normalised FLAIR is high."""
    inputs = keras.Input(config.input_shape)
    outputs = keras.layers.Conv2D(3, 1, activation="sigmoid", name="pointwise")(inputs)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((1, 1, config.n_channels, 3), dtype=np.float32)
    kernel[0, 0, 0, :] = 10.0
    model.get_layer("pointwise").set_weights([kernel, np.full(3, -10.0, dtype=np.float32)])
    return model


def test_predict_case_decodes_region_outputs(tmp_path):
    config = tiny_config(outputs="regions")
    case, expected = _write_blob_case(tmp_path)
    # The labels before the small-component clean-up, so that they are the decoded probabilities.
    labels, probabilities = predict_case(pointwise_region_model(config), case, config, min_component_voxels=0,
                                         return_probabilities=True)
    assert labels.shape == SHAPE and probabilities.shape == SHAPE + (3,)
    enhancing = labels == 3
    overlap = np.count_nonzero(enhancing & expected) / np.count_nonzero(enhancing | expected)
    assert overlap > 0.6
    brain = np.any(probabilities > 0, axis=-1)
    np.testing.assert_array_equal(labels[brain], regions_to_labels(probabilities[brain]))
    assert not labels[~brain].any()


# -- 2.5-D input -----------------------------------------------------------------------------
def test_context_rows_and_stacking():
    rows = context_rows([0, 1, 5], 1, depth=6)
    np.testing.assert_array_equal(rows, [[0, 0, 1], [0, 1, 2], [4, 5, 5]])  # ends repeat
    slices = np.arange(6, dtype=np.float32)[:, None, None, None] * np.array([1.0, 10.0], dtype=np.float32)
    stacked = stack_context(np.broadcast_to(slices, (6, 2, 3, 2)), rows)
    assert stacked.shape == (3, 2, 3, 6)
    # Channels grouped by slice: (lower: flair, t1ce), (centre: ...), (upper: ...).
    np.testing.assert_array_equal(stacked[2, 0, 0], [4, 40, 5, 50, 5, 50])


@pytest.mark.parametrize("slice_step", [1, 2])
def test_context_channels_are_the_neighbouring_slices(tmp_path, slice_step):
    base = tiny_config(slice_start=0, n_slices=10, slice_step=slice_step)
    config = base.replace(context_slices=1)
    case = find_cases(make_dataset(tmp_path))[0]
    x_plain, y_plain = preprocess_case(case, base)
    x, y = preprocess_case(case, config)
    channels = len(config.modalities)
    assert config.n_channels == 3 * channels and x.shape == x_plain.shape[:3] + (3 * channels,)
    np.testing.assert_array_equal(y, y_plain)
    # The centre slice's channels are the 2-D input, bit for bit.
    np.testing.assert_array_equal(x[..., channels:2 * channels], x_plain)
    # Slice 0 has no lower neighbour: it repeats itself.
    np.testing.assert_array_equal(x[0, ..., :channels], x[0, ..., channels:2 * channels])
    # The upper neighbour of a slice is the next slice of the volume (not the next selected
    # one): compared with every slice of the same slab (hence the same normalisation).
    last = config.slice_indices[-1]
    every = preprocess_case(case, base.replace(slice_step=1, n_slices=last + 1))[0]
    for row, z in enumerate(config.slice_indices[:-1]):
        np.testing.assert_array_equal(x[row, ..., 2 * channels:], every[z + 1])
    # The 2.5-D model takes them.
    assert build_unet(config).input_shape == (None, 16, 16, 3 * channels)


def test_prediction_feeds_the_same_context_as_training(tmp_path):
    config = tiny_config(slice_start=3, n_slices=7, slice_step=2, context_slices=2)
    case = find_cases(make_dataset(tmp_path))[0]
    x_training, _ = preprocess_case(case, config)
    data = load_case(case, modalities=list(config.modalities))
    volumes = [data.images[m] for m in config.modalities]
    x_predict = _network_inputs(_normalize_like_training(volumes, config), np.array(config.slice_indices), config)
    np.testing.assert_array_equal(x_predict, x_training)
    labels = predict_case(build_unet(config), data, config)
    assert labels.shape == SHAPE


@pytest.mark.slow
def test_fit_trains_a_region_model_with_context(tmp_path):
    from gliseg_nb.dataset import make_dataset as make_tf_dataset
    from gliseg_nb.train import fit, region_dice

    config = tiny_config(slice_start=2, n_slices=8, outputs="regions", context_slices=1, epochs=1, augment=True)
    cases = find_cases(make_dataset(tmp_path, n_cases=3))
    x, y = next(iter(make_tf_dataset(cases[:2], config, cache_dir=tmp_path / "cache", progress=False)))
    assert x.shape[1:] == (16, 16, config.n_channels) and y.shape[-1] == 4
    model, history = fit(config, cases[:2], cases[2:], tmp_path / "run", cache_dir=tmp_path / "cache", verbose=0)
    assert model.output_shape == (None, 16, 16, 3)
    assert {"loss", "val_dice_mean", "val_dice_wt"} <= set(history)
    assert np.isfinite(history["loss"]).all()
    loaded = gliseg_nb.load_model(tmp_path / "run" / "best.keras")
    assert isinstance(loaded.loss, RegionLoss)
    scores = region_dice(model, cases[2:], config)
    assert set(scores) >= {"WT", "TC", "ET"} and all(0 <= scores[r] <= 1 for r in REGIONS)


# -- test-time flips -------------------------------------------------------------------------
def test_left_right_flip_follows_the_affine():
    assert _tta_flip_set("lr", np.diag([-1.0, -1.0, 1.0, 1.0])) == ((False, False), (True, False))
    swapped = np.array([[0.0, -1.0, 0, 0], [1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])  # axis 1 runs L-R
    assert _tta_flip_set("lr", swapped) == ((False, False), (False, True))
    assert len(_tta_flip_set(True, None)) == 4 and _tta_flip_set(False, None) == ((False, False),)
    assert _tta_flip_set("all", None) == _tta_flip_set(True, None)
    with pytest.raises(ConfigError, match="tta_flips must be"):
        _tta_flip_set("ud", None)


def test_flip_averaging_equals_the_manual_average(tmp_path):
    # An untrained U-Net is not mirror-symmetric: the average differs from either pass.
    config = tiny_config()
    keras.utils.set_random_seed(3)
    model = build_unet(config)
    case = find_cases(make_dataset(tmp_path))[0]
    data = load_case(case, modalities=list(config.modalities))
    _, plain = predict_case(model, data, config, tta_flips="none", return_probabilities=True)
    _, averaged = predict_case(model, data, config, tta_flips="lr", return_probabilities=True)

    stack = np.stack([data.images[m] for m in config.modalities], axis=-1)
    brain_slices = np.flatnonzero(np.any(stack != 0, axis=(0, 1, 3)))
    images = _network_inputs(_normalize_like_training([data.images[m] for m in config.modalities], config),
                             brain_slices, config)
    as_is = model.predict_on_batch(images)
    mirrored = np.flip(model.predict_on_batch(np.flip(images, axis=1)), axis=1)  # axis 0 runs L-R here
    manual = _upsample_probabilities((as_is + mirrored) / 2, SHAPE[0], SHAPE[1])
    brain = np.any(stack != 0, axis=-1)
    expected = manual[brain[:, :, brain_slices]]
    np.testing.assert_allclose(averaged[:, :, brain_slices][brain[:, :, brain_slices]], expected, atol=1e-6)
    assert np.abs(averaged - plain).max() > 1e-4


def test_augmentation_treats_the_slices_of_a_modality_alike():
    import tensorflow as tf

    from gliseg_nb.dataset import _augment

    # Two modalities, three slices (2.5-D, k=1): every slice the same image, except that the
    # centre slice has no brain in a block that both flips map onto itself.
    x = np.ones((4, 8, 8, 6), dtype=np.float32) * np.array([1.0, 2.0] * 3, dtype=np.float32)
    x[:, 2:6, 2:6, 2:4] = 0.0
    y = np.zeros((4, 8, 8), dtype=np.int32)
    out, _ = (t.numpy() for t in _augment(tf.constant(x), tf.constant(y), tf.constant([1, 2]), slices=3))
    assert not out[:, 2:6, 2:6, 2:4].any()  # the centre's background stays exactly 0 ...
    np.testing.assert_array_equal(out[:, 2:6, 2:6, :2], out[:, 2:6, 2:6, 4:])  # ... its neighbours' brain not
    assert out[:, 2:6, 2:6, :2].all()
    outside = np.ones((8, 8), dtype=bool)
    outside[2:6, 2:6] = False
    for modality in (0, 1):  # one scale and shift per modality, the same for its three slices
        np.testing.assert_array_equal(out[:, outside, modality], out[:, outside, modality + 2])
        np.testing.assert_array_equal(out[:, outside, modality], out[:, outside, modality + 4])
    assert not np.allclose(out[:, outside, 0], 1.0)  # the intensities did change


def test_predict_folder_checks_its_tta_option_first(tmp_path):
    from gliseg_nb.predict import predict_folder

    with pytest.raises(ConfigError, match="tta must be True, False or one of"):
        predict_folder(tmp_path / "no-model", tmp_path / "no-data", tmp_path / "out", tta="ud")
    assert not (tmp_path / "out").exists()
