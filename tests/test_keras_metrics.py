"""Stateful Keras metrics: epoch-accumulated confusion counts, checked against NumPy."""

import keras
import numpy as np
import pytest

import gliseg_nb
from gliseg_nb import Config
from gliseg_nb.losses import CEDiceLoss
from gliseg_nb.metrics import (
    ArgmaxMeanIoU,
    DiceScore,
    PixelAccuracy,
    PrecisionScore,
    RegionDiceScore,
    SegmentationScores,
    SensitivityScore,
    SpecificityScore,
    default_metrics,
)
from gliseg_nb.model import build_unet


def _batch(rng, n_images, size=8, n_classes=4, noise=1.0):
    labels = rng.choice(n_classes, size=(n_images, size, size), p=[0.7, 0.1, 0.15, 0.05])
    y_true = np.eye(n_classes, dtype="float32")[labels]
    # Probabilities that are right more often than not.
    logits = 2.0 * y_true + noise * rng.normal(size=y_true.shape)
    y_pred = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return y_true, y_pred.astype("float32")


def _numpy_counts(y_true, y_pred, n_classes=4):
    truth = y_true.argmax(-1).ravel()
    pred = y_pred.argmax(-1).ravel()
    tp = np.array([np.sum((truth == c) & (pred == c)) for c in range(n_classes)], float)
    fp = np.array([np.sum((truth != c) & (pred == c)) for c in range(n_classes)], float)
    fn = np.array([np.sum((truth == c) & (pred != c)) for c in range(n_classes)], float)
    tn = truth.size - tp - fp - fn
    return tp, fp, fn, tn


def test_metrics_equal_numpy_on_the_concatenated_epoch(rng):
    batches = [_batch(rng, n) for n in (5, 1, 3)]  # unequal batches
    metrics = default_metrics() + [
        DiceScore(0), PrecisionScore(2), SensitivityScore(3), SpecificityScore(1),
        ArgmaxMeanIoU(class_ids=(1, 2, 3)),
    ]
    assert [type(metric) for metric in default_metrics()] == [SegmentationScores]
    for y_true, y_pred in batches:
        for metric in metrics:
            metric.update_state(y_true, y_pred)
    y_true = np.concatenate([b[0] for b in batches])
    y_pred = np.concatenate([b[1] for b in batches])
    tp, fp, fn, tn = _numpy_counts(y_true, y_pred)
    dice = 2 * tp / (2 * tp + fp + fn)
    expected = {
        "dice_mean": dice[1:].mean(),
        "dice_class1": dice[1], "dice_class2": dice[2], "dice_class3": dice[3], "dice_class0": dice[0],
        "precision_mean": (tp / (tp + fp))[1:].mean(),
        "sensitivity_mean": (tp / (tp + fn))[1:].mean(),
        "specificity_mean": (tn / (tn + fp))[1:].mean(),
        "accuracy": np.mean(y_true.argmax(-1) == y_pred.argmax(-1)),
        "mean_iou": (tp / (tp + fp + fn)).mean(),
        "precision_class2": tp[2] / (tp[2] + fp[2]),
        "sensitivity_class3": tp[3] / (tp[3] + fn[3]),
        "specificity_class1": tn[1] / (tn[1] + fp[1]),
        "iou_mean": (tp / (tp + fp + fn))[1:].mean(),
    }
    for region, classes in (("wt", (1, 2, 3)), ("tc", (1, 3)), ("et", (3,))):
        truth, pred = np.isin(y_true.argmax(-1), classes), np.isin(y_pred.argmax(-1), classes)
        expected[f"dice_{region}"] = 2 * np.sum(truth & pred) / (truth.sum() + pred.sum())
    results = {}
    for metric in metrics:
        result = metric.result()
        results.update({name: float(value) for name, value in result.items()} if isinstance(result, dict)
                       else {metric.name: float(result)})
    assert set(results) == set(expected)
    for name, value in expected.items():
        assert results[name] == pytest.approx(value, rel=1e-6), name
    # IoU never exceeds Dice on the same masks.
    assert results["iou_mean"] <= results["dice_mean"]


def test_epoch_dice_differs_from_the_average_of_batch_dice():
    # Batch 1: 100 enhancing pixels, all found. Batch 2: 2 enhancing pixels, both missed.
    def one_hot(labels):
        return np.eye(4, dtype="float32")[labels]

    truth_1 = np.zeros((1, 20, 20), int)
    truth_1[0, :10, :10] = 3
    truth_2 = np.zeros((1, 20, 20), int)
    truth_2[0, 0, :2] = 3
    batches = [(one_hot(truth_1), one_hot(truth_1)), (one_hot(truth_2), one_hot(np.zeros_like(truth_2)))]

    epoch_metric = DiceScore(3)
    batch_values = []
    for y_true, y_pred in batches:
        epoch_metric.update_state(y_true, y_pred)
        batch_metric = DiceScore(3)
        batch_metric.update_state(y_true, y_pred)
        batch_values.append(float(batch_metric.result()))
    assert batch_values == [1.0, 0.0]
    # What averaging per batch (the source notebook) reports, versus the truth of the epoch.
    assert np.mean(batch_values) == pytest.approx(0.5)
    assert float(epoch_metric.result()) == pytest.approx(2 * 100 / (2 * 100 + 2))


def test_empty_classes_score_one_and_reset_clears_counts():
    y = np.zeros((1, 4, 4, 4), dtype="float32")
    y[..., 0] = 1
    metrics = [DiceScore(), PrecisionScore(), SensitivityScore(), SpecificityScore(), ArgmaxMeanIoU()]
    for metric in metrics:
        metric.update_state(y, y)
        assert float(metric.result()) == 1.0, metric.name
    wrong = np.zeros_like(y)
    wrong[..., 3] = 1
    dice = DiceScore(3)
    dice.update_state(y, wrong)
    assert float(dice.result()) == 0.0
    dice.reset_state()
    assert all(float(np.sum(keras.ops.convert_to_numpy(v))) == 0 for v in dice.variables)


def test_sample_weights_per_image(rng):
    y_true, y_pred = _batch(rng, 4)
    weighted = DiceScore(2)
    weighted.update_state(y_true, y_pred, sample_weight=np.array([1, 0, 1, 0], "float32"))
    kept = DiceScore(2)
    kept.update_state(y_true[[0, 2]], y_pred[[0, 2]])
    assert float(weighted.result()) == pytest.approx(float(kept.result()), rel=1e-6)


def test_accuracy_counts_background_and_flatters():
    truth = np.zeros((1, 10, 10), int)
    truth[0, 0, :2] = 3  # 2 % tumour
    y_true = np.eye(4, dtype="float32")[truth]
    background_everywhere = np.eye(4, dtype="float32")[np.zeros_like(truth)]
    accuracy, dice = PixelAccuracy(), DiceScore()
    for metric in (accuracy, dice):
        metric.update_state(y_true, background_everywhere)
    assert float(accuracy.result()) == pytest.approx(0.98)
    # Classes 1 and 2 are absent from both (1 each by convention); class 3 is missed (0).
    assert float(dice.result()) == pytest.approx(2 / 3)


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="class_ids"):
        DiceScore(4)
    with pytest.raises(ValueError, match="class_ids"):
        DiceScore(())
    with pytest.raises(ValueError, match="n_classes"):
        DiceScore(n_classes=1)


def test_compiled_model_saves_and_loads_with_safe_mode(tmp_path, rng):
    config = Config.preset("quick", image_size=32, depth=2, base_filters=4)
    model = build_unet(config)
    model.compile(optimizer="adam", loss=CEDiceLoss(class_weights=(1, 2, 2, 3)), metrics=default_metrics())
    y_true, _ = _batch(rng, 4, size=32)
    x = rng.normal(size=(4, 32, 32, config.n_channels)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)

    loaded = gliseg_nb.load_model(path)
    for saved, restored in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(saved), keras.ops.convert_to_numpy(restored))
    assert isinstance(loaded.loss, CEDiceLoss) and loaded.loss.class_weights == (1.0, 2.0, 2.0, 3.0)
    scores = loaded.evaluate(x, y_true, verbose=0, return_dict=True)
    names = default_metrics()[0].score_names
    assert set(names) <= set(scores)
    expected = model.evaluate(x, y_true, verbose=0, return_dict=True)
    for name in names:
        assert scores[name] == pytest.approx(expected[name], rel=1e-5)


@pytest.mark.parametrize("metric", [DiceScore(3), PrecisionScore((1, 3)), ArgmaxMeanIoU(), PixelAccuracy(n_classes=3)])
def test_metric_config_round_trip(metric):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(restored) is type(metric)
    assert restored.get_config() == metric.get_config()
    assert restored.name == metric.name


# -- Keras' own metrics, where they compute the same thing -----------------------------------------
def _weighted_accuracy(y_true, y_pred, pixel_weights):
    right = (y_true.argmax(-1) == y_pred.argmax(-1)).astype(float)
    return float((right * pixel_weights).sum() / pixel_weights.sum())


def test_pixel_accuracy_is_keras_categorical_accuracy_and_counts_pixels(rng):
    assert isinstance(PixelAccuracy(), keras.metrics.CategoricalAccuracy)
    batches = [_batch(rng, n, size=12) for n in (5, 1, 3)]
    plain, per_image, per_pixel = PixelAccuracy(), PixelAccuracy(), PixelAccuracy()
    image_weights = [rng.integers(0, 3, len(b[0])).astype("float32") for b in batches]
    pixel_weights = [rng.random(b[0].shape[:-1]).astype("float32") for b in batches]
    for (y_true, y_pred), w_image, w_pixel in zip(batches, image_weights, pixel_weights):
        plain.update_state(y_true, y_pred)
        per_image.update_state(y_true, y_pred, sample_weight=w_image)
        per_pixel.update_state(y_true, y_pred, sample_weight=w_pixel)
    y_true = np.concatenate([b[0] for b in batches])
    y_pred = np.concatenate([b[1] for b in batches])
    # The confusion-count definition: sum of TP over the classes / all pixels of the epoch.
    tp, _, fn, _ = _numpy_counts(y_true, y_pred)
    assert float(plain.result()) == pytest.approx(tp.sum() / (tp + fn).sum(), rel=1e-6)
    w_image = np.concatenate(image_weights)[:, None, None] * np.ones(y_true.shape[:-1])
    assert float(per_image.result()) == pytest.approx(_weighted_accuracy(y_true, y_pred, w_image), rel=1e-6)
    w_pixel = np.concatenate(pixel_weights)
    assert float(per_pixel.result()) == pytest.approx(_weighted_accuracy(y_true, y_pred, w_pixel), rel=1e-6)


def test_models_saved_with_the_confusion_count_accuracy_still_load():
    # What `serialize_keras_object(PixelAccuracy())` wrote before it became CategoricalAccuracy.
    saved = {"module": "gliseg_nb.metrics.keras_metrics", "class_name": "PixelAccuracy",
             "config": {"name": "accuracy", "dtype": "float32", "class_ids": [0, 1, 2, 3], "n_classes": 4},
             "registered_name": "gliseg_nb>PixelAccuracy"}
    restored = keras.saving.deserialize_keras_object(saved)
    assert isinstance(restored, PixelAccuracy) and restored.name == "accuracy"
    y = np.eye(4, dtype="float32")[[[0, 1], [2, 3]]][None]
    restored.update_state(y, y)
    assert float(restored.result()) == 1.0


def test_argmax_mean_iou_equals_keras_one_hot_mean_iou_while_every_class_occurs(rng):
    ours, theirs = ArgmaxMeanIoU(), keras.metrics.OneHotMeanIoU(num_classes=4)
    for n_images in (4, 2):
        y_true, y_pred = _batch(rng, n_images)
        ours.update_state(y_true, y_pred)
        theirs.update_state(y_true, y_pred)
    assert float(ours.result()) == pytest.approx(float(theirs.result()), rel=1e-6)

    # A class absent from both sides: 1 by the BraTS rule here, left out of the mean by Keras.
    truth = np.zeros((1, 4, 4), int)
    truth[0, :2] = 1
    pred = truth.copy()
    pred[0, 0, 0] = 0
    y_true, y_pred = (np.eye(4, dtype="float32")[a] for a in (truth, pred))
    ours, theirs = ArgmaxMeanIoU(), keras.metrics.OneHotMeanIoU(num_classes=4)
    ours.update_state(y_true, y_pred)
    theirs.update_state(y_true, y_pred)
    iou = np.array([8 / 9, 7 / 8])  # background, class 1; classes 2 and 3 absent
    assert float(ours.result()) == pytest.approx((iou.sum() + 2) / 4, rel=1e-6)
    assert float(theirs.result()) == pytest.approx(iou.mean(), rel=1e-6)


def test_region_dice_is_the_brats_region_dice_over_all_batches(rng):
    from gliseg_nb.labels import REGIONS
    from gliseg_nb.metrics.evaluation import dice_score

    batches = [_batch(rng, 3, noise=1.5) for _ in range(3)]
    for region, classes in REGIONS.items():
        metric = RegionDiceScore(region)
        for y_true, y_pred in batches:
            metric.update_state(y_true, y_pred)
        truth = np.concatenate([np.isin(y.argmax(-1), classes) for y, _ in batches])
        pred = np.concatenate([np.isin(p.argmax(-1), classes) for _, p in batches])
        assert metric.name == f"dice_{region.lower()}"
        assert float(metric.result()) == pytest.approx(dice_score(pred, truth), rel=1e-6)
    # Mixing up necrosis (1) and enhancing (3) costs nothing in the core, everything in ET.
    y_true = np.eye(4, dtype="float32")[np.array([[[1, 3, 0, 0]]])]
    y_pred = np.eye(4, dtype="float32")[np.array([[[3, 1, 0, 0]]])]
    tc, et = RegionDiceScore("TC"), RegionDiceScore("ET")
    tc.update_state(y_true, y_pred)
    et.update_state(y_true, y_pred)
    assert float(tc.result()) == 1.0 and float(et.result()) == 0.0


def test_region_dice_round_trips_and_refuses_unknown_regions():
    metric = RegionDiceScore("TC")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(restored) is RegionDiceScore and restored.get_config() == metric.get_config()
    assert restored.region == "TC" and restored.name == "dice_tc"
    with pytest.raises(ValueError, match="region"):
        RegionDiceScore("edema")
    assert {"dice_wt", "dice_tc", "dice_et"} <= set(default_metrics()[0].score_names)
    assert not any(name.startswith("dice_wt") for name in default_metrics(n_classes=3)[0].score_names)


def _single_score_metrics(n_classes, outputs="softmax"):
    """The metrics `default_metrics` used to list, one object per score."""
    common = dict(n_classes=n_classes, outputs=outputs)
    metrics = [DiceScore(**common)] + [DiceScore(c, **common) for c in range(1, n_classes)]
    if n_classes == 4:
        metrics += [RegionDiceScore(region, **common) for region in ("WT", "TC", "ET")]
    return metrics + [PrecisionScore(**common), SensitivityScore(**common), SpecificityScore(**common),
                      PixelAccuracy(**common), ArgmaxMeanIoU(**common)]


@pytest.mark.parametrize("n_classes, outputs, weighting", [
    (4, "softmax", None), (4, "softmax", "image"), (4, "softmax", "pixel"), (3, "softmax", "image"),
    (4, "regions", "image"),
])
def test_segmentation_scores_equal_the_single_score_metrics(rng, n_classes, outputs, weighting):
    singles, fused = _single_score_metrics(n_classes, outputs), SegmentationScores(n_classes, outputs=outputs)
    for n_images in (5, 1, 3):
        y_true = np.eye(n_classes, dtype="float32")[rng.integers(0, n_classes, size=(n_images, 8, 8))]
        y_pred = rng.random((n_images, 8, 8, n_classes)).astype("float32")
        if outputs == "regions":
            y_pred = rng.random((n_images, 8, 8, 3)).astype("float32")
        weights = {None: None, "image": rng.integers(1, 4, size=n_images).astype("float32"),
                   "pixel": rng.integers(0, 3, size=(n_images, 8, 8)).astype("float32")}[weighting]
        for metric in singles:
            metric.update_state(y_true, y_pred, weights)
        fused.update_state(y_true, y_pred, weights)
    results = {name: float(value) for name, value in fused.result().items()}
    assert tuple(results) == fused.score_names == tuple(metric.name for metric in singles)
    for metric in singles:
        # The same integer counts through the same formulas: equal, not merely close.
        assert results[metric.name] == float(metric.result()), metric.name
    fused.reset_state()
    assert not np.any(keras.ops.convert_to_numpy(fused.confusion))


def test_segmentation_scores_round_trip_through_config():
    restored = SegmentationScores.from_config(SegmentationScores(3, outputs="regions").get_config())
    assert (restored.n_classes, restored.outputs) == (3, "regions")
    assert "dice_wt" not in restored.score_names  # the regions need the four BraTS classes
    with pytest.raises(ValueError, match="outputs"):
        SegmentationScores(outputs="sigmoid")
