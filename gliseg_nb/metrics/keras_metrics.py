"""Stateful Keras metrics that count over the whole epoch.

The report's source notebook computes Dice, precision and the like on each batch and lets
Keras average those numbers over the epoch. That average is biased: a batch with two tumour
pixels weighs as much as one with two thousand, and a batch without the class gives 0/0.
The metrics here instead accumulate confusion counts over the epoch, per class:

* TP: pixels of the class predicted as the class,
* FP: pixels of other classes predicted as the class,
* FN: pixels of the class predicted as another class,
* TN: the rest,

with the predicted class taken as the argmax of the softmax and the true class as the argmax
of the one-hot target, and compute the score from the totals only when asked (`result`).
For a region network (``Config(outputs="regions")``, three sigmoid outputs WT/TC/ET) the
metrics take ``outputs="regions"`` and decode the outputs to classes first, the BraTS way
(`decode_regions`, as `gliseg_nb.labels.regions_to_labels`), so both kinds of network are
scored alike.

Scores of one class, or the macro mean over several (by default the tumour classes 1-3, so
that background, about 98 % of the pixels, does not flatter them):

===================  =============================  ===========================
metric               formula                        0/0 (class absent) gives
===================  =============================  ===========================
`DiceScore`          2 TP / (2 TP + FP + FN)         1 (both empty: BraTS rule)
`PrecisionScore`     TP / (TP + FP)                  1 (nothing predicted)
`SensitivityScore`   TP / (TP + FN)                  1 (nothing to find)
`SpecificityScore`   TN / (TN + FP)                  1
`ArgmaxMeanIoU`      TP / (TP + FP + FN)             1
`PixelAccuracy`      sum TP / pixels (all classes)   -
===================  =============================  ===========================

`PixelAccuracy` is Keras' own ``CategoricalAccuracy``, which computes exactly this. Keras'
``OneHotMeanIoU`` is not used for `ArgmaxMeanIoU`: it agrees while every class occurs, but
leaves a class absent from both targets and predictions out of the mean instead of scoring
it 1 (the tests show both).

Training compiles one `SegmentationScores` instead of thirteen of these (`default_metrics`):
it counts each batch once, into a confusion matrix, and gives all their values by name.

Counts are float32 variables summed across replicas; they are exact below 2**24 pixels per
batch and class and keep a relative error near 1e-7 beyond that.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = [
    "ConfusionCountsMetric",
    "DiceScore",
    "PrecisionScore",
    "SensitivityScore",
    "SpecificityScore",
    "ArgmaxMeanIoU",
    "PixelAccuracy",
    "RegionDiceScore",
    "SegmentationScores",
    "decode_regions",
    "default_metrics",
]

OUTPUTS = ("softmax", "regions")


def _resolve_class_ids(class_ids, n_classes, default):
    if class_ids is None:
        class_ids = default
    single = isinstance(class_ids, int)
    ids = (class_ids,) if single else tuple(int(c) for c in class_ids)
    if not ids or any(not 0 <= c < n_classes for c in ids):
        raise ValueError(f"class_ids must be classes in 0..{n_classes - 1}, got {class_ids}")
    return ids, single


def decode_regions(y_pred, n_classes=4, threshold=0.5):
    """One-hot classes from WT/TC/ET probabilities: `gliseg_nb.labels.regions_to_labels` in tensors.

    Parameters
    ----------
    y_pred : tensor
        Sigmoid outputs ``(..., 3)`` of WT, TC and ET.
    n_classes : int, default=4
    threshold : float, default=0.5

    Returns
    -------
    tensor
        One-hot ``(..., n_classes)`` float32: 3 where ET, else 1 where TC, else 2 where WT.
    """
    inside = ops.greater(ops.cast(y_pred, "float32"), threshold)
    labels = ops.where(inside[..., 1], 1, ops.where(inside[..., 0], 2, 0))
    labels = ops.where(inside[..., 2], 3, labels)
    return ops.one_hot(labels, n_classes, dtype="float32")


def _check_outputs(outputs):
    if outputs not in OUTPUTS:
        raise ValueError(f"outputs must be one of {OUTPUTS}, got {outputs!r}")
    return outputs


def _safe_ratio(numerator, denominator):
    # 0/0 means "nothing to get wrong": score 1, as BraTS does for two empty masks.
    empty = ops.equal(denominator, 0.0)
    return ops.where(empty, ops.ones_like(numerator), numerator / ops.where(empty, 1.0, denominator))


def _pixel_weights(sample_weight, true_class):
    """``(pixels, 1)`` float32 weights from per-image ``(batch,)`` or per-pixel weights; None stays None."""
    if sample_weight is None:
        return None
    sample_weight = ops.cast(sample_weight, "float32")
    # Broadcast per-image weights over the pixels of the image.
    while len(sample_weight.shape) < len(true_class.shape):
        sample_weight = ops.expand_dims(sample_weight, -1)
    return ops.reshape(ops.broadcast_to(sample_weight, ops.shape(true_class)), (-1, 1))


# The scores as functions of the per-class count vectors: one definition each, used by the
# single-score metrics and by `SegmentationScores`.
def _dice(tp, fp, fn, tn):
    return _safe_ratio(2.0 * tp, 2.0 * tp + fp + fn)


def _precision(tp, fp, fn, tn):
    return _safe_ratio(tp, tp + fp)


def _sensitivity(tp, fp, fn, tn):
    return _safe_ratio(tp, tp + fn)


def _specificity(tp, fp, fn, tn):
    return _safe_ratio(tn, tn + fp)


def _iou(tp, fp, fn, tn):
    return _safe_ratio(tp, tp + fp + fn)


class ConfusionCountsMetric(keras.metrics.Metric):
    """Base class: accumulates per-class TP, FP, FN and TN over an epoch.

    Subclasses define `score(tp, fp, fn, tn)` returning one value per class; `result` averages
    it over `class_ids`.

    Parameters
    ----------
    class_ids : int or sequence of int, optional
        The class scored (an int) or the classes macro-averaged (a sequence). Default=None:
        the tumour classes ``1 .. n_classes - 1``.
    n_classes : int, default=4
        Number of classes (last axis of targets and predictions).
    name : str, optional
        Metric name (the history key; ``val_`` is prepended for validation). Default=None
        derives it from the class: e.g. ``"dice_mean"`` or ``"dice_class3"``.
    dtype : str, optional
        Dtype of the result; default=None (float32).
    outputs : {"softmax", "regions"}, default="softmax"
        What the predictions are: class probabilities, or the three WT/TC/ET sigmoids of a
        region network (decoded to classes by `decode_regions` first).
    """

    #: Short name used to derive the default metric name.
    prefix = "confusion"

    def __init__(self, class_ids=None, n_classes=4, name=None, dtype=None, outputs="softmax"):
        n_classes = int(n_classes)
        if n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {n_classes}")
        ids, single = _resolve_class_ids(class_ids, n_classes, self._default_class_ids(n_classes))
        if name is None:
            name = f"{self.prefix}_class{ids[0]}" if single else f"{self.prefix}_mean"
        super().__init__(name=name, dtype=dtype)
        self.n_classes = n_classes
        self.outputs = _check_outputs(outputs)
        self.class_ids = ids[0] if single else ids
        self._ids = ids
        counts = dict(shape=(n_classes,), initializer="zeros", dtype="float32", aggregation="sum")
        self.true_positives = self.add_variable(name="true_positives", **counts)
        self.false_positives = self.add_variable(name="false_positives", **counts)
        self.false_negatives = self.add_variable(name="false_negatives", **counts)
        self.true_negatives = self.add_variable(name="true_negatives", **counts)

    @staticmethod
    def _default_class_ids(n_classes):
        return tuple(range(1, n_classes))

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch's counts.

        Parameters
        ----------
        y_true : tensor
            One-hot targets ``(batch, ..., n_classes)`` (an argmax picks the class).
        y_pred : tensor
            Scores or probabilities, same shape.
        sample_weight : tensor, optional
            Per-image ``(batch,)`` or per-pixel ``(batch, ...)`` weights; default=None.
        """
        if self.outputs == "regions":
            y_pred = decode_regions(y_pred, self.n_classes)
        true_class = ops.argmax(y_true, axis=-1)
        pred_class = ops.argmax(y_pred, axis=-1)
        true_onehot = ops.reshape(ops.one_hot(true_class, self.n_classes, dtype="float32"), (-1, self.n_classes))
        pred_onehot = ops.reshape(ops.one_hot(pred_class, self.n_classes, dtype="float32"), (-1, self.n_classes))
        weights = _pixel_weights(sample_weight, true_class)
        if weights is None:
            weights = ops.ones((ops.shape(true_onehot)[0], 1), dtype="float32")
        true_positives = ops.sum(weights * true_onehot * pred_onehot, axis=0)
        true_totals = ops.sum(weights * true_onehot, axis=0)
        pred_totals = ops.sum(weights * pred_onehot, axis=0)
        false_positives = pred_totals - true_positives
        false_negatives = true_totals - true_positives
        true_negatives = ops.sum(weights) - true_positives - false_positives - false_negatives
        self.true_positives.assign_add(true_positives)
        self.false_positives.assign_add(false_positives)
        self.false_negatives.assign_add(false_negatives)
        self.true_negatives.assign_add(true_negatives)

    def score(self, tp, fp, fn, tn):
        """Per-class score from the count vectors (overridden by subclasses)."""
        raise NotImplementedError

    def _counts(self):
        # Tensors, not the variables themselves: JAX's ops do not take Keras variables.
        return [ops.convert_to_tensor(v) for v in
                (self.true_positives, self.false_positives, self.false_negatives, self.true_negatives)]

    def result(self):
        per_class = self.score(*self._counts())
        selected = ops.take(per_class, ops.convert_to_tensor(self._ids, dtype="int32"))
        return ops.cast(ops.mean(selected), self.dtype)

    def reset_state(self):
        for variable in self.variables:
            variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))

    def get_config(self):
        config = super().get_config()
        class_ids = self.class_ids if isinstance(self.class_ids, int) else list(self.class_ids)
        config.update(class_ids=class_ids, n_classes=self.n_classes, outputs=self.outputs)
        return config


@keras.saving.register_keras_serializable(package="gliseg_nb")
class DiceScore(ConfusionCountsMetric):
    """Dice coefficient ``2 TP / (2 TP + FP + FN)`` of a class, or the mean over classes.

    The default (``class_ids=None``) is the mean over the tumour classes, named ``dice_mean``;
    ``DiceScore(3)`` is the enhancing tumour's, named ``dice_class3``. See
    `ConfusionCountsMetric` for the parameters.
    """

    prefix = "dice"

    def score(self, tp, fp, fn, tn):
        return _dice(tp, fp, fn, tn)


@keras.saving.register_keras_serializable(package="gliseg_nb")
class PrecisionScore(ConfusionCountsMetric):
    """Precision (positive predictive value) ``TP / (TP + FP)``; macro over tumour classes by default.

    See `ConfusionCountsMetric` for the parameters.
    """

    prefix = "precision"

    def score(self, tp, fp, fn, tn):
        return _precision(tp, fp, fn, tn)


@keras.saving.register_keras_serializable(package="gliseg_nb")
class SensitivityScore(ConfusionCountsMetric):
    """Sensitivity (recall) ``TP / (TP + FN)``; macro over tumour classes by default.

    See `ConfusionCountsMetric` for the parameters.
    """

    prefix = "sensitivity"

    def score(self, tp, fp, fn, tn):
        return _sensitivity(tp, fp, fn, tn)


@keras.saving.register_keras_serializable(package="gliseg_nb")
class SpecificityScore(ConfusionCountsMetric):
    """Specificity ``TN / (TN + FP)`` (what the report's "5.4 Recall" actually defines).

    Macro over tumour classes by default. See `ConfusionCountsMetric` for the parameters.
    """

    prefix = "specificity"

    def score(self, tp, fp, fn, tn):
        return _specificity(tp, fp, fn, tn)


@keras.saving.register_keras_serializable(package="gliseg_nb")
class ArgmaxMeanIoU(ConfusionCountsMetric):
    """Intersection over union ``TP / (TP + FP + FN)`` of argmax classes, averaged.

    Unlike feeding one-hot targets and softmax outputs straight into ``keras.metrics.MeanIoU``
    (which is how the report got "IoU 0.9"), both sides are reduced to classes by argmax.
    By default it averages over **all** classes, background included, as ``MeanIoU`` does
    (``class_ids=None``; pass ``class_ids=(1, 2, 3)`` for the tumour classes only). Always
    ``IoU <= Dice`` for the same masks. Default name ``"mean_iou"``.

    Keras' ``OneHotMeanIoU(num_classes)`` gives the same value while every class occurs in
    the epoch; a class absent from both targets and predictions scores 1 here (the BraTS
    rule, as for Dice) where Keras leaves it out of the mean.
    """

    prefix = "iou"

    def __init__(self, class_ids=None, n_classes=4, name=None, dtype=None, outputs="softmax"):
        if name is None and class_ids is None:
            name = "mean_iou"
        super().__init__(class_ids=class_ids, n_classes=n_classes, name=name, dtype=dtype, outputs=outputs)

    @staticmethod
    def _default_class_ids(n_classes):
        return tuple(range(n_classes))

    def score(self, tp, fp, fn, tn):
        return _iou(tp, fp, fn, tn)


@keras.saving.register_keras_serializable(package="gliseg_nb")
class PixelAccuracy(keras.metrics.CategoricalAccuracy):
    """Fraction of pixels whose argmax class is right (all classes, background included).

    This is Keras' ``CategoricalAccuracy`` (argmax of the target against argmax of the
    prediction, summed over every pixel of the epoch) under the course's name and
    arguments; the tests check that it equals ``sum TP / pixels`` of the confusion counts,
    with and without sample weights. Predicting background everywhere already scores
    about 0.98 on BraTS slices: read it next to the Dice scores, never alone.

    Parameters
    ----------
    n_classes : int, default=4
        Recorded for `get_config` (the argmax needs no class count).
    name : str, default="accuracy"
    dtype : str, optional
        Default=None (float32).
    class_ids : optional
        Accepted and ignored, so that models saved with the earlier confusion-count
        version of this metric still load.
    outputs : {"softmax", "regions"}, default="softmax"
        Region outputs are decoded to classes first (`decode_regions`).
    """

    def __init__(self, n_classes=4, name="accuracy", dtype=None, class_ids=None, outputs="softmax"):
        super().__init__(name=name, dtype=dtype)
        self.n_classes = int(n_classes)
        self.outputs = _check_outputs(outputs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.outputs == "regions":
            y_pred = decode_regions(y_pred, self.n_classes)
        return super().update_state(y_true, y_pred, sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update(n_classes=self.n_classes, outputs=self.outputs)
        return config


@keras.saving.register_keras_serializable(package="gliseg_nb")
class RegionDiceScore(DiceScore):
    """Dice of a BraTS region of argmax classes, counted over the epoch.

    The regions are the ones BraTS scores (`gliseg_nb.labels.REGIONS`): whole tumour
    ``"WT"`` (classes 1+2+3), tumour core ``"TC"`` (1+3) and enhancing tumour ``"ET"`` (3).
    A pixel is in the region when its class is one of the region's classes, on both sides;
    mixing up two tumour classes inside the region costs nothing, as in BraTS. Named
    ``"dice_wt"``, ``"dice_tc"``, ``"dice_et"`` by default.

    Parameters
    ----------
    region : {"WT", "TC", "ET"}, default="WT"
    n_classes : int, default=4
        Number of classes of the targets and predictions (the internal 0-3 classes).
    name : str, optional
        Default=None: ``"dice_<region>"`` in lower case.
    dtype : str, optional
        Dtype of the result; default=None (float32).
    outputs : {"softmax", "regions"}, default="softmax"
        Region outputs are decoded to classes first (`decode_regions`).
    """

    def __init__(self, region="WT", n_classes=4, name=None, dtype=None, outputs="softmax"):
        from ..labels import REGIONS

        if region not in REGIONS:
            raise ValueError(f"region must be one of {', '.join(REGIONS)}, got {region!r}")
        classes = REGIONS[region]
        if max(classes) >= int(n_classes):
            raise ValueError(f"region {region} needs class {max(classes)}, but n_classes is {n_classes}")
        # Counted as a two-class problem: 1 = in the region, 0 = not.
        super().__init__(class_ids=1, n_classes=2, name=name or f"dice_{region.lower()}", dtype=dtype)
        self.region = region
        self.source_classes = int(n_classes)
        # Decoded here, before the region is taken; the two-class counts below see classes.
        self.region_outputs = _check_outputs(outputs)
        self._membership = [1.0 if c in classes else 0.0 for c in range(self.source_classes)]

    def update_state(self, y_true, y_pred, sample_weight=None):
        membership = ops.convert_to_tensor(self._membership, dtype="float32")

        def in_region(onehot):
            inside = ops.take(membership, ops.argmax(onehot, axis=-1))
            return ops.stack([1.0 - inside, inside], axis=-1)

        if self.region_outputs == "regions":
            y_pred = decode_regions(y_pred, self.source_classes)
        super().update_state(in_region(y_true), in_region(y_pred), sample_weight)

    def get_config(self):
        config = keras.metrics.Metric.get_config(self)
        config.update(region=self.region, n_classes=self.source_classes, outputs=self.region_outputs)
        return config


@keras.saving.register_keras_serializable(package="gliseg_nb")
class SegmentationScores(keras.metrics.Metric):
    """All the training scores at once, from one confusion matrix per batch.

    Every score above is a ratio of confusion counts, and each single-score metric takes its
    own argmax and one-hot of the batch to get them. Thirteen of them (`default_metrics`)
    made that bookkeeping a quarter of a training step of the quick preset on two CPU cores,
    and a third of the time TensorFlow spends tracing the step. This metric counts a batch
    once, into the ``n_classes x n_classes`` confusion matrix (rows: true class, columns:
    predicted class; argmax on both sides, as `ConfusionCountsMetric`), and `result` derives
    every score from its totals. The values are those of the single-score metrics (the
    tests compare them); Keras logs each under its own name, as if they were separate
    metrics.

    Parameters
    ----------
    n_classes : int, default=4
        Number of classes (last axis of targets and predictions).
    outputs : {"softmax", "regions"}, default="softmax"
        Region outputs are decoded to classes first (`decode_regions`).
    name : str, default="scores"
        The metric's own name (not logged: its scores are).
    dtype : str, optional
        Dtype of the results; default=None (float32).

    Attributes
    ----------
    score_names : tuple of str
        What `result` returns, in order: ``dice_mean`` (tumour classes), ``dice_class1`` ..
        ``dice_class{n-1}``, with 4 classes ``dice_wt``, ``dice_tc``, ``dice_et`` (regions as
        `RegionDiceScore`), then ``precision_mean``, ``sensitivity_mean``,
        ``specificity_mean`` (macro over tumour classes), ``accuracy`` (`PixelAccuracy`) and
        ``mean_iou`` (`ArgmaxMeanIoU`, all classes).
    """

    def __init__(self, n_classes=4, outputs="softmax", name="scores", dtype=None):
        n_classes = int(n_classes)
        if n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {n_classes}")
        super().__init__(name=name, dtype=dtype)
        self.n_classes = n_classes
        self.outputs = _check_outputs(outputs)
        self.confusion = self.add_variable(name="confusion", shape=(n_classes, n_classes), initializer="zeros",
                                           dtype="float32", aggregation="sum")
        self._regions = {}
        if n_classes == 4:
            from ..labels import REGIONS

            self._regions = {region.lower(): [1.0 if c in classes else 0.0 for c in range(n_classes)]
                             for region, classes in REGIONS.items()}
        self.score_names = (
            "dice_mean", *(f"dice_class{c}" for c in range(1, n_classes)),
            *(f"dice_{region}" for region in self._regions),
            "precision_mean", "sensitivity_mean", "specificity_mean", "accuracy", "mean_iou",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch to the confusion matrix (arguments as `ConfusionCountsMetric.update_state`)."""
        n = self.n_classes
        if self.outputs == "regions":
            y_pred = decode_regions(y_pred, n)
        true_class = ops.argmax(y_true, axis=-1)
        true_onehot = ops.reshape(ops.one_hot(true_class, n, dtype="float32"), (-1, n))
        pred_onehot = ops.reshape(ops.one_hot(ops.argmax(y_pred, axis=-1), n, dtype="float32"), (-1, n))
        weights = _pixel_weights(sample_weight, true_class)
        if weights is not None:
            true_onehot = true_onehot * weights
        # confusion[i, j] += (weight of) pixels of true class i predicted as class j.
        self.confusion.assign_add(ops.matmul(ops.transpose(true_onehot), pred_onehot))

    def result(self):
        """The scores, as a dict ``name -> scalar`` (keys: `score_names`)."""
        confusion = ops.convert_to_tensor(self.confusion)
        tp = ops.diagonal(confusion)
        fp = ops.sum(confusion, axis=0) - tp
        fn = ops.sum(confusion, axis=1) - tp
        total = ops.sum(confusion)
        tn = total - tp - fp - fn
        counts = (tp, fp, fn, tn)
        dice = _dice(*counts)
        scores = {"dice_mean": ops.mean(dice[1:])}
        scores.update({f"dice_class{c}": dice[c] for c in range(1, self.n_classes)})
        for region, membership in self._regions.items():
            inside = ops.convert_to_tensor(membership, dtype="float32")
            region_tp = ops.sum(ops.matmul(ops.matmul(inside[None, :], confusion), inside[:, None]))
            region_true = ops.sum(ops.sum(confusion, axis=1) * inside)
            region_pred = ops.sum(ops.sum(confusion, axis=0) * inside)
            scores[f"dice_{region}"] = _dice(region_tp, region_pred - region_tp, region_true - region_tp, None)
        scores["precision_mean"] = ops.mean(_precision(*counts)[1:])
        scores["sensitivity_mean"] = ops.mean(_sensitivity(*counts)[1:])
        scores["specificity_mean"] = ops.mean(_specificity(*counts)[1:])
        scores["accuracy"] = _safe_ratio(ops.sum(tp), total)
        scores["mean_iou"] = ops.mean(_iou(*counts))
        return {name: ops.cast(scores[name], self.dtype) for name in self.score_names}

    def reset_state(self):
        self.confusion.assign(ops.zeros(self.confusion.shape, dtype="float32"))

    def get_config(self):
        config = super().get_config()
        config.update(n_classes=self.n_classes, outputs=self.outputs)
        return config


def default_metrics(n_classes=4, outputs="softmax"):
    """The metrics `gliseg_nb.train.fit` compiles a model with.

    Parameters
    ----------
    n_classes : int, default=4
    outputs : {"softmax", "regions"}, default="softmax"
        ``Config.outputs`` of the model: region outputs are decoded to classes first.

    Returns
    -------
    list of keras.metrics.Metric
        One `SegmentationScores`, which Keras logs as ``dice_mean`` (tumour classes),
        ``dice_class1`` .. ``dice_class{n-1}``, with 4 classes the region Dice ``dice_wt``,
        ``dice_tc``, ``dice_et`` (what the progress line shows), ``precision_mean``,
        ``sensitivity_mean``, ``specificity_mean`` (macro over tumour classes), ``accuracy``
        and ``mean_iou`` (argmax, all classes): the values of the single-score metrics of
        this module, counted once per batch.
    """
    return [SegmentationScores(n_classes, outputs=_check_outputs(outputs))]
