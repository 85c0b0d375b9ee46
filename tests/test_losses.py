"""Losses: cross-entropy (weighted or not), soft Dice over tumour classes, their sum."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gliseg_nb import Config
from gliseg_nb.losses import (
    CEDiceLoss,
    DiceLoss,
    WeightedCategoricalCrossentropy,
    ce_dice_loss,
    dice_loss,
    get_loss,
    soft_dice_per_class,
)


def _random_batch(rng, shape=(3, 8, 8), n_classes=4):
    labels = rng.integers(0, n_classes, size=shape)
    y_true = np.eye(n_classes, dtype="float32")[labels]
    logits = rng.normal(size=shape + (n_classes,))
    y_pred = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype("float32")
    return y_true, y_pred


def test_unweighted_crossentropy_equals_keras(rng):
    y_true, y_pred = _random_batch(rng)
    expected = float(keras.losses.CategoricalCrossentropy()(y_true, y_pred))
    assert float(WeightedCategoricalCrossentropy()(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)
    assert float(-np.mean(np.sum(y_true * np.log(y_pred), -1))) == pytest.approx(expected, rel=1e-5)


def test_class_weights_scale_each_pixel_by_its_true_class(rng):
    y_true, y_pred = _random_batch(rng)
    weights = np.array([0.5, 1.0, 2.0, 4.0], dtype="float32")
    pixel = -np.sum(y_true * np.log(y_pred), -1) * (y_true @ weights)
    loss = WeightedCategoricalCrossentropy(weights)(y_true, y_pred)
    assert float(loss) == pytest.approx(float(pixel.mean()), rel=1e-5)


def test_soft_dice_matches_numpy_and_ignores_background(rng):
    y_true, y_pred = _random_batch(rng)
    inter = (y_true * y_pred).reshape(-1, 4).sum(0)
    total = y_true.reshape(-1, 4).sum(0) + y_pred.reshape(-1, 4).sum(0)
    expected_dice = (2 * inter + 1) / (total + 1)
    np.testing.assert_allclose(np.asarray(soft_dice_per_class(y_true, y_pred)), expected_dice, rtol=1e-5)
    expected_loss = 1 - expected_dice[1:].mean()
    assert float(DiceLoss()(y_true, y_pred)) == pytest.approx(expected_loss, rel=1e-5)
    assert float(np.mean(dice_loss(y_true, y_pred))) == pytest.approx(expected_loss, rel=1e-5)
    # The background channel does not enter the loss.
    other = y_pred.copy()
    other[..., 0] = rng.uniform(size=other.shape[:-1])
    assert float(DiceLoss()(y_true, other)) == pytest.approx(expected_loss, rel=1e-5)


def test_dice_loss_is_zero_for_a_perfect_prediction_and_weights_pick_classes(rng):
    y_true, y_pred = _random_batch(rng)
    assert float(DiceLoss()(y_true, y_true)) == pytest.approx(0.0, abs=1e-6)
    only_enhancing = DiceLoss(class_weights=(0, 0, 0, 1))(y_true, y_pred)
    dice = np.asarray(soft_dice_per_class(y_true, y_pred))
    assert float(only_enhancing) == pytest.approx(1 - dice[3], rel=1e-5)


def test_dice_loss_returns_one_value_per_image_for_distribution(rng):
    # Keras divides by the number of replicas only when it reduces a vector.
    y_true, y_pred = _random_batch(rng)
    values = np.asarray(DiceLoss().call(y_true, y_pred))
    assert values.shape == (3,)
    assert np.ptp(values) == 0


def test_ce_plus_dice_is_the_sum(rng):
    y_true, y_pred = _random_batch(rng)
    total = float(CEDiceLoss()(y_true, y_pred))
    parts = float(WeightedCategoricalCrossentropy()(y_true, y_pred)) + float(DiceLoss()(y_true, y_pred))
    assert total == pytest.approx(parts, rel=1e-5)
    assert float(np.mean(ce_dice_loss(y_true, y_pred))) == pytest.approx(parts, rel=1e-5)
    weighted = CEDiceLoss(ce_weight=2.0, dice_weight=0.5)(y_true, y_pred)
    expected = 2 * float(WeightedCategoricalCrossentropy()(y_true, y_pred)) + 0.5 * float(DiceLoss()(y_true, y_pred))
    assert float(weighted) == pytest.approx(expected, rel=1e-5)


def test_gradients_stay_finite_on_background_only_batches():
    y_true = np.zeros((2, 4, 4, 4), dtype="float32")
    y_true[..., 0] = 1
    y_pred = tf.Variable(np.full((2, 4, 4, 4), 0.25, dtype="float32"))
    with tf.GradientTape() as tape:
        loss = CEDiceLoss()(y_true, y_pred)
    gradient = tape.gradient(loss, y_pred).numpy()
    assert np.isfinite(float(loss)) and np.all(np.isfinite(gradient))


def test_get_loss_follows_the_config():
    report = get_loss(Config.preset("report"))
    assert isinstance(report, keras.losses.CategoricalCrossentropy)
    assert isinstance(get_loss(Config.preset("report", class_weights=(1, 2, 2, 3))), WeightedCategoricalCrossentropy)
    assert isinstance(get_loss(Config.preset("report", loss="dice")), DiceLoss)
    combined = get_loss(Config.preset("report", loss="ce+dice", class_weights=(1, 2, 2, 3)))
    assert isinstance(combined, CEDiceLoss) and combined.class_weights == (1.0, 2.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="one weight per class"):
        get_loss(Config.preset("report", class_weights=(1, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        get_loss(Config.preset("report", class_weights=(1, -2, 1, 1)))


@pytest.mark.parametrize("loss", [
    WeightedCategoricalCrossentropy((1, 2, 3, 4)), DiceLoss((0, 1, 1, 2), smooth=0.5),
    CEDiceLoss((1, 1, 2, 2), ce_weight=0.5),
])
def test_losses_serialize_round_trip(loss, rng):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    y_true, y_pred = _random_batch(rng)
    assert float(restored(y_true, y_pred)) == pytest.approx(float(loss(y_true, y_pred)), rel=1e-6)


def test_region_dice_scores_the_brats_regions_not_the_classes():
    """Calling edema 'necrosis' is wrong class-wise but right for the whole tumour."""
    import numpy as np
    from gliseg_nb.losses import soft_dice_per_class, soft_dice_per_region

    truth = np.zeros((1, 4, 4), dtype=int)
    truth[0, :2, :2] = 2  # edema
    truth[0, 2:, 2:] = 3  # enhancing
    guess = truth.copy()
    guess[guess == 2] = 1  # edema called necrotic core
    one_hot = lambda labels: np.eye(4, dtype="float32")[labels]
    region = np.asarray(soft_dice_per_region(one_hot(truth), one_hot(guess), smooth=0.0))
    per_class = np.asarray(soft_dice_per_class(one_hot(truth), one_hot(guess), smooth=0.0))
    wt, tc, et = region
    assert wt == pytest.approx(1.0)  # every tumour voxel is still tumour
    assert tc == pytest.approx(2 * 4 / (4 + 8))  # the 4 'necrotic' voxels are not core
    assert et == pytest.approx(1.0)
    assert per_class[2] == pytest.approx(0.0)  # class-wise, edema is missed entirely


def test_ce_region_dice_loss_is_selected_and_round_trips(tmp_path):
    import keras
    from gliseg_nb import Config
    from gliseg_nb.losses import CEDiceLoss, get_loss

    loss = get_loss(Config.preset("quick", loss="ce+region_dice"))
    assert isinstance(loss, CEDiceLoss) and loss.regions
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert restored.regions and restored.get_config() == loss.get_config()
